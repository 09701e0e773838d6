// kafkajs client factory. Owns: one place that builds Kafka clients (client id, retry policy, timeouts) and the
// bridge from kafkajs's logger to pino. Must not touch: topics' contents, stage logic, broker processes.
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

export interface KafkaClientOptions {
  brokers: string[];
  clientId?: string;
  /** pino logger that receives kafkajs's log lines (default: a silent logger). */
  logger?: Logger;
  /** Minimum kafkajs level forwarded to pino (default WARN). */
  level?: logLevel;
  /** Extra kafkajs settings (override the defaults below). */
  overrides?: Partial<KafkaConfig>;
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
