// Each epoch's draws of a window update (window-batch.ts: the noise of every slot, then the importance-weighted
// negatives), made on another thread while the trainer's thread runs the previous epoch's kernels and Adam: the
// 'onnx' engine's epoch is the kernel run plus Adam plus the draws (about a fifth of it on ICEWS14), and the draws
// depend only on the generator and the window's proposals, not on the parameters. The worker draws epoch e + 1 when
// epoch e is taken (one epoch ahead, so memory stays two epochs' draws) from the trainer's generator state, and
// sends the state after each epoch; the trainer's generator takes the state after the last epoch used. The same
// numbers in the same order as drawing in place (a test checks a window update bit for bit). One worker per
// process, started on first use, holding the process open only while a draw is pending.
// The worker body is draw-worker-boot.mjs -> draw-worker-main.ts. Owns: EpochDraws (worker and in-place), the
// messages and their correlation. Must not touch parameters, kernels or Adam (fused-fit.ts); must not import tfjs,
// onnxruntime, kafkajs, src/kafka, src/window or src/serve.
import { Worker } from 'node:worker_threads';
import type { Xoshiro128 } from '../../core/random.ts';
import type { NegativeProposal } from './math.ts';
import { drawEpochWith, type EpochEdges } from './window-batch.ts';

/** Where the epochs' draws are made: a worker thread (the default) or the trainer's own thread, when taken. */
export type DrawThread = 'worker' | 'main';

/** One epoch's draws: noise [L, U, K] and [L, Rw, K P] (slot 0 zero), the edges, the generator's state after. */
export interface EpochDraw {
  psi: Float32Array;
  theta: Float32Array;
  edges: EpochEdges;
  rngState?: number[];
}

/** A window update's draws as the worker needs them: the shape, the update's id and the generator's state. */
export type DrawJob = Omit<DrawShape, 'epochs'> & { id: number; rngState: number[] };

export type DrawCall =
  | { method: 'start'; id: number; epoch: 1; job: DrawJob }
  | { method: 'draw'; id: number; epoch: number }
  | { method: 'end'; id: number };

export type DrawReply =
  { id: number; epoch: number; draw: EpochDraw } | { id: number; epoch: number; error: string };

/** Shape of a window update's draws. */
export interface DrawShape {
  proposals: NegativeProposal[];
  negativesPerPositive: number;
  L: number;
  U: number;
  Rw: number;
  K: number;
  D: number;
  /** The most epochs the update may take. */
  epochs: number;
}

/** A window update's epochs' draws: take(1), take(2), ... in order, then finish(). */
export interface EpochDraws {
  take(epoch: number): Promise<EpochDraw>;
  /** The generator continues after the last epoch taken (an epoch drawn ahead and not taken is dropped). */
  finish(): void;
}

/** One epoch's draws from `rng` into psi [L, U, K] and theta [L, Rw, K P] (slot 0 untouched); returns the edges. */
export function drawInto(
  rng: Xoshiro128,
  shape: Omit<DrawShape, 'epochs'>,
  psi: Float32Array,
  theta: Float32Array,
): EpochEdges {
  const { L, U, Rw, K, D } = shape;
  return drawEpochWith(
    rng,
    shape.proposals,
    shape.negativesPerPositive,
    L,
    U,
    Rw,
    (slot) => psi.subarray(slot * U * K, (slot + 1) * U * K),
    (slot) => theta.subarray(slot * Rw * D, (slot + 1) * Rw * D),
  );
}

/** Draws made on the trainer's thread when taken, into one reused set of buffers. */
function inPlace(rng: Xoshiro128, shape: DrawShape): EpochDraws {
  const psi = new Float32Array(shape.L * shape.U * shape.K);
  const theta = new Float32Array(shape.L * shape.Rw * shape.D);
  return {
    take: async () => ({ psi, theta, edges: drawInto(rng, shape, psi, theta) }),
    finish: () => undefined,
  };
}

/** The process's draw worker thread. */
class DrawWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<
    string,
    { resolve: (draw: EpochDraw) => void; reject: (error: Error) => void }
  >();
  failure: Error | undefined;
  private nextId = 0;

  constructor() {
    this.worker = new Worker(new URL('./draw-worker-boot.mjs', import.meta.url));
    this.worker.unref();
    this.worker.on('message', (reply: DrawReply) => {
      const key = `${reply.id}/${reply.epoch}`;
      const waiter = this.pending.get(key);
      this.pending.delete(key);
      if (this.pending.size === 0) this.worker.unref();
      if (!waiter) return; // an epoch drawn ahead that the update did not take
      if ('error' in reply) waiter.reject(new Error(`epoch draws: ${reply.error}`));
      else waiter.resolve(reply.draw);
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
      if (shared === this) shared = undefined;
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`epoch draw worker exited with code ${code}`)));
  }

  /**
   * Sends `call`; the promise of its reply. An epoch drawn ahead may never be taken, so a rejection nobody awaits
   * is not reported as unhandled (whoever awaits the promise still gets it).
   */
  private request(call: Exclude<DrawCall, { method: 'end' }>): Promise<EpochDraw> {
    const reply = this.failure
      ? Promise.reject(this.failure)
      : new Promise<EpochDraw>((resolve, reject) => {
          if (this.pending.size === 0) this.worker.ref();
          this.pending.set(`${call.id}/${call.epoch}`, { resolve, reject });
          this.worker.postMessage(call);
        });
    reply.catch(() => undefined);
    return reply;
  }

  draws(rng: Xoshiro128, shape: DrawShape): EpochDraws {
    const id = this.nextId++;
    const { epochs, ...rest } = shape;
    const job: DrawJob = { ...rest, id, rngState: rng.getState() };
    const ahead = new Map([[1, this.request({ method: 'start', id, epoch: 1, job })]]);
    let lastState: number[] | undefined;
    return {
      take: async (epoch) => {
        const next = ahead.get(epoch);
        if (!next) throw new Error(`epoch ${epoch} taken out of order`);
        ahead.delete(epoch);
        if (epoch < epochs)
          ahead.set(epoch + 1, this.request({ method: 'draw', id, epoch: epoch + 1 }));
        const draw = await next;
        lastState = draw.rngState;
        return draw;
      },
      finish: () => {
        if (lastState) rng.setState(lastState);
        for (const epoch of ahead.keys()) this.pending.delete(`${id}/${epoch}`);
        if (this.pending.size === 0) this.worker.unref();
        if (!this.failure) this.worker.postMessage({ method: 'end', id } satisfies DrawCall);
      },
    };
  }
}

let shared: DrawWorker | undefined;

/** The epochs' draws of one window update from `rng` (which must not draw anything else until finish). */
export function epochDraws(rng: Xoshiro128, shape: DrawShape, thread: DrawThread): EpochDraws {
  if (thread === 'main') return inPlace(rng, shape);
  shared ??= new DrawWorker();
  return shared.draws(rng, shape);
}
