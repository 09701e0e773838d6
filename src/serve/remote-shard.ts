// A front's side of entity sharding across processes (issue 17, item 3): the shards of a bundle live in shard
// replicas (`tkg shard`, src/serve/shard-server.ts), one URL per shard index in TKG_SHARD_SERVERS order. A
// RemoteShard is one of them as a ScoringShard (each exchange one HTTP POST with a v8-serialized body, on kept-alive
// connections); RemoteShardSet waits until every shard replica holds an announced version and gives the front a
// ServingModel over them, so the front holds no row of Z: filters, terms, validation and the merge stay in the front
// (src/serve/sharded-scorer.ts), each shard replica holds N / shards rows.
// Owns: the HTTP client of the shard protocol and the "every shard holds it" wait. Must not import src/train, tfjs
// or Kafka.
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

/** One shard of a bundle version, held by a shard replica at `url`. */
export class RemoteShard implements ScoringShard {
  readonly range: ShardRange;
  readonly metadata: ScoringModelMetadata;

  constructor(
    readonly url: string,
    private readonly held: HeldShard,
    private readonly client: string,
    private readonly timeoutMs = 30_000,
  ) {
    this.metadata = held.metadata;
    const shard = held.metadata.shard;
    if (!shard)
      throw new TkgError(`shard replica ${url} holds a graph that is not a shard`, {
        reason: 'not_a_shard',
      });
    this.range = shardRange(shard.map, shard.index);
  }

  private call(call: Call): Promise<unknown> {
    const rpc = { ...call, client: this.client, name: this.held.name, version: this.held.version };
    return post(this.url, rpc as ShardRpc, this.timeoutMs);
  }

  async rowsOf(entities: Int32Array): Promise<Float32Array> {
    return (await this.call({ method: 'rowsOf', entities })) as Float32Array;
  }

  async score(request: ShardScoreRequest): Promise<ShardScoreResult> {
    return (await this.call({ method: 'score', request })) as ShardScoreResult;
  }

  async counts(request: ShardCountsRequest): Promise<FilteredCounts[]> {
    return (await this.call({ method: 'counts', request })) as FilteredCounts[];
  }

  async release(id: number): Promise<void> {
    await this.call({ method: 'release', id });
  }

  /** Nothing to unload here: the shard replica retires versions itself (it keeps the newest two). */
  async close(): Promise<void> {}
}

export interface RemoteShardSetOptions {
  /** Give up on a version no shard replica set holds after this long (default 10 minutes). */
  timeoutMs?: number;
  pollMs?: number;
  /** Per exchange (default 30 s). */
  callTimeoutMs?: number;
  logger?: Logger;
}

/** The shard replicas of TKG_SHARD_SERVERS (URL i holds shard i of urls.length). */
export class RemoteShardSet {
  private readonly client = randomUUID();

  constructor(
    readonly urls: readonly string[],
    private readonly options: RemoteShardSetOptions = {},
  ) {
    if (urls.length === 0) throw new RangeError('a remote shard set needs at least one URL');
  }

  /** What each shard replica holds now (undefined for one that does not answer). */
  async held(): Promise<Array<HeldShard[] | undefined>> {
    return Promise.all(
      this.urls.map(async (url) => {
        try {
          const response = await fetch(`${url}/shards`, { signal: AbortSignal.timeout(5000) });
          return response.ok ? ((await response.json()) as HeldShard[]) : undefined;
        } catch {
          return undefined;
        }
      }),
    );
  }

  /**
   * The ServingModel of `bundle` over the shard replicas, once every one of them holds its version (checked against
   * the bundle's vocabulary as a load is). Rejects (ModelRejectedError) when a replica holds a different shard of
   * the set, when one already moved past the version without it, or after the timeout.
   */
  async modelFor(bundle: ModelBundle): Promise<ServingModel> {
    const { logger } = this.options;
    const S = this.urls.length;
    const deadline = Date.now() + (this.options.timeoutMs ?? 600_000);
    let lastSaid = 0;
    for (;;) {
      const all = await this.held();
      const found: HeldShard[] = [];
      const waiting: string[] = [];
      for (let i = 0; i < S; i++) {
        const list = all[i];
        if (!list) {
          waiting.push(`${this.urls[i]} (not answering)`);
          continue;
        }
        const own = list.filter((h) => h.name === bundle.name);
        const wrong = own.find((h) => h.index !== i || h.count !== S);
        if (wrong)
          throw new ModelRejectedError(
            `shard replica ${this.urls[i]} holds shard ${wrong.index} of ${wrong.count}, but it is listed as shard ${i} of ${S} in TKG_SHARD_SERVERS: start it with TKG_SHARD_INDEX=${i} TKG_SHARD_COUNT=${S}, or list the URLs in shard order`,
            'incompatible',
          );
        const match = own.find((h) => h.version === bundle.version);
        if (match) found.push(match);
        else if (own.some((h) => h.version > bundle.version))
          throw new ModelRejectedError(
            `shard replica ${this.urls[i]} holds newer versions of ${bundle.name} than ${bundle.version} and not ${bundle.version} itself`,
            'stale',
          );
        else waiting.push(this.urls[i]);
      }
      if (waiting.length === 0) {
        const shards = found.map(
          (held, i) => new RemoteShard(this.urls[i], held, this.client, this.options.callTimeoutMs),
        );
        let scorer: ShardedScorer;
        try {
          scorer = new ShardedScorer(shards);
        } catch (error) {
          throw new ModelRejectedError((error as Error).message, 'incompatible', error);
        }
        const { shard: _shard, ...metadata } = found[0].metadata;
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
