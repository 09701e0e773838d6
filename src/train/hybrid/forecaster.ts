// The nlsm-h forecaster (issue 8 item 2): wraps any base TkgForecaster (the NLSM trainer in production) and adds the
// sparse history term of src/hybrid/features.ts to its logits. While it observes the history it collects fitting
// queries: the planned fit steps (the end of the train split) and validation steps (the valid split) are scored by the
// base model BEFORE they are observed, in the protocol's own way (multi-step: the whole block is rolled forward from
// the step before it; single-step: one step at a time), so the fitted weights see features exactly as the protocol
// will. The weights are fitted at the first score() after the history (src/hybrid/fit.ts).
// Horizon: a query h steps past the forecast origin (multi-step: h = step - lastObserved - 1 >= 0) sees its strict
// history decayed by decay^h on top of the origin's; the base logit is scaled by the same decay^h (horizonScale), so
// the balance of base logit and recency evidence the fit chose at small horizons holds at every horizon (the
// recurrency form stays "the reference model, ties broken by the base logit" however far the forecast reaches).
// Single-step (h = 0) and serving are unaffected. The test split is never
// read here: only snapshots passed in the plan (train / valid) are used as fitting or selection queries.
// Owns: the collection schedule, the query sampling and the combination at score time. Must not import tfjs,
// src/train, kafkajs or src/kafka (the base forecaster is passed in).
import type { Direction, Snapshot, TkgForecaster } from '../../core/types.ts';
import {
  baseOnlyWeights,
  combineInPlace,
  slotOf,
  type HybridWeights,
} from '../../model/hybrid-features.ts';
import { fitHybridWeights } from './fit.ts';
import { QuerySetBuilder, type QuerySet } from './query-set.ts';
import { type HybridFitReport } from './selection.ts';
import { HybridHistory } from '../../model/hybrid-history.ts';
import { targetsDue, type FittingPhase, type FittingPlan } from '../fitting-plan.ts';
import { TargetQueries } from '../target-queries.ts';

/** The fitting plan (src/train/fitting-plan.ts) and the seed of its query sampling. */
export interface HybridPlan extends FittingPlan {
  seed?: number;
}

export interface HybridForecasterOptions {
  numEntities: number; // N
  numRelations: number; // R
  /** Decay of the strict / relaxed counts (e.g. the recurrency baseline's choice on the same validation split). */
  decay: number;
  /** Relaxed candidates per (relation, direction) with a relaxed term; default 64. */
  relaxedTopK?: number;
  /** Base model's top-M candidates per fitting query; default 64. */
  baseCandidates?: number;
  l2Grid?: readonly number[];
  /** The recurrency baseline's relaxed weight on the same selection splits: enables the 'recurrency' form. */
  recurrencyAlpha?: number;
  /** Fitting plan; without it (and without `weights`) the base model is used alone. */
  plan?: HybridPlan;
  /** Fixed weights (no fitting), e.g. from an exported model. */
  weights?: HybridWeights;
  /** Queries per base score() call while collecting; default 256. */
  batchSize?: number;
  log?: (line: string) => void;
}

type Phase = FittingPhase;

/** Pure: decay^h for a query h = step - lastObserved - 1 steps past the forecast origin (1 when h <= 0). */
export function horizonScale(decay: number, step: number, lastObserved: number): number {
  const h = step - lastObserved - 1;
  return Number.isFinite(h) && h > 0 ? Math.pow(decay, h) : 1;
}

export class HybridForecaster implements TkgForecaster {
  readonly name = 'nlsm-h';
  readonly history: HybridHistory;
  private weightsValue: HybridWeights | undefined;
  private report: HybridFitReport | undefined;
  private readonly builders: Record<Phase, QuerySetBuilder>;
  private readonly collected = new Set<string>();
  private readonly targets: TargetQueries;
  private readonly options: HybridForecasterOptions;

  constructor(
    readonly base: TkgForecaster,
    options: HybridForecasterOptions,
  ) {
    this.options = options;
    const relaxedTopK = options.weights?.relaxedTopK ?? options.relaxedTopK ?? 64;
    this.history = new HybridHistory({
      numRelations: options.numRelations,
      decay: options.weights?.decay ?? options.decay,
      relaxedTopK,
    });
    this.weightsValue = options.weights;
    const M = options.baseCandidates ?? 64;
    this.builders = {
      fit: new QuerySetBuilder(options.numRelations, M),
      validation: new QuerySetBuilder(options.numRelations, M),
    };
    this.targets = new TargetQueries({
      plan: options.plan,
      numRelations: options.numRelations,
      batchSize: options.batchSize,
    });
  }

  /** The weights in use (undefined until fitted). */
  get weights(): HybridWeights | undefined {
    return this.weightsValue;
  }

  /** How the weights were chosen (undefined before fitting or with fixed weights). */
  get fitReport(): HybridFitReport | undefined {
    return this.report;
  }

  async observe(snapshot: Snapshot): Promise<void> {
    if (this.weightsValue === undefined && this.options.plan !== undefined) {
      await this.collectBefore(snapshot);
    }
    this.history.observe(snapshot);
    await this.base.observe(snapshot);
  }

  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    const weights = this.ensureWeights();
    const scores = await this.base.score(step, direction, anchors, relations, numEntities); // [B, N]
    const scale = horizonScale(this.history.decay, step, this.history.lastStep);
    if (scale !== 1) for (let i = 0; i < scores.length; i++) scores[i] *= scale;
    const terms = this.history.batchTerms(step, direction, anchors, relations, weights);
    return combineInPlace(scores, numEntities, relations, weights.baseScale, terms);
  }

  /** Diagnostics: the fitting and validation query sets collected so far. */
  collectedQueries(): { fit: QuerySet; validation: QuerySet } {
    return { fit: this.builders.fit.build(), validation: this.builders.validation.build() };
  }

  /** Fits the weights from the collected queries now (called by the first score()). */
  ensureWeights(): HybridWeights {
    if (this.weightsValue !== undefined) return this.weightsValue;
    const R = this.options.numRelations;
    let fit: QuerySet = this.builders.fit.build();
    let validation: QuerySet = this.builders.validation.build();
    if (validation.slot.length === 0 && fit.slot.length === 0) {
      this.options.log?.(
        'nlsm-h: no fitting queries were collected; scoring with the base model alone',
      );
      this.weightsValue = baseOnlyWeights(R, this.history.decay, this.history.relaxedTopK);
      return this.weightsValue;
    }
    if (fit.slot.length === 0) fit = validation;
    if (validation.slot.length === 0) validation = fit;
    const { weights, report } = fitHybridWeights({
      fit,
      validation,
      numRelations: R,
      decay: this.history.decay,
      relaxedTopK: this.history.relaxedTopK,
      l2Grid: this.options.l2Grid,
      recurrencyAlpha: this.options.recurrencyAlpha,
    });
    const text = (m: { raw: number; static: number; timeAware: number }): string =>
      `${m.raw.toFixed(2)}/${m.static.toFixed(2)}/${m.timeAware.toFixed(2)}`;
    const reference = report.forms.find((f) => f.form === 'reference');
    this.options.log?.(
      `nlsm-h: fitted on ${report.fitQueries} train queries, selected on ${report.validationQueries} validation queries ` +
        `(${report.chosen.form}${report.chosen.l2 !== null ? `, l2 ${report.chosen.l2}` : ''}): validation raw/static/time-aware MRR ` +
        `${text(report.chosen.validation)}` +
        (reference
          ? ` vs reference (recurrency, ties broken by the base) ${text(reference.validation)}`
          : '') +
        ` vs base alone ${text(report.baseOnly)} (${report.seconds.toFixed(1)} s)`,
    );
    this.weightsValue = weights;
    this.report = report;
    return weights;
  }

  private async collectBefore(snapshot: Snapshot): Promise<void> {
    for (const { phase, target } of targetsDue(this.options.plan!, snapshot.step))
      await this.collect(phase, target);
  }

  /** Scores a sample of one target step's queries with the base model and adds them to the phase's query set. */
  private async collect(phase: Phase, target: Snapshot): Promise<void> {
    const key = `${phase}:${target.step}`;
    if (this.collected.has(key)) return;
    this.collected.add(key);
    await this.addQueries(target, this.builders[phase], this.targets.rate(phase));
  }

  /**
   * Diagnostics: the query set of target steps as the forecaster sees them now (base logits, history features),
   * e.g. to compare selectionMrr() with the protocol's exact MRR. Does not observe anything.
   */
  async querySetOf(targets: readonly Snapshot[]): Promise<QuerySet> {
    const builder = new QuerySetBuilder(
      this.options.numRelations,
      this.options.baseCandidates ?? 64,
    );
    for (const target of targets) await this.addQueries(target, builder, 1);
    return builder.build();
  }

  private async addQueries(
    target: Snapshot,
    builder: QuerySetBuilder,
    rate: number,
  ): Promise<void> {
    const N = this.options.numEntities;
    const R = this.options.numRelations;
    await this.targets.forEachBatch(target, rate, async (batch) => {
      const { direction, anchors, relations, answers } = batch;
      const rows = await this.base.score(target.step, direction, anchors, relations, N); // [B, N]
      const scale = horizonScale(this.history.decay, target.step, this.history.lastStep);
      if (scale !== 1) for (let i = 0; i < rows.length; i++) rows[i] *= scale;
      for (let b = 0; b < anchors.length; b++) {
        const [anchor, relation] = [anchors[b], relations[b]];
        builder.add({
          slot: slotOf(direction, relation, R),
          row: rows.subarray(b * N, (b + 1) * N),
          answer: answers[b],
          history: this.history.candidates(target.step, direction, anchor, relation),
          excluded: batch.excluded(b),
          staticExcluded: batch.staticExcluded(b),
        });
      }
    });
  }
}
