// The fitting queries of one target step, as the offline fitted-term forecasters (nlsm-h in src/train/hybrid, rules /
// nlsm-r in src/train/rules) collect them: both directions, a `rate` sample of the step's facts (one draw per fact
// and direction, in that order, so a seed gives the same sample), in batches for the base model, with the step's
// own answers (the time-aware filter) and the static filter of the plan's known facts.
// Owns: that iteration and the filters it hands out. Pure; must not score, fit or build a query set.
import type { Direction, Snapshot } from '../core/types.ts';
import { buildAnswerFilter, type AnswerFilter } from '../eval/rank.ts';
import type { FittingPlan } from './fitting-plan.ts';

export interface TargetQueryBatch {
  direction: Direction;
  anchors: Int32Array;
  relations: Int32Array;
  answers: Int32Array;
  /** Every true answer of the target step (time-aware filter). */
  timeAware: AnswerFilter;
}

/** The static filter of a plan's known facts (undefined when it knows none). */
export function staticFilterOf(
  plan: FittingPlan | undefined,
  numRelations: number,
): AnswerFilter | undefined {
  const known = plan?.knownFacts;
  if (known === undefined || known.length === 0) return undefined;
  return buildAnswerFilter(
    known.map((s) => s.triples),
    numRelations,
  );
}

/** Visit the sampled queries of `target` in batches of at most `batchSize`, object direction first. */
export async function forEachTargetBatch(
  target: Snapshot,
  options: { numRelations: number; rate: number; random: () => number; batchSize: number },
  visit: (batch: TargetQueryBatch) => Promise<void>,
): Promise<void> {
  const { rate, random, batchSize } = options;
  const timeAware = buildAnswerFilter([target.triples], options.numRelations);
  const t = target.triples;
  for (const direction of ['object', 'subject'] as Direction[]) {
    const anchors: number[] = [];
    const relations: number[] = [];
    const answers: number[] = [];
    for (let i = 0; i < t.length; i += 3) {
      if (rate < 1 && random() >= rate) continue;
      anchors.push(direction === 'object' ? t[i] : t[i + 2]);
      relations.push(t[i + 1]);
      answers.push(direction === 'object' ? t[i + 2] : t[i]);
    }
    for (let start = 0; start < anchors.length; start += batchSize) {
      const end = Math.min(anchors.length, start + batchSize);
      await visit({
        direction,
        anchors: Int32Array.from(anchors.slice(start, end)),
        relations: Int32Array.from(relations.slice(start, end)),
        answers: Int32Array.from(answers.slice(start, end)),
        timeAware,
      });
    }
  }
}
