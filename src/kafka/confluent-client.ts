// The second Kafka client adapter (issue 16 item 3): Confluent's @confluentinc/kafka-javascript (librdkafka) behind
// the same kafkajs-shaped interface the rest of the product uses, so call sites do not change. Owns: loading the
// optional package (its native binding is built on demand: `npm run kafka:confluent`), translating kafkajs
// configuration into the KafkaJS-compatible layer's (per-consumer fromBeginning and autoCommit, acks in the producer
// configuration, murmur2_random partitioning), emulating the GROUP_JOIN event from librdkafka's rebalance callback,
// and bridging its log lines to pino. Must not touch: stage logic, topics' contents.
import { createRequire } from 'node:module';
import type {
  Admin,
  Consumer,
  ConsumerConfig,
  ConsumerRunConfig,
  ConsumerSubscribeTopic,
  ConsumerSubscribeTopics,
  Kafka,
  Producer,
  ProducerConfig,
  ProducerRecord,
} from 'kafkajs';
import type { Logger } from 'pino';
import { ConfigError } from '../core/errors.ts';

/** The one command that builds the optional client's native binding (README: "Kafka client"). */
export const confluentInstallCommand = 'npm run kafka:confluent';

interface ConfluentModule {
  KafkaJS: { Kafka: new (config: object) => ConfluentKafka };
}
interface ConfluentKafka {
  producer(config: object): ConfluentProducer;
  consumer(config: object): ConfluentConsumer;
  admin(config?: object): Admin;
}
interface ConfluentProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: object): Promise<unknown>;
  sendBatch(batch: object): Promise<unknown>;
}
interface ConfluentConsumer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  subscribe(subscription: object): Promise<void>;
  run(config: object): Promise<void>;
  seek(entry: object): void;
  commitOffsets(offsets?: object[]): Promise<void>;
  pause(topics: object[]): void;
  resume(topics: object[]): void;
}

let loaded: ConfluentModule | undefined;

/** The layer checks keys with hasOwn: a key present with an undefined value must not be passed at all. */
function defined<T extends Record<string, unknown>>(object: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(object).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/** True when @confluentinc/kafka-javascript and its native binding load on this machine. */
export function confluentClientAvailable(): boolean {
  try {
    loadConfluent();
    return true;
  } catch {
    return false;
  }
}

function loadConfluent(): ConfluentModule {
  if (loaded) return loaded;
  try {
    // An optional dependency whose native binding may be missing: required by its package name, here only.
    loaded = createRequire(import.meta.url)('@confluentinc/kafka-javascript') as ConfluentModule;
    return loaded;
  } catch (error) {
    throw new ConfigError(
      `TKG_KAFKA_CLIENT=confluent needs @confluentinc/kafka-javascript with its native binding (${(error as Error).message.split('\n')[0]}): run \`${confluentInstallCommand}\` once (it builds librdkafka, see the README), or use TKG_KAFKA_CLIENT=kafkajs`,
    );
  }
}

function logBridge(logger: Logger | undefined) {
  const forward =
    (level: 'info' | 'warn' | 'error' | 'debug') => (message: string, extra?: object) =>
      logger?.[level]({ component: 'confluent-kafka', ...extra }, message);
  const bridge = {
    info: forward('info'),
    warn: forward('warn'),
    error: forward('error'),
    debug: forward('debug'),
    setLogLevel: () => undefined,
    namespace: () => bridge,
  };
  return bridge;
}

export interface ConfluentClientOptions {
  brokers: string[];
  clientId: string;
  logger?: Logger;
  /** librdkafka properties (outside the kafkaJS block). */
  properties?: Record<string, string | number | boolean>;
}

/** A kafkajs-shaped Kafka backed by librdkafka. */
export function createConfluentKafka(options: ConfluentClientOptions): Kafka {
  const { KafkaJS } = loadConfluent();
  const kafka = new KafkaJS.Kafka({
    kafkaJS: {
      brokers: options.brokers,
      clientId: options.clientId,
      connectionTimeout: 5000,
      requestTimeout: 30_000,
      logger: logBridge(options.logger),
    },
    ...options.properties,
  });
  const facade = {
    producer: (config: ProducerConfig = {}) => wrapProducer(kafka, config),
    consumer: (config: ConsumerConfig) => new DeferredConsumer(kafka, config),
    admin: () => kafka.admin(),
    logger: () => logBridge(options.logger),
  };
  return facade as unknown as Kafka;
}

function wrapProducer(kafka: ConfluentKafka, config: ProducerConfig): Producer {
  // acks are a producer setting in librdkafka (kafkajs: per send); every send of this product asks for all ISRs.
  const producer = kafka.producer({
    kafkaJS: {
      allowAutoTopicCreation: config.allowAutoTopicCreation ?? false,
      idempotent: config.idempotent ?? false,
      acks: -1,
    },
    partitioner: 'murmur2_random', // Java client compatible, as kafkajs's DefaultPartitioner
    'linger.ms': 5,
  });
  const strip = <T extends { acks?: unknown; timeout?: unknown; compression?: unknown }>(
    record: T,
  ) => {
    const { acks: _acks, timeout: _timeout, compression: _compression, ...rest } = record;
    return rest;
  };
  return {
    connect: () => producer.connect(),
    disconnect: () => producer.disconnect(),
    send: (record: ProducerRecord) => producer.send(strip(record)),
    sendBatch: (batch: { topicMessages?: unknown[]; acks?: unknown }) =>
      producer.sendBatch(strip(batch)),
    on: () => () => undefined,
    events: {},
    logger: () => logBridge(undefined),
    isIdempotent: () => config.idempotent ?? false,
  } as unknown as Producer;
}

type Listener = (event: { payload: Record<string, unknown> }) => void;

/**
 * A consumer whose librdkafka consumer is created at run(): kafkajs takes fromBeginning at subscribe() and
 * autoCommit at run(), the KafkaJS-compatible layer in its constructor. GROUP_JOIN is emitted after each assignment
 * (librdkafka's rebalance callback), CRASH is never emitted (librdkafka always restarts).
 */
class DeferredConsumer {
  readonly events = {
    GROUP_JOIN: 'consumer.group_join',
    CRASH: 'consumer.crash',
    HEARTBEAT: 'consumer.heartbeat',
    COMMIT_OFFSETS: 'consumer.commit_offsets',
    FETCH: 'consumer.fetch',
    START_BATCH_PROCESS: 'consumer.start_batch_process',
    END_BATCH_PROCESS: 'consumer.end_batch_process',
    CONNECT: 'consumer.connect',
    DISCONNECT: 'consumer.disconnect',
    STOP: 'consumer.stop',
    REBALANCING: 'consumer.rebalancing',
    RECEIVED_UNSUBSCRIBED_TOPICS: 'consumer.received_unsubscribed_topics',
    REQUEST: 'consumer.network.request',
    REQUEST_TIMEOUT: 'consumer.network.request_timeout',
    REQUEST_QUEUE_SIZE: 'consumer.network.request_queue_size',
  };
  private readonly kafka: ConfluentKafka;
  private readonly config: ConsumerConfig;
  private readonly listeners = new Map<string, Listener[]>();
  private topics: Array<string | RegExp> = [];
  private fromBeginning = false;
  private consumer: ConfluentConsumer | undefined;
  private readonly pendingSeeks: object[] = [];

  constructor(kafka: ConfluentKafka, config: ConsumerConfig) {
    this.kafka = kafka;
    this.config = config;
  }

  on(event: string, listener: Listener): () => void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
    return () =>
      this.listeners.set(
        event,
        (this.listeners.get(event) ?? []).filter((l) => l !== listener),
      );
  }

  async connect(): Promise<void> {}

  async subscribe(subscription: ConsumerSubscribeTopic | ConsumerSubscribeTopics): Promise<void> {
    const topics = 'topics' in subscription ? subscription.topics : [subscription.topic];
    this.topics.push(...topics);
    this.fromBeginning ||= subscription.fromBeginning ?? false;
  }

  async run(run: ConsumerRunConfig): Promise<void> {
    const config = this.config;
    const emitJoin = (assignment: Array<{ topic: string; partition: number }>) => {
      const memberAssignment: Record<string, number[]> = {};
      for (const { topic, partition } of assignment)
        (memberAssignment[topic] ??= []).push(partition);
      for (const listener of this.listeners.get(this.events.GROUP_JOIN) ?? [])
        listener({ payload: { groupId: config.groupId, memberAssignment } });
    };
    const consumer = this.kafka.consumer({
      kafkaJS: defined({
        groupId: config.groupId,
        fromBeginning: this.fromBeginning,
        autoCommit: run.autoCommit ?? true,
        sessionTimeout: config.sessionTimeout,
        rebalanceTimeout: config.rebalanceTimeout,
        heartbeatInterval: config.heartbeatInterval,
        maxBytesPerPartition: config.maxBytesPerPartition,
        maxWaitTimeInMs: config.maxWaitTimeInMs,
      }),
      'allow.auto.create.topics': config.allowAutoTopicCreation ?? false,
      'js.consumer.max.batch.size': 4096,
      rebalance_cb: (
        error: { code: number },
        assignment: Array<{ topic: string; partition: number }>,
      ) => {
        if (error.code === -175 /* ERR__ASSIGN_PARTITIONS */) emitJoin(assignment);
      },
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: this.topics });
    for (const seek of this.pendingSeeks.splice(0)) consumer.seek(seek);
    await consumer.run(
      defined({
        eachBatch: run.eachBatch,
        eachMessage: run.eachMessage,
        eachBatchAutoResolve: run.eachBatchAutoResolve,
        partitionsConsumedConcurrently: run.partitionsConsumedConcurrently,
      }),
    );
  }

  seek(entry: { topic: string; partition: number; offset: string }): void {
    if (this.consumer) this.consumer.seek(entry);
    else this.pendingSeeks.push(entry);
  }

  async commitOffsets(offsets: object[]): Promise<void> {
    await this.consumer?.commitOffsets(offsets);
  }

  pause(topics: object[]): void {
    this.consumer?.pause(topics);
  }

  resume(topics: object[]): void {
    this.consumer?.resume(topics);
  }

  /** librdkafka's consumer has no stop(): stopping is disconnecting. */
  async stop(): Promise<void> {
    await this.disconnect();
  }

  async disconnect(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = undefined;
    await consumer?.disconnect();
  }
}

/** The consumer type the rest of the product sees (the deferred consumer implements what it calls). */
export type { Consumer };
