// A scoring shard in a worker thread (issue 17, item 3): its own onnxruntime session on its own core, so one process
// serves a sharded bundle with as many cores as shards (onnxruntime-node runs a session on the calling thread).
// The worker (src/serve/shard-worker-boot.mjs -> shard-worker-main.ts) wraps a LocalShard; this side is its
// ScoringShard proxy.
// Owns: starting the worker, the request/response correlation and the transfer of typed arrays.
// Must not import src/train, tfjs or Kafka.
import { Worker } from 'node:worker_threads';
import { TkgError } from '../core/errors.ts';
import type { FilteredCounts } from '../eval/rank.ts';
import type { ScoringModelMetadata } from '../model/scoring-graph.ts';
import { type ShardRange, shardRange } from '../model/shard-map.ts';
import type {
  ScoringShard,
  ShardCountsRequest,
  ShardScoreRequest,
  ShardScoreResult,
} from './sharded-scorer.ts';

/** Messages to the worker: one method call of LocalShard. */
export type ShardCall =
  | { call: number; method: 'rowsOf'; entities: Int32Array }
  | { call: number; method: 'score'; request: ShardScoreRequest }
  | { call: number; method: 'counts'; request: ShardCountsRequest }
  | { call: number; method: 'release'; id: number }
  | { call: number; method: 'close' };

/** Messages from the worker: the loaded shard's metadata, or one call's result or error. */
export type ShardReply =
  | { call: -1; metadata: ScoringModelMetadata }
  | { call: number; result: unknown }
  | { call: number; error: { message: string; reason?: string } };

export class WorkerShard implements ScoringShard {
  readonly range: ShardRange;
  readonly metadata: ScoringModelMetadata;
  private nextCall = 0;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: unknown) => void }
  >();
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    metadata: ScoringModelMetadata,
  ) {
    this.metadata = metadata;
    const shard = metadata.shard;
    if (!shard)
      throw new TkgError('the worker loaded a graph that is not a shard', {
        reason: 'not_a_shard',
      });
    this.range = shardRange(shard.map, shard.index);
    worker.on('message', (reply: ShardReply) => {
      const waiter = this.pending.get(reply.call);
      if (!waiter) return;
      this.pending.delete(reply.call);
      if ('error' in reply)
        waiter.reject(
          new TkgError(reply.error.message, { reason: reply.error.reason ?? 'shard_error' }),
        );
      else if ('result' in reply) waiter.resolve(reply.result);
    });
    const fail = (error: Error) => {
      this.failure = error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) =>
      fail(new TkgError(`shard worker exited with code ${code}`, { reason: 'shard_exit' })),
    );
  }

  /** Start a worker that loads the shard graph `bytes` (transferred: the caller's buffer is detached). */
  static async start(
    bytes: Uint8Array,
    options: { intraOpThreads?: number } = {},
  ): Promise<WorkerShard> {
    const copy =
      bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? bytes
        : bytes.slice();
    const worker = new Worker(new URL('./shard-worker-boot.mjs', import.meta.url), {
      workerData: { bytes: copy, intraOpThreads: options.intraOpThreads ?? 1 },
      transferList: [copy.buffer as ArrayBuffer],
    });
    const metadata = await new Promise<ScoringModelMetadata>((resolve, reject) => {
      const onMessage = (reply: ShardReply) => {
        if (reply.call !== -1) return;
        worker.off('message', onMessage);
        if ('metadata' in reply) resolve(reply.metadata);
        else if ('error' in reply)
          reject(new TkgError(reply.error.message, { reason: reply.error.reason ?? 'corrupt' }));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) =>
        reject(
          new TkgError(`shard worker exited with code ${code} while loading`, {
            reason: 'shard_exit',
          }),
        ),
      );
    });
    return new WorkerShard(worker, metadata);
  }

  rowsOf(entities: Int32Array): Promise<Float32Array> {
    return this.call({ method: 'rowsOf', entities }) as Promise<Float32Array>;
  }

  score(request: ShardScoreRequest): Promise<ShardScoreResult> {
    return this.call({ method: 'score', request }) as Promise<ShardScoreResult>;
  }

  counts(request: ShardCountsRequest): Promise<FilteredCounts[]> {
    return this.call({ method: 'counts', request }) as Promise<FilteredCounts[]>;
  }

  async release(id: number): Promise<void> {
    await this.call({ method: 'release', id });
  }

  async close(): Promise<void> {
    if (!this.failure) await this.call({ method: 'close' }).catch(() => undefined);
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }

  private call(message: DistributiveOmit<ShardCall, 'call'>): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.pending.set(call, { resolve, reject });
      this.worker.postMessage({ ...message, call });
    });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
