// Live evaluation (issue 6 item 4): when step t + 1 closes, rank its facts against the model that forecast it;
// MRR and Hits@1/3/10 per filter mode and direction become StepMetrics records (for tkg.evaluations) and
// Prometheus gauges, with drift = current MRR minus the trailing mean of the previous (up to) 10 steps.
// Owns: the per-step evaluation and the drift history. Ranking maths: src/eval/rank.ts. Must not import
// src/train, tfjs or Kafka (the caller publishes the records).
import type { Direction, FilterMode, Snapshot } from '../core/types.ts';
import { type RankMetrics, RankCollector } from '../eval/rank.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import type { ServingModel } from './model.ts';
import type { ScoreRequest, Scorer } from './scorer.ts';

/** A StepMetrics value (schemas/StepMetrics.avsc). */
export interface StepMetricsRecord {
  dataset: string;
  step: number;
  model: string;
  filter: FilterMode;
  direction: Direction | 'both';
  mrr: number;
  hits1: number;
  hits3: number;
  hits10: number;
  count: number;
  drift: number | null;
}

export const DRIFT_WINDOW = 10;
const FILTERS: FilterMode[] = ['raw', 'static', 'timeAware'];

/** Pure: current minus the mean of the trailing values (null when there is no history yet). */
export function mrrDrift(current: number, trailing: readonly number[]): number | null {
  if (trailing.length === 0) return null;
  return current - trailing.reduce((a, b) => a + b, 0) / trailing.length;
}

export interface LiveEvaluatorOptions {
  scorer: Scorer;
  dataset?: string;
  metrics?: TkgMetrics;
  /** Evaluation queries per onnxruntime run. */
  batchSize?: number;
}

export interface StepEvaluation {
  step: number;
  modelVersion: number;
  records: StepMetricsRecord[];
  /** Facts skipped because an id is outside the forecasting model's vocabulary (entities it never saw). */
  skippedFacts: number;
}

export class LiveEvaluator {
  private readonly scorer: Scorer;
  private readonly dataset: string;
  private readonly metrics: TkgMetrics | undefined;
  private readonly batchSize: number;
  /** MRR history per (model, filter, direction), newest last, at most DRIFT_WINDOW entries. */
  private readonly history = new Map<string, number[]>();

  constructor(options: LiveEvaluatorOptions) {
    this.scorer = options.scorer;
    this.dataset = options.dataset ?? 'live';
    this.metrics = options.metrics;
    this.batchSize = options.batchSize ?? 256;
  }

  /**
   * Rank every fact of `snapshot` (object and subject queries) with `model` (the one that forecast snapshot.step).
   * The snapshot must already be in the scorer's FilterIndex (static and time-aware filters include it).
   */
  async evaluate(snapshot: Snapshot, model: ServingModel): Promise<StepEvaluation> {
    const collector = new RankCollector();
    const t = snapshot.triples;
    let skippedFacts = 0;
    const requests: ScoreRequest[] = [];
    for (let i = 0; i < t.length; i += 3) {
      const [s, r, o] = [t[i], t[i + 1], t[i + 2]];
      if (s >= model.numEntities || o >= model.numEntities || r >= model.numRelations) {
        skippedFacts++;
        continue;
      }
      requests.push(
        { direction: 'object', anchor: s, relation: r, k: 1, answer: o },
        { direction: 'subject', anchor: o, relation: r, k: 1, answer: s },
      );
    }
    for (let start = 0; start < requests.length; start += this.batchSize) {
      const chunk = requests.slice(start, start + this.batchSize);
      const results = await this.scorer.scoreBatch(chunk, model);
      results.forEach((result, i) => {
        if (result.ranks) collector.add(chunk[i].direction, result.ranks);
      });
    }
    const summary = collector.summary();
    const modelName = model.metadata.modelName;
    const records: StepMetricsRecord[] = [];
    for (const filter of FILTERS) {
      const parts: Array<[Direction | 'both', RankMetrics]> = [
        ['object', summary.perDirection.object[filter]],
        ['subject', summary.perDirection.subject[filter]],
        ['both', summary[filter]],
      ];
      for (const [direction, m] of parts) {
        const key = `${modelName}|${filter}|${direction}`;
        const trailing = this.history.get(key) ?? [];
        const drift = m.count > 0 ? mrrDrift(m.mrr, trailing) : null;
        if (m.count > 0) this.history.set(key, [...trailing, m.mrr].slice(-DRIFT_WINDOW));
        records.push({
          dataset: this.dataset,
          step: snapshot.step,
          model: modelName,
          filter,
          direction,
          mrr: m.mrr,
          hits1: m.hits1,
          hits3: m.hits3,
          hits10: m.hits10,
          count: m.count,
          drift,
        });
        if (this.metrics && m.count > 0) {
          const labels = { filter, direction, model: modelName };
          this.metrics.mrr.set(labels, m.mrr);
          this.metrics.hits.set({ ...labels, k: '1' }, m.hits1);
          this.metrics.hits.set({ ...labels, k: '3' }, m.hits3);
          this.metrics.hits.set({ ...labels, k: '10' }, m.hits10);
          if (drift !== null) this.metrics.mrrDrift.set(labels, drift);
        }
      }
    }
    this.metrics?.evalStep.set(snapshot.step);
    return { step: snapshot.step, modelVersion: model.version, records, skippedFacts };
  }
}
