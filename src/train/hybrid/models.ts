// The nlsm-h model factory for `tkg eval` (and any caller with train / valid splits). Owns: the automatic choices on
// the selection splits only (never the test split): the decay is the recurrency baseline's choice (time-aware MRR,
// same protocol, src/baselines), the fitting steps are the last steps of the selection history (the train split),
// and the regularisation is chosen on the selection validation steps (the valid split) inside the forecaster.
// Must not import tfjs, src/train, kafkajs or src/kafka (the base model comes from a factory).
import type { TkgModelFactory } from '../../eval/evaluate.ts';
import { selectRecurrencyParams } from '../../baselines/recurrency.ts';
import { HybridForecaster } from './forecaster.ts';
import { fittingPlanOf, stepRange } from '../fitting-plan.ts';

export interface HybridModelOptions {
  /** The base model (NLSM in `tkg eval --model nlsm-h`). */
  createBase: TkgModelFactory;
  baseName?: string;
  relaxedTopK?: number;
  baseCandidates?: number;
  maxQueriesPerPhase?: number;
  l2Grid?: readonly number[];
}

export function hybridTkgModel(options: HybridModelOptions): TkgModelFactory {
  return async (context) => {
    const { history, validation } = context.selection;
    const recurrency = selectRecurrencyParams({
      history,
      validation,
      protocol: context.protocol,
      numEntities: context.numEntities,
      numRelations: context.numRelations,
    });
    const decay = recurrency.params.global.decay;
    context.log(
      `nlsm-h: decay ${decay} (recurrency's choice on ${context.selection.description}, validation time-aware MRR ` +
        `${recurrency.validationMrr.global.toFixed(2)}, ${recurrency.seconds.toFixed(1)} s)`,
    );
    const plan = fittingPlanOf(context.selection, context.protocol, options.maxQueriesPerPhase);
    const base = await options.createBase(context);
    const forecaster = new HybridForecaster(base, {
      numEntities: context.numEntities,
      numRelations: context.numRelations,
      decay,
      relaxedTopK: options.relaxedTopK,
      baseCandidates: options.baseCandidates,
      l2Grid: options.l2Grid,
      recurrencyAlpha: recurrency.params.global.alpha,
      log: context.log,
      plan: { ...plan, seed: context.seed },
    });
    return Object.assign(forecaster, {
      dispose: () => base.dispose?.(),
      describe: () => ({
        model: 'nlsm-h',
        base: options.baseName ?? base.name,
        baseInfo: base.describe?.(),
        decay,
        fitSteps: stepRange(plan.fitTargets),
        validationSteps: stepRange(validation),
        selection: context.selection.description,
        selectionCriterion: `decay: recurrency's (time-aware MRR); form: mean of raw / static / time-aware MRR among the forms at least as good as the recurrency form in every mode (${context.protocol})`,
        // getters: describe() is called before the run; the fit happens at the first score()
        get fit() {
          return forecaster.fitReport;
        },
        get weights() {
          return forecaster.weights;
        },
      }),
    });
  };
}
