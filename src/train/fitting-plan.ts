// The plan by which the offline fitted-term forecasters (nlsm-h in src/train/hybrid, rules / nlsm-r in
// src/train/rules) collect their fitting queries while the history is observed: the history's last steps, split into
// fit steps and selection steps, each scored before it is observed, in the protocol's own way.
// Owns: the plan type and its schedule. Pure; must not score or fit anything.
import type { Snapshot } from '../core/types.ts';
import type { TkgProtocol } from '../eval/protocols.ts';

export type FittingPhase = 'fit' | 'validation';

export interface FittingPlan {
  protocol: TkgProtocol;
  /** Steps whose queries fit the weights (the history's last steps before the selection steps), ascending. */
  fitTargets: readonly Snapshot[];
  /** Steps whose queries select the form (the history's last steps), ascending, after fitTargets. */
  validationTargets: readonly Snapshot[];
  /** Facts the selection's static filter knows (history and selection steps, never a target split). */
  knownFacts?: readonly Snapshot[];
  /** Most queries sampled per phase (fit, validation); default 20,000. */
  maxQueriesPerPhase?: number;
}

/**
 * Pure: the (phase, target) pairs to collect just before step `step` is observed. Single-step: the planned target of
 * that step. Multi-step: the whole block of a phase at its first step (forecast from the step before the block).
 */
export function targetsDue(
  plan: FittingPlan,
  step: number,
): Array<{ phase: FittingPhase; target: Snapshot }> {
  const due: Array<{ phase: FittingPhase; target: Snapshot }> = [];
  for (const phase of ['fit', 'validation'] as FittingPhase[]) {
    const targets = phase === 'fit' ? plan.fitTargets : plan.validationTargets;
    if (targets.length === 0) continue;
    if (plan.protocol === 'multi-step') {
      if (step === targets[0].step) for (const target of targets) due.push({ phase, target });
    } else {
      const target = targets.find((t) => t.step === step);
      if (target !== undefined) due.push({ phase, target });
    }
  }
  return due;
}

/**
 * Pure: the plan of a selection split (src/eval/evaluate.ts selectionSplit): fit on as many of the selection
 * history's last steps as there are selection steps, select on the selection steps; the static filter knows both.
 */
export function fittingPlanOf(
  selection: { history: readonly Snapshot[]; validation: readonly Snapshot[] },
  protocol: TkgProtocol,
  maxQueriesPerPhase?: number,
): FittingPlan {
  const { history, validation } = selection;
  return {
    protocol,
    fitTargets: history.slice(Math.max(0, history.length - validation.length)),
    validationTargets: validation,
    knownFacts: [...history, ...validation],
    maxQueriesPerPhase,
  };
}

/** Pure: [first, last] step of ascending snapshots, or null when there are none (for a model's describe()). */
export function stepRange(steps: readonly Snapshot[]): [number, number] | null {
  return steps.length > 0 ? [steps[0].step, steps[steps.length - 1].step] : null;
}
