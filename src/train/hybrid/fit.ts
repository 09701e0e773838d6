// Fitting nlsm-h's weights (issue 8 item 2) in several forms: one weight vector shared by every relation, per-relation
// weights shrunk towards it (several strengths), the recurrency form (the reference model plus beta * base logit) and
// its direct MRR ascent; the form is chosen on the validation queries (selection.ts). Owns: fitHybridWeights, the
// orchestration of the objective (objective.ts) and the selection over the query sets (query-set.ts).
// Pure functions over typed arrays; must not import tfjs, kafkajs or src/kafka.
import { FS, type HybridWeights } from '../../model/hybrid-features.ts';
import { expandShared, minimiseObjective, weightsFromParameters } from './objective.ts';
import { D, concatQuerySets, type QuerySet } from './query-set.ts';
import {
  ascendSharedMrr,
  baseLogitSpread,
  clampBaseScale,
  defaultL2Grid,
  defaultRelativeBetaGrid,
  modeMrrs,
  oneStandardErrorChoice,
  selectForm,
  type HybridFitReport,
  type HybridForm,
} from './selection.ts';

/**
 * Fits nlsm-h's weights on `fit` (the train split's queries) in several forms: shared weights, per-relation weights
 * shrunk towards them (one per L2 strength), the recurrency form (the reference model's own score, strict + alpha *
 * relaxed, plus beta * base logit: the base logit orders what the history leaves tied) and its direct MRR ascent.
 * The form is chosen on `validation` by selectForm (mean of raw / static / time-aware MRR among the forms at least as
 * good as the recurrency form in every mode; never the test split: the caller passes only train / valid queries),
 * then refitted on fit + validation.
 */
export function fitHybridWeights(input: {
  fit: QuerySet;
  validation: QuerySet;
  numRelations: number;
  decay: number;
  relaxedTopK: number;
  l2Grid?: readonly number[];
  /** Relaxed weight of the recurrency baseline chosen on the same selection splits (enables the 'recurrency' form). */
  recurrencyAlpha?: number;
}): { weights: HybridWeights; report: HybridFitReport } {
  const t0 = performance.now();
  const R = input.numRelations;
  const grid = input.l2Grid ?? defaultL2Grid;
  const meanMrr = (set: QuerySet, theta: ArrayLike<number>): number => modeMrrs(set, theta).mean;
  const initialShared = new Float64Array(D);
  initialShared[0] = 1;
  const fitShared = (set: QuerySet) =>
    minimiseObjective(set, initialShared, { layout: 'shared', l2: 1e-6 }).theta;
  const fitPerRelation = (set: QuerySet, shared: Float64Array, l2: number) => {
    const prior = expandShared(shared, R);
    return clampBaseScale(
      minimiseObjective(set, prior, { layout: 'perRelation', l2, prior }).theta,
      R,
    );
  };
  // the recurrency form: strict weight 1, relaxed weight alpha, beta * base logit
  const recurrencyShared = (beta: number): Float64Array => {
    const shared = new Float64Array(D);
    shared[0] = beta;
    shared[1] = 1;
    shared[1 + FS] = input.recurrencyAlpha ?? 0;
    return shared;
  };
  const spread = baseLogitSpread(input.fit);
  const betaGrid = defaultRelativeBetaGrid.map((x) => x / spread);
  // beta: the smallest (closest to the reference model) within one standard error of the best on `set`
  const pickBeta = (set: QuerySet): number => {
    const perQuery = betaGrid.map((beta) => {
      const values = new Float64Array(set.slot.length);
      modeMrrs(set, expandShared(recurrencyShared(beta), R), values);
      return values;
    });
    return betaGrid[oneStandardErrorChoice(perQuery)];
  };
  const ascend = (set: QuerySet): Float64Array =>
    ascendSharedMrr(set, recurrencyShared(pickBeta(set)), { criterion: meanMrr }).shared;

  // candidate forms fitted on the fitting queries, scored on validation; simpler forms first
  type Candidate = HybridFitReport['forms'][number] & { refit: (set: QuerySet) => Float64Array };
  const candidates: Candidate[] = [];
  const perQuery: Float64Array[] = [];
  const add = (
    form: HybridForm,
    l2: number | null,
    theta: Float64Array,
    refit: Candidate['refit'],
    beta?: number,
  ) => {
    const values = new Float64Array(input.validation.slot.length);
    perQuery.push(values);
    candidates.push({
      form,
      l2,
      ...(beta !== undefined ? { beta } : {}),
      validation: modeMrrs(input.validation, theta, values),
      qualifies: true,
      refit,
    });
  };
  let referenceIndex: number | null = null;
  if (input.recurrencyAlpha !== undefined) {
    // the guard's reference: the reference model with only its exact ties broken by the base logit
    const tieBreak = expandShared(recurrencyShared(betaGrid[0]), R);
    referenceIndex = candidates.length;
    add('reference', null, tieBreak, () => tieBreak, betaGrid[0]);
    const beta = pickBeta(input.fit);
    add(
      'recurrency',
      null,
      expandShared(recurrencyShared(beta), R),
      (set) => expandShared(recurrencyShared(pickBeta(set)), R),
      beta,
    );
    add('ascent', null, expandShared(ascend(input.fit), R), (set) => expandShared(ascend(set), R));
  }
  const shared = fitShared(input.fit);
  add('shared', null, clampBaseScale(expandShared(shared, R), R), (set) =>
    clampBaseScale(expandShared(fitShared(set), R), R),
  );
  for (const l2 of [...grid].sort((a, b) => b - a)) {
    add('perRelation', l2, fitPerRelation(input.fit, shared, l2), (set) =>
      fitPerRelation(set, fitShared(set), l2),
    );
  }
  const { index, qualifies } = selectForm(
    candidates.map((c, i) => ({ validation: c.validation, perQuery: perQuery[i] })),
    referenceIndex,
  );
  candidates.forEach((c, i) => (c.qualifies = qualifies[i]));
  const chosen = candidates[index];
  // refit the chosen form on fit + validation
  const theta = chosen.refit(concatQuerySets(input.fit, input.validation));
  return {
    weights: weightsFromParameters(theta, {
      numRelations: R,
      decay: input.decay,
      relaxedTopK: input.relaxedTopK,
    }),
    report: {
      baseOnly: modeMrrs(input.validation, expandShared(initialShared, R)),
      forms: candidates.map(({ refit: _refit, ...c }) => c),
      chosen: { form: chosen.form, l2: chosen.l2, validation: chosen.validation },
      criterion:
        referenceIndex === null
          ? 'validation mean of raw / static / time-aware MRR (simplest form within one standard error of the best)'
          : 'validation mean of raw / static / time-aware MRR among the forms at least as good as the reference model (recurrency, ties broken by the base logit) in every filter mode (simplest such form within one standard error of the best)',
      fitQueries: input.fit.slot.length,
      validationQueries: input.validation.slot.length,
      seconds: (performance.now() - t0) / 1000,
    },
  };
}
