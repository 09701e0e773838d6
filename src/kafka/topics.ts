// Topic names and topic creation (SPEC section 4). Owns: the topic name of every role, its partition count and
// topic-level configs, and idempotent creation. Must not touch: topic contents (producers, consumers, codecs).
import kafkajs, { type Admin, type ITopicConfig } from 'kafkajs';
import { TkgError } from '../core/errors.ts';
import { withRetries, type RetryLog } from './retry.ts';

// kafkajs is CommonJS and this enum is not visible as an ESM named export.
const { ConfigResourceTypes } = kafkajs;

/** Role -> topic name, all under one prefix (`tkg` by default: tkg.facts, tkg.facts.dlq, ...). */
export interface TopicNames {
  facts: string;
  factsDlq: string;
  factsLate: string;
  queries: string;
  queriesDlq: string;
  answers: string;
  forecasts: string;
  evaluations: string;
  models: string;
  /** Pieces of ONNX files too large for an inline announcement (src/kafka/model-chunks.ts). */
  modelChunks: string;
}

export type TopicRole = keyof TopicNames;

export function topicNames(prefix = 'tkg'): TopicNames {
  return {
    facts: `${prefix}.facts`,
    factsDlq: `${prefix}.facts.dlq`,
    factsLate: `${prefix}.facts.late`,
    queries: `${prefix}.queries`,
    queriesDlq: `${prefix}.queries.dlq`,
    answers: `${prefix}.answers`,
    forecasts: `${prefix}.forecasts`,
    evaluations: `${prefix}.evaluations`,
    models: `${prefix}.models`,
    modelChunks: `${prefix}.models.chunks`,
  };
}

/** Large enough for an inline ONNX model of a big vocabulary (the local broker allows the same). */
export const modelsMaxMessageBytes = 64 * 1024 * 1024;

/**
 * How long a superseded piece of a chunked ONNX file stays readable after the next version's piece with the same
 * key was written: a replica still loading the older version (it reads the announcements in order) finds it.
 */
export const modelChunksCompactionLagMs = 3_600_000;

/**
 * Topic-level configs per role. tkg.models is compacted (latest announcement per model name survives);
 * tkg.models.chunks too (key: name/index, so the newest file's pieces survive), after a lag.
 */
export function topicConfigs(role: TopicRole): { name: string; value: string }[] {
  if (role === 'models' || role === 'modelChunks') {
    const lag = role === 'models' ? 0 : modelChunksCompactionLagMs;
    return [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'max.message.bytes', value: String(modelsMaxMessageBytes) },
      { name: 'min.compaction.lag.ms', value: String(lag) },
      { name: 'segment.ms', value: '3600000' },
    ];
  }
  // Input and dead letters are kept long (replays, audits); everything else keeps the broker default.
  if (role === 'facts' || role === 'factsDlq' || role === 'factsLate' || role === 'queriesDlq')
    return [{ name: 'retention.ms', value: '-1' }];
  return [];
}

/**
 * Partitions per role: `partitions` for keyed traffic; 1 for tkg.models (few, large, compacted records whose
 * versions must stay in order for every reader).
 */
export function topicPartitions(role: TopicRole, partitions: number): number {
  return role === 'models' || role === 'modelChunks' ? 1 : partitions;
}

export interface EnsureTopicsOptions {
  prefix?: string;
  partitions?: number;
  replicationFactor?: number;
  /** Only these roles (default: all). */
  roles?: TopicRole[];
  /** Where retries of transient broker errors are logged. */
  logger?: RetryLog;
  /** Give up on transient broker errors after this long (default 120 s). */
  deadlineMs?: number;
}

export interface EnsureTopicsResult {
  created: string[];
  existing: string[];
  /** Existing topics whose configs were brought in line (e.g. models not compacted). */
  updated: string[];
}

/**
 * Create every missing topic with its partitions and configs; idempotent and safe to race with other processes
 * (TOPIC_ALREADY_EXISTS is not an error). Returns once every partition of every wanted topic has a leader, whoever
 * created it (a process that lost the creation race would otherwise meet LEADER_NOT_AVAILABLE / NOT_LEADER on its
 * first request). Transient broker errors are retried with backoff and logged. An existing tkg.models or
 * tkg.models.chunks without compaction or with a small max.message.bytes gets its configs altered.
 */
export async function ensureTopics(
  admin: Admin,
  options: EnsureTopicsOptions = {},
): Promise<EnsureTopicsResult> {
  return withRetries('ensure topics', () => ensureTopicsOnce(admin, options), {
    logger: options.logger,
    deadlineMs: options.deadlineMs,
  });
}

/**
 * Resolve once every partition of `topics` has a leader (retriable error otherwise: use with withRetries).
 */
export async function assertTopicLeaders(admin: Admin, topics: string[]): Promise<void> {
  const { topics: described } = await admin.fetchTopicMetadata({ topics });
  for (const topic of topics) {
    const metadata = described.find((t) => t.name === topic);
    const leaderless = (metadata?.partitions ?? []).filter(
      (p) => p.partitionErrorCode !== 0 || p.leader < 0,
    );
    if (!metadata || metadata.partitions.length === 0 || leaderless.length > 0) {
      throw new TkgError(
        `topic ${topic} has no leader yet for partition(s) ${leaderless.map((p) => p.partitionId).join(',') || '(metadata missing)'}`,
        { reason: 'leader_not_available', retriable: true },
      );
    }
  }
}

async function ensureTopicsOnce(
  admin: Admin,
  options: EnsureTopicsOptions,
): Promise<EnsureTopicsResult> {
  const names = topicNames(options.prefix ?? 'tkg');
  const partitions = options.partitions ?? 3;
  const roles = options.roles ?? (Object.keys(names) as TopicRole[]);
  const existingTopics = new Set(await admin.listTopics());
  const wanted: (ITopicConfig & { role: TopicRole })[] = roles.map((role) => ({
    role,
    topic: names[role],
    numPartitions: topicPartitions(role, partitions),
    replicationFactor: options.replicationFactor ?? 1,
    configEntries: topicConfigs(role),
  }));
  const missing = wanted.filter((t) => !existingTopics.has(t.topic));
  if (missing.length > 0) {
    await admin.createTopics({
      topics: missing.map(({ role: _role, ...topic }) => topic),
      waitForLeaders: true,
      timeout: 30_000,
    });
  }
  await assertTopicLeaders(
    admin,
    wanted.map((t) => t.topic),
  );
  const updated: string[] = [];
  // (describeConfigs is kafkajs-only: the librdkafka adapter's admin lacks it, and then the check is skipped)
  for (const role of ['models', 'modelChunks'] as const) {
    const name = names[role];
    if (!roles.includes(role) || !existingTopics.has(name)) continue;
    if (typeof admin.describeConfigs !== 'function') break;
    const described = await admin.describeConfigs({
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name,
          configNames: ['cleanup.policy', 'max.message.bytes'],
        },
      ],
      includeSynonyms: false,
    });
    const entries = new Map(
      described.resources[0].configEntries.map((e) => [e.configName, e.configValue]),
    );
    if (
      entries.get('cleanup.policy') !== 'compact' ||
      Number(entries.get('max.message.bytes')) < modelsMaxMessageBytes
    ) {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name, configEntries: topicConfigs(role) }],
      });
      updated.push(name);
    }
  }
  return {
    created: missing.map((t) => t.topic),
    existing: wanted.filter((t) => existingTopics.has(t.topic)).map((t) => t.topic),
    updated,
  };
}
