// Entity-sharded scoring (issue 17, item 3): the bundle's shard map splits the entities into contiguous ranges, each
// held by one shard graph (src/model/scoring-graph.ts exportScoringShards). A batch fans out in three exchanges:
//   1. rows:   the anchors' shards supply the anchors' rows of Z (K floats per query);
//   2. score:  every shard scores its range (the same graph nodes as the unsharded scorer), adds the history term
//              entries that fall in its range, skips nothing, returns its top-(k + filtered in range) and the answer's
//              score when the answer is one of its entities;
//   3. counts: every shard counts its entities above / equal to the answer's score, minus its filtered ones.
// The front merges the top-k lists (score, then entity id: the unsharded TopK's order) and sums the counts, so the
// answers equal the unsharded Scorer's (test/serve/sharded-scorer.test.ts). Filters and terms are cut by range
// (sliceSorted) before they reach a shard: each shard sees only its entities' entries.
// Owns: the fan-out, the merge, the ScoringShard contract with its in-process implementation (LocalShard), and
// loading a bundle as shards. Transports of a shard (worker threads: src/serve/shard-worker.ts) implement
// ScoringShard. Must not import src/train, tfjs or Kafka.
import { TkgError } from '../core/errors.ts';
import {
  addFilteredCounts,
  type FilteredCounts,
  ranksOfCounts,
  sliceFilteredCounts,
} from '../eval/rank.ts';
import {
  type Calibration,
  decodeCalibration,
  probabilityOf,
  uncalibrated,
} from '../model/calibration.ts';
import { cutScoringModel, type ScoringModelMetadata } from '../model/scoring-graph.ts';
import { evenShardMap, type ShardRange, shardOf, sliceSorted } from '../model/shard-map.ts';
import type { TermInputs } from '../model/term-inputs.ts';
import { decodeTermSpec, noTerm, type TermSpec } from '../model/terms.ts';
import { FilterIndex } from './filters.ts';
import { int64, type LoadModelOptions, ModelRejectedError, ServingModel } from './model.ts';
import type { ShardWorker } from './shard-worker.ts';
import {
  addEvidence,
  binaryContains,
  Scorer,
  type ScoreRequest,
  type ScoreResult,
  termStateFor,
} from './scorer.ts';

/** Exchange 2: one batch for one shard. Term entries are the shard's own, as (row, entity - lo) pairs. */
export interface ShardScoreRequest {
  /** Batch id, for exchange 3 (the shard keeps this batch's scores until counts() or release()). */
  id: number;
  anchorRows: Float32Array; // [B * K]
  relations: Int32Array; // [B]
  directions: Int32Array; // [B]
  extraIndex?: Int32Array; // [M * 2] local
  extraValue?: Float32Array; // [M]
  /** Top-k size of the shard's list (clamped to its width). */
  k: number;
  /** Per row, the answer to rank (global id), or -1. A shard keeps the batch's scores when any row has one. */
  answers: Int32Array; // [B]
}

export interface ShardScoreResult {
  k: number;
  /** Top-k global entity ids [B * k], best first. */
  entities: Int32Array;
  scores: Float32Array; // [B * k]
  /** Per row, the answer's score when the answer is in this shard's range, else NaN. */
  answerScores: Float32Array; // [B]
}

/** Exchange 3: rank counts of some rows' answers against this shard's entities. */
export interface ShardCountsRequest {
  id: number;
  rows: Int32Array;
  answers: Int32Array;
  answerScores: Float32Array;
  /** Per listed row, this shard's part of the static and time-aware filters (sorted global ids). */
  staticExcluded: Array<Int32Array | undefined>;
  timeAwareExcluded: Array<Int32Array | undefined>;
}

/** One shard of a sharded bundle, wherever it runs. */
export interface ScoringShard {
  readonly range: ShardRange;
  /** The shard graph's metadata (version, step, N, R, K, terms, calibration, shard map). */
  readonly metadata: ScoringModelMetadata;
  /** Exchange 1: the rows of the given entities (all in this shard's range), [length * K]. */
  rowsOf(entities: Int32Array): Promise<Float32Array>;
  score(request: ShardScoreRequest): Promise<ShardScoreResult>;
  /** Counts of exchange 3; drops the batch's kept scores. */
  counts(request: ShardCountsRequest): Promise<FilteredCounts[]>;
  /** Drop a batch's kept scores without counting (e.g. after a failure elsewhere). */
  release(id: number): Promise<void>;
  close(): Promise<void>;
}

/** A shard in this process: one ServingModel over a shard graph. */
export class LocalShard implements ScoringShard {
  readonly range: ShardRange;
  private readonly kept = new Map<number, Float32Array>();

  constructor(private readonly model: ServingModel) {
    if (!model.shard)
      throw new TkgError(
        `model version ${model.version} is not a shard graph; export it with exportScoringShards`,
        { reason: 'not_a_shard' },
      );
    this.range = model.shard;
  }

  get metadata(): ScoringModelMetadata {
    return this.model.metadata;
  }

  /** The shard's rows of Z (shared memory: a worker hands them to its proxy once, at load). */
  get sharedRows(): Float32Array | undefined {
    return this.model.sharedRows;
  }

  async rowsOf(entities: Int32Array): Promise<Float32Array> {
    return this.model.rowsOf(entities);
  }

  async score(request: ShardScoreRequest): Promise<ShardScoreResult> {
    const { lo, hi } = this.range;
    const B = request.relations.length;
    const wantAll = request.answers.some((a) => a >= 0);
    const M = request.extraValue?.length ?? 0;
    const out = await this.model.run(
      {
        anchors: new Int32Array(B),
        anchorRows: request.anchorRows,
        relations: request.relations,
        directions: request.directions,
        extraIndex: M > 0 ? int64(request.extraIndex as Int32Array) : undefined,
        extraValue: M > 0 ? request.extraValue : undefined,
        k: request.k,
      },
      wantAll,
    );
    const entities = new Int32Array(B * out.k);
    for (let i = 0; i < entities.length; i++) entities[i] = Number(out.indices[i]) + lo;
    const answerScores = new Float32Array(B).fill(Number.NaN);
    if (out.allScores) {
      const width = hi - lo;
      for (let b = 0; b < B; b++) {
        const a = request.answers[b];
        if (a >= lo && a < hi) answerScores[b] = out.allScores[b * width + a - lo];
      }
      this.kept.set(request.id, out.allScores);
    }
    return { k: out.k, entities, scores: out.scores, answerScores };
  }

  async counts(request: ShardCountsRequest): Promise<FilteredCounts[]> {
    const all = this.kept.get(request.id);
    this.kept.delete(request.id);
    if (!all)
      throw new TkgError(`shard ${this.range.index} kept no scores for batch ${request.id}`, {
        reason: 'no_batch',
      });
    const { lo, hi } = this.range;
    const width = hi - lo;
    return Array.from(request.rows, (row, i) =>
      sliceFilteredCounts(
        all,
        row * width,
        width,
        lo,
        request.answers[i],
        request.answerScores[i],
        request.staticExcluded[i],
        request.timeAwareExcluded[i],
      ),
    );
  }

  async release(id: number): Promise<void> {
    this.kept.delete(id);
  }

  async close(): Promise<void> {
    this.kept.clear();
    await this.model.retire();
  }
}

/** What a batch is ranked and scored against besides the graph (the Scorer's filters and closed steps). */
export interface ShardContext {
  filters: FilterIndex;
  /** The closed snapshots the bundle's term is computed from (required when it has one). */
  terms?: TermInputs;
  /** Score the graph alone, without the bundle's term. */
  denseOnly?: boolean;
}

/** Scores batches across the shards of one sharded bundle version. */
export class ShardedScorer {
  private readonly termSpec: TermSpec;
  private readonly calibration: Calibration;
  private readonly metadata: ScoringModelMetadata;
  private nextId = 0;

  constructor(private readonly shards: readonly ScoringShard[]) {
    const first = shards[0]?.metadata;
    const map = first?.shard?.map;
    if (!first || !map)
      throw new TkgError('a sharded scorer needs the shards of one sharded bundle', {
        reason: 'no_shards',
      });
    const count = map.bounds.length - 1;
    shards.forEach((shard, i) => {
      const m = shard.metadata;
      if (
        m.version !== first.version ||
        m.vocabularyHash !== first.vocabularyHash ||
        JSON.stringify(m.shard?.map) !== JSON.stringify(map) ||
        shard.range.index !== i
      )
        throw new TkgError(
          `shard ${i} (index ${shard.range.index}, version ${m.version}) is not shard ${i} of version ${first.version}'s map; pass every shard of one export, in order`,
          { reason: 'incompatible' },
        );
    });
    if (shards.length !== count)
      throw new TkgError(`the shard map has ${count} shards, got ${shards.length}`, {
        reason: 'incompatible',
      });
    this.metadata = first;
    this.termSpec = first.terms ? decodeTermSpec(first.terms) : noTerm;
    this.calibration = first.calibration ? decodeCalibration(first.calibration) : uncalibrated;
  }

  /** Score a batch (validated as the unsharded Scorer validates, answers identical to it). */
  async scoreBatch(
    requests: readonly ScoreRequest[],
    context: ShardContext,
  ): Promise<ScoreResult[]> {
    const { terms } = context;
    const meta = this.metadata;
    for (const request of requests) Scorer.validate(request, meta);
    const B = requests.length;
    const K = meta.K;
    const step = meta.step;
    const map = meta.shard?.map as { bounds: readonly number[] };
    const historyStep = this.termSpec.kind === 'none' || context.denseOnly ? undefined : step - 1;
    const termState = termStateFor(terms, this.termSpec, historyStep, meta.version);

    // Exchange 1: the anchors' rows, each from its shard.
    const anchorRows = new Float32Array(B * K);
    const owner = requests.map((q) => shardOf(map, q.anchor));
    await Promise.all(
      this.shards.map(async (shard, s) => {
        const rows = requests.flatMap((_, b) => (owner[b] === s ? [b] : []));
        if (rows.length === 0) return;
        const values = await shard.rowsOf(Int32Array.from(rows, (b) => requests[b].anchor));
        rows.forEach((b, i) => anchorRows.set(values.subarray(i * K, (i + 1) * K), b * K));
      }),
    );

    const id = this.nextId++;
    try {
      return await this.fanOut(id, requests, context, { termState, historyStep, anchorRows });
    } catch (error) {
      // a shard failed: the others drop what they kept for this batch
      await Promise.all(this.shards.map((shard) => shard.release(id).catch(() => undefined)));
      throw error;
    }
  }

  /** Exchanges 2 and 3 and the merge of one batch. */
  private async fanOut(
    id: number,
    requests: readonly ScoreRequest[],
    context: ShardContext,
    prepared: {
      termState: ReturnType<typeof termStateFor>;
      historyStep: number | undefined;
      anchorRows: Float32Array;
    },
  ): Promise<ScoreResult[]> {
    const { filters } = context;
    const { termState, historyStep, anchorRows } = prepared;
    const meta = this.metadata;
    const B = requests.length;
    const N = meta.numEntities;
    const step = meta.step;
    const map = meta.shard?.map as { bounds: readonly number[] };
    const S = this.shards.length;
    const relations = Int32Array.from(requests, (q) => q.relation);
    const directions = Int32Array.from(requests, (q) => (q.direction === 'object' ? 0 : 1));
    const answers = Int32Array.from(requests, (q) => q.answer ?? -1);
    const excluded = requests.map((q) =>
      filters.excluded(q.filter ?? 'raw', q.direction, q.anchor, q.relation, step),
    );
    const termRows = requests.map((q) => termState?.terms(q.direction, q.anchor, q.relation));

    // Exchange 2: every shard scores its range.
    const parts = await Promise.all(
      this.shards.map((shard) => {
        const { lo, hi } = shard.range;
        let kNeeded = 1;
        const pairs: number[] = [];
        const values: number[] = [];
        for (let b = 0; b < B; b++) {
          const mine = sliceSorted(excluded[b], lo, hi)?.length ?? 0;
          kNeeded = Math.max(kNeeded, Math.min(hi - lo, requests[b].k + mine));
          const terms = termRows[b];
          if (!terms) continue;
          for (let i = 0; i < terms.entities.length; i++) {
            const e = terms.entities[i];
            if (e < lo || e >= hi) continue; // another shard's (or an entity this model has no row for)
            pairs.push(b, e - lo);
            values.push(terms.values[i]);
          }
        }
        return shard.score({
          id,
          anchorRows,
          relations,
          directions,
          extraIndex: Int32Array.from(pairs),
          extraValue: Float32Array.from(values),
          k: kNeeded,
          answers,
        });
      }),
    );

    // Exchange 3: rank counts for the rows with an answer.
    const ranked = requests.flatMap((q, b) => (q.answer !== undefined ? [b] : []));
    let counts: FilteredCounts[] | undefined;
    if (ranked.length > 0) {
      const answerScores = Float32Array.from(ranked, (b) => {
        const holder = shardOf(map, answers[b]);
        return parts[holder].answerScores[b];
      });
      const filterOf = (mode: 'static' | 'timeAware', b: number) =>
        filters.excluded(
          mode,
          requests[b].direction,
          requests[b].anchor,
          requests[b].relation,
          step,
        );
      const perShard = await Promise.all(
        this.shards.map((shard) => {
          const { lo, hi } = shard.range;
          return shard.counts({
            id,
            rows: Int32Array.from(ranked),
            answers: Int32Array.from(ranked, (b) => answers[b]),
            answerScores,
            staticExcluded: ranked.map((b) => sliceSorted(filterOf('static', b), lo, hi)),
            timeAwareExcluded: ranked.map((b) => sliceSorted(filterOf('timeAware', b), lo, hi)),
          });
        }),
      );
      counts = ranked.map((_, i) => addFilteredCounts(perShard.map((p) => p[i])));
    }

    // Merge: the unsharded TopK's order is score descending, then entity id ascending.
    const results: ScoreResult[] = new Array(B);
    let rankedIndex = 0;
    for (let b = 0; b < B; b++) {
      const q = requests[b];
      const k = Math.min(q.k, N);
      const skip = excluded[b];
      const candidates: Array<{ entity: number; score: number }> = [];
      for (let s = 0; s < S; s++) {
        const part = parts[s];
        for (let j = 0; j < part.k; j++) {
          const entity = part.entities[b * part.k + j];
          if (skip && entity !== q.answer && binaryContains(skip, entity)) continue;
          candidates.push({ entity, score: part.scores[b * part.k + j] });
        }
      }
      candidates.sort((x, y) => y.score - x.score || x.entity - y.entity);
      const top = candidates.slice(0, k);
      const result: ScoreResult = {
        modelVersion: meta.version,
        step,
        historyStep,
        entities: Int32Array.from(top, (c) => c.entity),
        scores: Float32Array.from(top, (c) => c.score),
        probabilities: Float32Array.from(top, (c) =>
          probabilityOf(this.calibration, q.direction, q.relation, c.score),
        ),
      };
      addEvidence(result, q, termState);
      if (q.answer !== undefined && counts) {
        const ranks = ranksOfCounts(counts[rankedIndex++]);
        result.ranks = ranks;
        result.rank = ranks[q.filter ?? 'raw'];
      }
      results[b] = result;
    }
    return results;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((shard) => shard.close()));
  }
}

/**
 * Serve one unsharded bundle graph as `shards` even shards: cut it (src/model/scoring-graph.ts shardScoringModel),
 * load shard i into workers[i % workers.length] (or in this thread when no workers are given: for tests), and wrap
 * the shards in a ServingModel that the Scorer runs through ShardedScorer; releasing it unloads them. Throws
 * ModelRejectedError as ServingModel.load does.
 */
export async function loadShardedModel(
  bytes: Uint8Array,
  options: LoadModelOptions & { shards: number; workers?: readonly ShardWorker[] },
): Promise<ServingModel> {
  let metadata: ScoringModelMetadata;
  let parts: Uint8Array[];
  try {
    // a bundle with fewer entities than shards: one entity per shard (the map needs non-empty ranges)
    ({ metadata, shards: parts } = cutScoringModel(bytes, ({ numEntities }) =>
      evenShardMap(numEntities, Math.min(options.shards, numEntities)),
    ));
  } catch (error) {
    throw new ModelRejectedError(`model rejected: ${(error as Error).message}`, 'corrupt', error);
  }
  const { workers, intraOpThreads } = options;
  const loads = parts.map(async (part, i) =>
    workers && workers.length > 0
      ? workers[i % workers.length].load(part, { intraOpThreads })
      : new LocalShard(await ServingModel.load(part, { intraOpThreads })),
  );
  const settled = await Promise.allSettled(loads);
  const shards = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return ServingModel.fromShards(new ShardedScorer(shards), metadata, options.vocabulary);
  } catch (error) {
    await Promise.all(shards.map((shard) => shard.close()));
    if (error instanceof ModelRejectedError) throw error;
    throw new ModelRejectedError(
      `model version ${metadata.version} rejected by its shards: ${(error as Error).message}`,
      'corrupt',
      error,
    );
  }
}
