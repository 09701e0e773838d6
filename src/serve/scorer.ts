// The in-process scorer: micro-batches concurrent queries into one onnxruntime run, ranks supplied answers under
// raw / static / time-aware filters (ties as in SPEC section 2, via src/eval/rank.ts), clamps k to N and swaps bundles
// atomically: every query is scored entirely by the one bundle it was admitted with — its graph, and its term over the
// closed steps up to the bundle's history step (src/model/term-inputs.ts) — and its result names both.
// Owns: the batching queue and the current-bundle pointer. Must not import src/train, tfjs or Kafka.
import type { Direction, FilterMode } from '../core/types.ts';
import { InvalidInputError, TkgError } from '../core/errors.ts';
import { type FilteredRanks, filteredRanks } from '../eval/rank.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { probabilityOf } from '../model/calibration.ts';
import type { TermInputs } from '../model/term-inputs.ts';
import type { Evidence, TermSpec } from '../model/terms.ts';
import { FilterIndex } from './filters.ts';
import { loadShardedModel } from './sharded-scorer.ts';
import { ShardWorker } from './shard-worker.ts';
import {
  int64,
  type LoadModelOptions,
  type ModelBatch,
  ServingModel,
  type ModelNames,
} from './model.ts';

/** A query in model ids. */
export interface ScoreRequest {
  direction: Direction;
  /** Subject id for an object query (s, r, ?), object id for a subject query (?, r, o). */
  anchor: number;
  relation: number;
  /** Top-k size; clamped to N. */
  k: number;
  /** Filter for the top-k list and the answer's rank (default raw). */
  filter?: FilterMode;
  /** A true answer whose rank to report. */
  answer?: number;
  /** Evidence items per ranked entity (0 or absent: none). */
  evidence?: number;
}

export interface ScoreResult {
  modelVersion: number;
  step: number;
  /** The closed step the bundle's term was computed up to (undefined: the bundle has no term). */
  historyStep?: number;
  /** Top-k entity ids, best first (filtered entities removed). */
  entities: Int32Array; // [k']
  scores: Float32Array; // [k']
  /** The bundle's calibrated probabilities of the top-k (src/model/calibration.ts). */
  probabilities: Float32Array; // [k']
  /** Rank of `answer` under the requested filter (1-based, ties count half). */
  rank?: number;
  /** Ranks of `answer` under every filter mode. */
  ranks?: FilteredRanks;
  /** Per ranked entity, the evidence of the bundle's term (when asked for and the term gives any). */
  evidence?: Evidence[][];
}

export interface ScorerOptions {
  /** Most queries per onnxruntime run. */
  maxBatch?: number;
  /** Longest a query waits for its batch to fill, in ms (0 = next turn of the event loop). */
  maxWaitMs?: number;
  /** onnxruntime intra-op threads for models loaded through loadModel. */
  intraOpThreads?: number;
  filters?: FilterIndex;
  /** The closed snapshots the bundles' terms are computed from (required for bundles with a term). */
  terms?: TermInputs;
  /** Score the graph alone, without any bundle's term (e.g. plain NLSM's share of nlsm-h for tkg_eval_mrr_gain). */
  denseOnly?: boolean;
  metrics?: TkgMetrics;
  /**
   * Serve every loaded bundle as this many entity shards, each in its own worker thread with its own onnxruntime
   * session (src/serve/sharded-scorer.ts); 1 (default): one session over all N entities. Answers are the same.
   */
  shards?: number;
}

interface PendingQuery {
  request: ScoreRequest;
  model: ServingModel;
  resolve: (result: ScoreResult) => void;
  reject: (error: unknown) => void;
}

export class Scorer {
  readonly filters: FilterIndex;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly intraOpThreads: number;
  private readonly terms: TermInputs | undefined;
  private readonly denseOnly: boolean;
  private readonly shards: number;
  private workers: ShardWorker[] | undefined;
  private readonly metrics: TkgMetrics | undefined;
  private current: ServingModel | undefined;
  private queue: PendingQuery[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;
  private lastBatchSize = 0;

  constructor(options: ScorerOptions = {}) {
    this.maxBatch = Math.max(1, options.maxBatch ?? 64);
    this.maxWaitMs = Math.max(0, options.maxWaitMs ?? 1);
    this.intraOpThreads = options.intraOpThreads ?? 1;
    this.filters = options.filters ?? new FilterIndex();
    this.terms = options.terms;
    this.denseOnly = options.denseOnly ?? false;
    this.shards = Math.max(1, Math.floor(options.shards ?? 1));
    this.metrics = options.metrics;
  }

  /** The model new queries are admitted with (undefined until the first load). */
  get model(): ServingModel | undefined {
    return this.current;
  }

  /** Load ONNX bytes and swap to them atomically; throws ModelRejectedError and keeps the old model on failure. */
  async loadModel(
    bytes: Uint8Array,
    vocabulary?: ModelNames,
    options: LoadModelOptions = {},
  ): Promise<ServingModel> {
    const model = await this.prepare(bytes, vocabulary, options);
    this.swap(model);
    return model;
  }

  /** Load and validate a model with this scorer's session options, without swapping to it. */
  prepare(
    bytes: Uint8Array,
    vocabulary?: ModelNames,
    options: LoadModelOptions = {},
  ): Promise<ServingModel> {
    const load = { intraOpThreads: this.intraOpThreads, vocabulary, ...options };
    if (this.shards <= 1) return ServingModel.load(bytes, load);
    // one worker thread per shard, for the scorer's life: a new version loads next to the old one in each; a
    // thread that died (e.g. out of memory) is replaced here, so the next bundle serves again
    this.workers = Array.from({ length: this.shards }, (_, i) =>
      this.workers?.[i]?.alive ? this.workers[i] : new ShardWorker(),
    );
    return loadShardedModel(bytes, { ...load, shards: this.shards, workers: this.workers });
  }

  /** Make `model` current. Queries already admitted finish on the old model, which is then released. */
  swap(model: ServingModel): void {
    const previous = this.current;
    this.current = model;
    this.metrics?.modelVersion.set(model.version);
    this.metrics?.modelStep.set(model.metadata.step);
    if (previous && previous !== model) {
      const stillQueued = this.queue.some((p) => p.model === previous);
      if (!stillQueued) void previous.retire();
    }
  }

  /** Validate a request against a model; throws InvalidInputError naming the field. */
  static validate(
    request: ScoreRequest,
    model: Pick<ServingModel, 'numEntities' | 'numRelations' | 'version'>,
  ): void {
    const { numEntities: N, numRelations: R } = model;
    if (request.direction !== 'object' && request.direction !== 'subject') {
      throw new InvalidInputError(
        'direction',
        `must be 'object' or 'subject', got ${JSON.stringify(request.direction)}`,
        'invalid_direction',
      );
    }
    const role = request.direction === 'object' ? 'subject' : 'object';
    if (!Number.isInteger(request.anchor) || request.anchor < 0 || request.anchor >= N) {
      throw new InvalidInputError(
        role,
        `entity id ${request.anchor} is outside [0, ${N}) of model version ${model.version}`,
        'unknown_entity',
      );
    }
    if (!Number.isInteger(request.relation) || request.relation < 0 || request.relation >= R) {
      throw new InvalidInputError(
        'relation',
        `relation id ${request.relation} is outside [0, ${R}) of model version ${model.version}`,
        'unknown_relation',
      );
    }
    if (!Number.isInteger(request.k) || request.k < 1) {
      throw new InvalidInputError('k', `must be a positive integer, got ${request.k}`, 'invalid_k');
    }
    if (
      request.answer !== undefined &&
      (!Number.isInteger(request.answer) || request.answer < 0 || request.answer >= N)
    ) {
      throw new InvalidInputError(
        'answer',
        `entity id ${request.answer} is outside [0, ${N}) of model version ${model.version}`,
        'unknown_entity',
      );
    }
  }

  /**
   * Score one query through the micro-batching queue. `model` pins the model (e.g. the one whose vocabulary
   * resolved the query's names); default: the current model at admission.
   */
  score(
    request: ScoreRequest,
    model: ServingModel | undefined = this.current,
  ): Promise<ScoreResult> {
    if (this.closed) return Promise.reject(new TkgError('scorer is closed', { reason: 'closed' }));
    if (!model)
      return Promise.reject(
        new TkgError('no model loaded yet; wait for an announcement on tkg.models', {
          reason: 'no_model',
          retriable: true,
        }),
      );
    try {
      Scorer.validate(request, model);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<ScoreResult>((resolve, reject) => {
      this.queue.push({ request, model, resolve, reject });
      // Full batch: go now. Traffic one query at a time (the last batch held one query): do not make a lone query
      // wait for company that is not coming; it still runs on the next turn of the event loop, so queries issued
      // in the same turn share its run. Otherwise wait up to maxWaitMs for the batch to fill.
      if (
        this.queue.length >= this.maxBatch ||
        (this.queue.length === 1 && this.lastBatchSize <= 1)
      )
        this.schedule(0);
      else this.schedule(this.maxWaitMs);
    });
  }

  /** Score a batch directly (no queue), all with one model, in chunks of maxBatch. */
  async scoreBatch(
    requests: readonly ScoreRequest[],
    model: ServingModel | undefined = this.current,
  ): Promise<ScoreResult[]> {
    if (!model) throw new TkgError('no model loaded yet', { reason: 'no_model', retriable: true });
    for (const request of requests) Scorer.validate(request, model);
    const results: ScoreResult[] = [];
    for (let start = 0; start < requests.length; start += this.maxBatch) {
      results.push(...(await this.runBatch(model, requests.slice(start, start + this.maxBatch))));
    }
    return results;
  }

  /** Stop admitting queries; queued ones are still answered. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.running) await new Promise((r) => setTimeout(r, 1));
    await this.current?.retire();
    await Promise.all((this.workers ?? []).map((worker) => worker.terminate()));
  }

  private schedule(delayMs: number): void {
    if (this.running) return; // the running batch reschedules when it finishes
    if (delayMs === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      setImmediate(() => void this.flush());
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private async flush(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        // One model per run: take the oldest query's model and up to maxBatch queries admitted with it.
        const model = this.queue[0].model;
        const batch: PendingQuery[] = [];
        const rest: PendingQuery[] = [];
        for (const p of this.queue)
          (p.model === model && batch.length < this.maxBatch ? batch : rest).push(p);
        this.queue = rest;
        this.lastBatchSize = batch.length;
        try {
          const results = await this.runBatch(
            model,
            batch.map((p) => p.request),
          );
          batch.forEach((p, i) => p.resolve(results[i]));
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
        if (model !== this.current && !this.queue.some((p) => p.model === model))
          await model.retire();
        // Let queries that arrived during the run join the next batch instead of running a tiny one.
        if (this.queue.length > 0 && this.queue.length < this.maxBatch && this.maxWaitMs > 0)
          await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.schedule(0);
    }
  }

  private async runBatch(
    model: ServingModel,
    requests: readonly ScoreRequest[],
  ): Promise<ScoreResult[]> {
    if (model.shards)
      return model.runSharded(requests, {
        filters: this.filters,
        terms: this.terms,
        denseOnly: this.denseOnly,
      });
    const B = requests.length;
    const N = model.numEntities;
    const step = model.metadata.step;
    const anchors = new Int32Array(B);
    const relations = new Int32Array(B);
    const directions = new Int32Array(B);
    const excluded: Array<Int32Array | undefined> = new Array(B);
    let kNeeded = 1;
    let wantAll = false;
    const termRows: Array<{ entities: Int32Array; values: Float32Array } | undefined> = new Array(
      B,
    );
    let termCount = 0;
    const historyStep = this.denseOnly ? undefined : model.historyStep;
    const termState = termStateFor(this.terms, model.terms, historyStep, model.version);
    for (let b = 0; b < B; b++) {
      const q = requests[b];
      anchors[b] = q.anchor;
      relations[b] = q.relation;
      directions[b] = q.direction === 'object' ? 0 : 1;
      excluded[b] = this.filters.excluded(
        q.filter ?? 'raw',
        q.direction,
        q.anchor,
        q.relation,
        step,
      );
      kNeeded = Math.max(kNeeded, Math.min(N, q.k + (excluded[b]?.length ?? 0)));
      if (q.answer !== undefined) wantAll = true;
      const terms = termState?.terms(q.direction, q.anchor, q.relation);
      termRows[b] = terms;
      termCount += terms?.entities.length ?? 0;
    }
    const batch: ModelBatch = { anchors, relations, directions, k: kNeeded };
    if (termCount > 0) {
      // Flat (row, entity) pairs straight into typed arrays: no per-term JS objects or BigInts.
      const pairs = new Int32Array(2 * termCount); // [M, 2]
      const values = new Float32Array(termCount); // [M]
      let m = 0;
      for (let b = 0; b < B; b++) {
        const terms = termRows[b];
        if (!terms) continue;
        for (let i = 0; i < terms.entities.length; i++) {
          // The server's history may already know entities this (pinned, older) model has no row for: skip them.
          if (terms.entities[i] >= N) continue;
          pairs[2 * m] = b;
          pairs[2 * m + 1] = terms.entities[i];
          values[m++] = terms.values[i];
        }
      }
      if (m > 0) {
        batch.extraIndex = int64(pairs.subarray(0, 2 * m));
        batch.extraValue = values.subarray(0, m);
      }
    }
    const out = await model.run(batch, wantAll);
    const results: ScoreResult[] = new Array(B);
    for (let b = 0; b < B; b++) {
      const q = requests[b];
      const k = Math.min(q.k, N);
      const skip = excluded[b];
      const entities = new Int32Array(k);
      const scores = new Float32Array(k);
      const probabilities = new Float32Array(k);
      let n = 0;
      for (let j = 0; j < out.k && n < k; j++) {
        const entity = Number(out.indices[b * out.k + j]);
        if (skip && entity !== q.answer && binaryContains(skip, entity)) continue;
        entities[n] = entity;
        scores[n] = out.scores[b * out.k + j];
        probabilities[n] = probabilityOf(model.calibration, q.direction, q.relation, scores[n]);
        n++;
      }
      const result: ScoreResult = {
        modelVersion: model.version,
        step,
        historyStep,
        entities: entities.subarray(0, n),
        scores: scores.subarray(0, n),
        probabilities: probabilities.subarray(0, n),
      };
      addEvidence(result, q, termState);
      if (q.answer !== undefined && out.allScores) {
        const ranks = filteredRanks(
          out.allScores,
          b * N,
          N,
          q.answer,
          this.filters.excluded('static', q.direction, q.anchor, q.relation, step),
          this.filters.excluded('timeAware', q.direction, q.anchor, q.relation, step),
        );
        result.ranks = ranks;
        result.rank = ranks[q.filter ?? 'raw'];
      }
      results[b] = result;
    }
    return results;
  }
}

type TermState = ReturnType<TermInputs['stateAt']>;

/**
 * The term state a batch of `version` is scored with (undefined: no term, or `historyStep` undefined); throws a
 * retriable TkgError while the closed steps up to the history step have not all arrived.
 */
export function termStateFor(
  terms: TermInputs | undefined,
  spec: TermSpec,
  historyStep: number | undefined,
  version: number,
): TermState | undefined {
  if (historyStep === undefined) return undefined;
  if (!terms || !terms.has(historyStep))
    throw new TkgError(
      `model version ${version} needs the closed steps up to ${historyStep} for its ${spec.kind} term, which this scorer has not received`,
      { reason: 'no_term_inputs', retriable: true },
    );
  return terms.stateAt(spec, historyStep);
}

/** The term's evidence for a result's ranked entities, when the query asks for it and the term gives any. */
export function addEvidence(
  result: ScoreResult,
  q: ScoreRequest,
  termState: TermState | undefined,
): void {
  if (q.evidence && q.evidence > 0 && termState?.evidence)
    result.evidence = termState.evidence(
      q.direction,
      q.anchor,
      q.relation,
      result.entities,
      q.evidence,
    );
}

/** Membership in a sorted Int32Array. */
export function binaryContains(sorted: Int32Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid];
    if (v === value) return true;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
