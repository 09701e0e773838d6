// Model factories of the recurrency reference model for `tkg eval` (TKG ranking and link
// forecasting). Owns: parameter selection on the selection splits and the link adapter.
// Must not import kafkajs, src/kafka, src/train, src/serve or tfjs.
import type { LinkForecaster, Snapshot } from '../core/types.ts';
import type { LinkModelFactory, TkgModelFactory } from '../eval/evaluate.ts';
import { HistoryIndex } from '../model/history-index.ts';
import {
  RecurrencyForecaster,
  selectRecurrencyParams,
  type RecurrencyParams,
} from './recurrency.ts';

/** Recurrency for TKGs: decay and alpha chosen on the selection splits (time-aware MRR, same protocol). */
export function recurrencyTkgModel(options: { perRelation?: boolean } = {}): TkgModelFactory {
  return async (context) => {
    let lastLine = 0;
    const selection = selectRecurrencyParams({
      history: context.selection.history,
      validation: context.selection.validation,
      protocol: context.protocol,
      numEntities: context.numEntities,
      numRelations: context.numRelations,
      perRelation: options.perRelation ?? false,
      onProgress: (done, total, elapsed) => {
        const now = Date.now();
        if (now - lastLine < 2000 && done < total) return;
        lastLine = now;
        context.log(
          `recurrency: choosing decay and alpha: ${done}/${total} decays, ETA ${Math.round(((total - done) * elapsed) / done)}s`,
        );
      },
    });
    context.log(
      `recurrency: selected decay ${selection.params.global.decay}, alpha ${selection.params.global.alpha} ` +
        `(validation time-aware MRR ${selection.validationMrr.global.toFixed(2)}, ${selection.queries} queries, ${selection.seconds.toFixed(1)} s)`,
    );
    const forecaster = new RecurrencyForecaster(selection.params, context.numRelations);
    return Object.assign(forecaster, {
      describe: () => ({
        model: 'recurrency',
        params: options.perRelation ? selection.params : selection.params.global,
        perRelation: options.perRelation ?? false,
        selection: context.selection.description,
        selectionCriterion: `time-aware filtered MRR, ${context.protocol}`,
        validationMrr: options.perRelation
          ? selection.validationMrr.perRelation
          : selection.validationMrr.global,
        selectionSeconds: selection.seconds,
      }),
    });
  };
}

/** Recurrency as a link forecaster (R = 1): score(i -> j) = strict(i, j) + alpha * relaxed(., j). */
export class RecurrencyLinkForecaster implements LinkForecaster {
  readonly name = 'recurrency';
  private readonly index: HistoryIndex;
  constructor(readonly params: RecurrencyParams) {
    this.index = new HistoryIndex({ numRelations: 1, decay: params.decay });
  }
  async observe(snapshot: Snapshot): Promise<void> {
    this.index.observe(snapshot);
  }
  async linkProbability(
    step: number,
    sources: Int32Array,
    targets: Int32Array,
  ): Promise<Float32Array> {
    const dist = this.index.relaxedDistribution('object', 0);
    const out = new Float32Array(sources.length);
    for (let i = 0; i < sources.length; i++) {
      out[i] =
        this.index.strictValue(step, 'object', sources[i], 0, targets[i]) +
        this.params.alpha * (dist.valueOf.get(targets[i]) ?? 0);
    }
    return out;
  }
}

/** Recurrency for link forecasting: parameters chosen once (time-aware MRR, single-step) on the selection splits. */
export function recurrencyLinkModel(): LinkModelFactory {
  let chosen: { params: RecurrencyParams; mrr: number; seconds: number } | undefined;
  return async (context) => {
    if (chosen === undefined) {
      const selection = selectRecurrencyParams({
        history: context.selection.history,
        validation: context.selection.validation,
        protocol: 'single-step',
        numEntities: context.numNodes,
        numRelations: 1,
      });
      chosen = {
        params: selection.params.global,
        mrr: selection.validationMrr.global,
        seconds: selection.seconds,
      };
      context.log(
        `recurrency: selected decay ${chosen.params.decay}, alpha ${chosen.params.alpha} on ${context.selection.description}`,
      );
    }
    const params = chosen.params;
    const info = {
      model: 'recurrency',
      params,
      selection: context.selection.description,
      validationMrr: chosen.mrr,
    };
    return Object.assign(new RecurrencyLinkForecaster(params), { describe: () => info });
  };
}
