// A shard replica's side of entity sharding across processes (issue 17, item 3): it holds shard `index` of `count`
// of every bundle version it is offered (cut from the bundle's graph; the newest two versions per name, so a front
// can finish its batches on the version before while it swaps) and answers the ScoringShard exchanges of
// src/serve/sharded-scorer.ts over HTTP: POST /call with a v8-serialized ShardRpc (typed arrays travel as bytes;
// tkg talks to tkg here), GET /shards lists what it holds as JSON. Scores a batch keeps for its counts are keyed by
// the caller's client id and batch id, and dropped after keptScoresMs if the counts never come (a front that died).
// Owns: cutting and loading its range, keeping and retiring versions, the HTTP endpoint. Must not import src/train,
// tfjs or Kafka (src/serve/shard-replica.ts feeds it the bundles). Counts its exchanges (tkg_shard_calls_total,
// tkg_shard_call_duration_seconds).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deserialize, serialize } from 'node:v8';
import type { Logger } from 'pino';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { TkgError } from '../core/errors.ts';
import type { ModelBundle } from '../model/bundle.ts';
import { cutScoringShard, type ScoringModelMetadata } from '../model/scoring-graph.ts';
import { evenShardMap } from '../model/shard-map.ts';
import { ModelRejectedError, ServingModel } from './model.ts';
import { LocalShard, type ShardCountsRequest, type ShardScoreRequest } from './sharded-scorer.ts';

/** One bundle version a shard replica holds (GET /shards lists these). */
export interface HeldShard {
  name: string;
  version: number;
  index: number;
  count: number;
  /** The shard graph's metadata (its shard field carries the bundle's shard map). */
  metadata: ScoringModelMetadata;
}

/** One exchange of a batch, addressed to a held version; `client` names the front (batch ids are per front). */
export type ShardRpc = { client: string; name: string; version: number } & (
  | { method: 'rowsOf'; entities: Int32Array }
  | { method: 'score'; request: ShardScoreRequest }
  | { method: 'counts'; request: ShardCountsRequest }
  | { method: 'release'; id: number }
);

/** What POST /call answers with when the call failed (JSON, HTTP 4xx / 5xx). */
export interface ShardRpcError {
  message: string;
  reason: string;
  retriable: boolean;
}

export interface ShardServerOptions {
  index: number;
  count: number;
  /** onnxruntime intra-op threads of each held version's session. */
  intraOpThreads?: number;
  /** Versions kept per bundle name (default 2: the serving one and the one before). */
  keepVersions?: number;
  /** Scores kept for a batch's counts are dropped after this long (default 60 s). */
  keptScoresMs?: number;
  metrics?: TkgMetrics;
  logger?: Logger;
}

interface Held extends HeldShard {
  shard: LocalShard;
}

export class ShardServer {
  private readonly held = new Map<string, Held[]>(); // per name, oldest first
  private readonly kept = new Map<string, { local: number; at: number; held: Held }>();
  private nextLocal = 0;
  private server: Server | undefined;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: ShardServerOptions) {
    if (!Number.isInteger(options.count) || options.count < 1)
      throw new RangeError(`shard count must be a positive integer, got ${options.count}`);
    if (!Number.isInteger(options.index) || options.index < 0 || options.index >= options.count)
      throw new RangeError(`shard index must be in [0, ${options.count}), got ${options.index}`);
    const keptMs = options.keptScoresMs ?? 60_000;
    this.sweeper = setInterval(() => void this.sweep(keptMs), Math.min(keptMs, 10_000));
    this.sweeper.unref();
  }

  /** Every version held, oldest first per name. */
  list(): HeldShard[] {
    return [...this.held.values()].flat().map(({ shard: _shard, ...rest }) => rest);
  }

  /** Newest version held of `name` (-Infinity when none). */
  newest(name: string): number {
    const versions = this.held.get(name);
    return versions?.length ? versions[versions.length - 1].version : -Infinity;
  }

  /**
   * Cut this server's range out of a bundle's graph and load it; older versions beyond keepVersions retire.
   * Throws ModelRejectedError when the graph cannot be cut or loaded.
   */
  async load(bundle: ModelBundle, bytes: Uint8Array): Promise<HeldShard> {
    const { index, count } = this.options;
    let metadata: ScoringModelMetadata;
    let part: Uint8Array;
    try {
      ({ metadata, shard: part } = cutScoringShard(
        bytes,
        ({ numEntities }) => evenShardMap(numEntities, count),
        index,
      ));
    } catch (error) {
      throw new ModelRejectedError(
        `model ${bundle.name} v${bundle.version}: shard ${index} of ${count} cannot be cut: ${(error as Error).message}`,
        'incompatible',
        error,
      );
    }
    const model = await ServingModel.load(part, {
      intraOpThreads: this.options.intraOpThreads,
      vocabulary: { entities: bundle.entities, relations: bundle.relations },
    });
    if (metadata.version !== bundle.version) {
      await model.retire();
      throw new ModelRejectedError(
        `the announcement of ${bundle.name} says version ${bundle.version}, its ONNX file ${metadata.version}`,
        'incompatible',
      );
    }
    const held: Held = {
      name: bundle.name,
      version: bundle.version,
      index,
      count,
      metadata: model.metadata,
      shard: new LocalShard(model),
    };
    const versions = [...(this.held.get(bundle.name) ?? []), held].sort(
      (a, b) => a.version - b.version,
    );
    const keep = this.options.keepVersions ?? 2;
    const retired = versions.splice(0, Math.max(0, versions.length - keep));
    this.held.set(bundle.name, versions);
    for (const old of retired) await this.retire(old);
    const { shard: _shard, ...listed } = held;
    return listed;
  }

  /** One exchange (what POST /call runs). */
  async call(rpc: ShardRpc): Promise<unknown> {
    const held = this.held.get(rpc.name)?.find((h) => h.version === rpc.version);
    if (!held)
      throw new TkgError(
        `shard ${this.options.index} of ${this.options.count} does not hold ${rpc.name} v${rpc.version} (it holds ${this.describe()})`,
        { reason: 'unknown_version', retriable: true },
      );
    const key = (id: number) => `${rpc.client}/${id}`;
    switch (rpc.method) {
      case 'rowsOf':
        return held.shard.rowsOf(rpc.entities);
      case 'score': {
        const local = this.nextLocal++;
        const result = await held.shard.score({ ...rpc.request, id: local });
        if (rpc.request.answers.some((a) => a >= 0))
          this.kept.set(key(rpc.request.id), { local, at: Date.now(), held });
        return result;
      }
      case 'counts': {
        const kept = this.kept.get(key(rpc.request.id));
        this.kept.delete(key(rpc.request.id));
        if (!kept)
          throw new TkgError(
            `shard ${this.options.index} kept no scores for batch ${rpc.request.id} of ${rpc.client} (dropped after ${this.options.keptScoresMs ?? 60_000} ms, or never scored)`,
            { reason: 'no_batch', retriable: true },
          );
        return kept.held.shard.counts({ ...rpc.request, id: kept.local });
      }
      case 'release': {
        const kept = this.kept.get(key(rpc.id));
        this.kept.delete(key(rpc.id));
        if (kept) await kept.held.shard.release(kept.local);
        return null;
      }
    }
  }

  /** Serve POST /call and GET /shards on host:port (0 = any free port); resolves with the URL. */
  async listen(port: number, host = '0.0.0.0'): Promise<{ url: string }> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    return { url: `http://${shown}:${address.port}` };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    if (this.server) {
      const server = this.server;
      this.server = undefined;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    for (const versions of this.held.values()) for (const held of versions) await this.retire(held);
    this.held.clear();
    this.kept.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method === 'GET' && req.url === '/shards') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.list()));
        return;
      }
      if (req.method !== 'POST' || req.url !== '/call') {
        reply(res, 404, {
          message: 'GET /shards or POST /call',
          reason: 'not_found',
          retriable: false,
        });
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      let rpc: ShardRpc;
      try {
        rpc = deserialize(Buffer.concat(chunks)) as ShardRpc;
      } catch (error) {
        reply(res, 400, {
          message: `the body is not a v8-serialized ShardRpc: ${(error as Error).message}`,
          reason: 'bad_request',
          retriable: false,
        });
        return;
      }
      const started = performance.now();
      const method = String(rpc.method);
      let result: unknown;
      try {
        result = await this.call(rpc);
      } catch (error) {
        this.options.metrics?.shardCalls.inc({ method, outcome: 'error' });
        throw error;
      }
      this.options.metrics?.shardCalls.inc({ method, outcome: 'ok' });
      this.options.metrics?.shardCallLatency.observe(
        { method },
        (performance.now() - started) / 1000,
      );
      res.writeHead(200, { 'content-type': 'application/x-v8-serialized' });
      res.end(serialize(result));
    } catch (error) {
      const e = error as Error & { reason?: string; retriable?: boolean };
      reply(res, e.reason === 'unknown_version' ? 404 : 500, {
        message: e.message,
        reason: e.reason ?? 'shard_error',
        retriable: e.retriable ?? false,
      });
    }
  }

  private describe(): string {
    const all = this.list().map((h) => `${h.name} v${h.version}`);
    return all.length > 0 ? all.join(', ') : 'nothing yet';
  }

  private async retire(held: Held): Promise<void> {
    for (const [key, kept] of this.kept) if (kept.held === held) this.kept.delete(key);
    await held.shard.close();
    this.options.logger?.info(
      `shard ${held.index} of ${held.count}: ${held.name} v${held.version} retired`,
    );
  }

  private async sweep(keptMs: number): Promise<void> {
    const before = Date.now() - keptMs;
    for (const [key, kept] of this.kept) {
      if (kept.at >= before) continue;
      this.kept.delete(key);
      await kept.held.shard.release(kept.local).catch(() => undefined);
    }
  }
}

function reply(res: ServerResponse, status: number, error: ShardRpcError): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(error));
}
