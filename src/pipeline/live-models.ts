// Models the live pipeline can train and serve, behind one small interface: observe a closed step, export
// the next step's scorer as ONNX (src/serve/export) plus the history term it wants, checkpoint, resume.
// Owns: the adapters only — recurrency (src/baselines, a training-free reference model served as a
// zero-latent ONNX scorer plus the sparse history term) and NLSM / BAS (src/train, loaded on demand so
// the rest of the product works without tfjs being touched). Model maths stays in those folders.
// Must not import kafkajs or src/kafka.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ScoringState, Snapshot } from '../core/types.ts';
import { ConfigError, TkgError } from '../core/errors.ts';
import { selectRecurrencyParams, type RecurrencyParams } from '../baselines/recurrency.ts';
import { exportScoringModel } from '../serve/export/scoring-model.ts';
import { writeFileAtomic } from '../window/checkpoint.ts';
import type { HistoryTermParams } from './history-terms.ts';

export const liveModelKinds = ['recurrency', 'nlsm', 'bas'] as const;
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
    const selectEvery = this.options.selectEvery ?? 25;
    const selectionSteps = this.options.selectionSteps ?? 3;
    const due =
      this.state.selectedAtStep === null
        ? this.seen.length >= 2 * selectionSteps
        : this.seen.length % selectEvery === 0;
    const notes: Record<string, number> = {};
    if (due) {
      const split = this.seen.length - selectionSteps;
      const last = this.seen[this.seen.length - 1];
      const selection = selectRecurrencyParams({
        history: this.seen.slice(0, split),
        validation: this.seen.slice(split),
        protocol: 'single-step',
        numEntities: last.numEntities,
        numRelations: Math.max(1, ...this.seen.map((s) => s.numRelations)),
      });
      this.state = {
        ...this.state,
        params: selection.params.global,
        selectedAtStep: snapshot.step,
        validationMrr: selection.validationMrr.global,
      };
      notes.selectionSeconds = selection.seconds;
      notes.validationMrr = selection.validationMrr.global;
      this.options.onProgress?.(
        `recurrency: selected decay ${selection.params.global.decay}, alpha ${selection.params.global.alpha} on steps ${this.seen[split].step}..${last.step} ` +
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

// ---- NLSM / BAS (src/train) ---------------------------------------------------------------------------

/** The part of src/train's NlsmForecaster the pipeline uses (see src/train/index.ts). */
interface TrainForecaster {
  observe(snapshot: Snapshot): Promise<void>;
  scoringState(step: number): ScoringState;
  checkpoint(): Promise<void>;
  dispose(): void;
  readonly lastObservedStep: number;
}

interface TrainModule {
  createNlsmForecaster(options: Record<string, unknown>): Promise<TrainForecaster>;
}

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
    const path = '../train/index.ts';
    let module: TrainModule;
    try {
      module = (await import(path)) as TrainModule;
    } catch (error) {
      throw new ConfigError(
        `--model ${options.kind} needs the NLSM trainer (src/train/index.ts), which could not be loaded (${(error as Error).message}); use --model recurrency`,
      );
    }
    const progress: { last?: { loss: number; elbo: number } } = {};
    const forecaster = await module.createNlsmForecaster({
      model: options.kind,
      numEntities: 1,
      numRelations: 1,
      directed: options.directed ?? true,
      K: options.K,
      windowSize: options.windowSize,
      seed: options.seed,
      learningRate: options.learningRate,
      epochsPerWindow: options.epochsPerWindow,
      checkpointDir: join(options.dir, options.kind),
      onProgress: (p: { loss: number; elbo: number }) => {
        progress.last = { loss: p.loss, elbo: p.elbo };
      },
      onNanRestore: () => options.onNanRestore?.(),
    });
    return new NlsmLiveModel(options.kind as 'nlsm' | 'bas', forecaster, progress);
  }

  get lastStep(): number {
    return this.forecaster.lastObservedStep;
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
    const state = { ...this.forecaster.scoringState(step), version, step };
    if (state.numEntities !== numEntities || state.numRelations !== numRelations) {
      throw new TkgError(
        `${this.kind} scores N = ${state.numEntities}, R = ${state.numRelations} but the vocabulary has ${numEntities} / ${numRelations}`,
        { reason: 'incompatible' },
      );
    }
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
