// One loaded bundle's scoring side: an onnxruntime-node session over the bundle's ONNX bytes, its metadata, vocabulary,
// term spec and calibration (read from the file itself: the graph's metadata carries them, src/model/scoring-graph.ts).
// Owns: session lifecycle (create, validate with a smoke query, release when drained) and the raw batch run; for a
// shard graph also its rows of Z; for a bundle served sharded (no session of its own) the same lifecycle around its
// ShardedScorer (src/serve/sharded-scorer.ts).
// Must not import src/train or tfjs (a replica needs only ONNX bytes); knows nothing about Kafka.
import * as ort from 'onnxruntime-node';
import { InvalidInputError, TkgError } from '../core/errors.ts';
import {
  type ScoringModelMetadata,
  SCORER_INPUTS,
  SCORER_OUTPUTS,
  SHARD_INPUTS,
  readScoringGraph,
  vocabularyHash,
} from '../model/scoring-graph.ts';
import { type ShardRange, shardRange } from '../model/shard-map.ts';
import type { ShardContext, ShardedScorer } from './sharded-scorer.ts';
import type { ScoreRequest, ScoreResult } from './scorer.ts';
import { decodeCalibration, uncalibrated, type Calibration } from '../model/calibration.ts';
import { decodeTermSpec, noTerm, type TermSpec } from '../model/terms.ts';

/** Names of the ids a bundle scores (dense ids: index = id), as the bundle lists them. */
export interface ModelNames {
  entities: readonly string[];
  relations: readonly string[];
}

/** Why a model could not be loaded; `reason` is a bounded metric label (tkg_models_rejected_total). */
export class ModelRejectedError extends TkgError {
  constructor(message: string, reason: 'corrupt' | 'incompatible' | 'stale', cause?: unknown) {
    super(message, { reason, retriable: false, cause });
  }
}

export interface LoadModelOptions {
  /** onnxruntime intra-op threads (0 = onnxruntime's default). */
  intraOpThreads?: number;
  /** Names the ids refer to; when given, their hash must match the model's metadata. */
  vocabulary?: ModelNames;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Int32-range integers as int64 (onnxruntime's index type). On little-endian machines the values go into the low
 * words of an Int32Array view (high words = sign): no BigInt per element, which dominated the term path.
 */
export function int64(values: ArrayLike<number>): BigInt64Array {
  const out = new BigInt64Array(values.length);
  if (littleEndian) {
    const words = new Int32Array(out.buffer);
    for (let i = 0; i < values.length; i++) {
      words[2 * i] = values[i];
      words[2 * i + 1] = values[i] < 0 ? -1 : 0;
    }
  } else {
    for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]);
  }
  return out;
}

/** One batch of queries in model ids. direction 0 = object query (s, r, ?), 1 = subject query (?, r, o). */
export interface ModelBatch {
  /** Anchor ids (unsharded graphs); a shard graph ignores them and reads anchorRows. */
  anchors: ArrayLike<number>; // [B]
  /** A shard graph's input: the anchors' rows [B * K] (ServingModel.rowsOf on the anchors' shards). */
  anchorRows?: Float32Array;
  relations: ArrayLike<number>; // [B]
  directions: ArrayLike<number>; // [B]
  /** Sparse additive history term: flat (row, entity) pairs [M * 2] (an int64 array is fed as is) and values [M]. */
  extraIndex?: ArrayLike<number> | BigInt64Array;
  extraValue?: Float32Array;
  k: number;
}

export interface ModelRunResult {
  k: number; // k after clamping to N (a shard: to its width)
  indices: BigInt64Array; // [B, k]  (a shard: local ids, entity - lo)
  scores: Float32Array; // [B, k]
  allScores?: Float32Array; // [B, width] when requested
}

export class ServingModel {
  readonly metadata: ScoringModelMetadata;
  readonly vocabulary: ModelNames | undefined;
  /** The sparse term the scorer adds, computed from the closed steps up to step - 1 (none for plain graphs). */
  readonly terms: TermSpec;
  /** Score -> probability. */
  readonly calibration: Calibration;
  /** Set for a shard graph: the entity range it scores (its ids are local: entity - lo). */
  readonly shard: ShardRange | undefined;
  /** A shard's rows of Z ([hi - lo, K]), which it supplies as other shards' anchor rows. */
  private readonly rows: Float32Array | undefined;
  /**
   * Set for a bundle served sharded (src/serve/sharded-scorer.ts loadShardedModel): its shards score it, and this
   * model has no session of its own.
   */
  readonly shards: ShardedScorer | undefined;
  private readonly session: ort.InferenceSession | undefined;
  private readonly entityIds: Map<string, number> | undefined;
  private readonly relationIds: Map<string, number> | undefined;
  private inFlight = 0;
  private holds = 0;
  private retired = false;
  private released = false;

  private constructor(
    session: ort.InferenceSession | ShardedScorer,
    metadata: ScoringModelMetadata,
    vocabulary: ModelNames | undefined,
    rows: Float32Array | undefined,
  ) {
    const sharded = 'scoreBatch' in session;
    this.session = sharded ? undefined : session;
    this.shards = sharded ? session : undefined;
    this.metadata = metadata;
    this.shard = metadata.shard && shardRange(metadata.shard.map, metadata.shard.index);
    this.rows = rows;
    this.vocabulary = vocabulary;
    this.terms = metadata.terms ? decodeTermSpec(metadata.terms) : noTerm;
    this.calibration = metadata.calibration
      ? decodeCalibration(metadata.calibration)
      : uncalibrated;
    this.entityIds = vocabulary && new Map(vocabulary.entities.map((name, id) => [name, id]));
    this.relationIds = vocabulary && new Map(vocabulary.relations.map((name, id) => [name, id]));
  }

  /** Load and validate ONNX bytes; throws ModelRejectedError (never a half-usable model). */
  static async load(bytes: Uint8Array, options: LoadModelOptions = {}): Promise<ServingModel> {
    let metadata: ScoringModelMetadata;
    let shardRows: Float32Array | undefined;
    try {
      // one decode: the metadata, and a shard graph's rows (in shared memory, for the shard threads)
      ({ metadata, rows: shardRows } = readScoringGraph(bytes, true));
    } catch (error) {
      throw new ModelRejectedError(`model rejected: ${(error as Error).message}`, 'corrupt', error);
    }
    const { vocabulary } = options;
    checkVocabulary(metadata, vocabulary);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: options.intraOpThreads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (error) {
      throw new ModelRejectedError(
        `model version ${metadata.version} rejected by onnxruntime: ${(error as Error).message}`,
        'corrupt',
        error,
      );
    }
    let model: ServingModel;
    try {
      model = new ServingModel(session, metadata, vocabulary, shardRows);
    } catch (error) {
      await session.release();
      throw new ModelRejectedError(
        `model version ${metadata.version} rejected: ${(error as Error).message}`,
        'incompatible',
        error,
      );
    }
    const missing = [
      ...(metadata.shard ? SHARD_INPUTS : SCORER_INPUTS).filter(
        (n) => !session.inputNames.includes(n),
      ),
      ...SCORER_OUTPUTS.filter((n) => !session.outputNames.includes(n)),
    ];
    try {
      if (missing.length > 0)
        throw new Error(
          `graph lacks ${missing.join(', ')}; export it with ${metadata.shard ? 'exportScoringShards' : 'exportScoringModel'}`,
        );
      // Smoke query: one object and one subject query must run and give finite scores.
      const anchor = model.shard?.lo ?? 0;
      const smoke = await model.run(
        {
          anchors: [anchor, anchor],
          anchorRows: model.shard ? model.rowsOf([anchor, anchor]) : undefined,
          relations: [0, 0],
          directions: [0, 1],
          k: 1,
        },
        true,
      );
      if (
        !smoke.allScores ||
        smoke.allScores.length !== 2 * model.width ||
        !smoke.allScores.every(Number.isFinite)
      ) {
        throw new Error(
          `smoke query gave ${smoke.allScores?.length ?? 0} scores (expected ${2 * model.width}, all finite)`,
        );
      }
    } catch (error) {
      await session.release();
      throw new ModelRejectedError(
        `model version ${metadata.version} rejected: ${(error as Error).message}`,
        'corrupt',
        error,
      );
    }
    return model;
  }

  /**
   * A model scored by its shards (started by src/serve/sharded-scorer.ts loadShardedModel from the unsharded graph's
   * metadata); the vocabulary is checked as load() checks it. Releasing it closes the shards.
   */
  static fromShards(
    shards: ShardedScorer,
    metadata: ScoringModelMetadata,
    vocabulary?: ModelNames,
  ): ServingModel {
    checkVocabulary(metadata, vocabulary);
    return new ServingModel(shards, metadata, vocabulary, undefined);
  }

  /** Score a batch through the model's shards (a sharded model only); counts as a run for release. */
  async runSharded(
    requests: readonly ScoreRequest[],
    context: ShardContext,
  ): Promise<ScoreResult[]> {
    if (this.released || !this.shards)
      throw new TkgError(
        `model version ${this.version} ${this.released ? 'was released; score with the current model' : 'is not sharded'}`,
        { reason: this.released ? 'released' : 'not_sharded', retriable: this.released },
      );
    this.inFlight++;
    try {
      return await this.shards.scoreBatch(requests, context);
    } finally {
      this.inFlight--;
      await this.releaseIfUnused();
    }
  }

  get version(): number {
    return this.metadata.version;
  }

  get numEntities(): number {
    return this.metadata.numEntities;
  }

  get numRelations(): number {
    return this.metadata.numRelations;
  }

  /** Entities one run scores: N, or a shard's hi - lo. */
  get width(): number {
    return this.shard ? this.shard.hi - this.shard.lo : this.metadata.numEntities;
  }

  /** A shard's rows of the given entities (each in [lo, hi)), as [length * K] for a shard's anchorRows input. */
  rowsOf(entities: ArrayLike<number>): Float32Array {
    const { rows, shard } = this;
    if (!rows || !shard)
      throw new TkgError('rowsOf() is for shard graphs; an unsharded graph gathers its anchors', {
        reason: 'not_a_shard',
      });
    return copyShardRows(rows, this.metadata.K, shard, entities);
  }

  /** A shard's rows of Z ([hi - lo, K], in a SharedArrayBuffer: other threads of the process may read them). */
  get sharedRows(): Float32Array | undefined {
    return this.rows;
  }

  /** The closed step its term is computed up to (step - 1), or undefined when it has no term. */
  get historyStep(): number | undefined {
    return this.terms.kind === 'none' ? undefined : this.metadata.step - 1;
  }

  entityId(name: string): number | undefined {
    return this.entityIds?.get(name);
  }

  relationId(name: string): number | undefined {
    return this.relationIds?.get(name);
  }

  entityName(id: number): string {
    return this.vocabulary?.entities[id] ?? String(id);
  }

  relationName(id: number): string {
    return this.vocabulary?.relations[id] ?? String(id);
  }

  /** Run one batch. Ids must already be validated (0 <= anchor < N, 0 <= relation < R, direction 0/1). */
  async run(batch: ModelBatch, withAllScores: boolean): Promise<ModelRunResult> {
    if (this.released)
      throw new TkgError(
        `model version ${this.version} was released; score with the current model`,
        { reason: 'released', retriable: true },
      );
    const session = this.session;
    if (!session)
      throw new TkgError(`model version ${this.version} is sharded: score it with runSharded()`, {
        reason: 'sharded',
      });
    const B = batch.anchors.length;
    const M = batch.extraValue?.length ?? 0;
    const K = this.metadata.K;
    if (this.shard && batch.anchorRows?.length !== B * K)
      throw new InvalidInputError(
        'anchorRows',
        `a shard graph needs B * K = ${B * K} anchor row values, got ${batch.anchorRows?.length ?? 0}`,
        'invalid_argument',
      );
    const feeds: Record<string, ort.Tensor> = {
      ...(this.shard
        ? { z_anchor: new ort.Tensor('float32', batch.anchorRows as Float32Array, [B, K]) }
        : { anchor: new ort.Tensor('int64', int64(batch.anchors), [B]) }),
      relation: new ort.Tensor('int64', int64(batch.relations), [B]),
      direction: new ort.Tensor('int64', int64(batch.directions), [B]),
      extra_index: new ort.Tensor(
        'int64',
        M > 0
          ? batch.extraIndex instanceof BigInt64Array
            ? batch.extraIndex
            : int64(batch.extraIndex ?? [])
          : new BigInt64Array(0),
        [M, 2],
      ),
      extra_value: new ort.Tensor(
        'float32',
        M > 0 ? (batch.extraValue as Float32Array) : new Float32Array(0),
        [M],
      ),
      k: new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.max(1, Math.floor(batch.k)))), [1]),
    };
    this.inFlight++;
    try {
      const out = await session.run(
        feeds,
        withAllScores ? ['indices', 'scores', 'all_scores'] : ['indices', 'scores'],
      );
      return {
        k: out.indices.dims[1] as number,
        indices: out.indices.data as BigInt64Array,
        scores: out.scores.data as Float32Array,
        allScores: withAllScores ? (out.all_scores.data as Float32Array) : undefined,
      };
    } finally {
      this.inFlight--;
      await this.releaseIfUnused();
    }
  }

  /** Keep the session alive after a swap (e.g. to evaluate the step this model forecast); pair with unhold(). */
  hold(): void {
    if (this.released)
      throw new TkgError(`model version ${this.version} was already released`, {
        reason: 'released',
      });
    this.holds++;
  }

  async unhold(): Promise<void> {
    this.holds = Math.max(0, this.holds - 1);
    await this.releaseIfUnused();
  }

  /** True once the session is released (no more runs possible). */
  get isReleased(): boolean {
    return this.released;
  }

  /** Mark as replaced: the session is released as soon as no run uses it and nobody holds it. */
  async retire(): Promise<void> {
    this.retired = true;
    await this.releaseIfUnused();
  }

  private async releaseIfUnused(): Promise<void> {
    if (this.retired && this.inFlight === 0 && this.holds === 0) await this.releaseSession();
  }

  private async releaseSession(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.shards) await this.shards.close();
    else await this.session?.release();
  }
}

/** The rows of `entities` (each in the shard's range) from a shard's rows [hi - lo, K], as [length * K]. */
export function copyShardRows(
  rows: Float32Array,
  K: number,
  shard: ShardRange,
  entities: ArrayLike<number>,
): Float32Array {
  const out = new Float32Array(entities.length * K);
  for (let i = 0; i < entities.length; i++) {
    const e = entities[i];
    if (!(e >= shard.lo && e < shard.hi))
      throw new InvalidInputError(
        'anchor',
        `entity ${e} is not in shard ${shard.index}'s range [${shard.lo}, ${shard.hi}); ask the shard that holds it`,
        'wrong_shard',
      );
    out.set(rows.subarray((e - shard.lo) * K, (e - shard.lo + 1) * K), i * K);
  }
  return out;
}

/** Throws ModelRejectedError ('incompatible') unless `vocabulary` (when given) is the one the model was exported with. */
function checkVocabulary(metadata: ScoringModelMetadata, vocabulary: ModelNames | undefined): void {
  if (!vocabulary) return;
  if (
    vocabulary.entities.length !== metadata.numEntities ||
    vocabulary.relations.length !== metadata.numRelations
  ) {
    throw new ModelRejectedError(
      `model version ${metadata.version} rejected: vocabulary has ${vocabulary.entities.length} entities / ${vocabulary.relations.length} relations ` +
        `but the model scores N = ${metadata.numEntities}, R = ${metadata.numRelations}; announce the vocabulary the model was exported with`,
      'incompatible',
    );
  }
  const hash = vocabularyHash(vocabulary.entities, vocabulary.relations);
  if (hash !== metadata.vocabularyHash) {
    throw new ModelRejectedError(
      `model version ${metadata.version} rejected: vocabulary hash ${hash} differs from the model's ${metadata.vocabularyHash}`,
      'incompatible',
    );
  }
}
