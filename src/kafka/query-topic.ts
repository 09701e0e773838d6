// tkg.queries -> tkg.answers over Kafka. Replicas share the load as ONE consumer group; each fetched batch is handed
// to the scoring side concurrently (so its micro-batching sees many queries at once) and answered in one produce
// call, then its offsets are committed. A message that does not decode as a Query goes to <prefix>.queries.dlq with
// the reason headers (as facts do) and is counted; a decodable query is always answered under its replyId (an
// invalid one with an error answer). Owns: the consumer loop, decoding, the answers and dead-letter produce.
// A group that has no committed offset for a partition (a fresh serving group) starts there from the queries of the
// last `lookbackMs` (default 30 s, the clients' answer timeout), not from "latest": the latest offset is resolved at
// the first fetch after the group join, so queries sent while the first replica was starting were never answered.
// An answer to a query whose client already gave up is harmless (clients match answers by replyId).
// Must not know how queries are scored (the `answer` callback does).
import type {
  Admin,
  Consumer,
  EachBatchPayload,
  Kafka,
  KafkaMessage,
  Message,
  Producer,
} from 'kafkajs';
import type { Logger } from 'pino';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { CodecError, type SchemaCodec, type WireFormat } from '../schemas/codec.ts';
import type { AnswerRecord, QueryRecord } from '../serve/queries.ts';
import { createProducer } from './client.ts';
import { deadLetter, errorHeaders } from './dead-letters.ts';
import { withRetries } from './retry.ts';

export interface QueryTopicOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  queriesTopic: string;
  answersTopic: string;
  deadLetterTopic: string;
  /** Consumer group shared by every replica. */
  groupId: string;
  /** Score one decoded query (never throws: failures are error answers). */
  answer: (query: QueryRecord) => Promise<AnswerRecord>;
  metrics?: TkgMetrics;
  logger?: Logger;
  /** A partition without a committed offset starts from the queries of this many ms before start() (default 30 s). */
  lookbackMs?: number;
}

export class QueryTopicConsumer {
  private readonly options: QueryTopicOptions;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private joined = false;
  private answered = 0;
  private rateTimer: NodeJS.Timeout | undefined;

  constructor(options: QueryTopicOptions) {
    this.options = options;
  }

  /** True once the consumer joined its group. */
  get isJoined(): boolean {
    return this.joined;
  }

  async start(): Promise<void> {
    const { kafka, queriesTopic, groupId, metrics } = this.options;
    this.producer = createProducer(kafka);
    await this.producer.connect();
    this.consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      rebalanceTimeout: 10_000,
      maxWaitTimeInMs: 20,
    });
    const starts = await this.lookbackStarts();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.joined = true;
      // only in the first assignment: a partition met in a later rebalance has the offsets its last owner committed
      const assigned = event.payload.memberAssignment[queriesTopic] ?? [];
      for (const partition of assigned) {
        const offset = starts.get(partition);
        if (offset !== undefined) this.consumer?.seek({ topic: queriesTopic, partition, offset });
      }
      starts.clear();
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: queriesTopic, fromBeginning: false });
    await this.consumer.run({
      // batches of up to 4 assigned partitions at once (each partition stays in order): their queries share the
      // scorer's micro-batches and one partition's produce round trip no longer holds the others (3 partitions at
      // N = 10,000 through the scale bench's Kafka cell: 3,111 -> 4,235 queries/s, mean of 3 runs each, noisy)
      partitionsConsumedConcurrently: 4,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.handleBatch(payload),
    });
    let last = Date.now();
    this.rateTimer = setInterval(() => {
      const now = Date.now();
      metrics?.queriesPerSecond.set((this.answered * 1000) / Math.max(1, now - last));
      this.answered = 0;
      last = now;
    }, 5000);
    this.rateTimer.unref();
  }

  /** partition -> the offset of the first query of the lookback, for the partitions the group never committed. */
  private async lookbackStarts(): Promise<Map<number, string>> {
    const { kafka } = this.options;
    const since = Date.now() - (this.options.lookbackMs ?? 30_000);
    const admin = kafka.admin();
    await admin.connect();
    try {
      // a topic created a moment ago can answer NOT_LEADER for a while: retried
      return await withRetries('reading the queries topic offsets', () =>
        this.readLookbackStarts(admin, since),
      );
    } finally {
      await admin.disconnect();
    }
  }

  private async readLookbackStarts(admin: Admin, since: number): Promise<Map<number, string>> {
    const { queriesTopic, groupId } = this.options;
    const [committed] = await admin.fetchOffsets({ groupId, topics: [queriesTopic] });
    const fresh = new Set(
      (committed?.partitions ?? [])
        .filter(({ offset }) => Number(offset) < 0)
        .map(({ partition }) => partition),
    );
    if (fresh.size === 0) return new Map();
    const byTime = await admin.fetchTopicOffsetsByTimestamp(queriesTopic, since);
    return new Map(
      byTime.filter(({ partition }) => fresh.has(partition)).map((e) => [e.partition, e.offset]),
    );
  }

  async stop(): Promise<void> {
    if (this.rateTimer) clearInterval(this.rateTimer);
    await this.consumer?.disconnect();
    await this.producer?.disconnect();
    this.consumer = undefined;
    this.producer = undefined;
    this.joined = false;
  }

  private async handleBatch({
    batch,
    resolveOffset,
    heartbeat,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    const { codec, answersTopic, deadLetterTopic, metrics } = this.options;
    const received = performance.now();
    const deadLetters: Message[] = [];
    const work: Array<Promise<{ record: AnswerRecord; format: WireFormat }>> = [];
    for (const message of batch.messages) {
      const decoded = this.decode(message);
      if (decoded instanceof CodecError) {
        deadLetters.push(
          deadLetter(
            message,
            { topic: batch.topic, partition: batch.partition },
            errorHeaders(decoded),
          ),
        );
        metrics?.queriesRejected.inc({ reason: decoded.reason });
        continue;
      }
      work.push(
        this.options.answer(decoded.query).then((record) => ({ record, format: decoded.format })),
      );
    }
    const answers = await Promise.all(work);
    if (!isRunning() || isStale()) return; // a rebalance took the partition: another replica answers these
    const topicMessages: Array<{ topic: string; messages: Message[] }> = [
      {
        topic: answersTopic,
        messages: answers.map(({ record, format }) => ({
          key: record.replyId,
          value: codec.encodeValue('Answer', record, format),
        })),
      },
    ];
    if (deadLetters.length > 0)
      topicMessages.push({ topic: deadLetterTopic, messages: deadLetters });
    await this.producer!.sendBatch({ acks: -1, topicMessages });
    const seconds = (performance.now() - received) / 1000;
    for (const { record } of answers) {
      metrics?.queries.inc({ outcome: record.ok ? 'ok' : 'error' });
      metrics?.queryLatency.observe({ path: 'kafka' }, seconds);
    }
    this.answered += answers.length;
    for (const message of batch.messages) resolveOffset(message.offset);
    await commitOffsetsIfNecessary();
    await heartbeat();
  }

  private decode(message: KafkaMessage): { query: QueryRecord; format: WireFormat } | CodecError {
    try {
      const decoded = this.options.codec.decodeValue<QueryRecord>(message.value, {
        expect: 'Query',
      });
      return { query: decoded.value, format: decoded.format };
    } catch (error) {
      if (error instanceof CodecError) return error;
      return new CodecError('value', (error as Error).message, 'bad_avro');
    }
  }
}
