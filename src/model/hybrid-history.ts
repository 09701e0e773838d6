// The history state behind nlsm-h: two HistoryIndex instances (decayed counts with the fitted decay, and undecayed
// counts) kept incrementally one closed snapshot at a time, and the sparse candidates / features / term values of a
// query derived from them. Shared by the in-process forecaster (eval) and the serving provider (ONNX extra input),
// so both add exactly the same numbers. Must not import tfjs, src/train, kafkajs or src/kafka.
import type { Direction, Snapshot } from '../core/types.ts';
import { HistoryIndex } from './history-index.ts';
import {
  F,
  FR,
  FS,
  slotOf,
  weightedSum,
  writeHistoryFeatures,
  writeRelaxedFeatures,
  writeStrictFeatures,
  type HybridWeights,
} from './hybrid-features.ts';

/** Strict term rows of one (step, weights), CSR: row i's entries are offsets[i] <= j < offsets[i + 1]. */
export interface TermTable {
  step: number;
  weights: HybridWeights;
  /** (anchor * R + relation) -> row, per direction. */
  rowOf: Record<Direction, Map<number, number>>;
  offsets: Int32Array; // [rows + 1]
  entities: Int32Array; // [nnz]
  values: Float32Array; // [nnz]
}

/** History candidates of one query: distinct entities and their features [M, F]. */
export interface HistoryCandidates {
  entities: Int32Array; // [M]
  features: Float32Array; // [M * F]
}

export class HybridHistory {
  readonly numRelations: number;
  readonly decay: number;
  readonly relaxedTopK: number;
  private readonly decayed: HistoryIndex;
  private readonly counts: HistoryIndex;
  /** (anchor * R + relation) keys with a strict history, per direction (the rows of the term table). */
  private readonly strictKeys: Record<Direction, Set<number>> = {
    object: new Set(),
    subject: new Set(),
  };
  /** Strict term rows of every key for one (step, weights), CSR; built on first use, cleared by observe(). */
  private table: TermTable | undefined;
  /** slot -> relaxed-only terms of its top relaxedTopK entities under some weights; cleared by observe(). */
  private readonly relaxedCache = new Map<
    number,
    { weights: HybridWeights; entities: Int32Array; values: Float32Array; members: Set<number> }
  >();

  constructor(options: { numRelations: number; decay: number; relaxedTopK: number }) {
    this.numRelations = options.numRelations;
    this.decay = options.decay;
    this.relaxedTopK = options.relaxedTopK;
    this.decayed = new HistoryIndex({ numRelations: options.numRelations, decay: options.decay });
    this.counts =
      options.decay === 1
        ? this.decayed
        : new HistoryIndex({ numRelations: options.numRelations, decay: 1 });
  }

  /** Last observed step (-Infinity before the first snapshot). */
  get lastStep(): number {
    return this.decayed.lastStep;
  }

  /** The last step and the number of steps at which the exact fact occurred (undefined: never). */
  recurrence(
    direction: Direction,
    anchor: number,
    relation: number,
    entity: number,
  ): { lastStep: number; count: number } | undefined {
    const lastStep = this.counts.strictLastStep(direction, anchor, relation, entity);
    if (lastStep === undefined) return undefined;
    return {
      lastStep,
      count: this.counts.strictValue(lastStep, direction, anchor, relation, entity),
    };
  }

  /** Adds a closed snapshot (step order; see HistoryIndex.observe). */
  observe(snapshot: Snapshot): void {
    this.decayed.observe(snapshot);
    if (this.counts !== this.decayed) this.counts.observe(snapshot);
    const R = this.numRelations;
    const t = snapshot.triples;
    for (let i = 0; i < t.length; i += 3) {
      this.strictKeys.object.add(t[i] * R + t[i + 1]);
      this.strictKeys.subject.add(t[i + 2] * R + t[i + 1]);
    }
    this.relaxedCache.clear();
    this.table = undefined;
  }

  /**
   * Candidates with a history for the query at `step`: every entity with a past occurrence of the exact fact, plus
   * the top `relaxedTopK` of the relation's relaxed distribution (in this order, no duplicates).
   */
  candidates(
    step: number,
    direction: Direction,
    anchor: number,
    relation: number,
  ): HistoryCandidates {
    if (relation < 0 || relation >= this.numRelations)
      return { entities: new Int32Array(0), features: new Float32Array(0) };
    const dist = this.decayed.relaxedDistribution(direction, relation);
    const entities: number[] = [];
    const strict: number[] = [];
    const seen = new Set<number>();
    this.decayed.forEachStrict(step, direction, anchor, relation, (entity, value) => {
      seen.add(entity);
      entities.push(entity);
      strict.push(value);
    });
    const top = Math.min(this.relaxedTopK, dist.entities.length);
    for (let i = 0; i < top; i++) {
      const entity = dist.entities[i];
      if (seen.has(entity)) continue;
      entities.push(entity);
      strict.push(0);
    }
    const M = entities.length;
    const features = new Float32Array(M * F); // [M, F]
    for (let m = 0; m < M; m++) {
      const entity = entities[m];
      const frequency =
        strict[m] > 0 ? this.counts.strictValue(step, direction, anchor, relation, entity) : 0;
      writeHistoryFeatures(strict[m], frequency, dist.valueOf.get(entity) ?? 0, features, m * F);
    }
    return { entities: Int32Array.from(entities), features };
  }

  /**
   * The sparse history term of one query under `weights`: entities and values (float32, as the ONNX input). The
   * serving hot path: the top-`relaxedTopK` relaxed terms of a (direction, relation) are cached until the next
   * observe(), and a candidate with a strict history gets one more entry with its strict part (plus its relaxed part
   * when it is not among the cached ones), read from a term table of every (anchor, relation) with a strict history,
   * built once per (step, weights) after a step closes (termTable). Entries for the same entity add up (ONNX
   * ScatterND with reduction=add, combineInPlace), which equals the term of candidates() exactly up to float32
   * rounding.
   */
  terms(
    step: number,
    direction: Direction,
    anchor: number,
    relation: number,
    weights: HybridWeights,
  ): { entities: Int32Array; values: Float32Array } {
    if (relation < 0 || relation >= this.numRelations)
      return { entities: new Int32Array(0), values: new Float32Array(0) };
    const slot = slotOf(direction, relation, this.numRelations);
    const relaxed = this.relaxedTerms(direction, relation, slot, weights);
    const table = this.termTable(step, weights);
    const row = table.rowOf[direction].get(anchor * this.numRelations + relation);
    if (row === undefined)
      return { entities: relaxed.entities.slice(), values: relaxed.values.slice() };
    const from = table.offsets[row];
    const to = table.offsets[row + 1];
    const top = relaxed.entities.length;
    const entities = new Int32Array(top + to - from);
    const values = new Float32Array(top + to - from);
    entities.set(relaxed.entities);
    values.set(relaxed.values);
    entities.set(table.entities.subarray(from, to), top);
    values.set(table.values.subarray(from, to), top);
    return { entities, values };
  }

  /**
   * The strict rows of every (direction, anchor, relation) with a history for one (step, weights): per candidate its
   * strict part plus, when it is not among the slot's cached top relaxed entities, its relaxed part. Built on first
   * use after observe() (a step close), in O(strict entries); queries then only copy their row.
   */
  termTable(step: number, weights: HybridWeights): TermTable {
    const cached = this.table;
    if (cached !== undefined && cached.step === step && cached.weights === weights) return cached;
    const R = this.numRelations;
    let entities = new Int32Array(1024);
    let values = new Float32Array(1024);
    let size = 0;
    const offsets: number[] = [0];
    const rowOf: Record<Direction, Map<number, number>> = { object: new Map(), subject: new Map() };
    const strictFeatures = new Float64Array(FS);
    const relaxedFeatures = new Float64Array(FR);
    for (const direction of ['object', 'subject'] as Direction[]) {
      for (const key of this.strictKeys[direction]) {
        const relation = key % R;
        const anchor = (key - relation) / R;
        const slot = slotOf(direction, relation, R);
        const relaxed = this.relaxedTerms(direction, relation, slot, weights);
        const dist = this.decayed.relaxedDistribution(direction, relation);
        this.decayed.forEachStrict(step, direction, anchor, relation, (entity, strict) => {
          const frequency = this.counts.strictValue(step, direction, anchor, relation, entity);
          writeStrictFeatures(strict, frequency, strictFeatures, 0);
          let value = weightedSum(weights, slot, strictFeatures, 0, 0, FS);
          if (!relaxed.members.has(entity)) {
            writeRelaxedFeatures(dist.valueOf.get(entity) ?? 0, relaxedFeatures, 0);
            value += weightedSum(weights, slot, relaxedFeatures, 0, FS, F);
          }
          if (size === entities.length) {
            const grownEntities = new Int32Array(2 * size);
            grownEntities.set(entities);
            entities = grownEntities;
            const grownValues = new Float32Array(2 * size);
            grownValues.set(values);
            values = grownValues;
          }
          entities[size] = entity;
          values[size] = value;
          size++;
        });
        rowOf[direction].set(key, offsets.length - 1);
        offsets.push(size);
      }
    }
    const table: TermTable = {
      step,
      weights,
      rowOf,
      offsets: Int32Array.from(offsets),
      entities: entities.slice(0, size),
      values: values.slice(0, size),
    };
    this.table = table;
    return table;
  }

  /** Relaxed-only terms of the top `relaxedTopK` entities of a slot (cached per weights until the next observe). */
  private relaxedTerms(
    direction: Direction,
    relation: number,
    slot: number,
    weights: HybridWeights,
  ) {
    const cached = this.relaxedCache.get(slot);
    if (cached !== undefined && cached.weights === weights) return cached;
    const dist = this.decayed.relaxedDistribution(direction, relation);
    const top = Math.min(this.relaxedTopK, dist.entities.length);
    const entities = dist.entities.slice(0, top);
    const relaxedFeatures = new Float64Array(FR);
    const values = Float32Array.from({ length: top }, (_, i) => {
      writeRelaxedFeatures(dist.values[i], relaxedFeatures, 0);
      return weightedSum(weights, slot, relaxedFeatures, 0, FS, F);
    });
    const entry = { weights, entities, values, members: new Set(entities) };
    this.relaxedCache.set(slot, entry);
    return entry;
  }

  /** Sparse terms of a batch of queries (rows = batch rows), for combineInPlace / ONNX extra_index + extra_value. */
  batchTerms(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    weights: HybridWeights,
  ): { rows: Int32Array; entities: Int32Array; values: Float32Array } {
    const parts: Array<{ entities: Int32Array; values: Float32Array }> = [];
    let total = 0;
    for (let b = 0; b < anchors.length; b++) {
      const part = this.terms(step, direction, anchors[b], relations[b], weights);
      parts.push(part);
      total += part.entities.length;
    }
    const rows = new Int32Array(total);
    const entities = new Int32Array(total);
    const values = new Float32Array(total);
    let at = 0;
    parts.forEach((part, b) => {
      rows.fill(b, at, at + part.entities.length);
      entities.set(part.entities, at);
      values.set(part.values, at);
      at += part.entities.length;
    });
    return { rows, entities, values };
  }
}
