// Fitting nlsm-h's weights (issue 8 item 2): a listwise softmax (multinomial logistic regression) over each query's
// candidates = history candidates + the base model's top-M + the true answer, other true answers of the same step
// removed (time-aware), minimised by Newton's method with L2 regularisation. Forms: one weight vector shared by every
// relation, per-relation weights shrunk towards it (several strengths), the recurrency form (the reference model plus
// beta * base logit) and its direct MRR ascent. The form is chosen on the validation queries by the mean of the raw,
// static and time-aware MRR among the forms that are at least as good as the recurrency form in every filter mode
// (selectForm). Owns: the query-set layout, the objective, the optimiser and the selection MRRs.
// Pure functions over typed arrays; must not import tfjs, src/train, kafkajs or src/kafka.
import { InvalidInputError } from '../../core/errors.ts';
import { F, FS, type HybridWeights } from '../../model/hybrid-features.ts';

/** D = 1 + F local parameters per query: beta (scale of the base logit) and the F history weights. */
const D = 1 + F;

/** Filter modes of the selection MRR (as the evaluation reports them). */
export type SelectionMode = 'raw' | 'static' | 'timeAware';
export const SELECTION_MODES: readonly SelectionMode[] = ['raw', 'static', 'timeAware'];

/** excludeMask bits: the candidate is another true answer of the query's own step / a known fact of the query. */
export const EXCLUDED_TIME_AWARE = 1;
export const EXCLUDED_STATIC = 2;
const modeBit: Record<SelectionMode, number> = {
  raw: 0,
  static: EXCLUDED_STATIC,
  timeAware: EXCLUDED_TIME_AWARE,
};

/**
 * Candidates of many queries, CSR layout. Candidate c of query q is offsets[q] <= c < offsets[q + 1]; the first
 * exactCount[q] are exact (history candidates, the base top-M, the answer, the filtered entities), the rest a uniform
 * sample (with replacement) of the other entities, each standing for sampleWeight[q] entities in the softmax's
 * normaliser (an unbiased estimate of the sum over all N: without it the top-M negatives would teach the fit that a
 * high base logit means a wrong answer). Filtered entities (other true answers of the step, known facts) are exact
 * candidates flagged in excludeMask, so one set ranks the answer in every filter mode; the fit skips the
 * time-aware-filtered ones (other true answers are not wrong).
 */
export interface QuerySet {
  numRelations: number; // R
  slot: Int32Array; // [Q] direction * R + relation
  offsets: Int32Array; // [Q + 1]
  base: Float32Array; // [C] base logit of each candidate
  features: Float32Array; // [C * F] history features (0 without history)
  answer: Int32Array; // [Q] absolute candidate index of the true answer
  /** Base logits of non-candidates are <= this (the M-th best base logit among non-excluded entities). */
  baseFloor: Float32Array; // [Q]
  /** Base top-M candidates of the query (they are the M best by base logit). */
  baseCandidates: Int32Array; // [Q]
  /** Tie-averaged rank of the answer by base logit alone among all N (time-aware filtered). */
  baseRank: Float32Array; // [Q]
  exactCount: Int32Array; // [Q]
  sampleWeight: Float32Array; // [Q]
  /** EXCLUDED_TIME_AWARE | EXCLUDED_STATIC per candidate (0: ranked in every mode). */
  excludeMask: Uint8Array; // [C]
}

export function querySetSize(set: QuerySet): number {
  return set.slot.length;
}

/** Accumulates queries into a QuerySet. */
export class QuerySetBuilder {
  private readonly slot: number[] = [];
  private readonly offsets: number[] = [0];
  private base: number[] = [];
  private features: number[] = [];
  private excludeMask: number[] = [];
  private readonly answer: number[] = [];
  private readonly baseFloor: number[] = [];
  private readonly baseCandidates: number[] = [];
  private readonly baseRank: number[] = [];
  private readonly exactCount: number[] = [];
  private readonly sampleWeight: number[] = [];
  private readonly random: () => number;

  constructor(
    readonly numRelations: number,
    readonly topM: number,
    readonly samples = 64,
    seed = 1,
  ) {
    let a = seed >>> 0;
    this.random = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), a | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  get queries(): number {
    return this.slot.length;
  }

  /**
   * Adds one query. `row` holds the base logits of all N entities; `history` its history candidates; `excluded`
   * other true answers of the same step (time-aware filter), `staticExcluded` the known facts' answers of the query
   * (static filter; sorted or not; the answer itself is ignored in both).
   */
  add(query: {
    slot: number;
    row: Float32Array; // [N]
    answer: number;
    history: { entities: Int32Array; features: Float32Array };
    excluded?: Int32Array;
    staticExcluded?: Int32Array;
  }): void {
    const { row, answer, history } = query;
    const N = row.length;
    // flags: EXCLUDED_TIME_AWARE implies EXCLUDED_STATIC (a fact true at the step is a known fact)
    const flags = new Map<number, number>();
    if (query.staticExcluded)
      for (const e of query.staticExcluded) if (e !== answer) flags.set(e, EXCLUDED_STATIC);
    if (query.excluded)
      for (const e of query.excluded)
        if (e !== answer) flags.set(e, EXCLUDED_STATIC | EXCLUDED_TIME_AWARE);
    // base top-M by a bounded min-heap over the row (flagged entities are exact candidates anyway)
    const M = Math.min(this.topM, N - flags.size);
    const heap = new Int32Array(Math.max(0, M));
    let size = 0;
    const less = (a: number, b: number): boolean => row[a] < row[b] || (row[a] === row[b] && a > b);
    const siftDown = (i: number): void => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < size && less(heap[l], heap[m])) m = l;
        if (r < size && less(heap[r], heap[m])) m = r;
        if (m === i) return;
        const t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
      }
    };
    const answerScore = row[answer];
    let better = 0;
    let equal = 0;
    for (let e = 0; e < N; e++) {
      if (flags.size > 0 && flags.has(e)) continue;
      const s = row[e];
      if (e !== answer) {
        if (s > answerScore) better++;
        else if (s === answerScore) equal++;
      }
      if (M <= 0) continue;
      if (size < M) {
        heap[size] = e;
        let i = size++;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if (!less(heap[i], heap[p])) break;
          const t = heap[i];
          heap[i] = heap[p];
          heap[p] = t;
          i = p;
        }
      } else if (less(heap[0], e)) {
        heap[0] = e;
        siftDown(0);
      }
    }
    const start = this.base.length;
    const position = new Map<number, number>();
    const push = (entity: number, features: Float32Array | null, at: number): void => {
      position.set(entity, this.base.length);
      this.base.push(row[entity]);
      this.excludeMask.push(flags.get(entity) ?? 0);
      for (let f = 0; f < F; f++) this.features.push(features ? features[at + f] : 0);
    };
    for (let m = 0; m < history.entities.length; m++) {
      const entity = history.entities[m];
      if (position.has(entity)) continue;
      push(entity, history.features, m * F);
    }
    for (let i = 0; i < size; i++) if (!position.has(heap[i])) push(heap[i], null, 0);
    if (!position.has(answer)) push(answer, null, 0);
    for (const entity of flags.keys()) if (!position.has(entity)) push(entity, null, 0);
    const exact = this.base.length - start;
    const eligible = N - exact;
    let drawn = 0;
    if (eligible > 0) {
      for (let attempt = 0; drawn < this.samples && attempt < 20 * this.samples; attempt++) {
        const e = Math.floor(this.random() * N);
        if (position.has(e)) continue;
        this.base.push(row[e]);
        this.excludeMask.push(0);
        for (let f = 0; f < F; f++) this.features.push(0);
        drawn++;
      }
    }
    this.exactCount.push(exact);
    this.sampleWeight.push(drawn > 0 ? eligible / drawn : 0);
    this.slot.push(query.slot);
    this.offsets.push(this.base.length);
    this.answer.push(position.get(answer)!);
    this.baseFloor.push(size > 0 ? row[heap[0]] : -Infinity);
    this.baseCandidates.push(size);
    this.baseRank.push(1 + better + equal / 2);
  }

  build(): QuerySet {
    return {
      numRelations: this.numRelations,
      slot: Int32Array.from(this.slot),
      offsets: Int32Array.from(this.offsets),
      base: Float32Array.from(this.base),
      features: Float32Array.from(this.features),
      answer: Int32Array.from(this.answer),
      baseFloor: Float32Array.from(this.baseFloor),
      baseCandidates: Int32Array.from(this.baseCandidates),
      baseRank: Float32Array.from(this.baseRank),
      exactCount: Int32Array.from(this.exactCount),
      sampleWeight: Float32Array.from(this.sampleWeight),
      excludeMask: Uint8Array.from(this.excludeMask),
    };
  }
}

/** Pure: the queries of both sets (candidate indices shifted). */
export function concatQuerySets(a: QuerySet, b: QuerySet): QuerySet {
  const Ca = a.base.length;
  const offsets = new Int32Array(a.slot.length + b.slot.length + 1);
  offsets.set(a.offsets);
  for (let q = 1; q < b.offsets.length; q++) offsets[a.slot.length + q] = Ca + b.offsets[q];
  const cat = <T extends Int32Array | Float32Array | Uint8Array>(
    x: T,
    y: T,
    make: (n: number) => T,
  ): T => {
    const out = make(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  const i32 = (n: number) => new Int32Array(n);
  const f32 = (n: number) => new Float32Array(n);
  return {
    numRelations: a.numRelations,
    slot: cat(a.slot, b.slot, i32),
    offsets,
    base: cat(a.base, b.base, f32),
    features: cat(a.features, b.features, f32),
    answer: cat(
      a.answer,
      Int32Array.from(b.answer, (x) => x + Ca),
      i32,
    ),
    baseFloor: cat(a.baseFloor, b.baseFloor, f32),
    baseCandidates: cat(a.baseCandidates, b.baseCandidates, i32),
    baseRank: cat(a.baseRank, b.baseRank, f32),
    exactCount: cat(a.exactCount, b.exactCount, i32),
    sampleWeight: cat(a.sampleWeight, b.sampleWeight, f32),
    excludeMask: cat(a.excludeMask, b.excludeMask, (n) => new Uint8Array(n)),
  };
}

/** How a query's D local parameters map into the parameter vector. */
export type ParameterLayout = 'shared' | 'perRelation';

export function parameterCount(layout: ParameterLayout, numRelations: number): number {
  return layout === 'shared' ? D : numRelations + 2 * numRelations * F;
}

/** Writes the D parameter indices of a slot into out. */
function localIndices(layout: ParameterLayout, slot: number, R: number, out: Int32Array): void {
  if (layout === 'shared') {
    for (let d = 0; d < D; d++) out[d] = d;
    return;
  }
  out[0] = slot % R;
  for (let f = 0; f < F; f++) out[1 + f] = R + slot * F + f;
}

/** Pure: per-relation parameters that equal a shared vector everywhere. */
export function expandShared(shared: ArrayLike<number>, numRelations: number): Float64Array {
  const theta = new Float64Array(parameterCount('perRelation', numRelations));
  for (let r = 0; r < numRelations; r++) theta[r] = shared[0];
  for (let slot = 0; slot < 2 * numRelations; slot++)
    for (let f = 0; f < F; f++) theta[numRelations + slot * F + f] = shared[1 + f];
  return theta;
}

/** Pure: HybridWeights from a per-relation parameter vector. beta is kept >= minScale (see fitHybridWeights). */
export function weightsFromParameters(
  theta: ArrayLike<number>,
  options: { numRelations: number; decay: number; relaxedTopK: number; minScale?: number },
): HybridWeights {
  const R = options.numRelations;
  const minScale = options.minScale ?? 1e-6;
  return {
    numRelations: R,
    decay: options.decay,
    relaxedTopK: options.relaxedTopK,
    baseScale: Array.from({ length: R }, (_, r) => Math.max(minScale, theta[r])),
    history: Array.from({ length: 2 * R * F }, (_, i) => theta[R + i]),
  };
}

/** Pure: the per-relation parameter vector of HybridWeights. */
export function parametersFromWeights(weights: HybridWeights): Float64Array {
  const R = weights.numRelations;
  const theta = new Float64Array(parameterCount('perRelation', R));
  theta.set(weights.baseScale, 0);
  theta.set(weights.history, R);
  return theta;
}

export interface ObjectiveOptions {
  layout: ParameterLayout;
  /** L2 strength on (theta - prior); the loss is a mean over queries. */
  l2: number;
  prior?: Float64Array;
}

/**
 * Pure: mean listwise softmax cross-entropy + l2 * ||theta - prior||^2, with its gradient and Hessian
 * (P x P, row-major) when `withDerivatives`.
 */
export function hybridObjective(
  set: QuerySet,
  theta: Float64Array,
  options: ObjectiveOptions,
  withDerivatives: boolean,
): { value: number; gradient?: Float64Array; hessian?: Float64Array } {
  const R = set.numRelations;
  const P = theta.length;
  const Q = set.slot.length;
  const gradient = withDerivatives ? new Float64Array(P) : undefined;
  const hessian = withDerivatives ? new Float64Array(P * P) : undefined;
  const index = new Int32Array(D);
  const local = new Float64Array(D);
  const mean = new Float64Array(D);
  const second = new Float64Array(D * D);
  let scores = new Float64Array(256);
  let total = 0;
  for (let q = 0; q < Q; q++) {
    localIndices(options.layout, set.slot[q], R, index);
    for (let d = 0; d < D; d++) local[d] = theta[index[d]];
    const start = set.offsets[q];
    const end = set.offsets[q + 1];
    const n = end - start;
    if (scores.length < n) scores = new Float64Array(2 * n);
    let max = -Infinity;
    for (let c = 0; c < n; c++) {
      const at = start + c;
      let s = local[0] * set.base[at];
      for (let f = 0; f < F; f++) s += local[1 + f] * set.features[at * F + f];
      scores[c] = s;
      if (s > max && !(set.excludeMask[at] & EXCLUDED_TIME_AWARE)) max = s;
    }
    const exact = set.exactCount[q];
    const sampleWeight = set.sampleWeight[q];
    let sum = 0;
    for (let c = 0; c < n; c++) {
      if (set.excludeMask[start + c] & EXCLUDED_TIME_AWARE) continue;
      sum += (c < exact ? 1 : sampleWeight) * Math.exp(scores[c] - max);
    }
    total += max + Math.log(sum) - scores[set.answer[q] - start];
    if (!withDerivatives) continue;
    mean.fill(0);
    second.fill(0);
    for (let c = 0; c < n; c++) {
      if (set.excludeMask[start + c] & EXCLUDED_TIME_AWARE) continue;
      const p = ((c < exact ? 1 : sampleWeight) * Math.exp(scores[c] - max)) / sum;
      if (p < 1e-12) continue;
      const at = start + c;
      const x0 = set.base[at];
      for (let i = 0; i < D; i++) {
        const xi = i === 0 ? x0 : set.features[at * F + i - 1];
        if (xi === 0) continue;
        mean[i] += p * xi;
        for (let j = 0; j <= i; j++) {
          const xj = j === 0 ? x0 : set.features[at * F + j - 1];
          second[i * D + j] += p * xi * xj;
        }
      }
    }
    const a = set.answer[q];
    for (let i = 0; i < D; i++) {
      const xi = i === 0 ? set.base[a] : set.features[a * F + i - 1];
      gradient![index[i]] += mean[i] - xi;
      for (let j = 0; j <= i; j++) {
        const h = second[i * D + j] - mean[i] * mean[j];
        hessian![index[i] * P + index[j]] += h;
        if (i !== j) hessian![index[j] * P + index[i]] += h;
      }
    }
  }
  const scale = 1 / Math.max(1, Q);
  let value = total * scale;
  for (let p = 0; p < P; p++) {
    const delta = theta[p] - (options.prior?.[p] ?? 0);
    value += options.l2 * delta * delta;
  }
  if (withDerivatives) {
    for (let p = 0; p < P; p++) {
      gradient![p] = gradient![p] * scale + 2 * options.l2 * (theta[p] - (options.prior?.[p] ?? 0));
      for (let k = 0; k < P; k++) hessian![p * P + k] *= scale;
      hessian![p * P + p] += 2 * options.l2;
    }
  }
  return { value, gradient, hessian };
}

/** Solves A x = b for a symmetric positive (semi)definite A by Cholesky, adding damping until it succeeds. */
export function solveSymmetric(A: Float64Array, b: Float64Array): Float64Array {
  const n = b.length;
  for (let damping = 0; ; damping = damping === 0 ? 1e-10 : damping * 10) {
    const L = new Float64Array(n * n);
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      for (let j = 0; j <= i; j++) {
        let sum = A[i * n + j] + (i === j ? damping : 0);
        for (let k = 0; k < j; k++) sum -= L[i * n + k] * L[j * n + k];
        if (i === j) {
          if (!(sum > 0)) {
            ok = false;
            break;
          }
          L[i * n + i] = Math.sqrt(sum);
        } else L[i * n + j] = sum / L[j * n + j];
      }
    }
    if (!ok) {
      if (damping > 1e6)
        throw new InvalidInputError(
          'hessian',
          'is not positive definite even with damping 1e6',
          'numerical',
        );
      continue;
    }
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sum = b[i];
      for (let k = 0; k < i; k++) sum -= L[i * n + k] * y[k];
      y[i] = sum / L[i * n + i];
    }
    const x = new Float64Array(n);
    for (let i = n - 1; i >= 0; i--) {
      let sum = y[i];
      for (let k = i + 1; k < n; k++) sum -= L[k * n + i] * x[k];
      x[i] = sum / L[i * n + i];
    }
    return x;
  }
}

/** Newton's method with backtracking on hybridObjective. Returns the minimiser and its objective value. */
export function minimiseObjective(
  set: QuerySet,
  initial: Float64Array,
  options: ObjectiveOptions & { maxIterations?: number; tolerance?: number },
): { theta: Float64Array; value: number; iterations: number } {
  const maxIterations = options.maxIterations ?? 30;
  const tolerance = options.tolerance ?? 1e-7;
  const ridge = { ...options, l2: options.l2 + 1e-8 };
  let theta = Float64Array.from(initial);
  let current = hybridObjective(set, theta, ridge, true);
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    const step = solveSymmetric(
      current.hessian!,
      current.gradient!.map((g) => -g),
    );
    let t = 1;
    let accepted = false;
    for (let k = 0; k < 30; k++, t /= 2) {
      const candidate = theta.map((v, i) => v + t * step[i]);
      const value = hybridObjective(set, candidate, ridge, false).value;
      if (value <= current.value) {
        const improvement = current.value - value;
        theta = candidate;
        current = hybridObjective(set, theta, ridge, true);
        accepted = improvement > tolerance;
        break;
      }
    }
    if (!accepted) break;
  }
  return { theta, value: current.value, iterations };
}

/**
 * Pure: filtered MRR (%) of the queries under per-relation parameters `theta` in one filter mode (default
 * time-aware; raw ranks every candidate, static skips the known facts' answers). Exact when the answer scores at
 * least beta * baseFloor (every non-candidate scores beta * base <= that); otherwise the non-candidates above the
 * answer are estimated from its base rank. Sampled candidates are not ranked. beta must be > 0 (see clampBaseScale).
 */
export function selectionMrr(
  set: QuerySet,
  theta: ArrayLike<number>,
  mode: SelectionMode = 'timeAware',
): number {
  return selectionMrrs(set, theta, [mode])[mode]!;
}

/**
 * Pure: selectionMrr in several filter modes at once (one pass over the candidates). `perQuery` (length Q), when
 * given, receives each query's reciprocal rank (%) averaged over the modes (for standard errors).
 */
export function selectionMrrs(
  set: QuerySet,
  theta: ArrayLike<number>,
  modes: readonly SelectionMode[] = SELECTION_MODES,
  perQuery?: Float64Array,
): Partial<Record<SelectionMode, number>> {
  const R = set.numRelations;
  const Q = set.slot.length;
  const bits = modes.map((m) => modeBit[m]);
  const sums = new Float64Array(modes.length);
  const better = new Float64Array(modes.length);
  const equal = new Float64Array(modes.length);
  for (let q = 0; q < Q; q++) {
    const slot = set.slot[q];
    const beta = theta[slot % R];
    const wBase = R + slot * F;
    const start = set.offsets[q];
    const end = start + set.exactCount[q];
    const scoreOf = (at: number): number => {
      let s = beta * set.base[at];
      for (let f = 0; f < F; f++) s += theta[wBase + f] * set.features[at * F + f];
      return Math.fround(s);
    };
    const answer = set.answer[q];
    const target = scoreOf(answer);
    better.fill(0);
    equal.fill(0);
    for (let at = start; at < end; at++) {
      if (at === answer) continue;
      const s = scoreOf(at);
      if (s < target) continue;
      const mask = set.excludeMask[at];
      for (let m = 0; m < bits.length; m++) {
        if (mask & bits[m]) continue;
        if (s > target) better[m]++;
        else equal[m]++;
      }
    }
    const missed =
      !(target >= beta * set.baseFloor[q]) && beta > 0
        ? Math.max(0, set.baseRank[q] - 1 - set.baseCandidates[q])
        : 0;
    let queryMean = 0;
    for (let m = 0; m < bits.length; m++) {
      const rr = 1 / (1 + better[m] + missed + equal[m] / 2);
      sums[m] += rr;
      queryMean += rr;
    }
    if (perQuery) perQuery[q] = (100 * queryMean) / bits.length;
  }
  const out: Partial<Record<SelectionMode, number>> = {};
  modes.forEach((mode, m) => (out[mode] = (100 * sums[m]) / Math.max(1, Q)));
  return out;
}

/** Pure: per-relation parameters with every beta raised to at least minScale (the base logit keeps breaking ties). */
export function clampBaseScale(
  theta: Float64Array,
  numRelations: number,
  minScale = 1e-3,
): Float64Array {
  const out = Float64Array.from(theta);
  for (let r = 0; r < numRelations; r++) out[r] = Math.max(minScale, out[r]);
  return out;
}

/**
 * Direct MRR ascent (pure): coordinate search over the D shared parameters (beta and the F history weights, the same
 * for every slot), starting from `start`, maximising `criterion` (default: time-aware selectionMrr) on `set`. beta moves multiplicatively (kept > 0),
 * the history weights additively; step sizes halve when no coordinate improves. For the few parameters of the shared
 * form this aligns the fit with the reported metric (the softmax fit optimises likelihood, not rank).
 */
export function ascendSharedMrr(
  set: QuerySet,
  start: ArrayLike<number>,
  options: {
    maxEvaluations?: number;
    rounds?: number;
    /** What to maximise (default: time-aware selectionMrr). */
    criterion?: (set: QuerySet, theta: ArrayLike<number>) => number;
  } = {},
): { shared: Float64Array; mrr: number; evaluations: number } {
  const R = set.numRelations;
  const maxEvaluations = options.maxEvaluations ?? 160;
  const criterion = options.criterion ?? ((s, theta) => selectionMrr(s, theta));
  let shared = Float64Array.from(start);
  let best = criterion(set, expandShared(shared, R));
  let evaluations = 1;
  const steps = Array.from(shared, (v, d) => (d === 0 ? 2 : Math.max(0.5 * Math.abs(v), 0.05)));
  for (let round = 0; round < (options.rounds ?? 5) && evaluations < maxEvaluations; round++) {
    let improved = true;
    while (improved && evaluations < maxEvaluations) {
      improved = false;
      for (let d = 0; d < shared.length && evaluations < maxEvaluations; d++) {
        for (const sign of [1, -1]) {
          const trial = Float64Array.from(shared);
          trial[d] = d === 0 ? shared[0] * steps[0] ** sign : shared[d] + sign * steps[d];
          const mrr = criterion(set, expandShared(trial, R));
          evaluations++;
          if (mrr > best + 1e-6) {
            best = mrr;
            shared = trial;
            improved = true;
            break;
          }
        }
      }
    }
    for (let d = 0; d < steps.length; d++) steps[d] = d === 0 ? Math.sqrt(steps[d]) : steps[d] / 2;
  }
  return { shared, mrr: best, evaluations };
}

/** Validation MRR (%) of one form in every filter mode and the selection criterion (their mean). */
export interface ModeMrrs {
  raw: number;
  static: number;
  timeAware: number;
  /** The selection criterion: mean of raw, static and time-aware. */
  mean: number;
}

/**
 * reference: the recurrency model itself, its exact ties broken by the base logit (beta = the grid's smallest);
 * recurrency: the same with a fitted beta; ascent: its direct MRR ascent; shared / perRelation: listwise fits.
 */
export type HybridForm = 'reference' | 'recurrency' | 'ascent' | 'shared' | 'perRelation';

export interface HybridFitReport {
  /** The base model alone on the validation queries. */
  baseOnly: ModeMrrs;
  /** Every candidate form on the validation queries (fitted on the fitting queries), in complexity order. */
  forms: Array<{
    form: HybridForm;
    l2: number | null;
    /** beta of the recurrency form (relative to nothing: the absolute scale of the base logit). */
    beta?: number;
    validation: ModeMrrs;
    /** At least as good as the reference (recurrency) form in every filter mode on validation. */
    qualifies: boolean;
  }>;
  chosen: { form: HybridForm; l2: number | null; validation: ModeMrrs };
  /** How the form was chosen (text for logs and `tkg eval --json`). */
  criterion: string;
  fitQueries: number;
  validationQueries: number;
  seconds: number;
}

/** Pure: the selection criterion of a form: its MRR in every filter mode and their mean (per query in `perQuery`). */
export function modeMrrs(
  set: QuerySet,
  theta: ArrayLike<number>,
  perQuery?: Float64Array,
): ModeMrrs {
  const m = selectionMrrs(set, theta, SELECTION_MODES, perQuery);
  return {
    raw: m.raw!,
    static: m.static!,
    timeAware: m.timeAware!,
    mean: (m.raw! + m.static! + m.timeAware!) / 3,
  };
}

/**
 * Pure: the one-standard-error rule over options ordered from simplest to most complex, each with its per-query
 * criterion values (same queries): the simplest option whose mean is within one standard error of the paired
 * difference to the best option's mean. Options with `eligible[i] === false` are skipped.
 */
export function oneStandardErrorChoice(
  perQuery: readonly Float64Array[],
  eligible?: readonly boolean[],
): number {
  const Q = perQuery[0]?.length ?? 0;
  const mean = perQuery.map((v) => v.reduce((a, b) => a + b, 0) / Math.max(1, Q));
  let best = -1;
  for (let i = 0; i < perQuery.length; i++)
    if ((eligible?.[i] ?? true) && (best < 0 || mean[i] > mean[best])) best = i;
  if (best < 0 || Q < 2) return Math.max(0, best);
  for (let i = 0; i < best; i++) {
    if (!(eligible?.[i] ?? true)) continue;
    let sum = 0;
    let sumSq = 0;
    for (let q = 0; q < Q; q++) {
      const d = perQuery[best][q] - perQuery[i][q];
      sum += d;
      sumSq += d * d;
    }
    const variance = Math.max(0, (sumSq - (sum * sum) / Q) / (Q - 1));
    const standardError = Math.sqrt(variance / Q);
    if (mean[best] - mean[i] <= standardError) return i;
  }
  return best;
}

/**
 * Pure: the chosen form's index. Candidates that are at least as good as the reference in every filter mode (up to
 * `tolerance` MRR points) qualify; the reference always does; among the qualifying ones the best mean MRR wins (ties:
 * the earlier, i.e. simpler, form), or, with per-query values for every candidate, the simplest qualifying form
 * within one standard error of that best (oneStandardErrorChoice). Without a reference: every form qualifies.
 */
export function selectForm(
  candidates: ReadonlyArray<{ validation: ModeMrrs; perQuery?: Float64Array }>,
  referenceIndex: number | null,
  tolerance = 0,
): { index: number; qualifies: boolean[] } {
  const reference = referenceIndex === null ? null : candidates[referenceIndex].validation;
  const qualifies = candidates.map(
    (c, i) =>
      reference === null ||
      i === referenceIndex ||
      SELECTION_MODES.every((mode) => c.validation[mode] >= reference[mode] - tolerance),
  );
  if (candidates.length > 0 && candidates.every((c) => c.perQuery !== undefined))
    return {
      index: oneStandardErrorChoice(
        candidates.map((c) => c.perQuery!),
        qualifies,
      ),
      qualifies,
    };
  let index = referenceIndex ?? 0;
  for (let i = 0; i < candidates.length; i++) {
    if (!qualifies[i]) continue;
    if (!qualifies[index] || candidates[i].validation.mean > candidates[index].validation.mean)
      index = i;
  }
  return { index, qualifies };
}

/** beta of the recurrency form, relative to the spread (standard deviation) of the base logits. */
export const defaultRelativeBetaGrid: readonly number[] = [
  1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1,
];

/** Pure: standard deviation of the exact candidates' base logits (1 if there are none or they are constant). */
export function baseLogitSpread(set: QuerySet): number {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let q = 0; q < set.slot.length; q++) {
    for (let c = set.offsets[q]; c < set.offsets[q] + set.exactCount[q]; c++) {
      sum += set.base[c];
      sumSq += set.base[c] * set.base[c];
      n++;
    }
  }
  const variance = n > 0 ? sumSq / n - (sum / n) ** 2 : 0;
  return variance > 1e-12 ? Math.sqrt(variance) : 1;
}

export const defaultL2Grid: readonly number[] = [1e-2, 1e-3, 1e-4, 1e-5];

/**
 * Fits nlsm-h's weights on `fit` (the train split's queries) in several forms: shared weights, per-relation weights
 * shrunk towards them (one per L2 strength), the recurrency form (the reference model's own score, strict + alpha *
 * relaxed, plus beta * base logit: the base logit orders what the history leaves tied) and its direct MRR ascent.
 * The form is chosen on `validation` by selectForm (mean of raw / static / time-aware MRR among the forms at least as
 * good as the recurrency form in every mode; never the test split: the caller passes only train / valid queries),
 * then refitted on fit + validation.
 */
export function fitHybridWeights(input: {
  fit: QuerySet;
  validation: QuerySet;
  numRelations: number;
  decay: number;
  relaxedTopK: number;
  l2Grid?: readonly number[];
  /** Relaxed weight of the recurrency baseline chosen on the same selection splits (enables the 'recurrency' form). */
  recurrencyAlpha?: number;
}): { weights: HybridWeights; report: HybridFitReport } {
  const t0 = performance.now();
  const R = input.numRelations;
  const grid = input.l2Grid ?? defaultL2Grid;
  const meanMrr = (set: QuerySet, theta: ArrayLike<number>): number => modeMrrs(set, theta).mean;
  const initialShared = new Float64Array(D);
  initialShared[0] = 1;
  const fitShared = (set: QuerySet) =>
    minimiseObjective(set, initialShared, { layout: 'shared', l2: 1e-6 }).theta;
  const fitPerRelation = (set: QuerySet, shared: Float64Array, l2: number) => {
    const prior = expandShared(shared, R);
    return clampBaseScale(
      minimiseObjective(set, prior, { layout: 'perRelation', l2, prior }).theta,
      R,
    );
  };
  // the recurrency form: strict weight 1, relaxed weight alpha, beta * base logit
  const recurrencyShared = (beta: number): Float64Array => {
    const shared = new Float64Array(D);
    shared[0] = beta;
    shared[1] = 1;
    shared[1 + FS] = input.recurrencyAlpha ?? 0;
    return shared;
  };
  const spread = baseLogitSpread(input.fit);
  const betaGrid = defaultRelativeBetaGrid.map((x) => x / spread);
  // beta: the smallest (closest to the reference model) within one standard error of the best on `set`
  const pickBeta = (set: QuerySet): number => {
    const perQuery = betaGrid.map((beta) => {
      const values = new Float64Array(set.slot.length);
      modeMrrs(set, expandShared(recurrencyShared(beta), R), values);
      return values;
    });
    return betaGrid[oneStandardErrorChoice(perQuery)];
  };
  const ascend = (set: QuerySet): Float64Array =>
    ascendSharedMrr(set, recurrencyShared(pickBeta(set)), { criterion: meanMrr }).shared;

  // candidate forms fitted on the fitting queries, scored on validation; simpler forms first
  type Candidate = HybridFitReport['forms'][number] & { refit: (set: QuerySet) => Float64Array };
  const candidates: Candidate[] = [];
  const perQuery: Float64Array[] = [];
  const add = (
    form: HybridForm,
    l2: number | null,
    theta: Float64Array,
    refit: Candidate['refit'],
    beta?: number,
  ) => {
    const values = new Float64Array(input.validation.slot.length);
    perQuery.push(values);
    candidates.push({
      form,
      l2,
      ...(beta !== undefined ? { beta } : {}),
      validation: modeMrrs(input.validation, theta, values),
      qualifies: true,
      refit,
    });
  };
  let referenceIndex: number | null = null;
  if (input.recurrencyAlpha !== undefined) {
    // the guard's reference: the reference model with only its exact ties broken by the base logit
    const tieBreak = expandShared(recurrencyShared(betaGrid[0]), R);
    referenceIndex = candidates.length;
    add('reference', null, tieBreak, () => tieBreak, betaGrid[0]);
    const beta = pickBeta(input.fit);
    add(
      'recurrency',
      null,
      expandShared(recurrencyShared(beta), R),
      (set) => expandShared(recurrencyShared(pickBeta(set)), R),
      beta,
    );
    add('ascent', null, expandShared(ascend(input.fit), R), (set) => expandShared(ascend(set), R));
  }
  const shared = fitShared(input.fit);
  add('shared', null, clampBaseScale(expandShared(shared, R), R), (set) =>
    clampBaseScale(expandShared(fitShared(set), R), R),
  );
  for (const l2 of [...grid].sort((a, b) => b - a)) {
    add('perRelation', l2, fitPerRelation(input.fit, shared, l2), (set) =>
      fitPerRelation(set, fitShared(set), l2),
    );
  }
  const { index, qualifies } = selectForm(
    candidates.map((c, i) => ({ validation: c.validation, perQuery: perQuery[i] })),
    referenceIndex,
  );
  candidates.forEach((c, i) => (c.qualifies = qualifies[i]));
  const chosen = candidates[index];
  // refit the chosen form on fit + validation
  const theta = chosen.refit(concatQuerySets(input.fit, input.validation));
  return {
    weights: weightsFromParameters(theta, {
      numRelations: R,
      decay: input.decay,
      relaxedTopK: input.relaxedTopK,
    }),
    report: {
      baseOnly: modeMrrs(input.validation, expandShared(initialShared, R)),
      forms: candidates.map(({ refit: _refit, ...c }) => c),
      chosen: { form: chosen.form, l2: chosen.l2, validation: chosen.validation },
      criterion:
        referenceIndex === null
          ? 'validation mean of raw / static / time-aware MRR (simplest form within one standard error of the best)'
          : 'validation mean of raw / static / time-aware MRR among the forms at least as good as the reference model (recurrency, ties broken by the base logit) in every filter mode (simplest such form within one standard error of the best)',
      fitQueries: input.fit.slot.length,
      validationQueries: input.validation.slot.length,
      seconds: (performance.now() - t0) / 1000,
    },
  };
}
