// The TermState of each TermSpec kind (src/model/terms.ts) and the factory that builds one from a spec. Used by the
// trainer (to fit and to compute the exact served scores) and by every serving replica (the bundle's term), so both
// add the same numbers. Owns: RecurrencyTermState, HybridTermState and createTermState. Pure; must not import tfjs,
// onnxruntime, Kafka, src/train or src/serve.
import type { Direction, Snapshot } from '../core/types.ts';
import { HistoryIndex } from './history-index.ts';
import { assertHybridWeights, type HybridWeights } from './hybrid-features.ts';
import { HybridHistory } from './hybrid-history.ts';
import { RuleTermState } from './rule-term.ts';
import {
  assertTermSpec,
  restrictRelations,
  type Evidence,
  type SparseRow,
  type TermSpec,
  type TermState,
} from './terms.ts';

const empty: SparseRow = { entities: new Int32Array(0), values: new Float32Array(0) };

/**
 * Pure: the recurrence evidence of a query's entities: the last past occurrence of the exact fact, with how often it
 * occurred and the entity's term value as its weight (entities without one get none).
 */
function recurrenceEvidence(
  direction: Direction,
  anchor: number,
  relation: number,
  entities: Int32Array,
  row: SparseRow | undefined,
  recurrence: (entity: number) => { lastStep: number; count?: number } | undefined,
): Evidence[][] {
  const value = new Map<number, number>();
  if (row) row.entities.forEach((e, i) => value.set(e, (value.get(e) ?? 0) + row.values[i]));
  return Array.from(entities, (entity) => {
    const seen = recurrence(entity);
    if (!seen) return [];
    const [subject, object] = direction === 'object' ? [anchor, entity] : [entity, anchor];
    return [
      {
        kind: 'recurrence',
        rule:
          seen.count === undefined
            ? `the same fact before, the last time at step ${seen.lastStep}`
            : seen.count > 1
              ? `the same fact at ${seen.count} earlier steps, the last at step ${seen.lastStep}`
              : `the same fact at step ${seen.lastStep}`,
        weight: value.get(entity) ?? 0,
        facts: [{ subject, relation, object, step: seen.lastStep }],
      },
    ];
  });
}

/**
 * The recurrency form: strictWeight * (decayed count of the exact fact) + relaxedWeight * (normalised decayed
 * frequency of (., r, o) for object queries, (s, r, .) for subject queries), both from HistoryIndex.
 */
export class RecurrencyTermState implements TermState {
  private spec: Extract<TermSpec, { kind: 'recurrency' }>;
  private readonly index: HistoryIndex;
  /** (direction, relation) -> weighted relaxed row, valid until the next observe. */
  private readonly relaxedCache = new Map<string, SparseRow>();

  constructor(spec: Extract<TermSpec, { kind: 'recurrency' }>) {
    assertTermSpec(spec);
    this.spec = spec;
    this.index = new HistoryIndex({ numRelations: spec.numRelations, decay: spec.decay });
  }

  get lastStep(): number {
    return this.index.lastStep;
  }

  /** Take new weights without a rebuild when the counts stay valid (same decay and relations). */
  adopt(spec: TermSpec): boolean {
    if (spec.kind !== 'recurrency') return false;
    assertTermSpec(spec);
    if (spec.decay !== this.spec.decay || spec.numRelations !== this.spec.numRelations)
      return false;
    this.spec = spec;
    this.relaxedCache.clear();
    return true;
  }

  observe(snapshot: Snapshot): void {
    if (snapshot.step <= this.index.lastStep) return;
    this.index.observe(restrictRelations(snapshot, this.spec.numRelations));
    this.relaxedCache.clear();
  }

  terms(direction: Direction, anchor: number, relation: number): SparseRow | undefined {
    const { strictWeight } = this.spec;
    if (relation < 0 || relation >= this.spec.numRelations) return undefined;
    const step = this.index.lastStep + 1;
    const relaxed = this.relaxedRow(direction, relation);
    const strictEntities: number[] = [];
    const strictValues: number[] = [];
    if (strictWeight !== 0) {
      this.index.forEachStrict(step, direction, anchor, relation, (entity, value) => {
        strictEntities.push(entity);
        strictValues.push(strictWeight * value);
      });
    }
    if (strictEntities.length === 0) return relaxed.entities.length === 0 ? undefined : relaxed;
    // Duplicate entities add up (the graph's ScatterND adds), so strict and relaxed entries are concatenated.
    const count = relaxed.entities.length + strictEntities.length;
    const entities = new Int32Array(count);
    const values = new Float32Array(count);
    entities.set(relaxed.entities);
    values.set(relaxed.values);
    entities.set(strictEntities, relaxed.entities.length);
    values.set(strictValues, relaxed.entities.length);
    return { entities, values };
  }

  evidence(
    direction: Direction,
    anchor: number,
    relation: number,
    entities: Int32Array,
    limit: number,
  ): Evidence[][] {
    const row = this.terms(direction, anchor, relation);
    return recurrenceEvidence(direction, anchor, relation, entities, row, (entity) => {
      const lastStep = this.index.strictLastStep(direction, anchor, relation, entity);
      return lastStep === undefined ? undefined : { lastStep };
    }).map((items) => items.slice(0, limit));
  }

  private relaxedRow(direction: Direction, relation: number): SparseRow {
    const key = `${direction}:${relation}`;
    let row = this.relaxedCache.get(key);
    if (!row) {
      const weight = this.spec.relaxedWeight;
      const dist = this.index.relaxedDistribution(direction, relation);
      row =
        weight === 0
          ? empty
          : { entities: dist.entities, values: Float32Array.from(dist.values, (v) => weight * v) };
      this.relaxedCache.set(key, row);
    }
    return row;
  }
}

/**
 * nlsm-h's term: the fitted history features of every candidate with a history (HybridHistory), weighted per
 * (direction, relation) slot; memoised per query until the next observe.
 */
export class HybridTermState implements TermState {
  private weightsValue: HybridWeights;
  private history: HybridHistory;
  /** Terms per (anchor, slot) since the last observe / weights / step change (a query's terms change only then). */
  private readonly memo = new Map<number, SparseRow | undefined>();
  private readonly memoSize: number;

  /** memoSize: most queries whose terms are kept until the next closed step (0 = compute every time). */
  constructor(weights: HybridWeights, options: { memoSize?: number } = {}) {
    assertHybridWeights(weights);
    this.weightsValue = weights;
    this.history = HybridTermState.historyFor(weights);
    this.memoSize = options.memoSize ?? 100_000;
  }

  private static historyFor(weights: HybridWeights): HybridHistory {
    return new HybridHistory({
      numRelations: weights.numRelations,
      decay: weights.decay,
      relaxedTopK: weights.relaxedTopK,
    });
  }

  get weights(): HybridWeights {
    return this.weightsValue;
  }

  get lastStep(): number {
    return this.history.lastStep;
  }

  evidence(
    direction: Direction,
    anchor: number,
    relation: number,
    entities: Int32Array,
    limit: number,
  ): Evidence[][] {
    const row = this.terms(direction, anchor, relation);
    return recurrenceEvidence(direction, anchor, relation, entities, row, (entity) =>
      this.history.recurrence(direction, anchor, relation, entity),
    ).map((items) => items.slice(0, limit));
  }

  /** Take new weights without a rebuild when the counts stay valid (same decay, top-K and relations). */
  adopt(spec: TermSpec): boolean {
    if (spec.kind !== 'hybrid') return false;
    const weights = spec.weights;
    assertHybridWeights(weights);
    if (
      weights.decay !== this.weightsValue.decay ||
      weights.relaxedTopK !== this.weightsValue.relaxedTopK ||
      weights.numRelations !== this.weightsValue.numRelations
    )
      return false;
    this.weightsValue = weights;
    this.memo.clear();
    return true;
  }

  /** A closed step, in step order (older or repeated steps are ignored). */
  observe(snapshot: Snapshot): void {
    if (snapshot.step <= this.history.lastStep) return;
    this.history.observe(restrictRelations(snapshot, this.weightsValue.numRelations));
    this.memo.clear();
  }

  /**
   * Builds the term table of the forecast step now (HybridHistory.termTable: every (anchor, relation) with a strict
   * history) instead of at the first query after a step closed; returns the seconds it took.
   */
  prepare(): number {
    const t0 = performance.now();
    this.history.termTable(this.history.lastStep + 1, this.weightsValue);
    return (performance.now() - t0) / 1000;
  }

  terms(direction: Direction, anchor: number, relation: number): SparseRow | undefined {
    const R = this.weightsValue.numRelations;
    if (relation < 0 || relation >= R) return undefined;
    const key = anchor * 2 * R + (direction === 'object' ? 0 : R) + relation;
    if (this.memo.has(key)) return this.memo.get(key);
    const step = this.history.lastStep + 1;
    const computed = this.history.terms(step, direction, anchor, relation, this.weightsValue);
    const terms = computed.entities.length === 0 ? undefined : computed;
    if (this.memoSize > 0) {
      if (this.memo.size >= this.memoSize) this.memo.clear();
      this.memo.set(key, terms);
    }
    return terms;
  }
}

export interface TermStateOptions {
  /** Queries whose terms are memoised until the next closed step (0 = compute every time; default 100,000). */
  memoSize?: number;
}

/** The TermState a spec needs (undefined for `none`). Throws a TkgError on an invalid spec. */
export function createTermState(
  spec: TermSpec,
  options: TermStateOptions = {},
): TermState | undefined {
  assertTermSpec(spec);
  switch (spec.kind) {
    case 'none':
      return undefined;
    case 'recurrency':
      return new RecurrencyTermState(spec);
    case 'hybrid':
      return new HybridTermState(spec.weights, options);
    case 'rules':
      return new RuleTermState(spec.spec);
  }
}
