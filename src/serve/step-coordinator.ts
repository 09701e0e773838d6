// Ties closed steps and model swaps together for a serving replica: filter sets grow as snapshots close, the model
// that forecast step t is kept until t closes and is evaluated (live evaluation), and forecasts for t + 1 are
// published once step t has closed and a model forecasting t + 1 is serving (whichever happens last).
// Owns: the step -> forecasting model bookkeeping. Must not import src/train, tfjs or Kafka (publishing is injected).
import type { Snapshot } from '../core/types.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { type ForecastRecord, SnapshotWindow, activePairs, forecastStep } from './forecasts.ts';
import { LiveEvaluator, type StepEvaluation, type StepMetricsRecord } from './live-eval.ts';
import type { ServingModel } from './model.ts';
import type { Scorer } from './scorer.ts';

export interface StepCoordinatorOptions {
  scorer: Scorer;
  /** Snapshots whose (subject, relation) pairs count as active (SPEC: m = 5). */
  windowSize?: number;
  /** Objects per forecast. */
  topK?: number;
  dataset?: string;
  metrics?: TkgMetrics;
  publishForecasts?: (records: ForecastRecord[]) => Promise<void>;
  publishEvaluations?: (records: StepMetricsRecord[]) => Promise<void>;
}

export class StepCoordinator {
  private readonly scorer: Scorer;
  private readonly window: SnapshotWindow;
  private readonly topK: number;
  private readonly evaluator: LiveEvaluator;
  private readonly metrics: TkgMetrics | undefined;
  private readonly publishForecasts: StepCoordinatorOptions['publishForecasts'];
  private readonly publishEvaluations: StepCoordinatorOptions['publishEvaluations'];
  /** forecast step -> the first model that forecast it (held until that step is evaluated). */
  private readonly forecasters = new Map<number, ServingModel>();
  private lastForecastStep = Number.NEGATIVE_INFINITY;
  private lastEvaluatedStep = Number.NEGATIVE_INFINITY;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: StepCoordinatorOptions) {
    this.scorer = options.scorer;
    this.window = new SnapshotWindow(options.windowSize ?? 5);
    this.topK = options.topK ?? 10;
    this.metrics = options.metrics;
    this.evaluator = new LiveEvaluator({
      scorer: options.scorer,
      dataset: options.dataset,
      metrics: options.metrics,
    });
    this.publishForecasts = options.publishForecasts;
    this.publishEvaluations = options.publishEvaluations;
  }

  /** Call after a model became current. Events are handled one at a time, in call order. */
  onModel(model: ServingModel): Promise<void> {
    return this.serialize(async () => {
      const step = model.metadata.step;
      if (step > this.lastEvaluatedStep && !this.forecasters.has(step) && !model.isReleased) {
        model.hold();
        this.forecasters.set(step, model);
      }
      await this.maybeForecast();
    });
  }

  /** Call when a step closes (snapshots in step order). Returns the step's live evaluation, if a model forecast it. */
  onStepClosed(snapshot: Snapshot): Promise<StepEvaluation | undefined> {
    return this.serialize(async () => {
      this.scorer.filters.addSnapshot(snapshot);
      this.window.push(snapshot);
      let evaluation: StepEvaluation | undefined;
      const forecaster = this.forecasters.get(snapshot.step);
      if (forecaster && snapshot.step > this.lastEvaluatedStep) {
        evaluation = await this.evaluator.evaluate(snapshot, forecaster);
        this.lastEvaluatedStep = snapshot.step;
        await this.publishEvaluations?.(evaluation.records);
      }
      for (const [step, model] of this.forecasters) {
        if (step <= snapshot.step) {
          this.forecasters.delete(step);
          await model.unhold();
        }
      }
      await this.maybeForecast();
      return evaluation;
    });
  }

  /** A closed step before the first evaluated one (a restart): the filters and the window hold it, nothing is published. */
  restore(snapshot: Snapshot): void {
    this.scorer.filters.addSnapshot(snapshot);
    this.window.push(snapshot);
    this.lastEvaluatedStep = Math.max(this.lastEvaluatedStep, snapshot.step);
  }

  /** Release every held model. */
  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    for (const model of this.forecasters.values()) await model.unhold();
    this.forecasters.clear();
  }

  private async maybeForecast(): Promise<void> {
    const closed = this.window.lastStep;
    const model = this.scorer.model;
    if (!this.publishForecasts || closed === undefined || !model) return;
    const step = model.metadata.step;
    if (step !== closed + 1 || step <= this.lastForecastStep) return; // next-step forecasts only
    const records = await forecastStep(
      this.scorer,
      model,
      activePairs(this.window.contents),
      this.topK,
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
