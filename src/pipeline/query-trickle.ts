// A small client that sends real queries on `<prefix>.queries` and reads `<prefix>.answers`, so a demo has
// live query traffic (tkg_queries_total, tkg_query_duration_seconds, queries/s are non-zero) and shows a
// round-trip latency. Owns: query sampling (seeded) and the round-trip bookkeeping. Must not touch the
// scorer (it talks to the replicas through Kafka only, like any user's client).
import type { Consumer, Kafka, Producer } from '../kafka/client.ts';
import { randomUUID } from 'node:crypto';
import type { FilterMode } from '../core/types.ts';
import { createProducer } from '../kafka/client.ts';
import type { SchemaCodec } from '../schemas/codec.ts';
import type { AnswerRecord, QueryRecord } from '../serve/queries.ts';
import { seededRandom } from '../core/random.ts';

export interface QueryTrickleOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  queriesTopic: string;
  answersTopic: string;
  /** Queries per second (0 = none). */
  rate: number;
  /** Returns the next query to send (without replyId), or undefined when nothing is known yet. */
  nextQuery: (random: () => number) => Omit<QueryRecord, 'replyId'> | undefined;
  seed?: number;
}

export interface TrickleStats {
  sent: number;
  answered: number;
  errors: number;
  /** Answers per second since the previous call of `stats()`. */
  answersPerSecond: number;
  /** Median round trip (ms) of the answers since the previous call. */
  roundTripP50Ms: number | null;
}

export class QueryTrickle {
  private readonly options: QueryTrickleOptions;
  private readonly random: () => number;
  private producer: Producer | undefined;
  private consumer: Consumer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<string, number>();
  private readonly prefix = randomUUID().slice(0, 8);
  private counter = 0;
  private sent = 0;
  private answered = 0;
  private errors = 0;
  private windowAnswers = 0;
  private windowRoundTrips: number[] = [];
  private windowStart = performance.now();

  constructor(options: QueryTrickleOptions) {
    this.options = options;
    this.random = seededRandom(options.seed ?? 1);
  }

  async start(): Promise<void> {
    if (this.options.rate <= 0) return;
    const { kafka } = this.options;
    this.producer = createProducer(kafka);
    await this.producer.connect();
    this.consumer = kafka.consumer({
      groupId: `${this.options.answersTopic}.demo-client.${this.prefix}`,
      maxWaitTimeInMs: 50,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.options.answersTopic, fromBeginning: false });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        const replyId = message.key?.toString('utf8') ?? '';
        const sentAt = this.pending.get(replyId);
        if (sentAt === undefined) return; // someone else's answer
        this.pending.delete(replyId);
        let answer: AnswerRecord | undefined;
        try {
          answer = this.options.codec.decodeValue<AnswerRecord>(message.value, {
            expect: 'Answer',
          }).value;
        } catch {
          answer = undefined;
        }
        this.answered++;
        this.windowAnswers++;
        if (!answer?.ok) this.errors++;
        this.windowRoundTrips.push(performance.now() - sentAt);
      },
    });
    // Batches every 100 ms (rate / 10 queries each, carrying fractions over).
    let owed = 0;
    this.timer = setInterval(() => {
      owed += this.options.rate / 10;
      const count = Math.floor(owed);
      owed -= count;
      if (count > 0) void this.send(count).catch(() => undefined);
    }, 100);
    this.timer.unref();
  }

  private async send(count: number): Promise<void> {
    const producer = this.producer;
    if (!producer) return;
    const messages = [];
    for (let i = 0; i < count; i++) {
      const query = this.options.nextQuery(this.random);
      if (!query) break;
      const replyId = `${this.prefix}-${++this.counter}`;
      const record: QueryRecord = { replyId, ...query };
      messages.push({
        key: query.subject ?? query.object ?? replyId,
        value: this.options.codec.encodeValue('Query', record, 'avro'),
        replyId,
      });
    }
    if (messages.length === 0) return;
    const now = performance.now();
    for (const m of messages) this.pending.set(m.replyId, now);
    // Forget queries never answered (e.g. sent before any model was loaded and lost in a rebalance).
    if (this.pending.size > 10_000)
      for (const key of [...this.pending.keys()].slice(0, 5_000)) this.pending.delete(key);
    await producer.send({
      topic: this.options.queriesTopic,
      messages: messages.map(({ key, value }) => ({ key, value })),
    });
    this.sent += messages.length;
  }

  stats(): TrickleStats {
    const now = performance.now();
    const seconds = Math.max(1e-3, (now - this.windowStart) / 1000);
    const sorted = [...this.windowRoundTrips].sort((a, b) => a - b);
    const stats: TrickleStats = {
      sent: this.sent,
      answered: this.answered,
      errors: this.errors,
      answersPerSecond: this.windowAnswers / seconds,
      roundTripP50Ms: sorted.length === 0 ? null : sorted[Math.floor(sorted.length / 2)],
    };
    this.windowAnswers = 0;
    this.windowRoundTrips = [];
    this.windowStart = now;
    return stats;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    this.consumer = undefined;
    this.producer = undefined;
  }
}

/** A query about one fact of a closed step: (s, r, ?) or (?, r, o) with the true answer, time-aware filter. */
export function factQuery(
  triples: Int32Array,
  entityNames: readonly string[],
  relationNames: readonly string[],
  random: () => number,
  k = 10,
  filter: FilterMode = 'timeAware',
): Omit<QueryRecord, 'replyId'> | undefined {
  const facts = triples.length / 3;
  if (facts === 0) return undefined;
  const i = Math.floor(random() * facts) * 3;
  const [s, r, o] = [triples[i], triples[i + 1], triples[i + 2]];
  const subject = entityNames[s];
  const object = entityNames[o];
  const relation = relationNames[r];
  if (subject === undefined || object === undefined || relation === undefined) return undefined;
  return random() < 0.5
    ? { subject, relation, object: null, k, filter, answer: object }
    : { subject: null, relation, object, k, filter, answer: subject };
}
