// The trainer stage's public face: createNlsmForecaster() builds an NLSM (or BAS) forecaster that
// trains on a sliding window of snapshots and scores TKG queries / link probabilities.
// Owns: option defaults (from src/config), backend choice, checkpoint-on-schedule, NaN-restore
// accounting. Must not import kafkajs, src/kafka, src/window or src/serve; snapshots come through
// observe(), metrics through callbacks (src/cli wires them to prom-client).
import type {
  Direction,
  LinkForecaster,
  ScoringState,
  Snapshot,
  TkgForecaster,
} from '../../core/types.ts';
import { ConfigError } from '../../core/errors.ts';
import { loadConfig } from '../../config/config.ts';
import { ensureBackend, type TrainBackend } from './backend.ts';
import { WindowTrainer } from './trainer.ts';
import type { TrainerSettings, TrainerTestHooks, UpdateReport } from './parameters.ts';
import { hasCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import type { DrawThread } from './draw-worker.ts';

export type { TrainerSettings, UpdateReport } from './parameters.ts';
export { WindowTrainer } from './trainer.ts';

export interface NlsmOptions {
  model: 'nlsm' | 'bas';
  numEntities: number;
  numRelations: number;
  directed: boolean;
  K?: number;
  windowSize?: number; // defaults from src/config/config.ts (64, 5)
  epochsPerWindow?: number;
  seed?: number;
  learningRate?: number;
  checkpointDir?: string; // where checkpoints go (resume when present)
  onProgress?: (p: { step: number; loss: number; elbo: number; seconds: number }) => void;
  // --- additions (all default from src/config/config.ts) ---
  minEpochsPerWindow?: number;
  convergenceTolerance?: number;
  negativesPerPositive?: number;
  uniformNegativeFraction?: number;
  initScale?: number;
  /** Log-variance GRU frame scale: logVar = log(s^2) + logVarScale * h (default from config, 1). */
  logVarScale?: number;
  /** Learning-rate multiplier of entity (psi) rows (default from config). */
  entityLrScale?: number;
  sPsi?: number;
  sTheta?: number;
  sigmaPsi?: number;
  sigmaTheta?: number;
  /** Window updates between automatic checkpoints when checkpointDir is set. */
  checkpointEvery?: number;
  backend?: TrainBackend;
  /** What computes a window update's gradient (default from config: 'onnx'). */
  engine?: 'onnx' | 'tfjs';
  /** Where the 'onnx' engine's epochs are drawn (draw-worker.ts; default 'worker'; the same numbers either way). */
  drawThread?: DrawThread;
  /** Called after a NaN loss restored the last good state (count so far, step). Metric: tkg_train_nan_restores_total. */
  onNanRestore?: (count: number, step: number) => void;
  /** Full per-update report (epochs, universe size, whether a NaN was restored). */
  onUpdate?: (report: UpdateReport) => void;
  /** Fault injection for tests only. */
  testHooks?: TrainerTestHooks;
}

export interface NlsmForecaster extends TkgForecaster, LinkForecaster {
  scoringState(step: number): ScoringState; // z and Theta evolved to `step` (plain arrays for the ONNX exporter)
  checkpoint(): Promise<void>;
  dispose(): void;
  /** NaN losses that restored the last good state. */
  readonly nanRestores: number;
  /** The last observed step (-Infinity before the first). */
  readonly lastObservedStep: number;
  /** The trainer itself (window contents, parameters) for inspection and tests. */
  readonly trainer: WindowTrainer;
  /** The tfjs backend in use. */
  readonly backend: TrainBackend;
  describe(): Record<string, unknown>;
}

/** Resolves options against the configuration defaults (environment variables apply). */
export function resolveTrainerSettings(
  options: NlsmOptions,
  env: NodeJS.ProcessEnv = process.env,
): TrainerSettings {
  const config = loadConfig(
    {
      K: options.K,
      windowSize: options.windowSize,
      learningRate: options.learningRate,
      seed: options.seed,
      sPsi: options.sPsi,
      sTheta: options.sTheta,
      sigmaPsi: options.sigmaPsi,
      sigmaTheta: options.sigmaTheta,
      trainEpochsPerWindow: options.epochsPerWindow,
      trainMinEpochsPerWindow: options.minEpochsPerWindow,
      trainConvergenceTolerance: options.convergenceTolerance,
      trainNegativesPerPositive: options.negativesPerPositive,
      trainUniformNegativeFraction: options.uniformNegativeFraction,
      trainInitScale: options.initScale,
      trainLogVarScale: options.logVarScale,
      trainEntityLrScale: options.entityLrScale,
      trainEngine: options.engine,
    },
    env,
  );
  if (options.model !== 'nlsm' && options.model !== 'bas') {
    throw new ConfigError(`model ${JSON.stringify(options.model)}: expected 'nlsm' or 'bas'`);
  }
  return {
    model: options.model,
    directed: options.directed,
    K: config.K,
    windowSize: config.windowSize,
    epochsPerWindow: config.trainEpochsPerWindow,
    minEpochsPerWindow: Math.min(config.trainMinEpochsPerWindow, config.trainEpochsPerWindow),
    convergenceTolerance: config.trainConvergenceTolerance,
    learningRate: config.learningRate,
    sPsi: config.sPsi,
    sTheta: config.sTheta,
    sigmaPsi: config.sigmaPsi,
    sigmaTheta: config.sigmaTheta,
    negativesPerPositive: config.trainNegativesPerPositive,
    uniformNegativeFraction: config.trainUniformNegativeFraction,
    initScale: config.trainInitScale,
    logVarScale: config.trainLogVarScale,
    entityLrScale: config.trainEntityLrScale,
    seed: config.seed,
    engine: config.trainEngine,
    drawThread: options.drawThread,
  };
}

export async function createNlsmForecaster(options: NlsmOptions): Promise<NlsmForecaster> {
  const settings = resolveTrainerSettings(options);
  const config = loadConfig({
    trainCheckpointEvery: options.checkpointEvery,
    trainBackend: options.backend,
  });
  const backend = await ensureBackend(config.trainBackend);
  const trainer = new WindowTrainer(settings, options.numEntities, options.numRelations);
  trainer.onNanRestore = options.onNanRestore;
  if (options.testHooks) trainer.testHooks = options.testHooks;
  const checkpointDir = options.checkpointDir;
  if (checkpointDir && hasCheckpoint(checkpointDir)) loadCheckpoint(trainer, checkpointDir);
  const name = settings.model;

  const forecaster: NlsmForecaster = {
    name,
    backend,
    trainer,
    get nanRestores() {
      return trainer.nanRestores;
    },
    get lastObservedStep() {
      return trainer.lastObserved;
    },
    async observe(snapshot: Snapshot): Promise<void> {
      const report = await trainer.observe(snapshot);
      if (!report) return;
      options.onUpdate?.(report);
      options.onProgress?.({
        step: report.step,
        loss: report.loss,
        elbo: report.elbo,
        seconds: report.seconds,
      });
      if (checkpointDir && trainer.updates % config.trainCheckpointEvery === 0)
        saveCheckpoint(trainer, checkpointDir);
    },
    score(
      step: number,
      direction: Direction,
      anchors: Int32Array,
      relations: Int32Array,
      numEntities: number,
    ) {
      return trainer.score(step, direction, anchors, relations, numEntities);
    },
    linkProbability(step: number, sources: Int32Array, targets: Int32Array) {
      return trainer.linkProbability(step, sources, targets);
    },
    scoringState(step: number) {
      return trainer.scoringState(step);
    },
    async checkpoint() {
      if (!checkpointDir) {
        throw new ConfigError('checkpoint(): no checkpointDir was given to createNlsmForecaster');
      }
      saveCheckpoint(trainer, checkpointDir);
    },
    dispose() {
      trainer.dispose();
    },
    describe() {
      return { ...settings, backend, updates: trainer.updates, nanRestores: trainer.nanRestores };
    },
  };
  return forecaster;
}
