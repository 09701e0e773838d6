// Queries (SPEC section 4, tkg.queries -> tkg.answers): resolving a Query's names with the one bundle that will score
// it, scoring it, and the Answer record — under the query's replyId whatever goes wrong (unknown names, no model yet).
// Owns: Query validation and Answer assembly. Must not import src/train, tfjs or Kafka (src/kafka/query-topic.ts
// carries the records).
import type { Logger } from 'pino';
import type { FilterMode } from '../core/types.ts';
import type { Evidence } from '../model/terms.ts';
import { InvalidInputError, TkgError } from '../core/errors.ts';
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
  /** Evidence items per ranked entity (0 = none). */
  evidence?: number;
}

/** An Evidence record with names (schemas/Answer.avsc, Forecast.avsc). */
export interface EvidenceRecord {
  kind: string;
  rule: string;
  weight: number;
  facts: Array<{ subject: string; relation: string; object: string; step: number }>;
}

/** Most evidence items per ranked entity a query may ask for. */
export const MAX_EVIDENCE = 10;

/** Pure: a rule text with relation codes (`r12`, `r12^-1` = its inverse) in the bundle's relation names. */
export function namedRule(model: ServingModel, rule: string): string {
  return rule.replace(/\br(\d+)(\^-1)?/g, (whole, id: string, inverse: string | undefined) =>
    Number(id) < model.numRelations ? `${model.relationName(Number(id))}${inverse ?? ''}` : whole,
  );
}

/** Pure: evidence in ids -> records with the bundle's names. */
export function namedEvidence(
  model: ServingModel,
  evidence: readonly Evidence[],
): EvidenceRecord[] {
  return evidence.map((e) => ({
    kind: e.kind,
    rule: namedRule(model, e.rule),
    weight: e.weight,
    facts: e.facts.map((f) => ({
      subject: model.entityName(f.subject),
      relation: model.relationName(f.relation),
      object: model.entityName(f.object),
      step: f.step,
    })),
  }));
}

/** An Answer value (schemas/Answer.avsc). */
export interface AnswerRecord {
  replyId: string;
  modelVersion: number;
  step: number;
  ok: boolean;
  error: string | null;
  results: Array<{
    entity: string;
    score: number;
    probability: number | null;
    evidence: EvidenceRecord[];
  }>;
  rank: number | null;
  historyStep: number;
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
  const evidence = query.evidence ?? 0;
  if (!Number.isInteger(evidence) || evidence < 0 || evidence > MAX_EVIDENCE)
    throw new InvalidInputError(
      'evidence',
      `must be an integer in [0, ${MAX_EVIDENCE}], got ${evidence}`,
      'invalid_evidence',
    );
  return {
    direction,
    anchor,
    relation,
    k: query.k,
    filter: query.filter ?? 'raw',
    answer,
    evidence,
  };
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
    historyStep: -1,
  };
}

/**
 * Answer one decoded query with the scorer's current bundle (names resolve and score with that one bundle).
 * `notServing` says why no bundle serves yet. Never throws.
 */
export async function answerQuery(
  scorer: Scorer,
  query: QueryRecord,
  notServing: () => string | undefined,
  logger?: Logger,
): Promise<AnswerRecord> {
  const model = scorer.model;
  try {
    if (!model)
      throw new TkgError(notServing() ?? 'no model loaded yet', {
        reason: 'no_model',
        retriable: true,
      });
    const request = resolveQuery(query, model);
    const result = await scorer.score(request, model);
    return {
      replyId: query.replyId,
      modelVersion: result.modelVersion,
      step: result.step,
      ok: true,
      error: null,
      results: Array.from(result.entities, (entity, j) => ({
        entity: model.entityName(entity),
        score: result.scores[j],
        probability: result.probabilities[j],
        evidence: namedEvidence(model, result.evidence?.[j] ?? []),
      })),
      rank: result.rank ?? null,
      historyStep: result.historyStep ?? -1,
    };
  } catch (error) {
    if (!(error instanceof InvalidInputError))
      logger?.warn({ err: error }, `query ${query.replyId} failed`);
    return errorAnswer(query.replyId, error, model);
  }
}
