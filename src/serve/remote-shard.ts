// A front's side of entity sharding across processes (issue 17, item 3): the shards of a bundle live in shard
// replicas (`tkg shard`, src/serve/shard-server.ts); TKG_SHARD_SERVERS entry i lists the replicas of shard i
// (`http://a:9480|http://b:9480`). A RemoteShard is one shard as a ScoringShard: each exchange one HTTP POST with a
// v8-serialized body on kept-alive connections, batches spread over the shard's replicas, a replica that is down or
// lacks the version skipped. RemoteShardSet waits until every shard is held at an announced version and gives the
// front a ServingModel over them, so the front holds no row of Z: filters, terms, validation and the merge stay in
// the front (src/serve/sharded-scorer.ts), each shard replica holds N / shards rows.
// Owns: the HTTP client of the shard protocol, the choice of replica, and the "every shard holds it" wait.
// Must not import src/train, tfjs or Kafka.
import { randomUUID } from 'node:crypto';
import { deserialize, serialize } from 'node:v8';
import type { Logger } from 'pino';
import { TkgError } from '../core/errors.ts';
import type { FilteredCounts } from '../eval/rank.ts';
import type { ModelBundle } from '../model/bundle.ts';
import type { ScoringModelMetadata } from '../model/scoring-graph.ts';
import { type ShardRange, shardRange } from '../model/shard-map.ts';
import { ModelRejectedError, ServingModel } from './model.ts';
import type { HeldShard, ShardRpc, ShardRpcError } from './shard-server.ts';
import {
  type ScoringShard,
  type ShardCountsRequest,
  ShardedScorer,
  type ShardScoreRequest,
  type ShardScoreResult,
} from './sharded-scorer.ts';

type Call = ShardRpc extends infer T
  ? T extends unknown
    ? Omit<T, 'client' | 'name' | 'version'>
    : never
  : never;

/** POST /call to a shard replica; failures are TkgErrors with the replica's reason (unreachable: retriable). */
async function post(url: string, rpc: ShardRpc, timeoutMs: number): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${url}/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-v8-serialized' },
      body: serialize(rpc),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new TkgError(`shard replica ${url} is unreachable: ${(error as Error).message}`, {
      reason: 'shard_unreachable',
      retriable: true,
      cause: error,
    });
  }
  const body = Buffer.from(await response.arrayBuffer());
  if (!response.ok) {
    let failure: ShardRpcError;
    try {
      failure = JSON.parse(body.toString('utf8')) as ShardRpcError;
    } catch {
      failure = { message: `HTTP ${response.status}`, reason: 'shard_error', retriable: false };
    }
    throw new TkgError(`shard replica ${url}: ${failure.message}`, {
      reason: failure.reason,
      retriable: failure.retriable,
    });
  }
  return deserialize(body);
}

/** How long a replica that was unreachable is tried only after the others. */
const REPLICA_BACKOFF_MS = 5000;

/** Errors after which another replica of the same shard may answer: it is down, or does not hold the version. */
function failsOver(error: unknown): boolean {
  const reason = (error as { reason?: unknown }).reason;
  return reason === 'shard_unreachable' || reason === 'unknown_version';
}

/**
 * One shard of a bundle version, held by one or more shard replicas (`urls`: replicas of the same shard index).
 * Exchanges 1 and 2 go to the replicas in turn, moving on when one is down or lacks the version; exchange 3 and
 * release go to the replica that scored the batch (it keeps the batch's scores).
 */
export class RemoteShard implements ScoringShard {
  readonly range: ShardRange;
  readonly metadata: ScoringModelMetadata;
  private readonly scoredBy = new Map<number, string>();
  private readonly downUntil = new Map<string, number>();
  private turn = 0;

  constructor(
    readonly urls: readonly string[],
    private readonly held: HeldShard,
    private readonly client: string,
    private readonly timeoutMs = 30_000,
  ) {
    this.metadata = held.metadata;
    const shard = held.metadata.shard;
    if (!shard)
      throw new TkgError(`shard replica ${urls.join(' | ')} holds a graph that is not a shard`, {
        reason: 'not_a_shard',
      });
    this.range = shardRange(shard.map, shard.index);
  }

  private rpc(call: Call): ShardRpc {
    return {
      ...call,
      client: this.client,
      name: this.held.name,
      version: this.held.version,
    } as ShardRpc;
  }

  /**
   * The call on the replicas in turn; resolves with the result and the replica that gave it. A replica that was
   * unreachable is tried last for the next REPLICA_BACKOFF_MS (a dead host would cost every batch a timeout).
   */
  private async anyReplica(call: Call): Promise<{ result: unknown; url: string }> {
    const start = this.turn++ % this.urls.length;
    const now = Date.now();
    const order = this.urls
      .map((_, i) => this.urls[(start + i) % this.urls.length])
      .sort((a, b) => Number(this.isDown(a, now)) - Number(this.isDown(b, now)));
    let last: unknown;
    for (const url of order) {
      try {
        const result = await post(url, this.rpc(call), this.timeoutMs);
        this.downUntil.delete(url);
        return { result, url };
      } catch (error) {
        if (!failsOver(error)) throw error;
        if ((error as { reason?: string }).reason === 'shard_unreachable')
          this.downUntil.set(url, Date.now() + REPLICA_BACKOFF_MS);
        last = error;
      }
    }
    throw last;
  }

  private isDown(url: string, now: number): boolean {
    return (this.downUntil.get(url) ?? 0) > now;
  }

  async rowsOf(entities: Int32Array): Promise<Float32Array> {
    return (await this.anyReplica({ method: 'rowsOf', entities })).result as Float32Array;
  }

  async score(request: ShardScoreRequest): Promise<ShardScoreResult> {
    const { result, url } = await this.anyReplica({ method: 'score', request });
    if (request.answers.some((a) => a >= 0)) this.scoredBy.set(request.id, url);
    return result as ShardScoreResult;
  }

  async counts(request: ShardCountsRequest): Promise<FilteredCounts[]> {
    const url = this.scoredBy.get(request.id);
    this.scoredBy.delete(request.id);
    if (!url)
      throw new TkgError(`no replica of shard ${this.range.index} scored batch ${request.id}`, {
        reason: 'no_batch',
      });
    return (await post(
      url,
      this.rpc({ method: 'counts', request }),
      this.timeoutMs,
    )) as FilteredCounts[];
  }

  async release(id: number): Promise<void> {
    const url = this.scoredBy.get(id);
    this.scoredBy.delete(id);
    if (url) await post(url, this.rpc({ method: 'release', id }), this.timeoutMs);
  }

  /** Nothing to unload here: the shard replicas retire versions themselves (each keeps the newest two). */
  async close(): Promise<void> {
    this.scoredBy.clear();
  }
}

export interface RemoteShardSetOptions {
  /** Give up on a version no shard replica set holds after this long (default 10 minutes). */
  timeoutMs?: number;
  pollMs?: number;
  /** Per exchange (default 30 s). */
  callTimeoutMs?: number;
  logger?: Logger;
}

/** The shard replicas of TKG_SHARD_SERVERS: entry i lists the replicas of shard i (one or more). */
export class RemoteShardSet {
  private readonly client = randomUUID();

  constructor(
    readonly shards: ReadonlyArray<readonly string[]>,
    private readonly options: RemoteShardSetOptions = {},
  ) {
    if (shards.length === 0 || shards.some((urls) => urls.length === 0))
      throw new RangeError('a remote shard set needs at least one URL per shard');
  }

  /** What one shard replica holds now (undefined when it does not answer). */
  private async heldBy(url: string): Promise<HeldShard[] | undefined> {
    try {
      const response = await fetch(`${url}/shards`, { signal: AbortSignal.timeout(5000) });
      return response.ok ? ((await response.json()) as HeldShard[]) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The ServingModel of `bundle` over the shard replicas, once at least one replica of every shard holds its
   * version (checked against the bundle's vocabulary as a load is). Rejects (ModelRejectedError) when a replica
   * holds another shard than its place in the list, when every replica of a shard moved past the version without
   * it, or after the timeout.
   */
  async modelFor(bundle: ModelBundle): Promise<ServingModel> {
    const { logger } = this.options;
    const S = this.shards.length;
    const deadline = Date.now() + (this.options.timeoutMs ?? 600_000);
    let lastSaid = 0;
    for (;;) {
      const found: Array<HeldShard | undefined> = new Array(S).fill(undefined);
      const waiting: string[] = [];
      for (let i = 0; i < S; i++) {
        const lists = await Promise.all(this.shards[i].map((url) => this.heldBy(url)));
        let newer = 0;
        lists.forEach((list, j) => {
          const url = this.shards[i][j];
          const own = (list ?? []).filter((h) => h.name === bundle.name);
          const wrong = own.find((h) => h.index !== i || h.count !== S);
          if (wrong)
            throw new ModelRejectedError(
              `shard replica ${url} holds shard ${wrong.index} of ${wrong.count}, but it is listed as shard ${i} of ${S} in TKG_SHARD_SERVERS: start it with TKG_SHARD_INDEX=${i} TKG_SHARD_COUNT=${S}, or list the URLs in shard order`,
              'incompatible',
            );
          const match = own.find((h) => h.version === bundle.version);
          if (match) found[i] ??= match;
          else if (own.some((h) => h.version > bundle.version)) newer++;
        });
        if (found[i]) continue;
        if (newer === lists.length)
          throw new ModelRejectedError(
            `every replica of shard ${i} (${this.shards[i].join(', ')}) holds newer versions of ${bundle.name} than ${bundle.version} and not ${bundle.version} itself`,
            'stale',
          );
        waiting.push(
          lists.every((list) => list === undefined)
            ? `${this.shards[i].join(' | ')} (not answering)`
            : this.shards[i].join(' | '),
        );
      }
      if (waiting.length === 0) {
        const held = found as HeldShard[];
        const shards = held.map(
          (h, i) => new RemoteShard(this.shards[i], h, this.client, this.options.callTimeoutMs),
        );
        let scorer: ShardedScorer;
        try {
          scorer = new ShardedScorer(shards);
        } catch (error) {
          throw new ModelRejectedError((error as Error).message, 'incompatible', error);
        }
        const { shard: _shard, ...metadata } = held[0].metadata;
        return ServingModel.fromShards(scorer, metadata, {
          entities: bundle.entities,
          relations: bundle.relations,
        });
      }
      if (Date.now() > deadline)
        throw new ModelRejectedError(
          `model ${bundle.name} v${bundle.version}: shard replicas ${waiting.join(', ')} did not hold it within ${this.options.timeoutMs ?? 600_000} ms`,
          'stale',
        );
      if (Date.now() - lastSaid > 10_000) {
        lastSaid = Date.now();
        logger?.info(
          `model ${bundle.name} v${bundle.version}: waiting for shard replicas ${waiting.join(', ')}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs ?? 250));
    }
  }
}
