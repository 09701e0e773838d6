// tfjs backend selection for the trainer. Owns: choosing tfjs-node ('tensorflow') when it can be
// imported, else the wasm backend (plus the one kernel the wasm build lacks for gather gradients),
// else 'cpu'. Must not import kafkajs, src/kafka or src/serve.
import * as tf from '@tensorflow/tfjs';
import { TkgError } from '../core/errors.ts';

export type TrainBackend = 'tensorflow' | 'wasm' | 'cpu';

let chosen: Promise<TrainBackend> | undefined;

/**
 * Selects and initialises the backend once per process (tfjs keeps one engine per process).
 * `preferred` forces a backend; default: 'tensorflow' if @tensorflow/tfjs-node imports, else 'wasm'.
 */
export function ensureBackend(preferred?: TrainBackend): Promise<TrainBackend> {
  chosen ??= selectBackend(preferred);
  return chosen;
}

async function selectBackend(preferred?: TrainBackend): Promise<TrainBackend> {
  const order: TrainBackend[] = preferred ? [preferred] : ['tensorflow', 'wasm', 'cpu'];
  const failures: string[] = [];
  for (const name of order) {
    try {
      if (name === 'tensorflow') {
        const nodeBackend = '@tensorflow/tfjs-node'; // optional runtime dependency, not installed here
        await import(nodeBackend);
      } else if (name === 'wasm') {
        await import('@tensorflow/tfjs-backend-wasm');
        registerWasmSegmentSum();
      }
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
      failures.push(`${name}: setBackend returned false`);
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new TkgError(`no tfjs backend could be initialised (${failures.join('; ')}); install @tensorflow/tfjs-backend-wasm`, {
    reason: 'backend',
  });
}

/**
 * The wasm backend (tfjs 4.22) has no UnsortedSegmentSum kernel, which the gradient of tf.gather
 * needs. This registers a plain-JS one (deterministic, sums in index order).
 */
function registerWasmSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
      const wasm = backend as unknown as {
        readSync(dataId: object): Float32Array | Int32Array;
        makeOutput(shape: number[], dtype: string, offset?: number, values?: Float32Array): tf.TensorInfo;
      };
      if (x.dtype !== 'float32') {
        throw new TkgError(`UnsortedSegmentSum (wasm, JS kernel) supports float32 only, got ${x.dtype}`, {
          reason: 'backend',
        });
      }
      const values = wasm.readSync(x.dataId) as Float32Array;
      const ids = wasm.readSync(segmentIds.dataId) as Int32Array;
      const rows = ids.length;
      const inner = rows === 0 ? 0 : values.length / rows;
      const out = new Float32Array(numSegments * inner);
      for (let row = 0; row < rows; row++) {
        const target = ids[row];
        if (target < 0 || target >= numSegments) continue;
        const src = row * inner;
        const dst = target * inner;
        for (let c = 0; c < inner; c++) out[dst + c] += values[src + c];
      }
      return wasm.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], 'float32', undefined, out);
    },
  });
}
