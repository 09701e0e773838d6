// Choosing nlsm-h's form on the validation queries: the selection MRR (raw, static, time-aware) of a parameter vector,
// the direct MRR ascent of the shared form, the one-standard-error rule and selectForm (the mean of the three MRRs
// among the forms at least as good as the recurrency form in every mode). Owns: those rules and their grids.
// Pure; must not import tfjs or Kafka.
import { F } from '../../model/hybrid-features.ts';
import { type QuerySet } from './query-set.ts';
import { expandShared } from './objective.ts';
import { SELECTION_MODES, modeBit, type SelectionMode } from './query-set.ts';

/**
 * Pure: filtered MRR (%) of the queries under per-relation parameters `theta` in one filter mode (default
 * time-aware; raw ranks every candidate, static skips the known facts' answers). Exact when the answer scores at
 * least beta * baseFloor (every non-candidate scores beta * base <= that); otherwise the non-candidates above the
 * answer are estimated from its base rank. Sampled candidates are not ranked. beta must be > 0 (see clampBaseScale).
 */
export function selectionMrr(
  set: QuerySet,
  theta: ArrayLike<number>,
  mode: SelectionMode = 'timeAware',
): number {
  return selectionMrrs(set, theta, [mode])[mode]!;
}

/**
 * Pure: selectionMrr in several filter modes at once (one pass over the candidates). `perQuery` (length Q), when
 * given, receives each query's reciprocal rank (%) averaged over the modes (for standard errors).
 */
export function selectionMrrs(
  set: QuerySet,
  theta: ArrayLike<number>,
  modes: readonly SelectionMode[] = SELECTION_MODES,
  perQuery?: Float64Array,
): Partial<Record<SelectionMode, number>> {
  const R = set.numRelations;
  const Q = set.slot.length;
  const bits = modes.map((m) => modeBit[m]);
  const sums = new Float64Array(modes.length);
  const better = new Float64Array(modes.length);
  const equal = new Float64Array(modes.length);
  for (let q = 0; q < Q; q++) {
    const slot = set.slot[q];
    const beta = theta[slot % R];
    const wBase = R + slot * F;
    const start = set.offsets[q];
    const end = start + set.exactCount[q];
    const scoreOf = (at: number): number => {
      let s = beta * set.base[at];
      for (let f = 0; f < F; f++) s += theta[wBase + f] * set.features[at * F + f];
      return Math.fround(s);
    };
    const answer = set.answer[q];
    const target = scoreOf(answer);
    better.fill(0);
    equal.fill(0);
    for (let at = start; at < end; at++) {
      if (at === answer) continue;
      const s = scoreOf(at);
      if (s < target) continue;
      const mask = set.excludeMask[at];
      for (let m = 0; m < bits.length; m++) {
        if (mask & bits[m]) continue;
        if (s > target) better[m]++;
        else equal[m]++;
      }
    }
    const missed =
      !(target >= beta * set.baseFloor[q]) && beta > 0
        ? Math.max(0, set.baseRank[q] - 1 - set.baseCandidates[q])
        : 0;
    let queryMean = 0;
    for (let m = 0; m < bits.length; m++) {
      const rr = 1 / (1 + better[m] + missed + equal[m] / 2);
      sums[m] += rr;
      queryMean += rr;
    }
    if (perQuery) perQuery[q] = (100 * queryMean) / bits.length;
  }
  const out: Partial<Record<SelectionMode, number>> = {};
  modes.forEach((mode, m) => (out[mode] = (100 * sums[m]) / Math.max(1, Q)));
  return out;
}

/** Pure: per-relation parameters with every beta raised to at least minScale (the base logit keeps breaking ties). */
export function clampBaseScale(
  theta: Float64Array,
  numRelations: number,
  minScale = 1e-3,
): Float64Array {
  const out = Float64Array.from(theta);
  for (let r = 0; r < numRelations; r++) out[r] = Math.max(minScale, out[r]);
  return out;
}

/**
 * Direct MRR ascent (pure): coordinate search over the D shared parameters (beta and the F history weights, the same
 * for every slot), starting from `start`, maximising `criterion` (default: time-aware selectionMrr) on `set`. beta moves multiplicatively (kept > 0),
 * the history weights additively; step sizes halve when no coordinate improves. For the few parameters of the shared
 * form this aligns the fit with the reported metric (the softmax fit optimises likelihood, not rank).
 */
export function ascendSharedMrr(
  set: QuerySet,
  start: ArrayLike<number>,
  options: {
    maxEvaluations?: number;
    rounds?: number;
    /** What to maximise (default: time-aware selectionMrr). */
    criterion?: (set: QuerySet, theta: ArrayLike<number>) => number;
  } = {},
): { shared: Float64Array; mrr: number; evaluations: number } {
  const R = set.numRelations;
  const maxEvaluations = options.maxEvaluations ?? 160;
  const criterion = options.criterion ?? ((s, theta) => selectionMrr(s, theta));
  let shared = Float64Array.from(start);
  let best = criterion(set, expandShared(shared, R));
  let evaluations = 1;
  const steps = Array.from(shared, (v, d) => (d === 0 ? 2 : Math.max(0.5 * Math.abs(v), 0.05)));
  for (let round = 0; round < (options.rounds ?? 5) && evaluations < maxEvaluations; round++) {
    let improved = true;
    while (improved && evaluations < maxEvaluations) {
      improved = false;
      for (let d = 0; d < shared.length && evaluations < maxEvaluations; d++) {
        for (const sign of [1, -1]) {
          const trial = Float64Array.from(shared);
          trial[d] = d === 0 ? shared[0] * steps[0] ** sign : shared[d] + sign * steps[d];
          const mrr = criterion(set, expandShared(trial, R));
          evaluations++;
          if (mrr > best + 1e-6) {
            best = mrr;
            shared = trial;
            improved = true;
            break;
          }
        }
      }
    }
    for (let d = 0; d < steps.length; d++) steps[d] = d === 0 ? Math.sqrt(steps[d]) : steps[d] / 2;
  }
  return { shared, mrr: best, evaluations };
}

/** Validation MRR (%) of one form in every filter mode and the selection criterion (their mean). */
export interface ModeMrrs {
  raw: number;
  static: number;
  timeAware: number;
  /** The selection criterion: mean of raw, static and time-aware. */
  mean: number;
}

/**
 * reference: the recurrency model itself, its exact ties broken by the base logit (beta = the grid's smallest);
 * recurrency: the same with a fitted beta; ascent: its direct MRR ascent; shared / perRelation: listwise fits.
 */
export type HybridForm = 'reference' | 'recurrency' | 'ascent' | 'shared' | 'perRelation';

export interface HybridFitReport {
  /** The base model alone on the validation queries. */
  baseOnly: ModeMrrs;
  /** Every candidate form on the validation queries (fitted on the fitting queries), in complexity order. */
  forms: Array<{
    form: HybridForm;
    l2: number | null;
    /** beta of the recurrency form (relative to nothing: the absolute scale of the base logit). */
    beta?: number;
    validation: ModeMrrs;
    /** At least as good as the reference (recurrency) form in every filter mode on validation. */
    qualifies: boolean;
  }>;
  chosen: { form: HybridForm; l2: number | null; validation: ModeMrrs };
  /** How the form was chosen (text for logs and `tkg eval --json`). */
  criterion: string;
  fitQueries: number;
  validationQueries: number;
  seconds: number;
}

/** Pure: the selection criterion of a form: its MRR in every filter mode and their mean (per query in `perQuery`). */
export function modeMrrs(
  set: QuerySet,
  theta: ArrayLike<number>,
  perQuery?: Float64Array,
): ModeMrrs {
  const m = selectionMrrs(set, theta, SELECTION_MODES, perQuery);
  return {
    raw: m.raw!,
    static: m.static!,
    timeAware: m.timeAware!,
    mean: (m.raw! + m.static! + m.timeAware!) / 3,
  };
}

/**
 * Pure: the one-standard-error rule over options ordered from simplest to most complex, each with its per-query
 * criterion values (same queries): the simplest option whose mean is within one standard error of the paired
 * difference to the best option's mean. Options with `eligible[i] === false` are skipped.
 */
export function oneStandardErrorChoice(
  perQuery: readonly Float64Array[],
  eligible?: readonly boolean[],
): number {
  const Q = perQuery[0]?.length ?? 0;
  const mean = perQuery.map((v) => v.reduce((a, b) => a + b, 0) / Math.max(1, Q));
  let best = -1;
  for (let i = 0; i < perQuery.length; i++)
    if ((eligible?.[i] ?? true) && (best < 0 || mean[i] > mean[best])) best = i;
  if (best < 0 || Q < 2) return Math.max(0, best);
  for (let i = 0; i < best; i++) {
    if (!(eligible?.[i] ?? true)) continue;
    let sum = 0;
    let sumSq = 0;
    for (let q = 0; q < Q; q++) {
      const d = perQuery[best][q] - perQuery[i][q];
      sum += d;
      sumSq += d * d;
    }
    const variance = Math.max(0, (sumSq - (sum * sum) / Q) / (Q - 1));
    const standardError = Math.sqrt(variance / Q);
    if (mean[best] - mean[i] <= standardError) return i;
  }
  return best;
}

/**
 * Pure: the chosen form's index. Candidates that are at least as good as the reference in every filter mode (up to
 * `tolerance` MRR points) qualify; the reference always does; among the qualifying ones the best mean MRR wins (ties:
 * the earlier, i.e. simpler, form), or, with per-query values for every candidate, the simplest qualifying form
 * within one standard error of that best (oneStandardErrorChoice). Without a reference: every form qualifies.
 */
export function selectForm(
  candidates: ReadonlyArray<{ validation: ModeMrrs; perQuery?: Float64Array }>,
  referenceIndex: number | null,
  tolerance = 0,
): { index: number; qualifies: boolean[] } {
  const reference = referenceIndex === null ? null : candidates[referenceIndex].validation;
  const qualifies = candidates.map(
    (c, i) =>
      reference === null ||
      i === referenceIndex ||
      SELECTION_MODES.every((mode) => c.validation[mode] >= reference[mode] - tolerance),
  );
  if (candidates.length > 0 && candidates.every((c) => c.perQuery !== undefined))
    return {
      index: oneStandardErrorChoice(
        candidates.map((c) => c.perQuery!),
        qualifies,
      ),
      qualifies,
    };
  let index = referenceIndex ?? 0;
  for (let i = 0; i < candidates.length; i++) {
    if (!qualifies[i]) continue;
    if (!qualifies[index] || candidates[i].validation.mean > candidates[index].validation.mean)
      index = i;
  }
  return { index, qualifies };
}

/** beta of the recurrency form, relative to the spread (standard deviation) of the base logits. */
export const defaultRelativeBetaGrid: readonly number[] = [
  1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1,
];

/** Pure: standard deviation of the exact candidates' base logits (1 if there are none or they are constant). */
export function baseLogitSpread(set: QuerySet): number {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let q = 0; q < set.slot.length; q++) {
    for (let c = set.offsets[q]; c < set.offsets[q] + set.exactCount[q]; c++) {
      sum += set.base[c];
      sumSq += set.base[c] * set.base[c];
      n++;
    }
  }
  const variance = n > 0 ? sumSq / n - (sum / n) ** 2 : 0;
  return variance > 1e-12 ? Math.sqrt(variance) : 1;
}

export const defaultL2Grid: readonly number[] = [1e-2, 1e-3, 1e-4, 1e-5];
