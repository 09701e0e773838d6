// The sparse term a bundle adds to its dense scores `Z w + c` (SPEC section 7): its typed spec, the spec's JSON codec
// (the bundle's `terms` field) and the contract of the state that computes it from closed snapshots.
// Training writes a spec, serving reads it; both compute the term with the same TermState classes (term-states.ts),
// so a replica adds exactly the numbers the trainer fitted.
// Owns: TermSpec, its codec and validation, the TermState / SparseRow / Evidence contract. Pure; must not import
// tfjs, onnxruntime, Kafka, src/train or src/serve.
import type { Direction, Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import { assertHybridWeights, type HybridWeights } from './hybrid-features.ts';
import { assertRuleTermSpec, type RuleTermSpec } from './rule-spec.ts';

/**
 * What a bundle adds to its dense scores:
 * - `none`: nothing (plain NLSM, BAS);
 * - `recurrency`: strictWeight * strict(e) + relaxedWeight * relaxed(e), decayed counts per step (src/model/history-index.ts);
 * - `hybrid`: nlsm-h's fitted history features (src/model/hybrid-features.ts), the base scale folded into the graph;
 * - `rules`: the rule model's term (recurrence, temporal rules with lag-bucketed confidences, popularity; weights of
 *   its ranker), src/model/rule-spec.ts and rule-term.ts; any base scale folded into the graph.
 */
export type TermSpec =
  | { kind: 'none' }
  | {
      kind: 'recurrency';
      /** Relations the counts cover (ids >= this get no term). */
      numRelations: number;
      /** lambda in (0, 1]: an occurrence k steps ago counts lambda^k. */
      decay: number;
      strictWeight: number;
      relaxedWeight: number;
    }
  | { kind: 'hybrid'; weights: HybridWeights }
  | { kind: 'rules'; spec: RuleTermSpec };

export type TermKind = TermSpec['kind'];
export const noTerm: TermSpec = { kind: 'none' };

function incompatible(message: string, cause?: unknown): TkgError {
  return new TkgError(`${message}; re-export the model with this version of tkg-stream`, {
    reason: 'incompatible',
    cause,
  });
}

/** Throws a TkgError (reason 'incompatible') naming the first invalid field of a spec. */
export function assertTermSpec(spec: TermSpec): void {
  switch (spec?.kind) {
    case 'none':
      return;
    case 'recurrency':
      if (!Number.isInteger(spec.numRelations) || spec.numRelations < 1)
        throw incompatible(`terms.numRelations ${spec.numRelations} must be a positive integer`);
      if (!(spec.decay > 0 && spec.decay <= 1))
        throw incompatible(`terms.decay ${spec.decay} must be in (0, 1]`);
      if (!Number.isFinite(spec.strictWeight) || !Number.isFinite(spec.relaxedWeight))
        throw incompatible('terms.strictWeight and terms.relaxedWeight must be finite');
      return;
    case 'hybrid':
      try {
        assertHybridWeights(spec.weights);
      } catch (error) {
        throw incompatible(`terms.weights: ${(error as Error).message}`, error);
      }
      return;
    case 'rules':
      try {
        assertRuleTermSpec(spec.spec);
      } catch (error) {
        throw incompatible(`terms.spec: ${(error as Error).message}`, error);
      }
      return;
    default:
      throw incompatible(
        `terms.kind ${JSON.stringify((spec as { kind?: unknown })?.kind)} is unknown (none, recurrency, hybrid, rules)`,
      );
  }
}

/** Pure: the spec as the bundle's `terms` JSON text. */
export function encodeTermSpec(spec: TermSpec): string {
  assertTermSpec(spec);
  return JSON.stringify(spec);
}

/** Pure: a spec from the bundle's `terms` JSON text; throws a TkgError naming the problem. */
export function decodeTermSpec(text: string): TermSpec {
  let spec: TermSpec;
  try {
    spec = JSON.parse(text) as TermSpec;
  } catch (error) {
    throw incompatible(`terms is not JSON (${(error as Error).message})`, error);
  }
  assertTermSpec(spec);
  return spec;
}

/** Canonical identity of a spec: two specs with the same key compute the same term. */
export function termSpecKey(spec: TermSpec): string {
  return JSON.stringify(spec);
}

/**
 * Announcements written before bundles had a `terms` field carried the term in `metadata`: `history.hybrid` (nlsm-h
 * weights JSON) or `history.decay` / `history.strictWeight` / `history.relaxedWeight` (recurrency form).
 */
export function termSpecFromLegacyMetadata(
  metadata: Record<string, string> | undefined,
  numRelations: number,
): TermSpec {
  const hybrid = metadata?.['history.hybrid'];
  if (hybrid !== undefined) {
    let weights: HybridWeights;
    try {
      weights = JSON.parse(hybrid) as HybridWeights;
    } catch (error) {
      throw incompatible(`metadata history.hybrid is not JSON`, error);
    }
    const spec: TermSpec = { kind: 'hybrid', weights };
    assertTermSpec(spec);
    return spec;
  }
  if (metadata?.['history.decay'] === undefined) return noTerm;
  const spec: TermSpec = {
    kind: 'recurrency',
    numRelations,
    decay: Number(metadata['history.decay']),
    strictWeight: Number(metadata['history.strictWeight'] ?? 1),
    relaxedWeight: Number(metadata['history.relaxedWeight'] ?? 0),
  };
  assertTermSpec(spec);
  return spec;
}

// ---- The state that computes a term ----------------------------------------------------------------------------------

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
 * The incremental state behind a term: observe every closed step in order (an empty snapshot for a step without
 * facts; never recomputed from scratch, bounded memory), then give the term row of a query for step lastStep + 1.
 * Facts whose relation is outside the spec's relations are ignored (they cannot be queried on that bundle).
 */
export interface TermState {
  /** Last observed step (-Infinity before the first snapshot). */
  readonly lastStep: number;
  observe(snapshot: Snapshot): void;
  /** The term row of (direction, anchor, relation) for step lastStep + 1 (undefined: no term). */
  terms(direction: Direction, anchor: number, relation: number): SparseRow | undefined;
  /** Optional: precompute what the first queries after a step close would (returns seconds spent). */
  prepare?(): number;
  /** Optional: switch to another spec of the same kind in place; false when the state must be rebuilt instead. */
  adopt?(spec: TermSpec): boolean;
  /** Optional: per candidate entity (same order as `entities`), the top `limit` evidence items. */
  evidence?(
    direction: Direction,
    anchor: number,
    relation: number,
    entities: Int32Array,
    limit: number,
  ): Evidence[][];
}

/** Pure: `snapshot` without the facts whose relation id is >= numRelations (the same object when none is). */
export function restrictRelations(snapshot: Snapshot, numRelations: number): Snapshot {
  const t = snapshot.triples;
  let keep = 0;
  for (let i = 1; i < t.length; i += 3) if (t[i] < numRelations) keep++;
  if (keep * 3 === t.length) return snapshot;
  const triples = new Int32Array(keep * 3);
  for (let i = 0, j = 0; i < t.length; i += 3) {
    if (t[i + 1] >= numRelations) continue;
    triples[j++] = t[i];
    triples[j++] = t[i + 1];
    triples[j++] = t[i + 2];
  }
  return { ...snapshot, triples, numRelations: Math.min(snapshot.numRelations, numRelations) };
}
