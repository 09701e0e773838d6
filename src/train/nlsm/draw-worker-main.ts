// The body of the epoch-draw worker thread (started by draw-worker.ts through draw-worker-boot.mjs): holds the
// generator and proposals of each window update in progress (one per trainer drawing at the time) and draws the
// epoch it is asked for (draw-worker.ts drawInto), sending the noise, the edges and the generator's state after
// them. Owns: the worker side of the DrawCall / DrawReply messages.
// Must not import tfjs, onnxruntime, kafkajs, src/kafka, src/window or src/serve.
import { parentPort } from 'node:worker_threads';
import { Xoshiro128 } from '../../core/random.ts';
import { drawInto, type DrawCall, type DrawJob, type DrawReply } from './draw-worker.ts';

const port = parentPort;
if (!port) throw new Error('draw-worker-main.ts runs only as a worker thread (draw-worker.ts)');

/** Updates in progress by id (one per trainer drawing at the time); an update that never ends is dropped later. */
const jobs = new Map<number, { spec: DrawJob; rng: Xoshiro128; drawn: number }>();
const MAX_JOBS = 16;

port.on('message', (message: DrawCall) => {
  if (message.method === 'end') {
    jobs.delete(message.id);
    return;
  }
  try {
    if (message.method === 'start') {
      const rng = new Xoshiro128(0);
      rng.setState(message.job.rngState);
      jobs.set(message.id, { spec: message.job, rng, drawn: 0 });
      for (const id of jobs.keys()) if (jobs.size > MAX_JOBS) jobs.delete(id);
    }
    const job = jobs.get(message.id);
    if (!job) throw new Error(`draw request of update ${message.id}: no such update in progress`);
    const { spec, rng } = job;
    if (message.epoch !== job.drawn + 1)
      throw new Error(`draw request of epoch ${message.epoch} after epoch ${job.drawn}`);
    const psi = new Float32Array(spec.L * spec.U * spec.K);
    const theta = new Float32Array(spec.L * spec.Rw * spec.D);
    const edges = drawInto(rng, spec, psi, theta);
    job.drawn = message.epoch;
    const reply: DrawReply = {
      id: message.id,
      epoch: message.epoch,
      draw: { psi, theta, edges, rngState: rng.getState() },
    };
    port.postMessage(reply, [
      psi.buffer,
      theta.buffer,
      ...Object.values(edges).map((a: Int32Array | Float32Array) => a.buffer as ArrayBuffer),
    ]);
  } catch (error) {
    port.postMessage({
      id: message.id,
      epoch: message.epoch,
      error: (error as Error).message ?? String(error),
    } satisfies DrawReply);
  }
});
