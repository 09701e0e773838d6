// A client of the query topics, as any user's program would be one: send Query records on <prefix>.queries and
// match the Answer records on <prefix>.answers by replyId. Used by the demo's query trickle and `tkg query`.
// Owns: the producer, the answers consumer (its own throw-away group, from the end) and the pending replies.
// The consumer seeks to the topic's end as it was when start() began, so an answer written after that is always
// read: a consumer resolving "latest" on its first fetch (after the group join, which takes time) would skip
// answers that a fast replica wrote in between.
// Must not touch the scorer (it talks to the replicas through Kafka only).
import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { TkgError } from '../core/errors.ts';
import type { SchemaCodec } from '../schemas/codec.ts';
import type { AnswerRecord, QueryRecord } from '../serve/queries.ts';
import { createProducer } from './client.ts';
import { withRetries } from './retry.ts';

export interface QueryClientOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  queriesTopic: string;
  answersTopic: string;
  /** Every answer to a query this client sent (undefined: the answer did not decode), with its round trip. */
  onAnswer?: (replyId: string, answer: AnswerRecord | undefined, roundTripMs: number) => void;
}

export class QueryClient {
  private readonly options: QueryClientOptions;
  private producer: Producer | undefined;
  private consumer: Consumer | undefined;
  private readonly pending = new Map<
    string,
    { sentAt: number; resolve?: (answer: AnswerRecord | undefined) => void }
  >();
  private readonly prefix = randomUUID().slice(0, 8);
  private counter = 0;

  constructor(options: QueryClientOptions) {
    this.options = options;
  }

  /** A reply id no other client uses. */
  nextReplyId(): string {
    return `${this.prefix}-${++this.counter}`;
  }

  private get groupId(): string {
    return `${this.options.answersTopic}.client.${this.prefix}`;
  }

  /** Connect and subscribe; on failure everything it opened is closed again (start can be retried). */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  private async open(): Promise<void> {
    const { kafka, answersTopic, codec } = this.options;
    this.producer = createProducer(kafka);
    await this.producer.connect();
    // the topic's end as it is now; a topic not yet created is read whole (fromBeginning)
    const admin = kafka.admin();
    await admin.connect();
    let ends: Array<{ partition: number; offset: string }>;
    try {
      // a topic created a moment ago can answer NOT_LEADER for a while: retried
      ends = await withRetries('reading the answers topic end', async () =>
        (await admin.listTopics()).includes(answersTopic)
          ? await admin.fetchTopicOffsets(answersTopic)
          : [],
      );
    } finally {
      await admin.disconnect();
    }
    this.consumer = kafka.consumer({ groupId: this.groupId, maxWaitTimeInMs: 50 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: answersTopic, fromBeginning: true });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        const replyId = message.key?.toString('utf8') ?? '';
        const waiting = this.pending.get(replyId);
        if (!waiting) return; // someone else's answer
        this.pending.delete(replyId);
        let answer: AnswerRecord | undefined;
        try {
          answer = codec.decodeValue<AnswerRecord>(message.value, { expect: 'Answer' }).value;
        } catch {
          answer = undefined;
        }
        this.options.onAnswer?.(replyId, answer, performance.now() - waiting.sentAt);
        waiting.resolve?.(answer);
      },
    });
    // pending seeks, applied when the group assigns the partitions (before their first fetch)
    for (const { partition, offset } of ends)
      this.consumer.seek({ topic: answersTopic, partition, offset });
  }

  /** Send queries (each with its replyId); their answers arrive through onAnswer. */
  async send(queries: readonly QueryRecord[]): Promise<void> {
    if (!this.producer) throw new TkgError('query client not started', { reason: 'not_started' });
    const now = performance.now();
    for (const q of queries) this.pending.set(q.replyId, { sentAt: now });
    // forget queries never answered (e.g. sent before any bundle was served and lost in a rebalance)
    if (this.pending.size > 10_000)
      for (const key of [...this.pending.keys()].slice(0, 5_000)) this.pending.delete(key);
    await this.producer.send({
      topic: this.options.queriesTopic,
      messages: queries.map((q) => ({
        key: q.subject ?? q.object ?? q.replyId,
        value: this.options.codec.encodeValue('Query', q, 'avro'),
      })),
    });
  }

  /** Send one query and wait for its answer (rejects after timeoutMs). */
  ask(query: Omit<QueryRecord, 'replyId'>, timeoutMs = 30_000): Promise<AnswerRecord> {
    const record: QueryRecord = { replyId: this.nextReplyId(), ...query };
    return new Promise<AnswerRecord>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(record.replyId);
        reject(
          new TkgError(
            `no answer on ${this.options.answersTopic} within ${timeoutMs} ms: is a \`tkg serve\` replica running on this topic prefix?`,
            { reason: 'timeout', retriable: true },
          ),
        );
      }, timeoutMs);
      this.send([record])
        .then(() => {
          const waiting = this.pending.get(record.replyId);
          if (waiting)
            waiting.resolve = (answer) => {
              clearTimeout(timer);
              if (answer) resolve(answer);
              else reject(new TkgError('the answer did not decode', { reason: 'bad_answer' }));
            };
        })
        .catch((error: unknown) => {
          clearTimeout(timer);
          reject(error);
        });
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    if (this.consumer || this.producer) {
      // the throw-away group leaves nothing behind on the cluster
      const admin = this.options.kafka.admin();
      await admin
        .connect()
        .then(() => admin.deleteGroups([this.groupId]))
        .catch(() => undefined)
        .finally(() => admin.disconnect().catch(() => undefined));
    }
    this.consumer = undefined;
    this.producer = undefined;
  }
}
