// Models the live pipeline can train and serve, behind one small interface: observe a closed step, export
// the next step's scorer as ONNX (src/serve/export) plus the history term it wants, checkpoint, resume.
// Owns: the adapters only — nlsm-h (the product default: NLSM plus the fitted sparse history term of src/hybrid,
// refitted on the stream's own recent steps), recurrency (src/baselines, a training-free reference model served
// as a zero-latent ONNX scorer plus the sparse history term) and NLSM / BAS (src/train, loaded on demand so
// the rest of the product works without tfjs being touched). Model maths stays in those folders.
// Must not import kafkajs or src/kafka.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Direction, ScoringState, Snapshot } from '../core/types.ts';
import { ConfigError, TkgError } from '../core/errors.ts';
import {
  selectRecurrencyParams,
  type RecurrencyParams,
  type RecurrencySelection,
} from '../baselines/recurrency.ts';
import { exportScoringModel } from '../model/scoring-graph.ts';
import { HybridHistory } from '../model/hybrid-history.ts';
import {
  QuerySetBuilder,
  concatQuerySets,
  fitHybridWeights,
  type HybridForm,
  type QuerySet,
} from './hybrid/fit.ts';
import {
  collectStepQueries,
  decodeQuerySet,
  encodeQuerySet,
  recurrencyFormWeights,
  withNumRelations,
} from './hybrid/live.ts';
import { resizeHybridWeights } from '../model/hybrid-features.ts';
import { exportHybridScoringModel } from './hybrid/export.ts';
import { hybridWeightsToMetadata } from '../model/terms.ts';
import { type HybridWeights } from '../model/hybrid-features.ts';
import { writeFileAtomic } from '../core/durable.ts';
import type { HistoryTermParams } from '../model/terms.ts';

export const liveModelKinds = ['nlsm-h', 'recurrency', 'nlsm', 'bas'] as const;
export type LiveModelKind = (typeof liveModelKinds)[number];

/** What one observed step produced (loss / ELBO only for models that optimise one). */
export interface ObserveResult {
  seconds: number;
  loss?: number;
  elbo?: number;
  /** Free-form numbers worth logging (e.g. the recurrency selection's validation MRR). */
  notes?: Record<string, number>;
}

export interface ExportedScorer {
  onnx: Uint8Array;
  /** History term the server must add to this scorer's logits (undefined: none). */
  history?: HistoryTermParams;
  /** Extra announcement metadata (model kind, K, ...). */
  metadata: Record<string, string>;
}

export interface LiveModel {
  readonly kind: LiveModelKind;
  /** Last step trained on (restored from the checkpoint), -Infinity before the first. */
  readonly lastStep: number;
  /** Train on a closed step (steps strictly increasing, after lastStep). */
  observe(snapshot: Snapshot): Promise<ObserveResult>;
  /** After a restart: a closed step <= lastStep the checkpoint already covers (rebuilds in-memory history). */
  replay(snapshot: Snapshot): Promise<void>;
  /** ONNX scorer forecasting `step` for N entities / R relations, with `version` and `vocabularyHash` in its metadata. */
  exportScorer(
    step: number,
    version: number,
    vocabularyHash: string,
    numEntities: number,
    numRelations: number,
  ): ExportedScorer;
  /** Make the state after the last observe durable (the pipeline's commit point). */
  checkpoint(): Promise<void>;
  dispose(): void;
}

export interface LiveModelOptions {
  kind: LiveModelKind;
  /** Model checkpoint directory (created). */
  dir: string;
  seed: number;
  K: number;
  windowSize: number;
  learningRate?: number;
  epochsPerWindow?: number;
  directed?: boolean;
  /** Recurrency: re-select decay and alpha every this many steps (on the last `selectionSteps`). */
  selectEvery?: number;
  selectionSteps?: number;
  onProgress?: (line: string) => void;
  /** NLSM / BAS: a NaN loss restored the last good state (tkg_train_nan_restores_total). */
  onNanRestore?: () => void;
}

export async function createLiveModel(options: LiveModelOptions): Promise<LiveModel> {
  mkdirSync(options.dir, { recursive: true });
  switch (options.kind) {
    case 'nlsm-h':
      return HybridLiveModel.open(options);
    case 'recurrency':
      return RecurrencyLiveModel.open(options);
    case 'nlsm':
    case 'bas':
      return NlsmLiveModel.open(options);
    default:
      throw new ConfigError(
        `--model ${JSON.stringify(options.kind)}: use one of ${liveModelKinds.join(', ')}`,
      );
  }
}

// ---- recurrency -------------------------------------------------------------------------------------

interface RecurrencyCheckpoint {
  format: 'tkg-live-recurrency';
  lastStep: number | null;
  params: RecurrencyParams;
  selectedAtStep: number | null;
  validationMrr: number | null;
}

/** Default until the first selection: recent exact repeats first, then frequent objects (no tuning). */
const initialRecurrencyParams: RecurrencyParams = { decay: 0.9, alpha: 0.1 };

/**
 * The recurrency reference model (src/baselines) live: its parameters are re-selected automatically on the
 * most recent closed steps (single-step protocol, time-aware MRR — the same rule as `tkg eval`, never future
 * steps); its "export" is a zero-latent ONNX scorer (all logits 0) whose history term carries the scores.
 */
export class RecurrencyLiveModel implements LiveModel {
  readonly kind = 'recurrency' as const;
  private readonly options: LiveModelOptions;
  private readonly path: string;
  private readonly seen: Snapshot[] = [];
  private state: RecurrencyCheckpoint;

  private constructor(options: LiveModelOptions, state: RecurrencyCheckpoint) {
    this.options = options;
    this.path = join(options.dir, 'recurrency.json');
    this.state = state;
  }

  static open(options: LiveModelOptions): RecurrencyLiveModel {
    const path = join(options.dir, 'recurrency.json');
    let state: RecurrencyCheckpoint = {
      format: 'tkg-live-recurrency',
      lastStep: null,
      params: initialRecurrencyParams,
      selectedAtStep: null,
      validationMrr: null,
    };
    if (existsSync(path)) {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as RecurrencyCheckpoint;
      if (parsed.format !== 'tkg-live-recurrency')
        throw new TkgError(
          `${path} is not a recurrency checkpoint; delete it or use another state directory`,
          { reason: 'corrupt_checkpoint' },
        );
      state = parsed;
    }
    return new RecurrencyLiveModel(options, state);
  }

  get lastStep(): number {
    return this.state.lastStep ?? Number.NEGATIVE_INFINITY;
  }

  get params(): RecurrencyParams {
    return this.state.params;
  }

  async replay(snapshot: Snapshot): Promise<void> {
    if (snapshot.step > this.lastStep)
      throw new TkgError(
        `replay of step ${snapshot.step} after the checkpoint's step ${this.lastStep}; observe it instead`,
        { reason: 'out_of_order' },
      );
    const last = this.seen[this.seen.length - 1];
    if (!last || snapshot.step > last.step) this.seen.push(snapshot);
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    if (snapshot.step <= this.lastStep)
      throw new TkgError(
        `step ${snapshot.step} is not after the last observed step ${this.lastStep}`,
        { reason: 'out_of_order' },
      );
    this.seen.push(snapshot);
    this.state = { ...this.state, lastStep: snapshot.step };
    const notes: Record<string, number> = {};
    const last = this.seen[this.seen.length - 1];
    const due = liveSelection(
      this.seen,
      this.state.selectedAtStep,
      this.options,
      last.numEntities,
      Math.max(1, ...this.seen.map((s) => s.numRelations)),
    );
    if (due) {
      const { selection, firstValidationStep } = due;
      this.state = {
        ...this.state,
        params: selection.params.global,
        selectedAtStep: snapshot.step,
        validationMrr: selection.validationMrr.global,
      };
      notes.selectionSeconds = selection.seconds;
      notes.validationMrr = selection.validationMrr.global;
      this.options.onProgress?.(
        `recurrency: selected decay ${selection.params.global.decay}, alpha ${selection.params.global.alpha} on steps ${firstValidationStep}..${last.step} ` +
          `(time-aware MRR ${selection.validationMrr.global.toFixed(2)}, ${selection.seconds.toFixed(1)} s)`,
      );
    }
    return { seconds: (performance.now() - started) / 1000, notes };
  }

  exportScorer(
    step: number,
    version: number,
    vocabularyHash: string,
    numEntities: number,
    numRelations: number,
  ): ExportedScorer {
    // Zero latent state: K = 1, z = 0, Theta = 0, so every logit is 0 and the history term is the whole score.
    const state: ScoringState = {
      numEntities,
      numRelations,
      K: 1,
      z: new Float32Array(numEntities),
      theta: new Float32Array(numRelations * 4),
      step,
      version,
    };
    const { decay, alpha } = this.state.params;
    return {
      onnx: exportScoringModel(state, { vocabularyHash, modelName: 'recurrency' }),
      history: { decay, strictWeight: 1, relaxedWeight: alpha },
      metadata: {
        model: 'recurrency',
        selectedAtStep: String(this.state.selectedAtStep ?? ''),
        validationMrr: String(this.state.validationMrr ?? ''),
      },
    };
  }

  async checkpoint(): Promise<void> {
    writeFileAtomic(this.path, Buffer.from(JSON.stringify(this.state)));
  }

  dispose(): void {
    this.seen.length = 0;
  }
}

// ---- nlsm-h (src/hybrid on top of NLSM) ------------------------------------------------------------------

/**
 * NLSM epochs per window update of the live nlsm-h in `tkg run` when --epochs is not given: the demo replays all of
 * YAGO (189 steps) in under 5 minutes on 2 cores (the trainer's own default, TKG_TRAIN_EPOCHS, is for offline runs).
 */
export const LIVE_HYBRID_EPOCHS_PER_WINDOW = 4;

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
  ) {
    this.options = options;
    this.base = base;
    this.header = header;
    this.buffer = buffer;
  }

  private nextParity = 0;
  private readonly written = new Set<number>();

  private static path(dir: string, parity: number): string {
    return join(dir, `nlsm-h.${parity}.json`);
  }

  private static queriesPath(dir: string, step: number): string {
    return join(dir, 'nlsm-h-queries', `${step}.bin`);
  }

  static async open(options: LiveModelOptions): Promise<HybridLiveModel> {
    const base = await NlsmLiveModel.open({ ...options, kind: 'nlsm' });
    mkdirSync(join(options.dir, 'nlsm-h-queries'), { recursive: true });
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
    let bestParity: number | undefined;
    for (const parity of [0, 1]) {
      const path = HybridLiveModel.path(options.dir, parity);
      if (!existsSync(path)) continue;
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as HybridCheckpointHeader;
      if (parsed.format !== 'tkg-live-nlsm-h')
        throw new TkgError(
          `${path} is not an nlsm-h checkpoint; delete it or use another state directory`,
          { reason: 'corrupt_checkpoint' },
        );
      const step = parsed.lastStep ?? Number.NEGATIVE_INFINITY;
      if (step > base.lastStep) continue;
      if (bestParity === undefined || step > (header.lastStep ?? Number.NEGATIVE_INFINITY)) {
        header = parsed;
        bestParity = parity;
      }
    }
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
      set: decodeQuerySet(
        new Uint8Array(readFileSync(HybridLiveModel.queriesPath(options.dir, step))),
      ),
    }));
    const model = new HybridLiveModel(options, base, header, buffer);
    model.nextParity = bestParity === undefined ? 0 : 1 - bestParity;
    for (const b of buffer) model.written.add(b.step);
    return model;
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
    if (snapshot.step > this.lastStep)
      throw new TkgError(
        `replay of step ${snapshot.step} after the checkpoint's step ${this.lastStep}; observe it instead`,
        { reason: 'out_of_order' },
      );
    const last = this.seen[this.seen.length - 1];
    if (!last || snapshot.step > last.step) this.observeHistory(snapshot);
    await this.base.replay();
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    if (snapshot.step <= this.lastStep)
      throw new TkgError(
        `step ${snapshot.step} is not after the last observed step ${this.lastStep}`,
        { reason: 'out_of_order' },
      );
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

  exportScorer(
    step: number,
    version: number,
    vocabularyHash: string,
    numEntities: number,
    numRelations: number,
  ): ExportedScorer {
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
      onnx: exportHybridScoringModel(state, weights, { vocabularyHash, modelName: 'nlsm-h' }),
      metadata: {
        model: 'nlsm-h',
        K: String(state.K),
        form: this.header.form ?? 'recurrency (initial)',
        fittedAtStep: String(this.header.fittedAtStep ?? ''),
        ...hybridWeightsToMetadata(weights),
      },
    };
  }

  async checkpoint(): Promise<void> {
    const dir = this.options.dir;
    for (const { step, set } of this.buffer) {
      if (this.written.has(step)) continue;
      writeFileAtomic(HybridLiveModel.queriesPath(dir, step), encodeQuerySet(set));
      this.written.add(step);
    }
    const header: HybridCheckpointHeader = {
      ...this.header,
      buffer: this.buffer.map((b) => b.step),
    };
    writeFileAtomic(HybridLiveModel.path(dir, this.nextParity), JSON.stringify(header));
    this.nextParity = 1 - this.nextParity;
    await this.base.checkpoint();
    // query files neither checkpoint can refer to any more
    const keepFrom = this.lastStep - 3 * HYBRID_BUFFER_STEPS;
    for (const step of [...this.written]) {
      if (step >= keepFrom) continue;
      rmSync(HybridLiveModel.queriesPath(dir, step), { force: true });
      this.written.delete(step);
    }
  }

  dispose(): void {
    this.seen.length = 0;
    this.base.dispose();
  }
}

// ---- NLSM / BAS (src/train) ---------------------------------------------------------------------------

type TrainForecaster = import('./nlsm/index.ts').NlsmForecaster;

/**
 * NLSM (or BAS) trained on a sliding window, one update per closed step. The trainer's checkpoint in
 * `<dir>/<kind>` is the commit point; it restores its own sizes (declared 1 x 1 here, grown by snapshots).
 */
export class NlsmLiveModel implements LiveModel {
  readonly kind: 'nlsm' | 'bas';
  private readonly forecaster: TrainForecaster;
  /** Written by the trainer's onProgress callback during observe(). */
  private readonly progress: { last?: { loss: number; elbo: number } };

  private constructor(
    kind: 'nlsm' | 'bas',
    forecaster: TrainForecaster,
    progress: { last?: { loss: number; elbo: number } },
  ) {
    this.kind = kind;
    this.forecaster = forecaster;
    this.progress = progress;
  }

  static async open(options: LiveModelOptions): Promise<NlsmLiveModel> {
    // Loaded on first use, so the recurrency model runs without tfjs ever being imported.
    const module = await import('./nlsm/index.ts');
    const progress: { last?: { loss: number; elbo: number } } = {};
    const forecaster = await module.createNlsmForecaster({
      model: options.kind as 'nlsm' | 'bas',
      numEntities: 1,
      numRelations: 1,
      directed: options.directed ?? true,
      K: options.K,
      windowSize: options.windowSize,
      seed: options.seed,
      learningRate: options.learningRate,
      epochsPerWindow: options.epochsPerWindow,
      checkpointDir: join(options.dir, options.kind),
      onProgress: (p) => {
        progress.last = { loss: p.loss, elbo: p.elbo };
      },
      onNanRestore: () => options.onNanRestore?.(),
    });
    return new NlsmLiveModel(options.kind as 'nlsm' | 'bas', forecaster, progress);
  }

  get lastStep(): number {
    return this.forecaster.lastObservedStep;
  }

  /** Logits of the current state for a batch of queries ([B, N]; nlsm-h collects its fitting queries with them). */
  score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    return this.forecaster.score(step, direction, anchors, relations, numEntities);
  }

  /** The trainer's scoring state (Z, Theta) for a forecast step. */
  scoringState(step: number): ScoringState {
    return this.forecaster.scoringState(step);
  }

  async replay(): Promise<void> {
    // The trainer's own checkpoint holds its window; nothing to rebuild.
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    this.progress.last = undefined;
    await this.forecaster.observe(snapshot);
    const progress = this.progress.last as { loss: number; elbo: number } | undefined; // set during observe()
    return {
      seconds: (performance.now() - started) / 1000,
      loss: progress?.loss,
      elbo: progress?.elbo,
    };
  }

  exportScorer(
    step: number,
    version: number,
    vocabularyHash: string,
    numEntities: number,
    numRelations: number,
  ): ExportedScorer {
    const state = matchingState(this.kind, this.forecaster.scoringState(step), {
      version,
      step,
      numEntities,
      numRelations,
    });
    return {
      onnx: exportScoringModel(state, { vocabularyHash, modelName: this.kind }),
      metadata: { model: this.kind, K: String(state.K) },
    };
  }

  async checkpoint(): Promise<void> {
    await this.forecaster.checkpoint();
  }

  dispose(): void {
    this.forecaster.dispose();
  }
}

/** A trained model's scoring state stamped with version and step; its shape must match the vocabulary's. */
function matchingState(
  kind: string,
  trained: ScoringState,
  expected: { version: number; step: number; numEntities: number; numRelations: number },
): ScoringState {
  if (
    trained.numEntities !== expected.numEntities ||
    trained.numRelations !== expected.numRelations
  ) {
    throw new TkgError(
      `${kind} scores N = ${trained.numEntities}, R = ${trained.numRelations} but the vocabulary has ${expected.numEntities} / ${expected.numRelations}`,
      { reason: 'incompatible' },
    );
  }
  return { ...trained, version: expected.version, step: expected.step };
}

/** The live re-selection schedule of decay and alpha (defaults: every 25 steps, validated on the last 3). */
function selectionSchedule(options: { selectEvery?: number; selectionSteps?: number }): {
  selectEvery: number;
  selectionSteps: number;
} {
  return { selectEvery: options.selectEvery ?? 25, selectionSteps: options.selectionSteps ?? 3 };
}

/**
 * Recurrency's live selection rule, shared by the recurrency and nlsm-h live models: first once 2 x selectionSteps
 * steps are seen, then every selectEvery steps; the last selectionSteps steps validate. Undefined when not due.
 */
function liveSelection(
  seen: readonly Snapshot[],
  selectedAtStep: number | null,
  options: { selectEvery?: number; selectionSteps?: number },
  numEntities: number,
  numRelations: number,
): { selection: RecurrencySelection; firstValidationStep: number } | undefined {
  const { selectEvery, selectionSteps } = selectionSchedule(options);
  const due =
    selectedAtStep === null ? seen.length >= 2 * selectionSteps : seen.length % selectEvery === 0;
  if (!due) return undefined;
  const split = seen.length - selectionSteps;
  const selection = selectRecurrencyParams({
    history: seen.slice(0, split),
    validation: seen.slice(split),
    protocol: 'single-step',
    numEntities,
    numRelations,
  });
  return { selection, firstValidationStep: seen[split].step };
}
