// The demo's query traffic: real queries through src/kafka's QueryClient at a fixed rate, so a `tkg run` has live
// query traffic (tkg_queries_total, tkg_query_duration_seconds, queries/s are non-zero) and shows a round-trip
// latency. Owns: query sampling (seeded) and the round-trip statistics. Must not touch the scorer.
import type { Kafka } from '../kafka/client.ts';
import type { FilterMode } from '../core/types.ts';
import { QueryClient } from '../kafka/query-client.ts';
import type { SchemaCodec } from '../schemas/codec.ts';
import type { QueryRecord } from '../serve/queries.ts';
import { mulberry32 } from '../core/random.ts';

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
  private readonly client: QueryClient;
  private timer: NodeJS.Timeout | undefined;
  private sent = 0;
  private answered = 0;
  private errors = 0;
  private windowAnswers = 0;
  private windowRoundTrips: number[] = [];
  private windowStart = performance.now();

  constructor(options: QueryTrickleOptions) {
    this.options = options;
    this.random = mulberry32(options.seed ?? 1);
    this.client = new QueryClient({
      ...options,
      onAnswer: (_replyId, answer, roundTripMs) => {
        this.answered++;
        this.windowAnswers++;
        if (!answer?.ok) this.errors++;
        this.windowRoundTrips.push(roundTripMs);
      },
    });
  }

  async start(): Promise<void> {
    if (this.options.rate <= 0) return;
    await this.client.start();
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
    const queries: QueryRecord[] = [];
    for (let i = 0; i < count; i++) {
      const query = this.options.nextQuery(this.random);
      if (!query) break;
      queries.push({ replyId: this.client.nextReplyId(), ...query });
    }
    if (queries.length === 0) return;
    await this.client.send(queries);
    this.sent += queries.length;
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
    await this.client.stop();
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
