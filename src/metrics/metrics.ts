// Prometheus metrics of SPEC section 5. Owns: every metric name, type, help text and label set.
// No global registry: `createMetrics()` makes a fresh Registry per process (or per test).
// deploy/ (alerts, Grafana) must use exactly these names; test/deploy/metric-names.test.ts checks it.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Buckets (seconds) of the request latency histograms: 0.5 ms to 1 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'tkg_process_' });
  const registers = [registry];
  const m = {
    registry,
    // ingest
    factsIngested: new Counter({
      name: 'tkg_facts_ingested_total',
      help: 'Valid facts accepted from tkg.facts',
      registers,
    }),
    factsRejected: new Counter({
      name: 'tkg_facts_rejected_total',
      help: 'Invalid messages sent to the dead-letter topic, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    factsLate: new Counter({
      name: 'tkg_facts_late_total',
      help: 'Facts for an already closed step, sent to tkg.facts.late',
      registers,
    }),
    factsDuplicate: new Counter({
      name: 'tkg_facts_duplicate_total',
      help: 'Facts already in their snapshot (no state change)',
      registers,
    }),
    factsPartitionMismatch: new Counter({
      name: 'tkg_facts_partition_mismatch_total',
      help: 'Facts whose subject arrived earlier on another partition (a producer that does not partition by the subject key like murmur2, e.g. librdkafka without partitioner=murmur2_random)',
      registers,
    }),
    consumerLag: new Gauge({
      name: 'tkg_consumer_lag_messages',
      help: 'Messages behind the log end, by topic',
      labelNames: ['topic'] as const,
      registers,
    }),
    vocabularySize: new Gauge({
      name: 'tkg_vocabulary_size',
      help: 'Known entities and relations',
      labelNames: ['kind'] as const,
      registers,
    }),
    // window
    watermarkStep: new Gauge({
      name: 'tkg_watermark_step',
      help: 'Current watermark (event time, in steps)',
      registers,
    }),
    stepsClosed: new Counter({
      name: 'tkg_steps_closed_total',
      help: 'Steps closed into snapshots',
      registers,
    }),
    snapshotFacts: new Gauge({
      name: 'tkg_snapshot_facts',
      help: 'Facts in the last closed snapshot',
      registers,
    }),
    checkpointSeconds: new Histogram({
      name: 'tkg_checkpoint_duration_seconds',
      help: 'Time to write a durable checkpoint',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    // train
    trainStepSeconds: new Histogram({
      name: 'tkg_train_step_duration_seconds',
      help: 'Wall time of one window update',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
    trainElbo: new Gauge({
      name: 'tkg_train_elbo',
      help: 'ELBO (per fact) of the last window update',
      registers,
    }),
    trainNanRestores: new Counter({
      name: 'tkg_train_nan_restores_total',
      help: 'NaN losses that restored the last good checkpoint',
      registers,
    }),
    modelVersion: new Gauge({
      name: 'tkg_model_version',
      help: 'Version of the model currently serving',
      registers,
    }),
    modelStep: new Gauge({
      name: 'tkg_model_step',
      help: 'Step the serving model forecasts',
      registers,
    }),
    modelsRejected: new Counter({
      name: 'tkg_models_rejected_total',
      help: 'Model announcements rejected (corrupt or incompatible)',
      labelNames: ['reason'] as const,
      registers,
    }),
    // serve
    queryLatency: new Histogram({
      name: 'tkg_query_duration_seconds',
      help: 'Query latency from receipt to answer',
      labelNames: ['path'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    queries: new Counter({
      name: 'tkg_queries_total',
      help: 'Queries answered, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    }),
    queriesRejected: new Counter({
      name: 'tkg_queries_rejected_total',
      help: 'Query messages that could not be decoded, dead-lettered to <prefix>.queries.dlq, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    // shard replicas (tkg shard)
    shardCalls: new Counter({
      name: 'tkg_shard_calls_total',
      help: 'Exchanges a shard replica ran for the fronts, by method (rowsOf, score, counts, release) and outcome',
      labelNames: ['method', 'outcome'] as const,
      registers,
    }),
    shardCallLatency: new Histogram({
      name: 'tkg_shard_call_duration_seconds',
      help: 'Time a shard replica took for one exchange, from request to response',
      labelNames: ['method'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    queriesPerSecond: new Gauge({
      name: 'tkg_queries_per_second',
      help: 'Queries answered per second over the last interval',
      registers,
    }),
    forecastsPublished: new Counter({
      name: 'tkg_forecasts_published_total',
      help: 'Forecast records published to tkg.forecasts',
      registers,
    }),
    // quality (live evaluation)
    mrr: new Gauge({
      name: 'tkg_eval_mrr',
      help: 'Mean reciprocal rank (%) of the last closed step vs its forecast',
      labelNames: ['filter', 'direction', 'model'] as const,
      registers,
    }),
    hits: new Gauge({
      name: 'tkg_eval_hits',
      help: 'Hits@k (%) of the last closed step',
      labelNames: ['filter', 'direction', 'k', 'model'] as const,
      registers,
    }),
    mrrDrift: new Gauge({
      name: 'tkg_eval_mrr_drift',
      help: 'MRR minus its trailing mean over the last 10 steps (percentage points)',
      labelNames: ['filter', 'direction', 'model'] as const,
      registers,
    }),
    mrrGain: new Gauge({
      name: 'tkg_eval_mrr_gain',
      help: "Live MRR of nlsm-r / nlsm-h minus plain NLSM (its base logits alone) on the same step's queries (percentage points)",
      labelNames: ['filter', 'direction', 'model'] as const,
      registers,
    }),
    evalStep: new Gauge({
      name: 'tkg_eval_step',
      help: 'Step of the last live evaluation',
      registers,
    }),
  };
  return m;
}

export type TkgMetrics = ReturnType<typeof createMetrics>;
