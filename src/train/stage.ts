// The train stage as one object: a closed step -> calibration samples (the step's facts scored by the bundle that
// forecast it) -> model update -> checkpoint -> the next step's bundle (ONNX graph, term spec, calibration,
// vocabulary; src/model/bundle.ts) -> announcement. Used by `tkg train` (fed by the snapshots topic) and `tkg run`.
// Owns: step bookkeeping, model versions (`<dir>/stage.json`), the calibration samples (`<dir>/calibration.bin`),
// bundle assembly, train metrics. Must not touch: model maths (src/train/live adapters), Kafka (the caller injects
// `announce`), serving.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NamedVocabulary, ScoringState, Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import { decodeContainer, encodeContainer, writeFileAtomic } from '../core/durable.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import type { ModelBundle } from '../model/bundle.ts';
import { encodeCalibration, uncalibrated } from '../model/calibration.ts';
import { exportScoringModel, vocabularyHash } from '../model/scoring-graph.ts';
import { TermInputs } from '../model/term-inputs.ts';
import { encodeTermSpec, type TermSpec } from '../model/terms.ts';
import { calibrationSamples, fitCalibration, type CalibrationSamples } from './calibration.ts';
import type { LiveModel } from './live/index.ts';

/** Versions are `versionBase * VERSION_STRIDE + STEP_OFFSET + forecastStep`: monotonic within a run. */
const VERSION_STRIDE = 1_000_000;
const STEP_OFFSET = 1000;
/** Closed steps whose calibration samples are kept (the calibration is fitted on them). */
export const CALIBRATION_STEPS = 5;

/**
 * Pure: the version of the model forecasting `forecastStep`. `versionBase` is the stage's first start in
 * epoch seconds, so a fresh state directory announcing on an old models topic still gets higher versions,
 * and a resumed run reproduces the versions of an uninterrupted one.
 */
export function modelVersion(versionBase: number, forecastStep: number): number {
  if (forecastStep < -STEP_OFFSET || forecastStep >= VERSION_STRIDE - STEP_OFFSET) {
    throw new TkgError(
      `step ${forecastStep} is outside the versionable range [-${STEP_OFFSET}, ${VERSION_STRIDE - STEP_OFFSET})`,
      { reason: 'step_range' },
    );
  }
  return versionBase * VERSION_STRIDE + STEP_OFFSET + forecastStep;
}

export interface TrainedStep {
  /** The closed step trained on. */
  step: number;
  forecastStep: number;
  version: number;
  trainSeconds: number;
  exportSeconds: number;
  loss?: number;
  elbo?: number;
  notes?: Record<string, number>;
  onnxBytes: number;
  bundle: ModelBundle;
}

export interface TrainerStageOptions {
  model: LiveModel;
  /** Announcement key on `<prefix>.models` (the name replicas serve). */
  modelName: string;
  /** Stage state directory (stage.json, calibration.bin). */
  dir: string;
  announce: (bundle: ModelBundle) => Promise<void>;
  metrics?: TkgMetrics;
  /** Set tkg_model_version / tkg_model_step to the announced model (a separate `tkg train` process). */
  setModelGauges?: boolean;
  /** Seed of the calibration's non-fact draws. */
  seed?: number;
}

/** Vocabulary names for ids below the given sizes (a followed vocabulary may already be ahead). */
function namesOf(
  vocabulary: NamedVocabulary,
  numEntities: number,
  numRelations: number,
): { entities: string[]; relations: string[] } {
  if (
    vocabulary.entityNames.length < numEntities ||
    vocabulary.relationNames.length < numRelations
  ) {
    throw new TkgError(
      `vocabulary has ${vocabulary.entityNames.length} entities / ${vocabulary.relationNames.length} relations but the snapshot uses ${numEntities} / ${numRelations}`,
      { reason: 'vocabulary_gap' },
    );
  }
  return {
    entities: vocabulary.entityNames.slice(0, numEntities),
    relations: vocabulary.relationNames.slice(0, numRelations),
  };
}

/** Pure: the calibration samples as bytes (TKGW container) and back. */
export function encodeSamples(samples: readonly CalibrationSamples[]): Buffer {
  const blocks: Int32Array[] = [];
  for (const s of samples) {
    const bits = (x: Float32Array) => new Int32Array(x.buffer, x.byteOffset, x.length);
    blocks.push(s.slot, bits(s.score), Int32Array.from(s.label), bits(s.weight));
  }
  return encodeContainer(
    {
      kind: 'calibration-samples',
      steps: samples.map((s) => ({ step: s.step, facts: s.facts, numRelations: s.numRelations })),
    },
    blocks,
  );
}

export function decodeSamples(bytes: Uint8Array, where: string): CalibrationSamples[] {
  const { header, blocks } = decodeContainer(bytes, where);
  const steps = header.steps as Array<{ step: number; facts: number; numRelations: number }>;
  if (header.kind !== 'calibration-samples' || blocks.length !== 4 * steps.length)
    throw new TkgError(`${where} is not a calibration sample file; delete it`, {
      reason: 'corrupt_checkpoint',
    });
  return steps.map((s, i) => ({
    ...s,
    slot: blocks[4 * i],
    score: new Float32Array(blocks[4 * i + 1].buffer),
    label: Uint8Array.from(blocks[4 * i + 2]),
    weight: new Float32Array(blocks[4 * i + 3].buffer),
  }));
}

export class TrainerStage {
  readonly versionBase: number;
  private readonly options: TrainerStageOptions;
  private readonly terms = new TermInputs();
  private samples: CalibrationSamples[] = [];
  /** The last bundle's dense state and term (it forecasts the next closed step). */
  private previous: { step: number; dense: ScoringState; terms: TermSpec } | undefined;
  private lastSizes: { numEntities: number; numRelations: number } | undefined;

  constructor(options: TrainerStageOptions) {
    this.options = options;
    mkdirSync(options.dir, { recursive: true });
    const path = join(options.dir, 'stage.json');
    if (existsSync(path)) {
      const stage = JSON.parse(readFileSync(path, 'utf8')) as {
        versionBase?: number;
        modelName?: string;
        kind?: string;
      };
      if (stage.kind !== undefined && stage.kind !== options.model.kind) {
        throw new TkgError(
          `${options.dir} holds a ${stage.kind} model but --model ${options.model.kind} was asked for; use the same --model or another --state-dir`,
          { reason: 'config' },
        );
      }
      this.versionBase = stage.versionBase as number;
    } else {
      this.versionBase = Math.floor(Date.now() / 1000);
      writeFileAtomic(
        path,
        Buffer.from(
          JSON.stringify({
            versionBase: this.versionBase,
            kind: options.model.kind,
            modelName: options.modelName,
          }),
        ),
      );
    }
    const samplesPath = this.samplesPath;
    if (existsSync(samplesPath)) {
      // written before the model's checkpoint: drop samples of steps the checkpoint does not cover
      this.samples = decodeSamples(readFileSync(samplesPath), samplesPath).filter(
        (s) => s.step <= this.lastStep,
      );
    }
  }

  private get samplesPath(): string {
    return join(this.options.dir, 'calibration.bin');
  }

  /** Last step trained on (from the model's checkpoint after a restart). */
  get lastStep(): number {
    return this.options.model.lastStep;
  }

  get model(): LiveModel {
    return this.options.model;
  }

  /**
   * After a restart: hand the model the closed steps its checkpoint covers (steps <= lastStep, in order) so it
   * can rebuild in-memory history, then re-announce the model forecasting lastStep + 1 (the crash may have
   * come between the checkpoint and the announcement; an identical version is ignored by replicas).
   */
  async resume(
    covered: Iterable<Snapshot>,
    vocabulary: NamedVocabulary,
  ): Promise<TrainedStep | undefined> {
    let last: Snapshot | undefined;
    for (const snapshot of covered) {
      if (snapshot.step > this.lastStep) break;
      await this.options.model.replay(snapshot);
      this.terms.add(snapshot);
      last = snapshot;
    }
    if (!last) return undefined;
    if (last.step !== this.lastStep) {
      throw new TkgError(
        `the model's checkpoint is at step ${this.lastStep} but the snapshots end at ${last.step}: the state directory is incomplete; delete it to start over`,
        {
          reason: 'corrupt_checkpoint',
        },
      );
    }
    this.lastSizes = { numEntities: last.numEntities, numRelations: last.numRelations };
    return this.exportAndAnnounce(last, { seconds: 0 }, vocabulary);
  }

  /** Train on one closed step (ignored when not after lastStep), checkpoint, build and announce the next bundle. */
  async onSnapshot(
    snapshot: Snapshot,
    vocabulary: NamedVocabulary,
  ): Promise<TrainedStep | undefined> {
    if (snapshot.step <= this.lastStep) return undefined;
    if (snapshot.triples.length === 0 && snapshot.numEntities === 0) return undefined; // nothing to learn or score yet
    // 1. the step's facts scored by the bundle that forecast it (before anything learns the step)
    const previous = this.previous;
    if (previous && previous.step === snapshot.step && snapshot.triples.length > 0) {
      this.samples.push(
        calibrationSamples(snapshot, {
          dense: previous.dense,
          terms: this.terms.stateAt(previous.terms, snapshot.step - 1),
          seed: this.options.seed ?? 42,
        }),
      );
      this.samples = this.samples.slice(-CALIBRATION_STEPS);
      writeFileAtomic(this.samplesPath, encodeSamples(this.samples));
    }
    this.terms.add(snapshot);
    // 2. train and commit
    const result = await this.options.model.observe(snapshot);
    await this.options.model.checkpoint();
    this.options.metrics?.trainStepSeconds.observe(result.seconds);
    if (result.elbo !== undefined && Number.isFinite(result.elbo))
      this.options.metrics?.trainElbo.set(result.elbo);
    this.lastSizes = { numEntities: snapshot.numEntities, numRelations: snapshot.numRelations };
    return this.exportAndAnnounce(snapshot, result, vocabulary);
  }

  private async exportAndAnnounce(
    snapshot: Snapshot,
    result: { seconds: number; loss?: number; elbo?: number; notes?: Record<string, number> },
    vocabulary: NamedVocabulary,
  ): Promise<TrainedStep> {
    const started = performance.now();
    const { numEntities, numRelations } = this.lastSizes ?? snapshot;
    const names = namesOf(vocabulary, numEntities, numRelations);
    const hash = vocabularyHash(names.entities, names.relations);
    const forecastStep = snapshot.step + 1;
    const version = modelVersion(this.versionBase, forecastStep);
    const parts = this.options.model.scoringParts(forecastStep, version, numEntities, numRelations);
    const calibration = fitCalibration(this.samples, numRelations) ?? uncalibrated;
    const onnx = exportScoringModel(parts.dense, {
      vocabularyHash: hash,
      modelName: this.options.model.kind,
      terms: encodeTermSpec(parts.terms),
      calibration: encodeCalibration(calibration),
    });
    const notes: Record<string, string> = {
      ...parts.notes,
      trainSeconds: result.seconds.toFixed(3),
    };
    if (result.elbo !== undefined) notes.elbo = String(result.elbo);
    const bundle: ModelBundle = {
      name: this.options.modelName,
      kind: this.options.model.kind,
      version,
      step: forecastStep,
      trainedStep: snapshot.step,
      createdAt: new Date().toISOString(),
      entities: names.entities,
      relations: names.relations,
      vocabularyHash: hash,
      onnx,
      location: null,
      terms: parts.terms,
      calibration,
      notes,
    };
    this.previous = { step: forecastStep, dense: parts.dense, terms: parts.terms };
    const trained: TrainedStep = {
      step: snapshot.step,
      forecastStep,
      version,
      trainSeconds: result.seconds,
      exportSeconds: (performance.now() - started) / 1000,
      loss: result.loss,
      elbo: result.elbo,
      notes: result.notes,
      onnxBytes: onnx.length,
      bundle,
    };
    await this.options.announce(bundle);
    if (this.options.setModelGauges) {
      this.options.metrics?.modelVersion.set(version);
      this.options.metrics?.modelStep.set(forecastStep);
    }
    return trained;
  }
}
