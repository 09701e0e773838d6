// Kafka client factory: the adapter every Kafka call goes through. Owns: one place that builds Kafka clients (client
// id, retry policy, timeouts), the choice of client library (TKG_KAFKA_CLIENT: kafkajs, the default, or Confluent's
// librdkafka-based @confluentinc/kafka-javascript behind the same kafkajs-shaped interface, confluent-client.ts) and
// the bridge from kafkajs's logger to pino. Must not touch: topics' contents, stage logic, broker processes.
import {
  Kafka,
  Partitioners,
  logLevel,
  type KafkaConfig,
  type LogEntry,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import { pino, type Logger } from 'pino';
import { ConfigError } from '../core/errors.ts';
import { createConfluentKafka } from './confluent-client.ts';

/** The Kafka client libraries the adapter can use. */
export const kafkaClientKinds = ['kafkajs', 'confluent'] as const;
export type KafkaClientKind = (typeof kafkaClientKinds)[number];

export interface KafkaClientOptions {
  brokers: string[];
  clientId?: string;
  /** pino logger that receives kafkajs's log lines (default: a silent logger). */
  logger?: Logger;
  /** Minimum kafkajs level forwarded to pino (default WARN). */
  level?: logLevel;
  /** Extra kafkajs settings (override the defaults below). */
  overrides?: Partial<KafkaConfig>;
  /** Client library (default: TKG_KAFKA_CLIENT, else kafkajs; --kafka-client sets that variable). */
  client?: KafkaClientKind;
}

/** The client library the configuration names (TKG_KAFKA_CLIENT), kafkajs when unset. */
export function configuredClientKind(env: NodeJS.ProcessEnv = process.env): KafkaClientKind {
  const value = env.TKG_KAFKA_CLIENT;
  if (value === undefined || value === '') return 'kafkajs';
  if (!(kafkaClientKinds as readonly string[]).includes(value))
    throw new ConfigError(`TKG_KAFKA_CLIENT=${value}: use ${kafkaClientKinds.join(' or ')}`);
  return value as KafkaClientKind;
}

const pinoLevelOf: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** kafkajs logCreator that forwards every entry to `logger` (component = kafkajs namespace). */
export function pinoLogCreator(logger: Logger) {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _name, ...rest } = log;
      const method = pinoLevelOf[level] ?? 'info';
      logger[method]({ component: `kafkajs.${namespace}`, ...rest }, message);
    };
}

/** Retry policy for transient broker errors: ~100 ms doubling, capped at 5 s, 8 retries (about 20 s in all). */
export const defaultRetry = {
  initialRetryTime: 100,
  maxRetryTime: 5000,
  retries: 8,
  factor: 0.2,
  multiplier: 2,
};

/** A kafkajs client for `brokers` with the project's retry, timeouts and log bridge. */
export function createKafkaClient(options: KafkaClientOptions): Kafka {
  const logger = options.logger ?? pino({ level: 'silent' });
  if ((options.client ?? configuredClientKind()) === 'confluent')
    return createConfluentKafka({
      brokers: options.brokers,
      clientId: options.clientId ?? 'tkg-stream',
      logger,
    });
  return new Kafka({
    clientId: options.clientId ?? 'tkg-stream',
    brokers: options.brokers,
    connectionTimeout: 5000,
    requestTimeout: 30_000,
    retry: defaultRetry,
    logLevel: options.level ?? logLevel.WARN,
    logCreator: pinoLogCreator(logger),
    ...options.overrides,
  });
}

/**
 * A producer with the Java client's default partitioner (murmur2 on the key, so keys land where Java producers put
 * them), idempotence off (kafkajs's idempotent producer allows only 1 in-flight request), and no auto topic creation.
 */
export function createProducer(kafka: Kafka, config: ProducerConfig = {}): Producer {
  return kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    ...config,
  });
}

// The Kafka client types the rest of the product uses: every module outside src/kafka imports them from here, never
// from the client library itself (test/unit/boundaries.test.ts), so the client behind them can be replaced.
export type {
  Admin,
  Consumer,
  ConsumerConfig,
  EachBatchPayload,
  IHeaders,
  Kafka,
  KafkaMessage,
  Message,
  Producer,
} from 'kafkajs';
