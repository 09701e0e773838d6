// Models the live pipeline can train and serve, behind one small interface: observe a closed step, give the next
// step's scoring parts (dense state + term spec, from which src/train/stage.ts builds the bundle), checkpoint, resume.
// Owns: the interface, the factory and what the adapters share (state stamping, the live re-selection rule). The
// adapters: nlsm-r and rules (rules.ts; nlsm-r is the product default), nlsm-h (hybrid.ts), recurrency (recurrency.ts), NLSM / BAS (nlsm.ts, which loads
// the tfjs trainer on first use). Model maths stays in src/train/nlsm, src/train/hybrid and src/baselines.
// Must not import Kafka or src/serve.
import { mkdirSync } from 'node:fs';
import type { ScoringState, Snapshot } from '../../core/types.ts';
import { ConfigError, TkgError } from '../../core/errors.ts';
import {
  selectRecurrencyParams,
  type RecurrencyParams,
  type RecurrencySelection,
} from '../../baselines/recurrency.ts';
import type { TermSpec } from '../../model/terms.ts';

export const liveModelKinds = ['nlsm-h', 'recurrency', 'nlsm', 'bas', 'nlsm-r', 'rules'] as const;
export type LiveModelKind = (typeof liveModelKinds)[number];

/** What one observed step produced (loss / ELBO only for models that optimise one). */
export interface ObserveResult {
  seconds: number;
  loss?: number;
  elbo?: number;
  /** Free-form numbers worth logging (e.g. the recurrency selection's validation MRR). */
  notes?: Record<string, number>;
}

/** What a model contributes to a bundle (src/train/stage.ts builds the ONNX graph and the bundle from it). */
export interface ScoringParts {
  /** The dense scoring state the graph computes (any base scale folded in): Z w + c of every pair. */
  dense: ScoringState;
  /** The sparse term the server adds (src/model/terms.ts). */
  terms: TermSpec;
  /** Training notes for the bundle (model kind, K, selected form, ...). */
  notes: Record<string, string>;
}

export interface LiveModel {
  readonly kind: LiveModelKind;
  /** Last step trained on (restored from the checkpoint), -Infinity before the first. */
  readonly lastStep: number;
  /** Train on a closed step (steps strictly increasing, after lastStep). */
  observe(snapshot: Snapshot): Promise<ObserveResult>;
  /** After a restart: a closed step <= lastStep the checkpoint already covers (rebuilds in-memory history). */
  replay(snapshot: Snapshot): Promise<void>;
  /** The scoring parts forecasting `step` for N entities / R relations (the vocabulary's sizes), stamped `version`. */
  scoringParts(
    step: number,
    version: number,
    numEntities: number,
    numRelations: number,
  ): ScoringParts;
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

/**
 * NLSM epochs per window update of the live nlsm-h and nlsm-r in `tkg run` and `tkg train` when --epochs is not given: the demo replays all of
 * YAGO (189 steps) in under 5 minutes on 2 cores (the trainer's own default, TKG_TRAIN_EPOCHS, is for offline runs).
 */
export const LIVE_HYBRID_EPOCHS_PER_WINDOW = 4;

/** The live NLSM epochs per window update of a model kind when --epochs is not given (undefined: the trainer's). */
export function liveEpochsPerWindow(kind: LiveModelKind): number | undefined {
  return kind === 'nlsm-h' || kind === 'nlsm-r' ? LIVE_HYBRID_EPOCHS_PER_WINDOW : undefined;
}

/** Default until the first selection: recent exact repeats first, then frequent objects (no tuning). */
export const initialRecurrencyParams: RecurrencyParams = { decay: 0.9, alpha: 0.1 };

export async function createLiveModel(options: LiveModelOptions): Promise<LiveModel> {
  mkdirSync(options.dir, { recursive: true });
  switch (options.kind) {
    case 'nlsm-h':
      return (await import('./hybrid.ts')).HybridLiveModel.open(options);
    case 'recurrency':
      return (await import('./recurrency.ts')).RecurrencyLiveModel.open(options);
    case 'nlsm':
    case 'bas':
      return (await import('./nlsm.ts')).NlsmLiveModel.open(options);
    case 'nlsm-r':
    case 'rules': {
      const { NlsmLiveModel } = await import('./nlsm.ts');
      return (await import('./rules.ts')).RuleLiveModel.open(options, () =>
        NlsmLiveModel.open({ ...options, kind: 'nlsm' }),
      );
    }
    default:
      throw new ConfigError(
        `--model ${JSON.stringify(options.kind)}: use one of ${liveModelKinds.join(', ')}`,
      );
  }
}

/** A trained model's scoring state stamped with version and step; its shape must match the vocabulary's. */
export function matchingState(
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

/** A zero latent state (K = 1, z = 0, Theta = 0): every dense score is 0, so a model's term is its whole score. */
export function zeroScoringState(
  numEntities: number,
  numRelations: number,
  step: number,
  version: number,
): ScoringState {
  return {
    numEntities,
    numRelations,
    K: 1,
    z: new Float32Array(numEntities),
    theta: new Float32Array(numRelations * 4),
    step,
    version,
  };
}

/** The live re-selection schedule of decay and alpha (defaults: every 25 steps, validated on the last 3). */
export function selectionSchedule(options: { selectEvery?: number; selectionSteps?: number }): {
  selectEvery: number;
  selectionSteps: number;
} {
  return { selectEvery: options.selectEvery ?? 25, selectionSteps: options.selectionSteps ?? 3 };
}

/**
 * Recurrency's live selection rule, shared by the recurrency and nlsm-h live models: first once 2 x selectionSteps
 * steps are seen, then every selectEvery steps; the last selectionSteps steps validate. Undefined when not due.
 */
export function liveSelection(
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

/** Throws unless `step` is covered by the checkpoint (a replay after a restart: step <= lastStep). */
export function assertReplayable(step: number, lastStep: number): void {
  if (step > lastStep)
    throw new TkgError(
      `replay of step ${step} after the checkpoint's step ${lastStep}; observe it instead`,
      { reason: 'out_of_order' },
    );
}

/** Throws unless `step` comes after the last observed one (steps strictly increase). */
export function assertObservable(step: number, lastStep: number): void {
  if (step <= lastStep)
    throw new TkgError(`step ${step} is not after the last observed step ${lastStep}`, {
      reason: 'out_of_order',
    });
}
