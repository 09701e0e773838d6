// Typed configuration with the spec's defaults. Owns: every knob, its default, its environment
// variable. Flags override environment, environment overrides defaults. Must not import stages.
// Every key here is listed in README's configuration table.
import { z } from 'zod';
import { ConfigError } from '../core/errors.ts';
import { DEFAULT_MODEL_MESSAGE_BYTES } from '../core/limits.ts';

export const configSchema = z.object({
  // Kafka
  kafkaBrokers: z
    .string()
    .optional()
    .describe('KAFKA_BROKERS: comma-separated bootstrap servers; unset = embedded local broker'),
  kafkaClient: z
    .enum(['kafkajs', 'confluent'])
    .default('kafkajs')
    .describe(
      'TKG_KAFKA_CLIENT: Kafka client library: kafkajs (pure JS, installed by npm ci) or confluent (@confluentinc/kafka-javascript, librdkafka; build it once with npm run kafka:confluent)',
    ),
  kafkaClientId: z
    .string()
    .default('tkg-stream')
    .describe('TKG_KAFKA_CLIENT_ID: client id the Kafka clients send (broker logs and quotas)'),
  brokerPort: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(9092)
    .describe('TKG_BROKER_PORT: local broker port'),
  brokerDir: z
    .string()
    .default('.tkg/broker')
    .describe('TKG_BROKER_DIR: local broker data and pid'),
  topicPrefix: z
    .string()
    .default('tkg')
    .describe('TKG_TOPIC_PREFIX: topics are <prefix>.facts, <prefix>.queries, ...'),
  schemaRegistryUrl: z
    .string()
    .url()
    .optional()
    .describe(
      'TKG_SCHEMA_REGISTRY_URL: Confluent-compatible schema registry (Confluent, Apicurio .../apis/ccompat/v7, Karapace); ingest resolves unknown Confluent schema ids from it; unset = no registry',
    ),
  schemaRegistryUsername: z
    .string()
    .optional()
    .describe(
      'TKG_SCHEMA_REGISTRY_USERNAME: HTTP basic-auth user of the schema registry (Confluent Cloud: API key)',
    ),
  schemaRegistryPassword: z
    .string()
    .optional()
    .describe(
      'TKG_SCHEMA_REGISTRY_PASSWORD: HTTP basic-auth password of the schema registry (Confluent Cloud: API secret)',
    ),
  outputFormat: z
    .enum(['avro', 'confluent', 'json'])
    .default('avro')
    .describe(
      'TKG_OUTPUT_FORMAT: wire format of forecasts, answers, evaluations, models: avro (single-object encoding), confluent (0x00 + schema id, schemas registered under <topic>-value; needs TKG_SCHEMA_REGISTRY_URL) or json',
    ),
  partitions: z.coerce
    .number()
    .int()
    .min(1)
    .default(3)
    .describe('TKG_PARTITIONS: partitions of created topics'),
  // State
  stateDir: z
    .string()
    .default('.tkg/state')
    .describe('TKG_STATE_DIR: checkpoints (window, vocabulary, model)'),
  // Window (SPEC section 3)
  granularity: z
    .string()
    .optional()
    .describe('TKG_GRANULARITY: step length for timestamped facts, e.g. 1y, 60d, 10d'),
  origin: z
    .string()
    .optional()
    .describe('TKG_ORIGIN: ISO-8601 time of step 0 for timestamped facts'),
  allowedLateness: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .describe('TKG_ALLOWED_LATENESS: steps a fact may lag the watermark'),
  idleTimeoutMs: z.coerce
    .number()
    .int()
    .min(0)
    .default(5000)
    .describe(
      'TKG_IDLE_TIMEOUT_MS: a partition caught up to a freshly read log-end offset with no record for this long is idle and stops holding the watermark (0 = never idle)',
    ),
  // Ingest (src/ingest, `tkg ingest`)
  foldAfter: z
    .string()
    .optional()
    .describe(
      'TKG_FOLD_AFTER: ISO-8601 time; later events go into the step containing it (DySAT slicing)',
    ),
  beforeOrigin: z
    .enum(['reject', 'skip'])
    .default('reject')
    .describe('TKG_BEFORE_ORIGIN: events before the origin: reject (dead letter) or skip'),
  ingestGroup: z
    .string()
    .optional()
    .describe('TKG_INGEST_GROUP: consumer group of tkg ingest (default <prefix>.ingest)'),
  checkpointEveryMessages: z.coerce
    .number()
    .int()
    .min(1)
    .default(20000)
    .describe('TKG_CHECKPOINT_EVERY_MESSAGES: ingest checkpoints after this many messages'),
  checkpointIntervalMs: z.coerce
    .number()
    .int()
    .min(1)
    .default(1000)
    .describe(
      'TKG_CHECKPOINT_INTERVAL_MS: ... or after this long with changes (and at every step close)',
    ),
  maxFactBytes: z.coerce
    .number()
    .int()
    .min(64)
    .default(16384)
    .describe('TKG_MAX_FACT_BYTES: larger fact messages are dead-lettered (oversized)'),
  ingestSessionTimeoutMs: z.coerce
    .number()
    .int()
    .min(1000)
    .default(10000)
    .describe(
      'TKG_INGEST_SESSION_TIMEOUT_MS: consumer session timeout; a restart after a crash waits about this long for the dead member',
    ),
  maxNameBytes: z.coerce
    .number()
    .int()
    .min(1)
    .default(1024)
    .describe('TKG_MAX_NAME_BYTES: longer entity/relation names are dead-lettered (name_too_long)'),
  // Model (SPEC section 1)
  K: z.coerce.number().int().min(1).default(64).describe('TKG_K: latent attributes'),
  windowSize: z.coerce
    .number()
    .int()
    .min(1)
    .default(5)
    .describe('TKG_WINDOW: m, snapshots per training window'),
  sTheta: z.coerce
    .number()
    .positive()
    .default(0.1)
    .describe('TKG_S_THETA: std of the random-walk prior on theta between steps (s)'),
  sPsi: z.coerce
    .number()
    .positive()
    .default(0.1)
    .describe('TKG_S_PSI: std of the random-walk prior on psi between steps (s)'),
  sigmaTheta: z.coerce
    .number()
    .positive()
    .default(10)
    .describe('TKG_SIGMA_THETA: std of the prior on theta at the first step (sigma)'),
  sigmaPsi: z.coerce
    .number()
    .positive()
    .default(10)
    .describe('TKG_SIGMA_PSI: std of the prior on psi at the first step (sigma)'),
  learningRate: z.coerce
    .number()
    .positive()
    .default(0.05)
    .describe(
      'TKG_LR: Adam learning rate (paper 0.01; 0.05 selected on YAGO valid for the 16 Adam steps per window update: valid static MRR 60.45 vs 57.5 at 0.01, 0.1 diverges)',
    ),
  seed: z.coerce
    .number()
    .int()
    .default(42)
    .describe(
      'TKG_SEED: seed of every random choice (initialisation, negative samples); same seed, same numbers',
    ),
  // Trainer (src/train): windowed NLSM / BAS optimisation
  trainEpochsPerWindow: z.coerce
    .number()
    .int()
    .min(1)
    .default(16)
    .describe(
      'TKG_TRAIN_EPOCHS: maximum Adam steps (full passes over the window) per window update',
    ),
  trainMinEpochsPerWindow: z.coerce
    .number()
    .int()
    .min(1)
    .default(16)
    .describe(
      'TKG_TRAIN_MIN_EPOCHS: Adam steps before the convergence rule may stop a window update',
    ),
  trainConvergenceTolerance: z.coerce
    .number()
    .min(0)
    .default(0)
    .describe(
      'TKG_TRAIN_TOLERANCE: stop a window update when the ELBO per fact improves by less than this fraction of its magnitude (0 = always run TKG_TRAIN_EPOCHS)',
    ),
  trainNegativesPerPositive: z.coerce
    .number()
    .positive()
    .default(4)
    .describe(
      'TKG_TRAIN_NEGATIVES: importance-weighted negative samples per positive fact and step',
    ),
  trainUniformNegativeFraction: z.coerce
    .number()
    .gt(0)
    .max(1)
    .default(0.2)
    .describe(
      "TKG_TRAIN_UNIFORM_FRACTION: share of uniform pairs in the negative proposal (the rest corrupt a positive's subject or object)",
    ),
  trainInitScale: z.coerce
    .number()
    .positive()
    .default(1)
    .describe(
      "TKG_TRAIN_INIT_SCALE: std of new entities' psi means (a draw from a narrowed prior; sigma_psi = 10 would saturate the sigmoid)",
    ),
  trainLogVarScale: z.coerce
    .number()
    .positive()
    .default(1)
    .describe(
      "TKG_TRAIN_LOGVAR_SCALE: a log-variance GRU's hidden state h maps to log-variance log(s^2) + scale * h (GRU outputs stay within log(s^2) +- scale of the step prior; src/train/nlsm/graph.ts logVarGruStep)",
    ),
  trainEntityLrScale: z.coerce
    .number()
    .positive()
    .default(2)
    .describe(
      'TKG_TRAIN_ENTITY_LR_SCALE: learning-rate multiplier of entity rows (psi): an entity takes Adam steps only in the windows that touch it, theta and the GRU weights in every window update',
    ),
  trainCheckpointEvery: z.coerce
    .number()
    .int()
    .min(1)
    .default(10)
    .describe(
      'TKG_TRAIN_CHECKPOINT_EVERY: window updates between automatic checkpoints (when a checkpoint directory is set)',
    ),
  trainEngine: z
    .enum(['onnx', 'tfjs'])
    .default('onnx')
    .describe(
      "TKG_TRAIN_ENGINE: what computes a window update's gradient: 'onnx' = fused kernels run by onnxruntime (one thread; src/train/nlsm/onnx-kernels.ts), 'tfjs' = tfjs autodiff on TKG_TRAIN_BACKEND (the reference; several times slower)",
    ),
  trainBackend: z
    .enum(['tensorflow', 'wasm', 'cpu'])
    .optional()
    .describe('TKG_TRAIN_BACKEND: tfjs backend; unset = tfjs-node if importable, else wasm'),
  // Serving
  metricsPort: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(9464)
    .describe('TKG_METRICS_PORT: /metrics, /healthz, /readyz'),
  metricsHost: z
    .string()
    .min(1)
    .default('0.0.0.0')
    .describe(
      'TKG_METRICS_HOST: interface the metrics endpoint binds (127.0.0.1 = this machine only)',
    ),
  topK: z.coerce
    .number()
    .int()
    .min(1)
    .default(10)
    .describe('TKG_TOP_K: forecasts per (subject, relation)'),
  forecastEvidence: z.coerce
    .number()
    .int()
    .min(0)
    .max(10)
    .default(3)
    .describe(
      'TKG_FORECAST_EVIDENCE: supporting past facts (with the rule or path that used them) per forecast object, when the model gives any',
    ),
  scorerThreads: z.coerce
    .number()
    .int()
    .min(0)
    .default(1)
    .describe(
      'TKG_SCORER_THREADS: onnxruntime intra-op threads per scoring session (0 = onnxruntime default)',
    ),
  shardServers: z
    .string()
    .optional()
    .describe(
      'TKG_SHARD_SERVERS: URLs of the shard replicas (tkg shard), comma-separated in shard order, the replicas of one shard separated by |; tkg serve then holds no row of Z and scores through them; unset = the replica scores by itself',
    ),
  shardIndex: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .describe(
      "TKG_SHARD_INDEX: the shard a tkg shard replica holds (0-based, below TKG_SHARD_COUNT; its place in the fronts' TKG_SHARD_SERVERS)",
    ),
  shardCount: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe(
      'TKG_SHARD_COUNT: how many shards the tkg shard replicas split each bundle into (the number of TKG_SHARD_SERVERS URLs)',
    ),
  shardPort: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(9480)
    .describe(
      'TKG_SHARD_PORT: port a tkg shard replica answers the fronts on (0 = any free port; the URL is logged)',
    ),
  shardHost: z
    .string()
    .min(1)
    .default('0.0.0.0')
    .describe(
      "TKG_SHARD_HOST: interface a tkg shard replica binds (its protocol is for the cluster's fronts only)",
    ),
  modelMessageBytes: z.coerce
    .number()
    .int()
    .min(64 * 1024)
    .max(60 * 1024 * 1024)
    .default(DEFAULT_MODEL_MESSAGE_BYTES)
    .describe(
      "TKG_MODEL_MESSAGE_BYTES: an ONNX file up to this size goes inline in its announcement on <prefix>.models, a larger one in pieces of at most min(4 MiB, this) on <prefix>.models.chunks (set it below a managed cluster's message size limit)",
    ),
  scorerShards: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe(
      'TKG_SCORER_SHARDS: entity shards per served bundle, each a worker thread with its own onnxruntime session and N / shards rows of Z (1 = one session over all N); answers are the same',
    ),
  scorerMaxBatch: z.coerce
    .number()
    .int()
    .min(1)
    .default(64)
    .describe('TKG_SCORER_MAX_BATCH: queries scored in one onnxruntime run (micro-batch size)'),
  scorerMaxWaitMs: z.coerce
    .number()
    .min(0)
    .default(1)
    .describe('TKG_SCORER_MAX_WAIT_MS: longest a query waits for its micro-batch to fill'),
  // The model: one name for one thing on every verb (`tkg run`, `tkg train`, `tkg serve`)
  model: z
    .enum(['nlsm-h', 'recurrency', 'nlsm', 'bas', 'nlsm-r', 'rules'])
    .default('nlsm-r')
    .describe(
      'TKG_MODEL: model kind: tkg run / tkg train train it and announce its bundles, tkg serve serves them (nlsm-r = NLSM + temporal rule term learned on the stream, the default; nlsm-h = NLSM + fitted history term; recurrency; nlsm; bas; rules = the rule term alone)',
    ),
  modelName: z
    .string()
    .min(1)
    .optional()
    .describe(
      'TKG_MODEL_NAME: bundle name (key on <prefix>.models) tkg train announces and tkg serve serves (default: the model kind)',
    ),
  replayDataset: z
    .string()
    .min(1)
    .default('yago')
    .describe(
      'TKG_DATASET: dataset tkg run replays (yago, wiki, enron, uci, a RE-NET dir or a fact file)',
    ),
  replayRate: z.coerce
    .number()
    .min(0)
    .default(0)
    .describe('TKG_REPLAY_RATE: facts per second tkg run publishes (0 = as fast as possible)'),
  replaySteps: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .describe('TKG_REPLAY_STEPS: tkg run replays only this many steps (default: all)'),
  replayFromStep: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .describe('TKG_REPLAY_FROM_STEP: tkg run starts this many steps after the first'),
  queryRate: z.coerce
    .number()
    .min(0)
    .default(20)
    .describe(
      'TKG_QUERY_RATE: demo queries per second tkg run sends on <prefix>.queries (0 = none)',
    ),
  recurrencySelectEvery: z.coerce
    .number()
    .int()
    .min(1)
    .default(25)
    .describe(
      'TKG_RECURRENCY_SELECT_EVERY: the live recurrency model re-selects decay and alpha every this many steps',
    ),
  modelLoadTimeoutMs: z.coerce
    .number()
    .int()
    .min(1000)
    .default(120000)
    .describe(
      'TKG_MODEL_LOAD_TIMEOUT_MS: tkg run fails if its replica has not loaded an announced model after this long',
    ),
});

export type TkgConfig = z.infer<typeof configSchema>;

/** Environment variable for each key (derived from the describe() text's first token). */
export const envNames: Record<keyof TkgConfig, string> = Object.fromEntries(
  Object.entries(configSchema.shape).map(([key, schema]) => [
    key,
    ((schema as z.ZodType).description ?? '').split(':')[0].trim(),
  ]),
) as Record<keyof TkgConfig, string>;

/** Build the config: defaults, then environment, then explicit overrides (flags). */
export function loadConfig(
  overrides: Partial<Record<keyof TkgConfig, unknown>> = {},
  env: NodeJS.ProcessEnv = process.env,
): TkgConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(envNames)) {
    if (name && env[name] !== undefined && env[name] !== '') raw[key] = env[name];
  }
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) raw[key] = value;
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue.path[0]);
    throw new ConfigError(
      `configuration ${key} (${envNames[key as keyof TkgConfig]}): ${issue.message}; got ${JSON.stringify(raw[key])}`,
    );
  }
  return parsed.data;
}

/**
 * TKG_SHARD_SERVERS as, per shard index, the URLs of its replicas (empty when unset): entries are comma-separated
 * in shard order, a shard's replicas separated by |. A malformed URL throws naming it and the fix.
 */
export function shardServerUrls(config: Pick<TkgConfig, 'shardServers'>): string[][] {
  const entries = (config.shardServers ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  return entries.map((entry) =>
    entry.split('|').map((alternative) => {
      const text = alternative.trim();
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw new ConfigError(
          `TKG_SHARD_SERVERS: ${JSON.stringify(text)} is not a URL; list each shard's replicas as http://host:port (replicas of one shard separated by |), the shards comma-separated in index order`,
        );
      }
      if (url.protocol !== 'http:')
        throw new ConfigError(
          `TKG_SHARD_SERVERS: ${text} must be an http:// URL (what tkg shard logs as its URL)`,
        );
      return url.origin;
    }),
  );
}
