// The ingest stage's options and the shapes it reports. Owns: IngestPipelineOptions, what the configuration decides
// of them (ingestOptionsFromConfig), the stats record, and the consumer settings ingest (and the bench's bare
// consumers) read with. Must not touch: the consume loop (fact-consumer.ts), topics' contents.
import type { Logger } from 'pino';
import type { TkgConfig } from '../config/config.ts';
import type { StepClockSpec } from '../core/step-clock.ts';
import type { FactLimits } from '../ingest/validate.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import type { SchemaCodec } from '../schemas/codec.ts';
import type { ConfluentRegistry } from '../schemas/registry.ts';
import type { ConsumerConfig, Kafka } from './client.ts';

export interface IngestPipelineOptions {
  /** Bootstrap servers (ignored when `kafka` is given). */
  brokers?: string[];
  kafka?: Kafka;
  topicPrefix?: string;
  /** Consumer group id (default `<prefix>.ingest`). */
  groupId?: string;
  stateDir: string;
  clock?: StepClockSpec;
  allowedLateness?: number;
  idleTimeoutMs?: number;
  /** Checkpoint after this many messages (default 20,000). */
  checkpointEveryMessages?: number;
  /** ... or when this much time passed with changes (default 1000 ms). */
  checkpointIntervalMs?: number;
  limits?: Partial<FactLimits>;
  metrics?: TkgMetrics;
  logger?: Logger;
  codec?: SchemaCodec;
  /** Schema registry of the producers' Confluent-framed facts (their unknown schema ids are resolved from it). */
  registry?: ConfluentRegistry;
  /** Create the facts/dlq/late topics if missing (default true) with this many partitions (default 3). */
  createTopics?: boolean;
  partitions?: number;
  /** kafkajs consumer session timeout (default 10,000 ms; the broker's minimum is usually 6,000). */
  sessionTimeoutMs?: number;
  /** Fetch size per partition (default DEFAULT_MAX_BYTES_PER_PARTITION); see ingestConsumerConfig. */
  maxBytesPerPartition?: number;
  /** On start, hand persisted snapshots with step >= this to the sinks first (a restarted trainer catching up). */
  replayPersistedFrom?: number;
  emitEmptySteps?: boolean;
  now?: () => number;
}

/** The ingest options the configuration decides (topics, group, state, event time, checkpoints, limits). */
export function ingestOptionsFromConfig(
  config: TkgConfig,
): Omit<IngestPipelineOptions, 'brokers' | 'kafka' | 'metrics' | 'logger'> {
  return {
    topicPrefix: config.topicPrefix,
    groupId: config.ingestGroup,
    stateDir: config.stateDir,
    clock: {
      granularity: config.granularity,
      origin: config.origin,
      foldAfter: config.foldAfter,
      beforeOrigin: config.beforeOrigin,
    },
    allowedLateness: config.allowedLateness,
    idleTimeoutMs: config.idleTimeoutMs,
    checkpointEveryMessages: config.checkpointEveryMessages,
    checkpointIntervalMs: config.checkpointIntervalMs,
    limits: { maxMessageBytes: config.maxFactBytes, maxNameBytes: config.maxNameBytes },
    partitions: config.partitions,
    sessionTimeoutMs: config.ingestSessionTimeoutMs,
  };
}

export interface IngestStats {
  messages: number;
  factsAdded: number;
  factsDuplicate: number;
  factsSkipped: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  late: number;
  stepsClosed: number;
  checkpoints: number;
  watermark: number | null;
  nextStepToClose: number | null;
  openSteps: number[];
  numEntities: number;
  numRelations: number;
  offsets: Record<string, number>;
  lag: number;
  restoredFromCheckpoint: boolean;
}

/**
 * Bytes fetched per partition per request. Measured on YAGO (201k messages, bare kafkajs consumer, CPU s,
 * shared 2-core machine): 16 MiB 0.52-0.81, 4 MiB 0.29-0.41, 1 MiB 0.27-0.41, 512 KiB 0.29-0.48. kafkajs
 * decodes a response whole, so large fetches keep more message objects alive through young-GC scavenges.
 */
export const DEFAULT_MAX_BYTES_PER_PARTITION = 1024 * 1024;

/** The ingest consumer's kafkajs settings (the bench's bare kafkajs consumer reads with the same ones). */
export function ingestConsumerConfig(
  groupId: string,
  options: { sessionTimeoutMs?: number; maxBytesPerPartition?: number } = {},
): ConsumerConfig {
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  return {
    groupId,
    sessionTimeout,
    rebalanceTimeout: Math.max(sessionTimeout, 10_000),
    heartbeatInterval: Math.min(1000, Math.floor(sessionTimeout / 3)),
    allowAutoTopicCreation: false,
    maxBytesPerPartition: options.maxBytesPerPartition ?? DEFAULT_MAX_BYTES_PER_PARTITION,
    maxWaitTimeInMs: 100,
  };
}
