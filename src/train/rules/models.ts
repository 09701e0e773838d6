// The rule model's factory for `tkg eval` (issue 15): `rules` (the term alone, training-free) and NLSM + rules (the
// base passed in). Owns the automatic choices, the same for every dataset: decay and alpha are the recurrency
// baseline's choice on the selection splits (time-aware MRR, same protocol; decays are per step), the fitting steps
// are as many of the selection history's last steps as there are selection steps, the ranker's form is chosen on the
// selection steps (fit.ts). The test split is never read: the plan holds only history snapshots.
// Must not import tfjs (the base model comes from a factory).
import type { TkgModelFactory } from '../../eval/evaluate.ts';
import { selectRecurrencyParams } from '../../baselines/recurrency.ts';
import { recurrencyRuleSpec, type RuleTermSpec } from '../../model/rule-spec.ts';
import { RuleForecaster, throttled } from './forecaster.ts';
import { fittingPlanOf, stepRange } from '../fitting-plan.ts';

export interface RuleModelOptions {
  createBase?: TkgModelFactory;
  baseName?: string;
  /** Two-hop paths: first and second hop at most this many steps old (0: none, the default: on ICEWS14 valid they added +0.06 time-aware MRR at window 7 and -0.2 at window 3, at 2-3x the observe time). */
  pathWindow?: number;
  /** Most intermediate entities per query (most recent first). Default 16. */
  pathFanout?: number;
  relaxedTopK?: number;
  maxQueriesPerPhase?: number;
}

/** The top relaxed shares of the ranker's fitting queries' candidates (and of the rule forms it fits). */
export const FIT_RELAXED_TOP_K = 100;

/** The initial spec of the rule model for a relation count, decay and alpha (rules and weights come later). */
export function initialRuleSpec(options: {
  numRelations: number;
  decay: number;
  alpha: number;
  pathWindow?: number;
  pathFanout?: number;
  relaxedTopK?: number;
}): RuleTermSpec {
  return {
    ...recurrencyRuleSpec({
      numRelations: options.numRelations,
      decay: options.decay,
      alpha: options.alpha,
      relaxedTopK: options.relaxedTopK ?? FIT_RELAXED_TOP_K,
    }),
    pathWindow: options.pathWindow ?? 0,
    pathFanout: options.pathFanout ?? 16,
  };
}

export function ruleTkgModel(options: RuleModelOptions = {}): TkgModelFactory {
  return async (context) => {
    const { history, validation } = context.selection;
    const progress = throttled(context.log);
    const recurrency = selectRecurrencyParams({
      onProgress: (done, total, elapsed) =>
        progress(
          `rules: choosing decay and alpha (recurrency's rule): ${done}/${total} decays, ETA ${Math.round(((total - done) * elapsed) / done)}s`,
        ),
      history,
      validation,
      protocol: context.protocol,
      numEntities: context.numEntities,
      numRelations: context.numRelations,
    });
    const { decay, alpha } = recurrency.params.global;
    context.log(
      `rules: decay ${decay} per step, alpha ${alpha} (recurrency's choice on ${context.selection.description}, ` +
        `validation time-aware MRR ${recurrency.validationMrr.global.toFixed(2)}, ${recurrency.seconds.toFixed(1)} s)`,
    );
    const plan = fittingPlanOf(context.selection, context.protocol, options.maxQueriesPerPhase);
    const base = options.createBase ? await options.createBase(context) : undefined;
    const forecaster = new RuleForecaster(base, {
      numEntities: context.numEntities,
      numRelations: context.numRelations,
      spec: initialRuleSpec({ numRelations: context.numRelations, decay, alpha, ...options }),
      recurrencyAlpha: alpha,
      log: context.log,
      plan: { ...plan, seed: context.seed },
    });
    const name = base ? `${options.baseName ?? base.name}+rules` : 'rules';
    // without a base model the scores are the sparse term rows: the protocol ranks them in O(nnz) per query
    const sparse = base ? {} : { scoreSparse: forecaster.scoreSparseRows.bind(forecaster) };
    return Object.assign(forecaster, sparse, {
      dispose: () => base?.dispose?.(),
      describe: () => ({
        model: name,
        decay,
        alpha,
        fitSteps: stepRange(plan.fitTargets),
        validationSteps: stepRange(validation),
        selection: context.selection.description,
        get fit() {
          const r = forecaster.fitReport;
          return (
            r && {
              chosen: r.chosen,
              forms: r.forms,
              fitQueries: r.fitQueries,
              validationQueries: r.validationQueries,
            }
          );
        },
        get baseScale() {
          return forecaster.baseScale;
        },
        get weights() {
          return forecaster.spec.weights;
        },
        get rules() {
          return forecaster.spec.rules.length;
        },
        get paths() {
          return forecaster.spec.paths.length;
        },
        get seconds() {
          return forecaster.seconds;
        },
      }),
    });
  };
}
