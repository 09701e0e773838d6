// Ties closed steps and bundle swaps together for a serving replica. Filter sets grow as snapshots close. The bundle
// forecasting step t is held until t is evaluated (live evaluation: t's facts ranked by the bundle that never saw
// them), and its forecasts for t go out as soon as it serves (the pairs active in the m steps before t). In a split
// deployment the trainer may lag the stream: a bundle for a step that already closed is evaluated when it arrives
// (it was trained only on the steps before t), so every closed step after the first bundle is forecast and evaluated,
// in step order, whichever arrives first. Owns: the step -> bundle bookkeeping. Must not import src/train, tfjs or
// Kafka (publishing is injected).
import type { Snapshot } from '../core/types.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { type ForecastRecord, RecentSteps, activePairs, forecastStep } from './forecasts.ts';
import { LiveEvaluator, type StepEvaluation, type StepMetricsRecord } from './live-eval.ts';
import type { ServingModel } from './model.ts';
import type { Scorer } from './scorer.ts';

/** Closed steps kept beyond the forecast window, for bundles that arrive after their step closed. */
const LATE_STEPS_KEPT = 64;

export interface StepCoordinatorOptions {
  scorer: Scorer;
  /** Snapshots whose (subject, relation) pairs count as active (SPEC: m = 5). */
  windowSize?: number;
  /** Objects per forecast. */
  topK?: number;
  /** Evidence items per forecast object (0 = none). */
  forecastEvidence?: number;
  dataset?: string;
  metrics?: TkgMetrics;
  publishForecasts?: (records: ForecastRecord[]) => Promise<void>;
  publishEvaluations?: (records: StepMetricsRecord[]) => Promise<void>;
}

export class StepCoordinator {
  private readonly scorer: Scorer;
  private readonly windowSize: number;
  private readonly recent: RecentSteps;
  private readonly topK: number;
  private readonly forecastEvidence: number;
  private readonly evaluator: LiveEvaluator;
  private readonly metrics: TkgMetrics | undefined;
  private readonly publishForecasts: StepCoordinatorOptions['publishForecasts'];
  private readonly publishEvaluations: StepCoordinatorOptions['publishEvaluations'];
  /** forecast step -> the first bundle that forecast it (held until that step is evaluated). */
  private readonly forecasters = new Map<number, ServingModel>();
  private lastForecastStep = Number.NEGATIVE_INFINITY;
  private lastEvaluatedStep = Number.NEGATIVE_INFINITY;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: StepCoordinatorOptions) {
    this.scorer = options.scorer;
    this.windowSize = options.windowSize ?? 5;
    this.recent = new RecentSteps(this.windowSize + LATE_STEPS_KEPT);
    this.topK = options.topK ?? 10;
    this.forecastEvidence = options.forecastEvidence ?? 0;
    this.metrics = options.metrics;
    this.evaluator = new LiveEvaluator({
      scorer: options.scorer,
      dataset: options.dataset,
      metrics: options.metrics,
    });
    this.publishForecasts = options.publishForecasts;
    this.publishEvaluations = options.publishEvaluations;
  }

  /** Call after a bundle became current. Events are handled one at a time, in call order. */
  onModel(model: ServingModel): Promise<StepEvaluation | undefined> {
    return this.serialize(async () => {
      const step = model.metadata.step;
      await this.forecast(model);
      if (step <= this.lastEvaluatedStep || this.forecasters.has(step) || model.isReleased)
        return undefined;
      const closed = this.recent.get(step);
      if (closed) return this.evaluate(closed, model); // a late bundle: its step closed already
      model.hold();
      this.forecasters.set(step, model);
      return undefined;
    });
  }

  /** Call when a step closes (snapshots in step order). Returns the step's live evaluation, if a bundle forecast it. */
  onStepClosed(snapshot: Snapshot): Promise<StepEvaluation | undefined> {
    return this.serialize(async () => {
      this.scorer.filters.addSnapshot(snapshot);
      this.recent.push(snapshot);
      const forecaster = this.forecasters.get(snapshot.step);
      const evaluation =
        forecaster && snapshot.step > this.lastEvaluatedStep
          ? await this.evaluate(snapshot, forecaster)
          : undefined;
      for (const [step, model] of this.forecasters) {
        if (step <= snapshot.step) {
          this.forecasters.delete(step);
          await model.unhold();
        }
      }
      // a bundle that serves before the step ahead of it closed forecasts once that step is in
      const current = this.scorer.model;
      if (current && current.metadata.step === snapshot.step + 1) await this.forecast(current);
      return evaluation;
    });
  }

  /** A closed step before the first evaluated one (a restart): the filters and recent steps hold it, nothing is published. */
  restore(snapshot: Snapshot): void {
    this.scorer.filters.addSnapshot(snapshot);
    this.recent.push(snapshot);
    this.lastEvaluatedStep = Math.max(this.lastEvaluatedStep, snapshot.step);
    this.lastForecastStep = Math.max(this.lastForecastStep, snapshot.step);
  }

  /** Release every held bundle. */
  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    for (const model of this.forecasters.values()) await model.unhold();
    this.forecasters.clear();
  }

  private async evaluate(snapshot: Snapshot, model: ServingModel): Promise<StepEvaluation> {
    const evaluation = await this.evaluator.evaluate(snapshot, model);
    this.lastEvaluatedStep = snapshot.step;
    await this.publishEvaluations?.(evaluation.records);
    return evaluation;
  }

  /** The bundle's forecasts of its step, once the step before it closed: the pairs active in the m steps before it. */
  private async forecast(model: ServingModel): Promise<void> {
    const step = model.metadata.step;
    if (!this.publishForecasts || step <= this.lastForecastStep) return;
    if ((this.recent.lastStep ?? Number.NEGATIVE_INFINITY) < step - 1) return; // the step before is still open
    const window = this.recent.before(step, this.windowSize);
    const records = await forecastStep(
      this.scorer,
      model,
      activePairs(window),
      this.topK,
      this.forecastEvidence,
    );
    this.lastForecastStep = step;
    await this.publishForecasts(records);
    this.metrics?.forecastsPublished.inc(records.length);
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
