// nlsm-h live (the product default): NLSM trained on the sliding window plus the fitted sparse history term
// (src/train/hybrid), refitted on the stream's own recent steps. Owns: that adapter and its checkpoints.
// Must not import Kafka or src/serve.
import type { Snapshot } from '../../core/types.ts';
import { TkgError } from '../../core/errors.ts';
import { HybridHistory } from '../../model/hybrid-history.ts';
import { resizeHybridWeights, type HybridWeights } from '../../model/hybrid-features.ts';
import { QuerySetBuilder, concatQuerySets, type QuerySet } from '../hybrid/query-set.ts';
import { fitHybridWeights } from '../hybrid/fit.ts';
import { type HybridForm } from '../hybrid/selection.ts';
import {
  collectStepQueries,
  decodeQuerySet,
  encodeQuerySet,
  recurrencyFormWeights,
  withNumRelations,
} from '../hybrid/live.ts';
import { scaleScoringState } from '../hybrid/export.ts';
import { AlternatingHeader, StepFiles } from './step-files.ts';
import {
  assertObservable,
  assertReplayable,
  initialRecurrencyParams,
  liveSelection,
  matchingState,
  selectionSchedule,
  type LiveModel,
  type LiveModelOptions,
  type ObserveResult,
  type ScoringParts,
} from './index.ts';
import { NlsmLiveModel } from './nlsm.ts';

/** Steps of fitting queries kept (the last `selectionSteps` of them select the form). */
const HYBRID_BUFFER_STEPS = 6;
/** Facts per closed step whose queries (both directions) are collected for the fit. */
const HYBRID_FACTS_PER_STEP = 200;
const HYBRID_RELAXED_TOP_K = 64;
/** beta of the recurrency form before the first fit: the base logit only breaks the history's ties. */
const HYBRID_INITIAL_BETA = 1e-4;

interface HybridCheckpointHeader {
  format: 'tkg-live-nlsm-h';
  lastStep: number | null;
  decay: number;
  alpha: number;
  selectedAtStep: number | null;
  fittedAtStep: number | null;
  form: HybridForm | null;
  validationMrr: number | null;
  weights: HybridWeights | null;
  /** Steps of the buffered fitting query sets (files `<dir>/nlsm-h-queries/<step>.bin`), in order. */
  buffer: number[];
}

/**
 * nlsm-h live: NLSM trained on the sliding window (NlsmLiveModel) plus the sparse history term of src/hybrid.
 * Before NLSM trains on a closed step, a sample of that step's queries is scored by the model that forecast it
 * (base logits) and by the history before it (features): the same fitting queries as `tkg eval --model nlsm-h`,
 * only from the stream's own recent steps (never future ones). Decay and alpha are the recurrency selection's
 * (every `selectEvery` steps on the last `selectionSteps`); the weights are refitted every `selectEvery` steps on
 * the buffered queries (the last `selectionSteps` steps select the form, src/hybrid/fit.ts). Until the first fit
 * the exported model is the recurrency form (reference scores, ties broken by the NLSM logit).
 * Checkpoint: `<dir>/nlsm-h.<0|1>.json` (alternating, written before NLSM's own checkpoint; the newest one not
 * ahead of NLSM's step is used on restart) with the weights and the buffered steps, whose query sets are immutable
 * files `<dir>/nlsm-h-queries/<step>.bin` written once.
 */
export class HybridLiveModel implements LiveModel {
  readonly kind = 'nlsm-h' as const;
  private readonly options: LiveModelOptions;
  private readonly base: NlsmLiveModel;
  private header: HybridCheckpointHeader;
  private buffer: Array<{ step: number; set: QuerySet }>;
  private readonly seen: Snapshot[] = [];
  private history: HybridHistory | undefined;
  private numRelations = 1;

  private constructor(
    options: LiveModelOptions,
    base: NlsmLiveModel,
    header: HybridCheckpointHeader,
    buffer: Array<{ step: number; set: QuerySet }>,
    headers: AlternatingHeader<HybridCheckpointHeader>,
    files: StepFiles,
  ) {
    this.options = options;
    this.base = base;
    this.header = header;
    this.buffer = buffer;
    this.headers = headers;
    this.files = files;
  }

  private readonly headers: AlternatingHeader<HybridCheckpointHeader>;
  private readonly files: StepFiles;

  static async open(options: LiveModelOptions): Promise<HybridLiveModel> {
    const base = await NlsmLiveModel.open({ ...options, kind: 'nlsm' });
    let header: HybridCheckpointHeader = {
      format: 'tkg-live-nlsm-h',
      lastStep: null,
      decay: initialRecurrencyParams.decay,
      alpha: initialRecurrencyParams.alpha,
      selectedAtStep: null,
      fittedAtStep: null,
      form: null,
      validationMrr: null,
      weights: null,
      buffer: [],
    };
    // the newest hybrid checkpoint not ahead of NLSM's (a crash may fall between the two writes)
    const headers = new AlternatingHeader<HybridCheckpointHeader>(
      options.dir,
      'nlsm-h',
      'tkg-live-nlsm-h',
    );
    const files = new StepFiles(options.dir, 'nlsm-h-queries');
    header = headers.read(base.lastStep) ?? header;
    if (
      (header.lastStep ?? Number.NEGATIVE_INFINITY) !== base.lastStep &&
      Number.isFinite(base.lastStep)
    )
      throw new TkgError(
        `${options.dir}: the NLSM checkpoint is at step ${base.lastStep} but no nlsm-h checkpoint matches it; delete the state directory to start over`,
        { reason: 'corrupt_checkpoint' },
      );
    const buffer = header.buffer.map((step) => ({
      step,
      set: decodeQuerySet(files.read(step)),
    }));
    return new HybridLiveModel(options, base, header, buffer, headers, files);
  }

  get lastStep(): number {
    return this.header.lastStep ?? Number.NEGATIVE_INFINITY;
  }

  /** The weights exported now (recurrency form until the first fit). */
  get weights(): HybridWeights {
    const fill = recurrencyFormWeights({
      numRelations: this.numRelations,
      decay: this.header.decay,
      alpha: this.header.alpha,
      beta: HYBRID_INITIAL_BETA,
      relaxedTopK: HYBRID_RELAXED_TOP_K,
    });
    const fitted = this.header.weights;
    if (!fitted || fitted.decay !== this.header.decay) return fill;
    return fitted.numRelations <= this.numRelations ? resizeHybridWeights(fitted, fill) : fill;
  }

  private observeHistory(snapshot: Snapshot): void {
    this.seen.push(snapshot);
    if (!this.history || snapshot.numRelations > this.numRelations) this.rebuildHistory();
    else this.history.observe(snapshot);
  }

  /** A new history from the kept snapshots when the decay or the relation count changed. */
  private rebuildHistory(): void {
    const R = Math.max(this.numRelations, ...this.seen.map((s) => s.numRelations));
    if (this.history && this.history.decay === this.header.decay && R === this.numRelations) return;
    this.numRelations = R;
    this.history = new HybridHistory({
      numRelations: R,
      decay: this.header.decay,
      relaxedTopK: HYBRID_RELAXED_TOP_K,
    });
    for (const s of this.seen) this.history.observe(s);
  }

  async replay(snapshot: Snapshot): Promise<void> {
    assertReplayable(snapshot.step, this.lastStep);
    const last = this.seen[this.seen.length - 1];
    if (!last || snapshot.step > last.step) this.observeHistory(snapshot);
    await this.base.replay();
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    assertObservable(snapshot.step, this.lastStep);
    const notes: Record<string, number> = {};
    // 1. fitting queries of this step, scored by the model that forecast it (before it trains on the step)
    const previous = this.seen[this.seen.length - 1];
    if (this.history && previous && this.header.selectedAtStep !== null) {
      const builder = new QuerySetBuilder(
        this.numRelations,
        32,
        16,
        this.options.seed + snapshot.step,
      );
      const queries = await collectStepQueries({
        target: snapshot,
        base: this.base,
        baseEntities: previous.numEntities,
        history: this.history,
        builder,
        maxFacts: HYBRID_FACTS_PER_STEP,
        seed: this.options.seed * 7919 + snapshot.step,
      });
      if (queries > 0) {
        this.buffer.push({ step: snapshot.step, set: builder.build() });
        this.buffer = this.buffer.slice(-HYBRID_BUFFER_STEPS);
      }
    }
    // 2. the history and NLSM learn the step
    this.observeHistory(snapshot);
    const trained = await this.base.observe(snapshot);
    this.header = { ...this.header, lastStep: snapshot.step };
    // 3. re-select decay / alpha (recurrency's rule) and refit the weights on their schedule
    const { selectEvery, selectionSteps } = selectionSchedule(this.options);
    const due = liveSelection(
      this.seen,
      this.header.selectedAtStep,
      this.options,
      snapshot.numEntities,
      this.numRelations,
    );
    if (due) {
      const { selection, firstValidationStep } = due;
      const { decay, alpha } = selection.params.global;
      if (decay !== this.header.decay) this.buffer = []; // features of another decay
      this.header = { ...this.header, decay, alpha, selectedAtStep: snapshot.step };
      this.rebuildHistory();
      notes.validationMrr = selection.validationMrr.global;
      this.options.onProgress?.(
        `nlsm-h: recurrency selection decay ${decay}, alpha ${alpha} on steps ${firstValidationStep}..${snapshot.step} ` +
          `(time-aware MRR ${selection.validationMrr.global.toFixed(2)}, ${selection.seconds.toFixed(1)} s)`,
      );
    }
    // refit: first time, after a decay change (the buffer refilled with the new decay's features), every selectEvery
    const fitted = this.header.weights;
    const fitDue =
      this.buffer.length >= 2 * selectionSteps &&
      (fitted === null ||
        fitted.decay !== this.header.decay ||
        snapshot.step - (this.header.fittedAtStep ?? snapshot.step) >= selectEvery);
    if (fitDue) {
      const R = this.numRelations;
      const sets = this.buffer.map((b) => withNumRelations(b.set, R));
      const join = (parts: QuerySet[]) => parts.reduce((a, b) => concatQuerySets(a, b));
      const { weights, report } = fitHybridWeights({
        fit: join(sets.slice(0, sets.length - selectionSteps)),
        validation: join(sets.slice(sets.length - selectionSteps)),
        numRelations: R,
        decay: this.header.decay,
        relaxedTopK: HYBRID_RELAXED_TOP_K,
        recurrencyAlpha: this.header.alpha,
      });
      this.header = {
        ...this.header,
        weights,
        fittedAtStep: snapshot.step,
        form: report.chosen.form,
        validationMrr: report.chosen.validation.timeAware,
      };
      notes.fitSeconds = report.seconds;
      this.options.onProgress?.(
        `nlsm-h: fitted ${report.chosen.form}${report.chosen.l2 !== null ? ` (l2 ${report.chosen.l2})` : ''} on steps ` +
          `${this.buffer[0].step}..${snapshot.step} (${report.fitQueries} + ${report.validationQueries} queries): validation ` +
          `time-aware MRR ${report.chosen.validation.timeAware.toFixed(2)}, base alone ${report.baseOnly.timeAware.toFixed(2)} (${report.seconds.toFixed(1)} s)`,
      );
    }
    return {
      seconds: (performance.now() - started) / 1000,
      loss: trained.loss,
      elbo: trained.elbo,
      notes,
    };
  }

  scoringParts(
    step: number,
    version: number,
    numEntities: number,
    numRelations: number,
  ): ScoringParts {
    const state = matchingState('nlsm-h', this.base.scoringState(step), {
      version,
      step,
      numEntities,
      numRelations,
    });
    this.numRelations = Math.max(this.numRelations, numRelations);
    let weights = this.weights;
    if (weights.numRelations > numRelations)
      throw new TkgError(
        `nlsm-h weights cover ${weights.numRelations} relations but the model has ${numRelations}`,
        { reason: 'incompatible' },
      );
    if (weights.numRelations < numRelations)
      weights = resizeHybridWeights(
        weights,
        recurrencyFormWeights({
          numRelations,
          decay: weights.decay,
          alpha: this.header.alpha,
          beta: HYBRID_INITIAL_BETA,
          relaxedTopK: weights.relaxedTopK,
        }),
      );
    return {
      // the base scale beta_r is folded into Theta (the logit is linear in Theta): the graph stays Z w + c
      dense: scaleScoringState(state, weights.baseScale),
      terms: { kind: 'hybrid', weights },
      notes: {
        model: 'nlsm-h',
        K: String(state.K),
        form: this.header.form ?? 'recurrency (initial)',
        fittedAtStep: String(this.header.fittedAtStep ?? ''),
      },
    };
  }

  async checkpoint(): Promise<void> {
    for (const { step, set } of this.buffer) this.files.write(step, () => encodeQuerySet(set));
    this.headers.write({ ...this.header, buffer: this.buffer.map((b) => b.step) });
    await this.base.checkpoint();
    // query files neither checkpoint can refer to any more
    this.files.prune(this.lastStep - 3 * HYBRID_BUFFER_STEPS);
  }

  dispose(): void {
    this.seen.length = 0;
    this.base.dispose();
  }
}
