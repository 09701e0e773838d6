// The history state behind nlsm-h: two HistoryIndex instances (decayed counts with the fitted decay, and undecayed
// counts) kept incrementally one closed snapshot at a time, and the sparse candidates / features / term values of a
// query derived from them. Shared by the in-process forecaster (eval) and the serving provider (ONNX extra input),
// so both add exactly the same numbers. Must not import tfjs, src/train, kafkajs or src/kafka.
import type { Direction, Snapshot } from '../core/types.ts';
import { HistoryIndex } from '../baselines/history-index.ts';
import {
  F,
  historyTermValue,
  slotOf,
  writeHistoryFeatures,
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

  /** The sparse history term of one query under `weights`: entities and values (float32, as the ONNX input). */
  terms(
    step: number,
    direction: Direction,
    anchor: number,
    relation: number,
    weights: HybridWeights,
  ): { entities: Int32Array; values: Float32Array } {
    const { entities, features } = this.candidates(step, direction, anchor, relation);
    const slot = slotOf(direction, relation, this.numRelations);
    const values = new Float32Array(entities.length);
    for (let m = 0; m < entities.length; m++)
      values[m] = historyTermValue(weights, slot, features, m * F);
    return { entities, values };
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
