// The ingest and serving measurements of `npm run bench -- scale`, each run in its own child process (so each cell's
// peak RSS is its own): ingest (synthetic Avro facts through IngestState: decode, validate, vocabulary, event-time
// window, one durable checkpoint per step; no broker) and serving (the in-process onnxruntime Scorer at batch 64 over
// all N entities, next to a plain onnxruntime Gemm of the same shape as its bound). The training cell is in
// train-cell.ts; the driver and tables in bench/scale.ts. Must not hold driver or table logic.
import * as ort from 'onnxruntime-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syntheticSnapshots } from '../../src/datasets/synthetic.ts';
import type { ScoringState, Snapshot } from '../../src/core/types.ts';
import { mulberry32 } from '../../src/core/random.ts';
import { IngestState } from '../../src/ingest/index.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { plainGemmSession } from '../lib/gemm-bound.ts';
import {
  exportScoringModel,
  exportScoringShards,
  vocabularyHash,
} from '../../src/model/scoring-graph.ts';
import { evenShardMap } from '../../src/model/shard-map.ts';
import { type ScoreRequest, Scorer } from '../../src/serve/scorer.ts';
import { FilterIndex } from '../../src/serve/filters.ts';
import { ShardedScorer } from '../../src/serve/sharded-scorer.ts';
import { WorkerShard } from '../../src/serve/shard-worker.ts';
import { startKafkaServing } from '../lib/kafka-serving.ts';
import { loadConfig } from '../../src/config/config.ts';

export const K = 64;
export const WINDOW = 5;
export const SERVE_BATCH = 64;
export const TOP_K = 10;

export type Job =
  | { kind: 'ingest'; N: number; F: number; R: number; steps: number }
  | { kind: 'train'; N: number; F: number; R: number; updates: number; epochs: number }
  | { kind: 'serve'; N: number; R: number; seconds: number }
  | { kind: 'serve-sharded'; N: number; R: number; seconds: number; shards: number }
  | { kind: 'serve-kafka'; N: number; R: number; seconds: number; shards: number };

export const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
export const peakRssMiB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
export const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};
export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))] : NaN;
};

export function stream(N: number, F: number, R: number, steps: number): Generator<Snapshot> {
  return syntheticSnapshots({ numEntities: N, numRelations: R, factsPerStep: F, steps, seed: 11 });
}

/** Ingest: each step's facts as Avro messages (encoded before timing), then IngestState, timed per step. */
export function ingestCell(job: Extract<Job, { kind: 'ingest' }>): Record<string, number> {
  const codec = SchemaCodec.load();
  const dir = mkdtempSync(join(tmpdir(), 'tkg-bench-scale-ingest-'));
  try {
    const state = new IngestState({ stateDir: dir, codec, topic: 'bench-scale.facts' });
    let facts = 0;
    let seconds = 0;
    let cpu = 0;
    let offset = 0;
    let checkpointBytes = 0;
    const started = performance.now();
    for (const snapshot of stream(job.N, job.F, job.R, job.steps)) {
      const t = snapshot.triples;
      const messages: Buffer[] = [];
      for (let i = 0; i < t.length; i += 3) {
        messages.push(
          codec.encodeValue(
            'Fact',
            {
              subject: `e${t[i]}`,
              relation: `r${t[i + 1]}`,
              object: `e${t[i + 2]}`,
              step: snapshot.step,
              timestamp: null,
            },
            'avro',
          ),
        );
      }
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (const value of messages) {
        const outcome = state.ingest(value, 0);
        if (outcome.kind === 'rejected') throw new Error(`bench fact rejected: ${outcome.message}`);
        state.setNextOffset(0, ++offset);
      }
      checkpointBytes = state.checkpoint().bytes;
      seconds += (performance.now() - t0) / 1000;
      cpu += cpuSeconds(c0);
      facts += messages.length;
      const elapsed = (performance.now() - started) / 1000;
      if (elapsed > 5)
        log(
          `    ingest N=${job.N} F=${job.F}: step ${snapshot.step + 1}/${job.steps}, ${Math.round(facts / seconds)} facts/s, ETA ${((elapsed / (snapshot.step + 1)) * (job.steps - snapshot.step - 1)).toFixed(0)} s`,
        );
    }
    const vocabulary = state.vocabulary.sizes();
    state.close();
    return {
      facts,
      steps: job.steps,
      factsPerSecond: Math.round(facts / seconds),
      factsPerCpuSecond: Math.round(facts / cpu),
      entitiesSeen: vocabulary.numEntities,
      checkpointBytes,
      peakRssMiB: peakRssMiB(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A seeded random ScoringState of N entities (speed does not depend on the values) and its vocabulary hash. */
function serveState(N: number, R: number): { state: ScoringState; hash: string } {
  const random = mulberry32(2024);
  const state: ScoringState = {
    numEntities: N,
    numRelations: R,
    K,
    z: Float32Array.from({ length: N * K }, () => random()),
    theta: Float32Array.from({ length: R * K * 4 }, () => random() * 2 - 1),
    step: 1,
    version: 1,
  };
  const hash = vocabularyHash(
    Array.from({ length: N }, (_, i) => `e${i}`),
    Array.from({ length: R }, (_, i) => `r${i}`),
  );
  return { state, hash };
}

/** The bench's query batches: alternating directions, spread anchors, every relation. */
function serveRequests(N: number, R: number, offset: number): ScoreRequest[] {
  return Array.from({ length: SERVE_BATCH }, (_, i) => ({
    direction: (i + offset) % 2 === 0 ? ('object' as const) : ('subject' as const),
    anchor: ((i + offset) * 7919) % N,
    relation: (i + offset) % R,
    k: TOP_K,
  }));
}

/** A plain one-thread onnxruntime Gemm [64, K] x [K, width] with a pre-allocated output (the serving bound). */
async function gemmOfWidth(
  width: number,
): Promise<{ run: () => Promise<void>; release: () => Promise<void> }> {
  const session = await plainGemmSession(width, K);
  const a = new ort.Tensor(
    'float32',
    Float32Array.from({ length: SERVE_BATCH * K }, mulberry32(3)),
    [SERVE_BATCH, K],
  );
  const c = new ort.Tensor('float32', new Float32Array(SERVE_BATCH * width), [SERVE_BATCH, width]);
  return {
    run: async () => {
      await session.run({ a }, { c });
    },
    release: () => session.release(),
  };
}

/**
 * Four rounds, each timing `score` (with `inFlight` batches of 64 outstanding) and then `bound`, for about
 * `seconds` in all; the best rate of each side (a shared machine: a burst of someone else's work should not decide
 * one side). The bound's rate is multiplied by `boundScale` (the shards that run one in parallel).
 */
async function interleavedRounds(options: {
  seconds: number;
  inFlight: number;
  score: () => Promise<unknown>;
  bound: () => Promise<void>;
  boundScale: number;
  label: (round: string, rate: number, bound: number) => string;
}): Promise<{ latencies: number[]; queriesPerSecond: number; boundQueriesPerSecond: number }> {
  const latencies: number[] = [];
  let queriesPerSecond = 0;
  let boundQueriesPerSecond = 0;
  const rounds = 4;
  const perRoundMs = (options.seconds * 1000) / rounds;
  for (let round = 0; round < rounds; round++) {
    let start = performance.now();
    let n = 0;
    const lane = async () => {
      while (performance.now() - start < perRoundMs || n < 3) {
        const t = performance.now();
        n++;
        await options.score();
        latencies.push(performance.now() - t);
      }
    };
    await Promise.all(Array.from({ length: options.inFlight }, lane));
    const rate = (n * SERVE_BATCH) / ((performance.now() - start) / 1000);
    queriesPerSecond = Math.max(queriesPerSecond, rate);
    start = performance.now();
    let g = 0;
    while (performance.now() - start < perRoundMs || g < 3) {
      await options.bound();
      g++;
    }
    const bound = (options.boundScale * g * SERVE_BATCH) / ((performance.now() - start) / 1000);
    boundQueriesPerSecond = Math.max(boundQueriesPerSecond, bound);
    log(options.label(`${round + 1}/${rounds}`, rate, bound));
  }
  return { latencies, queriesPerSecond, boundQueriesPerSecond };
}

/** Serving: the unsharded in-process Scorer over all N entities, batch 64, one thread. */
export async function serveCell(
  job: Extract<Job, { kind: 'serve' }>,
): Promise<Record<string, unknown>> {
  const { N, R } = job;
  const t0 = performance.now();
  const { state, hash } = serveState(N, R);
  const bytes = exportScoringModel(state, { vocabularyHash: hash });
  const exportSeconds = (performance.now() - t0) / 1000;
  const scorer = new Scorer({ intraOpThreads: 1, maxBatch: SERVE_BATCH, maxWaitMs: 0 });
  const t1 = performance.now();
  await scorer.loadModel(bytes);
  const loadSeconds = (performance.now() - t1) / 1000;
  const requests = (offset: number) => serveRequests(N, R, offset);
  const gemm = await gemmOfWidth(N);
  for (let i = 0; i < 3; i++) {
    await scorer.scoreBatch(requests(i * SERVE_BATCH));
    await gemm.run();
  }
  let calls = 0;
  const {
    latencies,
    queriesPerSecond,
    boundQueriesPerSecond: gemmQueriesPerSecond,
  } = await interleavedRounds({
    seconds: job.seconds,
    inFlight: 1,
    score: () => scorer.scoreBatch(requests(calls++ * SERVE_BATCH)),
    bound: gemm.run,
    boundScale: 1,
    label: (round, rate, bound) =>
      `    serve N=${N} round ${round}: scorer ${Math.round(rate)} q/s, Gemm ${Math.round(bound)} q/s`,
  });
  await scorer.close();
  await gemm.release();
  return {
    batch: SERVE_BATCH,
    topK: TOP_K,
    queriesPerSecond: Math.round(queriesPerSecond),
    batchP50Ms: quantile(latencies, 0.5),
    batchP99Ms: quantile(latencies, 0.99),
    batches: latencies.length,
    gemmQueriesPerSecond: Math.round(gemmQueriesPerSecond),
    gemmGflops: (gemmQueriesPerSecond * 2 * K * N) / 1e9,
    ratioToGemm: queriesPerSecond / gemmQueriesPerSecond,
    bundleBytes: bytes.length,
    exportSeconds,
    loadSeconds,
    peakRssMiB: peakRssMiB(),
  };
}

/**
 * Sharded serving: the bundle exported as S shard graphs (even ranges), each in its own worker thread with one
 * onnxruntime thread, scored through ShardedScorer (anchor rows, per-shard top-k, merge) at batch 64. Its bound is
 * S times a plain one-thread Gemm over one shard's N / S entities, measured here between the rounds.
 */
export async function shardedServeCell(
  job: Extract<Job, { kind: 'serve-sharded' }>,
): Promise<Record<string, unknown>> {
  const { N, R, shards: S } = job;
  const t0 = performance.now();
  const { state, hash } = serveState(N, R);
  const parts = exportScoringShards(state, { vocabularyHash: hash }, evenShardMap(N, S));
  const exportSeconds = (performance.now() - t0) / 1000;
  const shardBytes = parts.map((p) => p.length);
  const t1 = performance.now();
  const scorer = new ShardedScorer(await Promise.all(parts.map((p) => WorkerShard.start(p))));
  const context = { filters: new FilterIndex() };
  const loadSeconds = (performance.now() - t1) / 1000;
  parts.length = 0; // the workers own their bytes now
  const gemm = await gemmOfWidth(Math.ceil(N / S));
  for (let i = 0; i < 3; i++)
    await scorer.scoreBatch(serveRequests(N, R, i * SERVE_BATCH), context);
  let calls = 0;
  const { latencies, queriesPerSecond, boundQueriesPerSecond } = await interleavedRounds({
    seconds: job.seconds,
    // two batches in flight: the front merges one while the shards score the next
    inFlight: 2,
    score: () => scorer.scoreBatch(serveRequests(N, R, calls++ * SERVE_BATCH), context),
    bound: gemm.run,
    boundScale: S,
    label: (round, rate, bound) =>
      `    serve N=${N} ${S} shards round ${round}: ${Math.round(rate)} q/s, ${S} x one-thread Gemm of N/${S} ${Math.round(bound)} q/s`,
  });
  await scorer.close();
  await gemm.release();
  return {
    shards: S,
    batch: SERVE_BATCH,
    topK: TOP_K,
    batchesInFlight: 2,
    queriesPerSecond: Math.round(queriesPerSecond),
    batchP50Ms: quantile(latencies, 0.5),
    batchP99Ms: quantile(latencies, 0.99),
    batches: latencies.length,
    boundQueriesPerSecond: Math.round(boundQueriesPerSecond),
    ratioToBound: queriesPerSecond / boundQueriesPerSecond,
    shardBytes,
    exportSeconds,
    loadSeconds,
    peakRssMiB: peakRssMiB(),
  };
}

/** The models topic carries a bundle inline up to this size (src/kafka/model-topic.ts fetch limit: 64 MiB). */
/**
 * Serving through Kafka: a ServeReplica on the broker (one session, then --shards entity shards in worker threads),
 * the bundle announced on tkg.models, and a client keeping 4 batches of 64 queries in flight on tkg.queries; each
 * query's time from its produce call to its answer on tkg.answers. A bundle over the inline limit travels in pieces
 * on tkg.models.chunks, as the trainer sends it (src/kafka/model-chunks.ts); its load time is reported.
 */
export async function kafkaServeCell(
  job: Extract<Job, { kind: 'serve-kafka' }>,
): Promise<Record<string, unknown>> {
  const { N, R } = job;
  const { state, hash } = serveState(N, R);
  const bytes = exportScoringModel(state, { vocabularyHash: hash });
  const entities = Array.from({ length: N }, (_, i) => `e${i}`);
  const relations = Array.from({ length: R }, (_, i) => `r${i}`);
  const measure = async (shards: number, replicas = 0) => {
    const serving = await startKafkaServing({
      bytes,
      entities,
      relations,
      hash,
      step: 1,
      scorerShards: replicas > 0 ? 1 : shards,
      shardReplicas: replicas,
      partitions: loadConfig().partitions, // the product's default (TKG_PARTITIONS)
      clientId: `bench-scale-kafka-${shards}${replicas > 0 ? 'p' : ''}`,
    });
    try {
      const batch = (offset: number) =>
        Array.from({ length: SERVE_BATCH }, (_, i) => ({
          anchor: ((i + offset) * 7919) % N,
          relation: (i + offset) % R,
        }));
      for (let i = 0; i < 3; i++) await serving.ask(batch(i * SERVE_BATCH), TOP_K);
      const latencies: number[] = [];
      let sent = 0;
      const start = performance.now();
      const client = async () => {
        while (performance.now() - start < job.seconds * 1000) {
          latencies.push(...(await serving.ask(batch(sent++ * SERVE_BATCH), TOP_K)));
        }
      };
      await Promise.all([client(), client(), client(), client()]);
      const seconds = (performance.now() - start) / 1000;
      const result = {
        shards,
        ...(replicas > 0 ? { shardReplicas: replicas } : {}),
        readySeconds: Number(serving.readySeconds.toFixed(1)),
        queriesPerSecond: Math.round(latencies.length / seconds),
        queryP50Ms: quantile(latencies, 0.5),
        queryP99Ms: quantile(latencies, 0.99),
        queries: latencies.length,
      };
      const where = replicas > 0 ? `${replicas} shard replica processes` : `${shards} shard(s)`;
      log(`    serve N=${N} through Kafka, ${where}: ${JSON.stringify(result)}`);
      return result;
    } finally {
      await serving.close();
    }
  };
  const one = await measure(1);
  const sharded = await measure(job.shards);
  const shardReplicas = await measure(job.shards, job.shards);
  return {
    batch: SERVE_BATCH,
    batchesInFlight: 4,
    topK: TOP_K,
    bundleBytes: bytes.length,
    unsharded: one,
    sharded,
    shardReplicas,
    peakRssMiB: peakRssMiB(),
  };
}
