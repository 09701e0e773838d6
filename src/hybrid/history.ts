// The history state behind nlsm-h: two HistoryIndex instances (decayed counts with the fitted decay, and undecayed
// counts) kept incrementally one closed snapshot at a time, and the sparse candidates / features / term values of a
// query derived from them. Shared by the in-process forecaster (eval) and the serving provider (ONNX extra input),
// so both add exactly the same numbers. Must not import tfjs, src/train, kafkajs or src/kafka.
import type { Direction, Snapshot } from '../core/types.ts';
import { HistoryIndex } from '../baselines/history-index.ts';
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
} from './features.ts';

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

  /** Adds a closed snapshot (step order; see HistoryIndex.observe). */
  observe(snapshot: Snapshot): void {
    this.decayed.observe(snapshot);
    if (this.counts !== this.decayed) this.counts.observe(snapshot);
    this.relaxedCache.clear();
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
   * when it is not among the cached ones). Entries for the same entity add up (ONNX ScatterND with reduction=add,
   * combineInPlace), which equals the term of candidates() exactly up to float32 rounding.
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
    const strictCount = this.decayed.strictCount(direction, anchor, relation);
    const total = relaxed.entities.length + strictCount;
    const entities = new Int32Array(total);
    const values = new Float32Array(total);
    entities.set(relaxed.entities);
    values.set(relaxed.values);
    let at = relaxed.entities.length;
    const dist = this.decayed.relaxedDistribution(direction, relation);
    const strictFeatures = new Float64Array(FS);
    const relaxedFeatures = new Float64Array(FR);
    this.decayed.forEachStrict(step, direction, anchor, relation, (entity, strict) => {
      const frequency = this.counts.strictValue(step, direction, anchor, relation, entity);
      writeStrictFeatures(strict, frequency, strictFeatures, 0);
      let value = weightedSum(weights, slot, strictFeatures, 0, 0, FS);
      if (!relaxed.members.has(entity)) {
        writeRelaxedFeatures(dist.valueOf.get(entity) ?? 0, relaxedFeatures, 0);
        value += weightedSum(weights, slot, relaxedFeatures, 0, FS, F);
      }
      entities[at] = entity;
      values[at] = value;
      at++;
    });
    return { entities, values };
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
