// tkg.queries -> tkg.answers. Replicas share the load as ONE consumer group; each fetched batch is scored
// concurrently (so the scorer's micro-batching sees many queries at once) and answered in one produce call, then
// its offsets are committed. Malformed or unknown-entity queries get an error Answer naming the problem (never
// silence, never a crash). Owns: Query decoding/validation and Answer encoding. Must not import src/train or tfjs.
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from '../kafka/client.ts';
import type { Logger } from 'pino';
import type { FilterMode } from '../core/types.ts';
import { InvalidInputError, TkgError } from '../core/errors.ts';
import { createProducer } from '../kafka/client.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import type { SchemaCodec, WireFormat } from '../schemas/codec.ts';
import type { ServingModel } from './model.ts';
import type { ScoreRequest, Scorer } from './scorer.ts';

/** A Query value (schemas/Query.avsc). */
export interface QueryRecord {
  replyId: string;
  subject: string | null;
  relation: string;
  object: string | null;
  k: number;
  filter: FilterMode;
  answer: string | null;
}

/** An Answer value (schemas/Answer.avsc). */
export interface AnswerRecord {
  replyId: string;
  modelVersion: number;
  step: number;
  ok: boolean;
  error: string | null;
  results: Array<{ entity: string; score: number }>;
  rank: number | null;
}

/** Pure: a Query (names) -> a ScoreRequest (ids of `model`'s vocabulary). Throws InvalidInputError naming the field. */
export function resolveQuery(query: QueryRecord, model: ServingModel): ScoreRequest {
  const hasSubject = query.subject !== null && query.subject !== undefined;
  const hasObject = query.object !== null && query.object !== undefined;
  if (hasSubject === hasObject) {
    throw new InvalidInputError(
      'subject/object',
      `set exactly one: subject for (s, r, ?), object for (?, r, o); got subject=${JSON.stringify(query.subject)}, object=${JSON.stringify(query.object)}`,
      'bad_query',
    );
  }
  const direction = hasSubject ? 'object' : 'subject';
  const anchorField = hasSubject ? 'subject' : 'object';
  const anchorName = (hasSubject ? query.subject : query.object) as string;
  const anchor = model.entityId(anchorName);
  if (anchor === undefined)
    throw new InvalidInputError(
      anchorField,
      `unknown entity ${JSON.stringify(anchorName)} (model version ${model.version} knows ${model.numEntities} entities)`,
      'unknown_entity',
    );
  const relation = model.relationId(query.relation);
  if (relation === undefined)
    throw new InvalidInputError(
      'relation',
      `unknown relation ${JSON.stringify(query.relation)} (model version ${model.version} knows ${model.numRelations})`,
      'unknown_relation',
    );
  if (!Number.isInteger(query.k) || query.k < 1)
    throw new InvalidInputError('k', `must be a positive integer, got ${query.k}`, 'invalid_k');
  let answer: number | undefined;
  if (query.answer !== null && query.answer !== undefined) {
    answer = model.entityId(query.answer);
    if (answer === undefined)
      throw new InvalidInputError(
        'answer',
        `unknown entity ${JSON.stringify(query.answer)}`,
        'unknown_entity',
      );
  }
  return { direction, anchor, relation, k: query.k, filter: query.filter ?? 'raw', answer };
}

export function errorAnswer(
  replyId: string,
  error: unknown,
  model: ServingModel | undefined,
): AnswerRecord {
  const message = error instanceof Error ? error.message : String(error);
  return {
    replyId,
    modelVersion: model?.version ?? -1,
    step: model?.metadata.step ?? -1,
    ok: false,
    error: message,
    results: [],
    rank: null,
  };
}

/** Best-effort reply id of a message that did not decode: a JSON replyId, else the key, else topic/partition/offset. */
function fallbackReplyId(message: KafkaMessage, topic: string, partition: number): string {
  try {
    const parsed = JSON.parse(message.value?.toString('utf8') ?? '') as { replyId?: unknown };
    if (typeof parsed.replyId === 'string' && parsed.replyId) return parsed.replyId;
  } catch {
    // not JSON
  }
  const key = message.key?.toString('utf8');
  return key && key.length > 0 ? key : `${topic}/${partition}/${message.offset}`;
}

export interface QueryServiceOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  scorer: Scorer;
  queriesTopic: string;
  answersTopic: string;
  /** Consumer group shared by every replica. */
  groupId: string;
  metrics?: TkgMetrics;
  logger?: Logger;
  /** Answers are written in the query's wire format; this one when the query did not decode. */
  defaultFormat?: WireFormat;
}

export class QueryService {
  private readonly options: QueryServiceOptions;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private joined = false;
  private answered = 0;
  private rateTimer: NodeJS.Timeout | undefined;

  constructor(options: QueryServiceOptions) {
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
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => {
      this.joined = true;
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: queriesTopic, fromBeginning: false });
    await this.consumer.run({
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
    const { codec, answersTopic, metrics } = this.options;
    const received = performance.now();
    const answers = await Promise.all(
      batch.messages.map((message) => this.answer(message, batch.topic, batch.partition)),
    );
    if (!isRunning() || isStale()) return; // a rebalance took the partition: another replica answers these
    await this.producer!.send({
      topic: answersTopic,
      messages: answers.map(({ record, format }) => ({
        key: record.replyId,
        value: codec.encodeValue('Answer', record, format),
      })),
    });
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

  private async answer(
    message: KafkaMessage,
    topic: string,
    partition: number,
  ): Promise<{ record: AnswerRecord; format: WireFormat }> {
    const { codec, scorer, logger } = this.options;
    let format: WireFormat = this.options.defaultFormat ?? 'json';
    let query: QueryRecord;
    try {
      const decoded = codec.decodeValue<QueryRecord>(message.value, { expect: 'Query' });
      format = decoded.format;
      query = decoded.value;
    } catch (error) {
      return {
        record: errorAnswer(fallbackReplyId(message, topic, partition), error, scorer.model),
        format,
      };
    }
    const model = scorer.model; // names resolve and score with this one model
    try {
      if (!model)
        throw new TkgError('no model loaded yet; wait for an announcement on tkg.models', {
          reason: 'no_model',
          retriable: true,
        });
      const request = resolveQuery(query, model);
      const result = await scorer.score(request, model);
      return {
        format,
        record: {
          replyId: query.replyId,
          modelVersion: result.modelVersion,
          step: result.step,
          ok: true,
          error: null,
          results: Array.from(result.entities, (entity, j) => ({
            entity: model.entityName(entity),
            score: result.scores[j],
          })),
          rank: result.rank ?? null,
        },
      };
    } catch (error) {
      if (!(error instanceof InvalidInputError))
        logger?.warn({ err: error }, `query ${query.replyId} failed`);
      return { record: errorAnswer(query.replyId, error, model), format };
    }
  }
}
