// nlsm-h maths (issue 8 item 2): score(s, r, o) = beta_r * logit_base(s, r, o) + sum_f w[slot, f] * x_f(s, r, o),
// where x are the history features of a candidate (zero for a candidate without history, so the history part is a
// sparse addition to the base logits `Z w + c`) and slot = direction * R + relation.
// Owns: the feature definitions, the weight layout and the pure combination functions. Must not import tfjs,
// src/train, kafkajs or src/kafka (the serving side uses it).
import type { Direction } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';

/**
 * History features of one candidate, in this order (F = FS + FR). The first FS depend on the exact fact's history
 * (all 0 when it never occurred), the last FR on the relaxed share only (0 outside the relaxed term's support):
 * - strict:       sum_i decay^(t - t_i) over past occurrences t_i of the exact fact (recency-weighted count);
 * - logStrict:    log(1 + strict);
 * - seen:         1 if the exact fact ever occurred before, else 0;
 * - logFrequency: log(1 + number of past steps with the exact fact) (undecayed count);
 * - relaxed:      share of the relation's decayed facts that point at the candidate, for the top `relaxedTopK`
 *                 candidates of the (relation, direction) and for candidates with a strict history;
 * - logRelaxed:   log(1 + 100 * relaxed).
 * All are 0 for a candidate without history, which keeps the term sparse.
 */
export const STRICT_FEATURES = ['strict', 'logStrict', 'seen', 'logFrequency'] as const;
export const RELAXED_FEATURES = ['relaxed', 'logRelaxed'] as const;
export const HISTORY_FEATURES = [...STRICT_FEATURES, ...RELAXED_FEATURES] as const;
export const FS = STRICT_FEATURES.length;
export const FR = RELAXED_FEATURES.length;
export const F = FS + FR;

/** Fitted nlsm-h parameters (plain numbers: JSON-serialisable, travel with an exported model). */
export interface HybridWeights {
  numRelations: number; // R
  /** lambda in (0, 1] of the strict and relaxed counts. */
  decay: number;
  /** Relaxed candidates per (relation, direction) that get a relaxed term (the rest get none). */
  relaxedTopK: number;
  /** beta_r: scale of the base logit per relation (folded into Theta for ONNX export). */
  baseScale: number[]; // [R]
  /** w[(direction * R + relation) * F + f]: weight of history feature f; direction 0 = object, 1 = subject. */
  history: number[]; // [2R * F]
}

/** Slot of a (direction, relation): object queries use rows 0..R-1, subject queries R..2R-1 (as the ONNX tables). */
export function slotOf(direction: Direction, relation: number, numRelations: number): number {
  return (direction === 'object' ? 0 : numRelations) + relation;
}

/** Pure: the strict features of one candidate (FS numbers at out[offset..]); all 0 when strict = 0. */
export function writeStrictFeatures(
  strict: number,
  frequency: number,
  out: Float32Array | Float64Array,
  offset: number,
): void {
  const seen = strict > 0;
  out[offset] = strict;
  out[offset + 1] = Math.log1p(strict);
  out[offset + 2] = seen ? 1 : 0;
  out[offset + 3] = seen ? Math.log1p(frequency) : 0;
}

/** Pure: the relaxed features of one candidate (FR numbers at out[offset..]); all 0 when relaxed = 0. */
export function writeRelaxedFeatures(
  relaxed: number,
  out: Float32Array | Float64Array,
  offset: number,
): void {
  out[offset] = relaxed;
  out[offset + 1] = Math.log1p(100 * relaxed);
}

/** Pure: features of one candidate from its raw history values; writes F numbers at out[offset..]. */
export function writeHistoryFeatures(
  strict: number,
  frequency: number,
  relaxed: number,
  out: Float32Array | Float64Array,
  offset: number,
): void {
  writeStrictFeatures(strict, frequency, out, offset);
  writeRelaxedFeatures(relaxed, out, offset + FS);
}

/** Pure: sum_f w[slot, f] * x_f over features [from, to) of a feature vector. */
export function weightedSum(
  weights: HybridWeights,
  slot: number,
  features: ArrayLike<number>,
  offset: number,
  from = 0,
  to = F,
): number {
  let value = 0;
  for (let f = from; f < to; f++)
    value += weights.history[slot * F + f] * features[offset + f - from];
  return value;
}

/** Pure: the history term of one candidate: sum_f w[slot, f] * x_f. */
export function historyTermValue(
  weights: HybridWeights,
  slot: number,
  features: ArrayLike<number>,
  offset: number,
): number {
  let value = 0;
  const base = slot * F;
  for (let f = 0; f < F; f++) value += weights.history[base + f] * features[offset + f];
  return value;
}

/** Neutral weights: the base model alone (beta = 1, no history term). */
export function baseOnlyWeights(
  numRelations: number,
  decay = 0.9,
  relaxedTopK = 64,
): HybridWeights {
  return {
    numRelations,
    decay,
    relaxedTopK,
    baseScale: Array.from({ length: numRelations }, () => 1),
    history: Array.from({ length: 2 * numRelations * F }, () => 0),
  };
}

/** Throws InvalidInputError naming the field when weights are malformed. */
export function assertHybridWeights(weights: HybridWeights): void {
  const R = weights.numRelations;
  if (!Number.isInteger(R) || R < 1)
    throw new InvalidInputError(
      'numRelations',
      `must be a positive integer, got ${R}`,
      'invalid_argument',
    );
  if (!(weights.decay > 0 && weights.decay <= 1))
    throw new InvalidInputError(
      'decay',
      `must be in (0, 1], got ${weights.decay}`,
      'invalid_argument',
    );
  if (!Number.isInteger(weights.relaxedTopK) || weights.relaxedTopK < 0)
    throw new InvalidInputError(
      'relaxedTopK',
      `must be a non-negative integer, got ${weights.relaxedTopK}`,
      'invalid_argument',
    );
  if (weights.baseScale.length !== R || !weights.baseScale.every(Number.isFinite))
    throw new InvalidInputError(
      'baseScale',
      `needs ${R} finite values (one per relation), got ${weights.baseScale.length}`,
      'invalid_argument',
    );
  if (weights.history.length !== 2 * R * F || !weights.history.every(Number.isFinite))
    throw new InvalidInputError(
      'history',
      `needs 2R * F = ${2 * R * F} finite values, got ${weights.history.length}`,
      'invalid_argument',
    );
}

/**
 * Pure: combines base logits with sparse history terms in place.
 * scores[b * N + e] = beta_{relations[b]} * scores[b * N + e] (+ termValues[i] for each term i of row b).
 * `terms` rows must be batch rows; duplicate (row, entity) pairs add up (as ONNX ScatterND with reduction=add).
 */
export function combineInPlace(
  scores: Float32Array, // [B * N] base logits in, nlsm-h scores out
  numEntities: number,
  relations: Int32Array, // [B]
  baseScale: ArrayLike<number>, // [R]
  terms: { rows: Int32Array; entities: Int32Array; values: Float32Array },
): Float32Array {
  const B = relations.length;
  if (scores.length !== B * numEntities) {
    throw new InvalidInputError(
      'scores',
      `has ${scores.length} values, expected B * N = ${B} * ${numEntities}`,
      'invalid_argument',
    );
  }
  for (let b = 0; b < B; b++) {
    const beta = baseScale[relations[b]];
    if (beta === 1) continue;
    const offset = b * numEntities;
    for (let e = 0; e < numEntities; e++) scores[offset + e] = beta * scores[offset + e];
  }
  for (let i = 0; i < terms.values.length; i++) {
    const index = terms.rows[i] * numEntities + terms.entities[i];
    scores[index] = scores[index] + terms.values[i];
  }
  return scores;
}

/** Pure: weights for numRelations >= weights.numRelations; new relations take `fill`'s (same decay / top-K). */
export function resizeHybridWeights(weights: HybridWeights, fill: HybridWeights): HybridWeights {
  const R0 = weights.numRelations;
  const R = fill.numRelations;
  if (R === R0) return weights;
  if (R < R0)
    throw new InvalidInputError(
      'numRelations',
      `${R} is below the weights' ${R0}; relation counts only grow`,
      'invalid_argument',
    );
  const history = new Array<number>(2 * R * F).fill(0);
  for (let d = 0; d < 2; d++)
    for (let r = 0; r < R; r++) {
      const from = r < R0 ? weights.history : fill.history;
      const fromSlot = d * (r < R0 ? R0 : R) + r;
      for (let f = 0; f < F; f++) history[(d * R + r) * F + f] = from[fromSlot * F + f];
    }
  return {
    numRelations: R,
    decay: weights.decay,
    relaxedTopK: weights.relaxedTopK,
    baseScale: Array.from({ length: R }, (_, r) =>
      r < R0 ? weights.baseScale[r] : fill.baseScale[r],
    ),
    history,
  };
}
