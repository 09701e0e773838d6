// The train stage as one object: a closed step -> model update -> checkpoint -> ONNX export -> announcement.
// Used by `tkg train` (fed by the snapshots topic or a state directory) and by `tkg run` (fed in-process).
// Owns: step bookkeeping, model versions (`<dir>/stage.json`), announcement assembly, train metrics.
// Must not touch: model maths (live-models.ts adapters / src/train / src/baselines), Kafka clients (the
// caller injects `announce`), the scorer.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NamedVocabulary, Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { vocabularyHash } from '../model/scoring-graph.ts';
import type { ModelAnnouncement } from '../model/bundle.ts';
import { writeFileAtomic } from '../core/durable.ts';
import { historyParamsToMetadata, type HistoryTermParams } from '../model/terms.ts';
import type { LiveModel } from './live-models.ts';

/** Versions are `versionBase * VERSION_STRIDE + STEP_OFFSET + forecastStep`: monotonic within a run. */
const VERSION_STRIDE = 1_000_000;
const STEP_OFFSET = 1000;

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
  history?: HistoryTermParams;
  announcement: ModelAnnouncement;
}

export interface TrainerStageOptions {
  model: LiveModel;
  /** Announcement key on `<prefix>.models` (the name replicas serve). */
  modelName: string;
  /** Stage state directory (stage.json). */
  dir: string;
  announce: (announcement: ModelAnnouncement) => Promise<void>;
  metrics?: TkgMetrics;
  /** Set tkg_model_version / tkg_model_step to the announced model (a separate `tkg train` process). */
  setModelGauges?: boolean;
  /** Called right before a model is announced (e.g. to switch a co-located server's history term). */
  beforeAnnounce?: (trained: TrainedStep) => void | Promise<void>;
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

export class TrainerStage {
  readonly versionBase: number;
  private readonly options: TrainerStageOptions;
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

  /** Train on one closed step (ignored when not after lastStep), checkpoint, export and announce. */
  async onSnapshot(
    snapshot: Snapshot,
    vocabulary: NamedVocabulary,
  ): Promise<TrainedStep | undefined> {
    if (snapshot.step <= this.lastStep) return undefined;
    if (snapshot.triples.length === 0 && snapshot.numEntities === 0) return undefined; // nothing to learn or score yet
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
    const exported = this.options.model.exportScorer(
      forecastStep,
      version,
      hash,
      numEntities,
      numRelations,
    );
    const metadata: Record<string, string> = {
      ...exported.metadata,
      trainedStep: String(snapshot.step),
      trainSeconds: result.seconds.toFixed(3),
    };
    if (result.elbo !== undefined) metadata.elbo = String(result.elbo);
    if (exported.history) Object.assign(metadata, historyParamsToMetadata(exported.history));
    const announcement: ModelAnnouncement = {
      name: this.options.modelName,
      version,
      step: forecastStep,
      createdAt: new Date().toISOString(),
      vocabularyHash: hash,
      onnx: exported.onnx,
      location: null,
      entities: names.entities,
      relations: names.relations,
      metadata,
    };
    const trained: TrainedStep = {
      step: snapshot.step,
      forecastStep,
      version,
      trainSeconds: result.seconds,
      exportSeconds: (performance.now() - started) / 1000,
      loss: result.loss,
      elbo: result.elbo,
      notes: result.notes,
      onnxBytes: exported.onnx.length,
      history: exported.history,
      announcement,
    };
    await this.options.beforeAnnounce?.(trained);
    await this.options.announce(announcement);
    if (this.options.setModelGauges) {
      this.options.metrics?.modelVersion.set(version);
      this.options.metrics?.modelStep.set(forecastStep);
    }
    return trained;
  }
}
