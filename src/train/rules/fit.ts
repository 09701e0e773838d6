// Choosing the rule model's ranker (issue 15), one automatic procedure for every dataset and the live stream:
// candidate forms are fitted on the fitting queries (the history's last steps before the selection steps) and scored
// on the selection queries (the history's last steps); the form is the simplest one within one standard error of the
// best mean of raw / static / time-aware MRR among the reference (the recurrency baseline itself: its score, ties
// averaged, no base logit) and the forms that beat it by SIGNIFICANCE standard errors in every filter mode (breaking
// its ties by the base logit is such a form, `recurrency`); it is then refitted on fit + selection queries. Never a
// target step: the caller passes only history queries.
// Owns: the forms and that choice. Pure; no tfjs.
import { EVERY_RELAXED, FEATURE_INDEX, RF } from '../../model/rule-spec.ts';
import { oneStandardErrorChoice } from '../hybrid/selection.ts';
import {
  MODES,
  ascendRanker,
  concatRankSets,
  fitRanker,
  rankMrrs,
  type Mode,
  type RankQuerySet,
} from './ranker.ts';

/** Queries of the softmax fit (a deterministic, evenly spaced subsample). */
const SOFTMAX_QUERIES = 4000;
/** Queries of the direct MRR ascent (each step of it ranks every candidate of every query). */
const ASCENT_QUERIES = 10_000;

/** Pure: every k-th query of a set so that at most `limit` remain. */
export function subsample(set: RankQuerySet, limit: number): RankQuerySet {
  const Q = set.answer.length;
  if (Q <= limit) return set;
  const parts: RankQuerySet[] = [];
  const stride = Q / limit;
  const F = set.F;
  for (let i = 0; i < limit; i++) {
    const q = Math.floor(i * stride);
    const from = set.offsets[q];
    const to = set.offsets[q + 1];
    parts.push({
      ...set,
      offsets: Int32Array.of(0, to - from),
      base: set.base.subarray(from, to),
      features: set.features.subarray(from * F, to * F),
      answer: Int32Array.of(set.answer[q] - from),
      exactCount: set.exactCount.subarray(q, q + 1),
      sampleWeight: set.sampleWeight.subarray(q, q + 1),
      excludeMask: set.excludeMask.subarray(from, to),
      rest: set.rest.subarray(q, q + 1),
      baseFloor: set.baseFloor.subarray(q, q + 1),
      baseRank: set.baseRank.subarray(q, q + 1),
      baseCandidates: set.baseCandidates.subarray(q, q + 1),
    });
  }
  return concatRankSets(parts);
}

/**
 * Standard errors by which a form must beat the reference in every filter mode on the selection queries (a one-sided
 * paired test at about 2.5%): a gain within the noise of one validation block does not replace the reference.
 */
export const SIGNIFICANCE = 2;

/** Pure: the mean paired difference a - b in units of its standard error (+Infinity when they never differ). */
export function pairedGain(a: Float64Array, b: Float64Array): number {
  const Q = a.length;
  if (Q < 2) return 0;
  let sum = 0;
  let sumSq = 0;
  for (let q = 0; q < Q; q++) {
    const d = a[q] - b[q];
    sum += d;
    sumSq += d * d;
  }
  const variance = Math.max(0, (sumSq - (sum * sum) / Q) / (Q - 1));
  const se = Math.sqrt(variance / Q);
  return se > 0 ? sum / Q / se : sum > 0 ? Infinity : 0;
}

export type RuleForm = 'reference' | 'recurrency' | 'rules' | 'rules-ascent';

/**
 * The relaxedTopK a form scores with. The recurrency-shaped forms (and the initial form, before any fit) are the
 * recurrency model, which gives every entity its share; the rule forms keep the top `fitted` shares their weights
 * were fitted and selected with.
 */
export function relaxedTopKOfForm(form: string | null, fitted: number): number {
  return form === 'rules' || form === 'rules-ascent' ? fitted : EVERY_RELAXED;
}

type ModeMrrs = Record<Mode, number> & { mean: number };

export interface RuleFitReport {
  forms: Array<{ form: RuleForm; validation: ModeMrrs; qualifies: boolean; theta: number[] }>;
  chosen: { form: RuleForm; validation: ModeMrrs };
  fitQueries: number;
  validationQueries: number;
  seconds: number;
}

/** Standard deviation of the exact candidates' base logits (1 when there is no base or it is constant). */
function baseSpread(set: RankQuerySet): number {
  if (!set.hasBase) return 1;
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let q = 0; q < set.answer.length; q++)
    for (let c = set.offsets[q]; c < set.offsets[q] + set.exactCount[q]; c++) {
      sum += set.base[c];
      sumSq += set.base[c] * set.base[c];
      n++;
    }
  const variance = n > 0 ? sumSq / n - (sum / n) ** 2 : 0;
  return variance > 1e-12 ? Math.sqrt(variance) : 1;
}

/** theta of the recurrency form: strict 1, relaxed alpha, beta * base. */
export function recurrencyTheta(alpha: number, beta: number): Float64Array {
  const theta = new Float64Array(1 + RF);
  theta[0] = beta;
  theta[1 + FEATURE_INDEX.strict] = 1;
  theta[1 + FEATURE_INDEX.relaxed] = alpha;
  return theta;
}

export function fitRuleRanker(input: {
  fit: RankQuerySet;
  validation: RankQuerySet;
  recurrencyAlpha: number;
  /** Progress of the MRR ascents (evaluations done of at most `total`, seconds so far). */
  onProgress?: (done: number, total: number, elapsedSeconds: number) => void;
}): { theta: Float64Array; report: RuleFitReport } {
  const t0 = performance.now();
  const { fit, validation } = input;
  const hasBase = fit.hasBase;
  const spread = baseSpread(fit);
  const tieBeta = hasBase ? 1e-4 / spread : 0;
  const betaGrid = hasBase ? [1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1].map((x) => x / spread) : [0];
  const pickBeta = (set: RankQuerySet): number => {
    let best = { beta: betaGrid[0], mrr: -1 };
    for (const beta of betaGrid) {
      const mrr = rankMrrs(set, recurrencyTheta(input.recurrencyAlpha, beta)).mean;
      if (mrr > best.mrr + 1e-9) best = { beta, mrr };
    }
    return best.beta;
  };
  // the softmax fit on at most SOFTMAX_QUERIES queries (its Hessian costs D^2 per candidate), the MRR ascent on all
  const fitRules = (set: RankQuerySet): Float64Array =>
    fitRanker(
      subsample(set, SOFTMAX_QUERIES),
      recurrencyTheta(input.recurrencyAlpha, tieBeta * 100),
    );
  // progress over both ascents (the fit's and the refit's), at most 100 + 40 evaluations
  let ascentDone = 0;
  const ascend = (set: RankQuerySet, start: Float64Array, maxEvaluations = 100) => {
    const before = ascentDone;
    return ascendRanker(subsample(set, ASCENT_QUERIES), start, {
      maxEvaluations,
      onProgress: (done) => {
        ascentDone = before + done;
        input.onProgress?.(ascentDone, 140, (performance.now() - t0) / 1000);
      },
    }).theta;
  };
  type Candidate = {
    form: RuleForm;
    theta: Float64Array;
    refit: (set: RankQuerySet) => Float64Array;
  };
  const candidates: Candidate[] = [];
  // the reference is the recurrency model exactly (beta 0): with a base model, using it at all must earn its place
  const reference = recurrencyTheta(input.recurrencyAlpha, 0);
  candidates.push({ form: 'reference', theta: reference, refit: () => reference });
  if (hasBase) {
    const beta = pickBeta(fit);
    candidates.push({
      form: 'recurrency',
      theta: recurrencyTheta(input.recurrencyAlpha, beta),
      refit: (set) => recurrencyTheta(input.recurrencyAlpha, pickBeta(set)),
    });
  }
  const fitted = fitRules(fit);
  candidates.push({ form: 'rules', theta: fitted, refit: fitRules });
  const ascended = ascend(fit, fitted);
  candidates.push({
    form: 'rules-ascent',
    theta: ascended,
    refit: (set) => ascend(set, ascended, 40),
  });
  const Q = validation.answer.length;
  const evaluated = candidates.map((c) => {
    const perQuery = new Float64Array(Q);
    const perMode = MODES.map(() => new Float64Array(Q));
    return { validation: rankMrrs(validation, c.theta, perQuery, perMode), perQuery, perMode };
  });
  // a form qualifies when it beats the reference by SIGNIFICANCE standard errors in every filter mode
  const qualifies = evaluated.map(
    (e, i) =>
      i === 0 ||
      MODES.every((_, m) => pairedGain(e.perMode[m], evaluated[0].perMode[m]) >= SIGNIFICANCE),
  );
  const index = oneStandardErrorChoice(
    evaluated.map((e) => e.perQuery),
    qualifies,
  );
  const chosen = candidates[index];
  const theta = chosen.refit(concatRankSets([fit, validation]));
  return {
    theta,
    report: {
      forms: candidates.map((c, i) => ({
        form: c.form,
        validation: evaluated[i].validation,
        qualifies: qualifies[i],
        theta: Array.from(c.theta),
      })),
      chosen: { form: chosen.form, validation: evaluated[index].validation },
      fitQueries: fit.answer.length,
      validationQueries: validation.answer.length,
      seconds: (performance.now() - t0) / 1000,
    },
  };
}
