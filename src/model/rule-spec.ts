// The parameters of the rule term (issue 15): temporal rules "head(X, Y) <= body(X, Y) seen `lag` steps ago" with
// confidences per lag bucket, two-hop path rules "head(X, Z) <= body1(X, Y), body2(Y, Z)", the decay of the strict
// recurrency counts (per step), and the ranker's feature weights. A plain JSON value (the model bundle embeds it)
// with a validating codec. Relations are addressed by codes: 2r = r read forward (subject -> object), 2r + 1 = r
// read backwards (object -> subject), so a subject query (?, r, o) is the object query (o, r^-1, ?) and a relation
// count that grows only appends codes (rules of new relations are simply absent; shared weights apply).
// Owns: the spec type, its feature list, defaults and codec. Pure; imports only src/core.
import { InvalidInputError } from '../core/errors.ts';
import type { Direction } from '../core/types.ts';

/**
 * Features of one candidate e of the query (head code h, anchor a) forecasting step T (all 0 for a candidate without
 * support, which keeps the term sparse). An edge a -b-> e (a fact (a, r, e) for b = 2r, (e, r, a) for b = 2r + 1)
 * last seen at step `last`, at `count` distinct steps, has the lag T - last and the bucket ruleBucket(lag, count);
 * c(h, b) is the confidence at that bucket of the rule [h, b, confidences] (0 without one).
 * - strict:      sum_i decay^(T - t_i) over the steps t_i of the edge a -h-> e (the exact fact, recency-weighted);
 * - logStrict:   log(1 + strict);
 * - selfRule:    -log(1 - c(h, h)) of the edge a -h-> e (the recurrence rule "h(X, Y) <= h(X, Y) at lag L");
 * - ruleSum:     sum over the other codes b != h of edges a -b-> e of -log(1 - c(h, b)), each at its own bucket
 *                (a noisy-or of the length-1 rules in log space);
 * - ruleMax:     max of those confidences c(h, b) (the confidence, not its log);
 * - pathSum:     sum of -log(1 - c) over every pair of edges a -b1-> y, y -b2-> e (both of steps >= T - pathWindow;
 *                y != a, e != a; an edge seen at two steps counts twice) with a path rule [h, b1, b2, c], capped at 20;
 *                the middles y are the first pathFanout distinct ones met walking a's edges from the newest (later
 *                steps first, within a step later facts first);
 * - relaxed:     share of the head code's facts, each weighted relaxedDecay^(T - t), pointing at the candidate (for
 *                every candidate; the top relaxedTopK entities by share are candidates too);
 * - logRelaxed:  log(1 + 100 * relaxed);
 * - neighbour:   1 if the candidate (e != a) has any past fact with the anchor (either direction, any relation);
 * - logPair:     log(1 + the number of distinct (code, step) edges a -code-> e), recency-free interaction strength;
 * - recency:     1 / max(1, T - latest) for a candidate e != a with an edge to or from a, latest = the last step of any
 *                of them (any code): event data repeats the latest interactions (ICEWS14 valid: +0.5 time-aware MRR).
 * Candidates: every e != a with an edge to or from a; a itself only through an edge a -h-> a or a -b-> a with
 * c(h, b) > 0; the ends of those two-hop paths; the top relaxedTopK entities by share (ties: lower id first).
 * Facts of relations >= numRelations are ignored; a fact repeated within a step counts once.
 * Format 2 added `recency`; a format-1 spec (10 weights) reads as format 2 with weight 0 on it, which scores the same.
 */
export const RULE_FEATURES = [
  'strict',
  'logStrict',
  'selfRule',
  'ruleSum',
  'ruleMax',
  'pathSum',
  'relaxed',
  'logRelaxed',
  'neighbour',
  'logPair',
  'recency',
] as const;
export type RuleFeature = (typeof RULE_FEATURES)[number];
export const RF = RULE_FEATURES.length;
export const FEATURE_INDEX: Record<RuleFeature, number> = Object.fromEntries(
  RULE_FEATURES.map((name, i) => [name, i]),
) as Record<RuleFeature, number>;

/** Upper bounds (inclusive, in steps) of the lag buckets; the last bucket holds every longer lag. */
export const DEFAULT_LAG_BOUNDS: readonly number[] = [1, 2, 4, 8, 16, 32, 64];

/** The spec format written now; RULE_TERM_FORMATS lists the ones read (older ones are upgraded on read). */
export const RULE_TERM_FORMAT = 'tkg-rule-term/2';
/** Formats read, and how many features each one's weights hold (format 1: every feature before `recency`). */
const FORMAT_FEATURES: Record<string, number> = { 'tkg-rule-term/1': 10, [RULE_TERM_FORMAT]: RF };

export interface RuleTermSpec {
  format: typeof RULE_TERM_FORMAT;
  /** R when the spec was written; codes are 0 .. 2R - 1. */
  numRelations: number;
  /** lambda in (0, 1] per step of the strict counts. */
  decay: number;
  /** lambda in (0, 1] per step of the relaxed (popularity) counts. */
  relaxedDecay: number;
  /**
   * The relaxedTopK entities of largest relaxed share are candidates of every query of the head code (every candidate
   * gets its share as the relaxed feature).
   */
  relaxedTopK: number;
  /** Lag bucket bounds (ascending positive integers); bucket i holds lags <= lagBounds[i], the last one the rest. */
  lagBounds: number[];
  /** Count bucket bounds (ascending positive integers), as lagBounds. */
  countBounds: number[];
  /** weights[f]: the ranker's weight of feature RULE_FEATURES[f]. */
  weights: number[];
  /**
   * Length-1 rules: [head code, body code, confidence per bucket]: bucketCount numbers, lag-major (the bucket of a body
   * edge last seen `lag` steps before the forecast step, at `count` distinct steps, is ruleBucket(lag, count)).
   */
  rules: Array<[number, number, number[]]>;
  /** Two-hop path rules: [head code, body1 code, body2 code, confidence]. */
  paths: Array<[number, number, number, number]>;
  /** Two-hop paths use hops (both) at most this many steps old: steps >= T - pathWindow (0: no paths). */
  pathWindow: number;
  /** At most this many intermediate entities per query: the first distinct ones of the anchor's edges, newest first. */
  pathFanout: number;
}

/** The query code of (direction, relation): object queries read r forward, subject queries backwards. */
export function queryCode(direction: Direction, relation: number): number {
  return 2 * relation + (direction === 'object' ? 0 : 1);
}

/** The inverse code (r forward <-> r backwards). */
export function inverseCode(code: number): number {
  return code ^ 1;
}

/** Upper bounds (inclusive) of the count buckets: how many distinct steps the body edge was seen. */
export const DEFAULT_COUNT_BOUNDS: readonly number[] = [];

/** Confidences per rule: one per (lag bucket, count bucket). */
export function bucketCount(spec: Pick<RuleTermSpec, 'lagBounds' | 'countBounds'>): number {
  return (spec.lagBounds.length + 1) * (spec.countBounds.length + 1);
}

/**
 * The confidence slot of a body edge last seen `lag` steps ago, seen at `count` distinct steps:
 * lagBucket(lagBounds, lag) * (countBounds.length + 1) + lagBucket(countBounds, count).
 */
export function ruleBucket(
  spec: Pick<RuleTermSpec, 'lagBounds' | 'countBounds'>,
  lag: number,
  count: number,
): number {
  return (
    lagBucket(spec.lagBounds, lag) * (spec.countBounds.length + 1) +
    lagBucket(spec.countBounds, count)
  );
}

/** Bucket of a lag (or count) in steps (>= 1): the first i with value <= bounds[i], bounds.length past them all. */
export function lagBucket(lagBounds: readonly number[], lag: number): number {
  let b = 0;
  while (b < lagBounds.length && lag > lagBounds[b]) b++;
  return b;
}

/**
 * relaxedTopK meaning every entity with a relaxed share: the recurrency-shaped ranker forms use it, so they are the
 * recurrency model itself (which gives every entity its share), not a form truncated to the top shares.
 */
export const EVERY_RELAXED = 2 ** 31 - 1;

/** A spec with no rules and the recurrency form's weights (strict + alpha * relaxed). */
export function recurrencyRuleSpec(options: {
  numRelations: number;
  decay: number;
  alpha: number;
  relaxedTopK?: number;
}): RuleTermSpec {
  const weights = new Array<number>(RF).fill(0);
  weights[FEATURE_INDEX.strict] = 1;
  weights[FEATURE_INDEX.relaxed] = options.alpha;
  return {
    format: RULE_TERM_FORMAT,
    numRelations: options.numRelations,
    decay: options.decay,
    relaxedDecay: options.decay,
    relaxedTopK: options.relaxedTopK ?? 64,
    lagBounds: [...DEFAULT_LAG_BOUNDS],
    countBounds: [...DEFAULT_COUNT_BOUNDS],
    weights,
    rules: [],
    paths: [],
    pathWindow: 0,
    pathFanout: 0,
  };
}

const fail = (field: string, message: string): never => {
  throw new InvalidInputError(`ruleTerm.${field}`, message, 'invalid_argument');
};

const isCode = (x: unknown, codes: number): boolean =>
  Number.isInteger(x) && (x as number) >= 0 && (x as number) < codes;
const isProbability = (x: unknown): boolean =>
  typeof x === 'number' && Number.isFinite(x) && x >= 0 && x < 1;

/**
 * Throws InvalidInputError naming the field when a spec is malformed; returns it typed, in the current format (an
 * older format's spec is returned as a new object upgraded to it; a current one is returned as it is).
 */
export function assertRuleTermSpec(value: unknown): RuleTermSpec {
  if (typeof value !== 'object' || value === null) return fail('', 'must be an object');
  let spec = value as RuleTermSpec;
  const format = (spec as { format: unknown }).format;
  const features = typeof format === 'string' ? FORMAT_FEATURES[format] : undefined;
  if (features === undefined)
    return fail(
      'format',
      `is ${JSON.stringify(format)}, expected one of ${Object.keys(FORMAT_FEATURES)
        .map((f) => JSON.stringify(f))
        .join(', ')}; a newer tkg wrote it, upgrade this reader or re-export the model`,
    );
  if (features !== RF) {
    if (!Array.isArray(spec.weights) || spec.weights.length !== features)
      fail('weights', `needs ${features} finite numbers in format ${String(format)}`);
    spec = {
      ...spec,
      format: RULE_TERM_FORMAT,
      weights: [...spec.weights, ...new Array<number>(RF - features).fill(0)],
    };
  }
  if (!Number.isInteger(spec.numRelations) || spec.numRelations < 1)
    fail('numRelations', `must be a positive integer, got ${spec.numRelations}`);
  for (const key of ['decay', 'relaxedDecay'] as const)
    if (!(spec[key] > 0 && spec[key] <= 1)) fail(key, `must be in (0, 1], got ${spec[key]}`);
  for (const key of ['relaxedTopK', 'pathWindow', 'pathFanout'] as const)
    if (!Number.isInteger(spec[key]) || spec[key] < 0)
      fail(key, `must be a non-negative integer, got ${spec[key]}`);
  if (
    !Array.isArray(spec.lagBounds) ||
    spec.lagBounds.length === 0 ||
    !spec.lagBounds.every(
      (b, i) => Number.isInteger(b) && b >= 1 && (i === 0 || b > spec.lagBounds[i - 1]),
    )
  )
    fail('lagBounds', 'must be ascending positive integers (at least one)');
  if (
    !Array.isArray(spec.countBounds) ||
    !spec.countBounds.every(
      (b, i) => Number.isInteger(b) && b >= 1 && (i === 0 || b > spec.countBounds[i - 1]),
    )
  )
    fail('countBounds', 'must be ascending positive integers');
  if (
    !Array.isArray(spec.weights) ||
    spec.weights.length !== RF ||
    !spec.weights.every(Number.isFinite)
  )
    fail('weights', `needs ${RF} finite numbers (${RULE_FEATURES.join(', ')})`);
  const codes = 2 * spec.numRelations;
  const buckets = bucketCount(spec);
  if (!Array.isArray(spec.rules)) fail('rules', 'must be an array');
  spec.rules.forEach((rule, i) => {
    if (
      !Array.isArray(rule) ||
      !isCode(rule[0], codes) ||
      !isCode(rule[1], codes) ||
      !Array.isArray(rule[2]) ||
      rule[2].length !== buckets ||
      !rule[2].every(isProbability)
    )
      fail(
        `rules[${i}]`,
        `must be [head, body, ${buckets} confidences in [0, 1)] with codes < ${codes}`,
      );
  });
  if (!Array.isArray(spec.paths)) fail('paths', 'must be an array');
  spec.paths.forEach((path, i) => {
    if (
      !Array.isArray(path) ||
      !isCode(path[0], codes) ||
      !isCode(path[1], codes) ||
      !isCode(path[2], codes) ||
      !isProbability(path[3])
    )
      fail(
        `paths[${i}]`,
        `must be [head, body1, body2, confidence in [0, 1)] with codes < ${codes}`,
      );
  });
  return spec;
}

/** JSON text of a spec (validated). */
export function encodeRuleTermSpec(spec: RuleTermSpec): string {
  return JSON.stringify(assertRuleTermSpec(spec));
}

/** A spec from JSON text; throws InvalidInputError naming the field when it is malformed. */
export function decodeRuleTermSpec(text: string): RuleTermSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidInputError(
      'ruleTerm',
      `is not JSON (${(error as Error).message})`,
      'invalid_argument',
    );
  }
  return assertRuleTermSpec(parsed);
}
