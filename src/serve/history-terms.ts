// The serving side's history term (issue 8 item 2): the sparse addition to a model's logits that the
// server computes from its own state — decayed counts of (s, r, o) ("strict") and the normalised decayed
// frequency of (., r, o) / (s, r, .) ("relaxed"), kept incrementally by src/baselines' HistoryIndex.
// The parameters travel with each model (ModelAnnouncement.metadata, keys `history.*`), so a replica
// always adds the term the model was exported for; nlsm-h models carry their fitted weights instead (key
// `history.hybrid`, src/hybrid/serving.ts) and are served by src/hybrid's HybridTermProvider from the same
// snapshots. Owns: the `history.*` metadata format and the adapter from HistoryIndex (or HybridTermProvider) to the
// scorer's HistoryTermProvider. Must not import src/train, tfjs or Kafka.
import type { Direction, Snapshot } from '../core/types.ts';
import { HistoryIndex } from '../model/history-index.ts';
import type { HistoryTermProvider } from './scorer.ts';
import { HybridTermProvider } from './hybrid-terms.ts';
import {
  historyParamsFromMetadata,
  hybridWeightsFromMetadata,
  type HistoryTermParams,
} from '../model/terms.ts';
import {
  baseOnlyWeights,
  resizeHybridWeights,
  type HybridWeights,
} from '../model/hybrid-features.ts';

/**
 * HistoryTermProvider over every observed snapshot. Terms are for the step after the last observed one
 * (the step a model exported after that snapshot forecasts). Observe a closed step only AFTER the step was
 * evaluated against its forecast, or the term would see the answers.
 */
export class ServingHistory implements HistoryTermProvider {
  private readonly snapshots: Snapshot[] = [];
  private params: HistoryTermParams | undefined;
  private index: HistoryIndex | undefined;
  private numRelations = 1;
  /** nlsm-h: the fitted weights' provider (undefined for `history.*` models). */
  private hybrid: HybridTermProvider | undefined;
  /** (direction, relation) -> relaxed entities and weighted values, valid until the next observe. */
  private readonly relaxedCache = new Map<string, { entities: Int32Array; values: Float32Array }>();

  /** Current parameters (undefined: no term is added). */
  get current(): HistoryTermParams | undefined {
    return this.params;
  }

  /** Last observed step (-Infinity before the first). */
  get lastStep(): number {
    return this.snapshots.length === 0
      ? Number.NEGATIVE_INFINITY
      : this.snapshots[this.snapshots.length - 1].step;
  }

  /** The nlsm-h weights in use (undefined: not an nlsm-h model). */
  get hybridWeights(): HybridWeights | undefined {
    return this.hybrid?.weights;
  }

  /**
   * Switch to the term a model announcement asks for: nlsm-h weights (`history.hybrid`), `history.*` parameters,
   * or none. Throws a TkgError on malformed metadata (the model is then not served).
   */
  setFromMetadata(metadata: Record<string, string> | undefined): void {
    const weights = hybridWeightsFromMetadata(metadata);
    if (weights === undefined) {
      this.hybrid = undefined;
      this.setParams(historyParamsFromMetadata(metadata));
      return;
    }
    this.setParams(undefined);
    const sized = this.sizedHybridWeights(weights);
    if (this.hybrid === undefined) {
      this.hybrid = new HybridTermProvider(sized);
      for (const snapshot of this.snapshots) this.hybrid.observe(snapshot);
    } else this.hybrid.setWeights(sized);
  }

  /** Weights covering every relation observed so far (relations newer than the model get no term). */
  private sizedHybridWeights(weights: HybridWeights): HybridWeights {
    const R = Math.max(weights.numRelations, this.numRelations);
    if (R === weights.numRelations) return weights;
    return resizeHybridWeights(weights, {
      ...baseOnlyWeights(R, weights.decay, weights.relaxedTopK),
    });
  }

  /** Switch parameters (from a new model's metadata); a new decay rebuilds the counts from the kept snapshots. */
  setParams(params: HistoryTermParams | undefined): void {
    const same =
      params &&
      this.params &&
      params.decay === this.params.decay &&
      params.strictWeight === this.params.strictWeight &&
      params.relaxedWeight === this.params.relaxedWeight;
    if (same) return;
    const rebuild = !params || !this.index || this.index.decay !== params.decay;
    this.params = params;
    this.relaxedCache.clear();
    if (!params) {
      this.index = undefined;
      return;
    }
    if (rebuild) this.rebuild();
  }

  /** A closed step (in step order; repeated or older steps are ignored). */
  observe(snapshot: Snapshot): void {
    if (snapshot.step <= this.lastStep) return;
    this.snapshots.push(snapshot);
    if (this.hybrid) {
      if (snapshot.numRelations > this.hybrid.weights.numRelations) {
        this.numRelations = Math.max(this.numRelations, snapshot.numRelations);
        this.hybrid.setWeights(this.sizedHybridWeights(this.hybrid.weights)); // rebuilds from its kept snapshots
      }
      this.hybrid.observe(snapshot);
    }
    if (snapshot.numRelations > this.numRelations && this.index) {
      this.numRelations = snapshot.numRelations;
      this.rebuild();
    } else {
      this.numRelations = Math.max(this.numRelations, snapshot.numRelations);
      this.index?.observe(snapshot);
    }
    this.relaxedCache.clear();
  }

  terms(
    direction: Direction,
    anchor: number,
    relation: number,
  ): { entities: Int32Array; values: Float32Array } | undefined {
    if (this.hybrid) return this.hybrid.terms(direction, anchor, relation);
    const params = this.params;
    const index = this.index;
    if (!params || !index || relation >= index.numRelations) return undefined;
    const step = index.lastStep + 1;
    const relaxed = this.relaxedTerms(direction, relation);
    const strictEntities: number[] = [];
    const strictValues: number[] = [];
    if (params.strictWeight !== 0) {
      index.forEachStrict(step, direction, anchor, relation, (entity, value) => {
        strictEntities.push(entity);
        strictValues.push(params.strictWeight * value);
      });
    }
    if (strictEntities.length === 0) return relaxed.entities.length === 0 ? undefined : relaxed;
    // ScatterND adds duplicate (row, entity) pairs, so strict and relaxed entries may simply be concatenated.
    const count = relaxed.entities.length + strictEntities.length;
    const entities = new Int32Array(count);
    const values = new Float32Array(count);
    entities.set(relaxed.entities);
    values.set(relaxed.values);
    entities.set(strictEntities, relaxed.entities.length);
    values.set(strictValues, relaxed.entities.length);
    return { entities, values };
  }

  private relaxedTerms(direction: Direction, relation: number) {
    const key = `${direction}:${relation}`;
    let cached = this.relaxedCache.get(key);
    if (!cached) {
      const weight = this.params?.relaxedWeight ?? 0;
      const dist = (this.index as HistoryIndex).relaxedDistribution(direction, relation);
      cached =
        weight === 0
          ? { entities: new Int32Array(0), values: new Float32Array(0) }
          : { entities: dist.entities, values: Float32Array.from(dist.values, (v) => weight * v) };
      this.relaxedCache.set(key, cached);
    }
    return cached;
  }

  private rebuild(): void {
    const params = this.params as HistoryTermParams;
    this.index = new HistoryIndex({
      numRelations: Math.max(1, this.numRelations),
      decay: params.decay,
    });
    for (const snapshot of this.snapshots) this.index.observe(snapshot);
  }
}
