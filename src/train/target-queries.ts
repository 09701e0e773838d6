// The fitting queries of the target steps, as the offline fitted-term forecasters (nlsm-h in src/train/hybrid, rules /
// nlsm-r in src/train/rules) collect them: both directions, a sample of each step's facts at the phase's rate (the
// plan's query cap over the phase's queries; one draw per fact and direction, in that order, from the plan's seed,
// so a seed gives the same sample), in batches for the base model, with each query's true answers in the step
// (time-aware filter) and in the plan's known facts (static filter, built once).
// Owns: the sampling, the batching and the filters it hands out. Pure; must not score, fit or build a query set.
import { mulberry32 } from '../core/random.ts';
import type { Direction, Snapshot } from '../core/types.ts';
import { buildAnswerFilter, trueAnswers, type AnswerFilter } from '../eval/rank.ts';
import type { FittingPhase, FittingPlan } from './fitting-plan.ts';

export interface TargetQueryBatch {
  direction: Direction;
  anchors: Int32Array;
  relations: Int32Array;
  answers: Int32Array;
  /** Every true answer of query b in the target step (time-aware filter). */
  excluded(b: number): ReturnType<typeof trueAnswers>;
  /** Query b's true answers among the plan's known facts (undefined: the plan knows none). */
  staticExcluded(b: number): ReturnType<typeof trueAnswers> | undefined;
}

export class TargetQueries {
  private readonly plan: (FittingPlan & { seed?: number }) | undefined;
  private readonly numRelations: number;
  private readonly batchSize: number;
  private readonly random: () => number;
  private readonly rates: Record<FittingPhase, number>;
  private staticFilter: AnswerFilter | undefined;

  constructor(options: {
    plan?: FittingPlan & { seed?: number };
    numRelations: number;
    batchSize?: number;
  }) {
    this.plan = options.plan;
    this.numRelations = options.numRelations;
    this.batchSize = options.batchSize ?? 256;
    this.random = mulberry32(options.plan?.seed ?? 1);
    const cap = options.plan?.maxQueriesPerPhase ?? 20_000;
    const queriesOf = (targets: readonly Snapshot[] | undefined): number =>
      (targets ?? []).reduce((n, s) => n + (2 * s.triples.length) / 3, 0);
    this.rates = {
      fit: Math.min(1, cap / Math.max(1, queriesOf(options.plan?.fitTargets))),
      validation: Math.min(1, cap / Math.max(1, queriesOf(options.plan?.validationTargets))),
    };
  }

  /** The share of a phase's queries that are sampled. */
  rate(phase: FittingPhase): number {
    return this.rates[phase];
  }

  /** Visit the sampled queries of `target` (at `rate`) in batches, object direction first. */
  async forEachBatch(
    target: Snapshot,
    rate: number,
    visit: (batch: TargetQueryBatch) => Promise<void>,
  ): Promise<void> {
    const known = this.plan?.knownFacts;
    if (this.staticFilter === undefined && known !== undefined && known.length > 0)
      this.staticFilter = buildAnswerFilter(
        known.map((s) => s.triples),
        this.numRelations,
      );
    const staticFilter = this.staticFilter;
    const timeAware = buildAnswerFilter([target.triples], this.numRelations);
    const t = target.triples;
    for (const direction of ['object', 'subject'] as Direction[]) {
      const anchors: number[] = [];
      const relations: number[] = [];
      const answers: number[] = [];
      for (let i = 0; i < t.length; i += 3) {
        if (rate < 1 && this.random() >= rate) continue;
        anchors.push(direction === 'object' ? t[i] : t[i + 2]);
        relations.push(t[i + 1]);
        answers.push(direction === 'object' ? t[i + 2] : t[i]);
      }
      for (let start = 0; start < anchors.length; start += this.batchSize) {
        const end = Math.min(anchors.length, start + this.batchSize);
        const batchAnchors = Int32Array.from(anchors.slice(start, end));
        const batchRelations = Int32Array.from(relations.slice(start, end));
        await visit({
          direction,
          anchors: batchAnchors,
          relations: batchRelations,
          answers: Int32Array.from(answers.slice(start, end)),
          excluded: (b) => trueAnswers(timeAware, direction, batchAnchors[b], batchRelations[b]),
          staticExcluded: (b) =>
            staticFilter === undefined
              ? undefined
              : trueAnswers(staticFilter, direction, batchAnchors[b], batchRelations[b]),
        });
      }
    }
  }
}
