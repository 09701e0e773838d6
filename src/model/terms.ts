// The sparse term a model adds to its dense scores `Z w + c` (SPEC section 7): its typed parameters and their codec in
// a model announcement. The recurrency form (`history.*` keys: decay and the strict / relaxed weights) and nlsm-h's
// fitted weights (`history.hybrid`, JSON of HybridWeights). Training writes these, serving reads them; both compute
// the term from the same history code (history-index.ts, hybrid-history.ts).
// Owns: the term parameter formats. Pure; must not import tfjs, onnxruntime, Kafka, src/train or src/serve.
import type { Direction, Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import { assertHybridWeights, type HybridWeights } from './hybrid-features.ts';

/** score(e) = logits(e) + strictWeight * strict(e) + relaxedWeight * relaxed(e). */
export interface HistoryTermParams {
  decay: number; // lambda in (0, 1] of the strict and relaxed counts
  strictWeight: number;
  relaxedWeight: number;
}

const KEYS = {
  decay: 'history.decay',
  strictWeight: 'history.strictWeight',
  relaxedWeight: 'history.relaxedWeight',
} as const;

/** Pure: the announcement metadata entries of a history term. */
export function historyParamsToMetadata(params: HistoryTermParams): Record<string, string> {
  return {
    [KEYS.decay]: String(params.decay),
    [KEYS.strictWeight]: String(params.strictWeight),
    [KEYS.relaxedWeight]: String(params.relaxedWeight),
  };
}

/** Pure: the history term an announcement asks for (undefined: the model has none). Throws on malformed values. */
export function historyParamsFromMetadata(
  metadata: Record<string, string> | undefined,
): HistoryTermParams | undefined {
  if (!metadata || metadata[KEYS.decay] === undefined) return undefined;
  const params = {
    decay: Number(metadata[KEYS.decay]),
    strictWeight: Number(metadata[KEYS.strictWeight] ?? 1),
    relaxedWeight: Number(metadata[KEYS.relaxedWeight] ?? 0),
  };
  if (
    !(params.decay > 0 && params.decay <= 1) ||
    !Number.isFinite(params.strictWeight) ||
    !Number.isFinite(params.relaxedWeight)
  ) {
    throw new TkgError(
      `model metadata ${JSON.stringify(metadata)} has an invalid history term; decay must be in (0, 1] and weights finite`,
      { reason: 'incompatible' },
    );
  }
  return params;
}

export const HYBRID_METADATA_KEY = 'history.hybrid';

/** Pure: announcement metadata entries carrying the weights. */
export function hybridWeightsToMetadata(weights: HybridWeights): Record<string, string> {
  assertHybridWeights(weights);
  return { [HYBRID_METADATA_KEY]: JSON.stringify(weights) };
}

/** Pure: the weights a model announcement carries (undefined: none). Throws a TkgError on malformed values. */
export function hybridWeightsFromMetadata(
  metadata: Record<string, string> | undefined,
): HybridWeights | undefined {
  const text = metadata?.[HYBRID_METADATA_KEY];
  if (text === undefined) return undefined;
  try {
    const weights = JSON.parse(text) as HybridWeights;
    assertHybridWeights(weights);
    return weights;
  } catch (error) {
    throw new TkgError(
      `model metadata ${HYBRID_METADATA_KEY} is not valid nlsm-h weights (${(error as Error).message}); re-export the model`,
      { reason: 'incompatible', cause: error },
    );
  }
}

// ---- The term contract (SPEC section 7) -----------------------------------------------------------------------------
// A bundle's sparse term is described by a TermSpec (plain JSON, carried by the bundle) and computed by a TermState
// built from closed snapshots. Serving keeps one TermState per served bundle lineage and advances it only when a
// bundle that needs the next step becomes current, so a query is scored by exactly one bundle and one state of the
// term inputs (its answer names both). Training computes the same numbers with the same classes.

/** One query's sparse additions to the dense scores: score[e] += values[i] for e = entities[i] (duplicates add up). */
export interface SparseRow {
  entities: Int32Array;
  values: Float32Array;
}

/** A past fact that supports a candidate, and the rule or path that used it. */
export interface EvidenceFact {
  subject: number;
  relation: number;
  object: number;
  step: number;
}
export interface Evidence {
  /** Which part of the term: e.g. 'recurrence', 'rule', 'path'. */
  kind: string;
  /** Human-readable rule or path, e.g. "Consult(A, B) <= Make_statement(A, B)" (names filled in by the server). */
  rule: string;
  /** This evidence item's share of the candidate's term value. */
  weight: number;
  facts: EvidenceFact[];
}

/**
 * The incremental state behind a term: observe closed snapshots in step order (never recomputed from scratch, bounded
 * memory), then give the term row of a query for the step after the last observed one.
 */
export interface TermState {
  /** Last observed step (-Infinity before the first snapshot). */
  readonly lastStep: number;
  observe(snapshot: Snapshot): void;
  /** The term row of (direction, anchor, relation) for step lastStep + 1 (undefined: no term). */
  terms(direction: Direction, anchor: number, relation: number): SparseRow | undefined;
  /** Optional: per candidate entity (same order as `entities`), the top `limit` evidence items. */
  evidence?(
    direction: Direction,
    anchor: number,
    relation: number,
    entities: Int32Array,
    limit: number,
  ): Evidence[][];
}
