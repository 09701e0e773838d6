// Serving nlsm-h (issue 8 item 3): the base scale beta_r is folded into Theta (the logit is linear in Theta), so the
// exported ONNX graph is the plain efficient scorer `Z w + c`; the history term is the sparse extra input the server
// computes from its own state with HybridTermProvider (the scorer's HistoryTermProvider), updated as snapshots close.
// The fitted weights travel in the model announcement's metadata (key `history.hybrid`, JSON).
// Owns: the provider (the weights' metadata format is src/model/terms.ts). Must not import tfjs, src/train,
// kafkajs or src/kafka.
import type { Direction, Snapshot } from '../core/types.ts';
import type { HistoryTermProvider } from './scorer.ts';
import { assertHybridWeights, type HybridWeights } from '../model/hybrid-features.ts';
import { HybridHistory } from '../model/hybrid-history.ts';

/**
 * HistoryTermProvider of nlsm-h for the Scorer: terms for the forecast step (default: the step after the last
 * observed snapshot, which is what a model exported after that snapshot forecasts). Observe a closed step only after
 * it was evaluated against its forecast. New weights with another decay or relaxedTopK rebuild the counts from the
 * kept snapshots.
 */
export class HybridTermProvider implements HistoryTermProvider {
  private weightsValue: HybridWeights;
  private history: HybridHistory;
  private readonly snapshots: Snapshot[] = [];
  private forecastStepValue: number | undefined;
  /** Terms per (anchor, slot) since the last observe / weights / step change (a query's terms change only then). */
  private readonly memo = new Map<
    number,
    { entities: Int32Array; values: Float32Array } | undefined
  >();
  private readonly memoSize: number;

  /** memoSize: most queries whose terms are kept until the next closed step (0 = compute every time). */
  constructor(weights: HybridWeights, options: { memoSize?: number } = {}) {
    assertHybridWeights(weights);
    this.weightsValue = weights;
    this.history = HybridTermProvider.historyFor(weights);
    this.memoSize = options.memoSize ?? 100_000;
  }

  /** Explicit forecast step (e.g. the served model's metadata step); undefined: last observed + 1. */
  get forecastStep(): number | undefined {
    return this.forecastStepValue;
  }

  set forecastStep(step: number | undefined) {
    if (step !== this.forecastStepValue) this.memo.clear();
    this.forecastStepValue = step;
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

  /** Swap weights (from a newly loaded model). */
  setWeights(weights: HybridWeights): void {
    assertHybridWeights(weights);
    const rebuild =
      weights.decay !== this.weightsValue.decay ||
      weights.relaxedTopK !== this.weightsValue.relaxedTopK ||
      weights.numRelations !== this.weightsValue.numRelations;
    this.weightsValue = weights;
    this.memo.clear();
    if (rebuild) {
      this.history = HybridTermProvider.historyFor(weights);
      for (const s of this.snapshots) this.history.observe(s);
    }
  }

  /** A closed step, in step order (older or repeated steps are ignored). */
  observe(snapshot: Snapshot): void {
    if (snapshot.step <= this.history.lastStep) return;
    this.snapshots.push(snapshot);
    this.history.observe(snapshot);
    this.memo.clear();
  }

  /**
   * Builds the term table of the forecast step now (HybridHistory.termTable: every (anchor, relation) with a strict
   * history) instead of at the first query after a step closed; returns the seconds it took.
   */
  prepare(): number {
    const t0 = performance.now();
    this.history.termTable(this.forecastStepValue ?? this.history.lastStep + 1, this.weightsValue);
    return (performance.now() - t0) / 1000;
  }

  terms(
    direction: Direction,
    anchor: number,
    relation: number,
  ): { entities: Int32Array; values: Float32Array } | undefined {
    const R = this.weightsValue.numRelations;
    if (relation < 0 || relation >= R) return undefined;
    const key = anchor * 2 * R + (direction === 'object' ? 0 : R) + relation;
    if (this.memo.has(key)) return this.memo.get(key);
    const step = this.forecastStepValue ?? this.history.lastStep + 1;
    const computed = this.history.terms(step, direction, anchor, relation, this.weightsValue);
    const terms = computed.entities.length === 0 ? undefined : computed;
    if (this.memoSize > 0) {
      if (this.memo.size >= this.memoSize) this.memo.clear();
      this.memo.set(key, terms);
    }
    return terms;
  }
}
