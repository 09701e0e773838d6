// Entry of the epoch-draw worker thread (src/train/nlsm/draw-worker.ts): registers tsx, as bin/tkg.js does (a worker
// does not inherit the parent's loader in Node 20), then runs the worker body. Owns nothing else.
import { register } from 'tsx/esm/api';
register();
await import('./draw-worker-main.ts');
