// Scoring shards in worker threads (issue 17, item 3): each ShardWorker is one thread with its own onnxruntime
// sessions, so one process scores a sharded bundle with as many cores as shards (onnxruntime-node runs a session on
// the calling thread). A worker outlives bundle versions: it loads each version's shard graph next to the previous
// one (a swap costs a load, not a thread start) and drops it when the ServingModel over it is released.
// The worker body is src/serve/shard-worker-boot.mjs -> shard-worker-main.ts; this side holds the proxies.
// Owns: starting and stopping workers, the request/response correlation and the transfer of typed arrays.
// Must not import src/train, tfjs or Kafka.
import { Worker } from 'node:worker_threads';
import { TkgError } from '../core/errors.ts';
import type { FilteredCounts } from '../eval/rank.ts';
import type { ScoringModelMetadata } from '../model/scoring-graph.ts';
import { type ShardRange, shardRange } from '../model/shard-map.ts';
import { copyShardRows } from './model.ts';
import type {
  ScoringShard,
  ShardCountsRequest,
  ShardScoreRequest,
  ShardScoreResult,
} from './sharded-scorer.ts';

/** Messages to a worker: load or unload a shard graph, or one method call of a loaded shard (by key). */
export type ShardCall =
  | { call: number; method: 'load'; key: number; bytes: Uint8Array; intraOpThreads: number }
  | { call: number; method: 'unload'; key: number }
  | { call: number; method: 'score'; key: number; request: ShardScoreRequest }
  | { call: number; method: 'counts'; key: number; request: ShardCountsRequest }
  | { call: number; method: 'release'; key: number; id: number };

/** Messages from a worker: one call's result or error. */
export type ShardReply =
  { call: number; result: unknown } | { call: number; error: { message: string; reason?: string } };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** One worker thread holding any number of loaded shard graphs. */
export class ShardWorker {
  private readonly worker: Worker;
  private nextCall = 0;
  private nextKey = 0;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: unknown) => void }
  >();
  private failure: Error | undefined;

  constructor() {
    this.worker = new Worker(new URL('./shard-worker-boot.mjs', import.meta.url));
    this.worker.on('message', (reply: ShardReply) => {
      const waiter = this.pending.get(reply.call);
      if (!waiter) return;
      this.pending.delete(reply.call);
      if ('error' in reply)
        waiter.reject(
          new TkgError(reply.error.message, { reason: reply.error.reason ?? 'shard_error' }),
        );
      else waiter.resolve(reply.result);
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) =>
      fail(new TkgError(`shard worker exited with code ${code}`, { reason: 'shard_exit' })),
    );
  }

  /** False once the thread exited, failed or was terminated (its shards answer every call with that error). */
  get alive(): boolean {
    return this.failure === undefined;
  }

  /** Load a shard graph (the bytes are transferred: the caller's buffer is detached). */
  async load(bytes: Uint8Array, options: { intraOpThreads?: number } = {}): Promise<WorkerShard> {
    const own =
      bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? bytes
        : bytes.slice();
    const key = this.nextKey++;
    const { metadata, rows } = (await this.call(
      { method: 'load', key, bytes: own, intraOpThreads: options.intraOpThreads ?? 1 },
      [own.buffer as ArrayBuffer],
    )) as { metadata: ScoringModelMetadata; rows: Float32Array };
    return new WorkerShard(this, key, metadata, rows);
  }

  /** Stop the thread (every shard loaded in it stops answering). */
  async terminate(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.failure ??= new TkgError('shard worker was terminated', { reason: 'shard_exit' });
    await this.worker.terminate();
  }

  call(
    message: DistributiveOmit<ShardCall, 'call'>,
    transfer: ArrayBuffer[] = [],
  ): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.pending.set(call, { resolve, reject });
      this.worker.postMessage({ ...message, call }, transfer);
    });
  }
}

/** A ScoringShard loaded in a ShardWorker. close() unloads it (and stops the worker when it owns it). */
export class WorkerShard implements ScoringShard {
  readonly range: ShardRange;

  constructor(
    private readonly worker: ShardWorker,
    private readonly key: number,
    readonly metadata: ScoringModelMetadata,
    /** The shard's rows of Z in the worker's shared memory: exchange 1 reads them here, without a message. */
    private readonly rows: Float32Array,
    private readonly ownsWorker = false,
  ) {
    const shard = metadata.shard;
    if (!shard)
      throw new TkgError('the worker loaded a graph that is not a shard', {
        reason: 'not_a_shard',
      });
    this.range = shardRange(shard.map, shard.index);
  }

  /** A shard in a worker of its own (the worker stops with close()). */
  static async start(
    bytes: Uint8Array,
    options: { intraOpThreads?: number } = {},
  ): Promise<WorkerShard> {
    const worker = new ShardWorker();
    try {
      const shard = await worker.load(bytes, options);
      return new WorkerShard(worker, shard.key, shard.metadata, shard.rows, true);
    } catch (error) {
      await worker.terminate();
      throw error;
    }
  }

  async rowsOf(entities: Int32Array): Promise<Float32Array> {
    return copyShardRows(this.rows, this.metadata.K, this.range, entities);
  }

  score(request: ShardScoreRequest): Promise<ShardScoreResult> {
    return this.worker.call({
      method: 'score',
      key: this.key,
      request,
    }) as Promise<ShardScoreResult>;
  }

  counts(request: ShardCountsRequest): Promise<FilteredCounts[]> {
    return this.worker.call({ method: 'counts', key: this.key, request }) as Promise<
      FilteredCounts[]
    >;
  }

  async release(id: number): Promise<void> {
    await this.worker.call({ method: 'release', key: this.key, id });
  }

  async close(): Promise<void> {
    await this.worker.call({ method: 'unload', key: this.key }).catch(() => undefined);
    if (this.ownsWorker) await this.worker.terminate();
  }
}
