// The rule model's ranker (issue 15): score(o) = beta * base(o) + sum_f w_f x_f(o) over the rule term's features,
// fitted as a listwise softmax (multinomial logistic regression) over each query's candidates = the term's candidates
// + the base model's top-M + the answer + a uniform sample of the rest (weighted so the normaliser is unbiased),
// other true answers of the step left out (time-aware), by Newton's method with L2 and w >= 0 (an active set: every
// feature measures support, and non-negative weights make an object's evidence raise its score). Also the exact
// selection MRR of a parameter vector in every filter mode, and a direct MRR ascent.
// Owns: the query-set layout, the objective, the optimiser and the selection MRRs. Pure; no tfjs.
import { mulberry32 } from '../../core/random.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { solveSymmetric } from '../hybrid/objective.ts';

export type Mode = 'raw' | 'static' | 'timeAware';
export const MODES: readonly Mode[] = ['raw', 'static', 'timeAware'];
export const EXCLUDED_TIME_AWARE = 1;
export const EXCLUDED_STATIC = 2;
const modeBit: Record<Mode, number> = {
  raw: 0,
  static: EXCLUDED_STATIC,
  timeAware: EXCLUDED_TIME_AWARE,
};

/** Candidates of many queries, CSR (see QuerySetBuilder in src/train/hybrid/fit.ts, of which this is the F-generic form). */
export interface RankQuerySet {
  F: number;
  offsets: Int32Array; // [Q + 1]
  base: Float32Array; // [C]
  features: Float32Array; // [C * F]
  answer: Int32Array; // [Q] absolute candidate index
  exactCount: Int32Array; // [Q]
  sampleWeight: Float32Array; // [Q]
  excludeMask: Uint8Array; // [C]
  /** Entities that are not exact candidates (they score beta * base with base <= baseFloor, or 0 without a base). */
  rest: Int32Array; // [Q]
  baseFloor: Float32Array; // [Q]
  /** Tie-averaged time-aware rank of the answer by the base alone, and the base top-M count. */
  baseRank: Float32Array; // [Q]
  baseCandidates: Int32Array; // [Q]
  hasBase: boolean;
}

export class RankQueryBuilder {
  private offsets: number[] = [0];
  private base: number[] = [];
  private features: number[] = [];
  private mask: number[] = [];
  private answer: number[] = [];
  private exact: number[] = [];
  private weight: number[] = [];
  private rest: number[] = [];
  private floor: number[] = [];
  private baseRank: number[] = [];
  private baseCandidates: number[] = [];
  private readonly random: () => number;

  constructor(
    readonly F: number,
    readonly hasBase: boolean,
    readonly topM = 32,
    readonly samples = 32,
    seed = 1,
  ) {
    this.random = mulberry32(seed);
  }

  get queries(): number {
    return this.answer.length;
  }

  add(query: {
    numEntities: number;
    row?: Float32Array; // [N] base logits (hasBase)
    answer: number;
    candidates: { entities: Int32Array; features: ArrayLike<number> };
    excluded?: Int32Array;
    staticExcluded?: Int32Array;
  }): void {
    const N = query.numEntities;
    const { row, answer, candidates } = query;
    const F = this.F;
    const flags = new Map<number, number>();
    if (query.staticExcluded)
      for (const e of query.staticExcluded) if (e !== answer) flags.set(e, EXCLUDED_STATIC);
    if (query.excluded)
      for (const e of query.excluded)
        if (e !== answer) flags.set(e, EXCLUDED_STATIC | EXCLUDED_TIME_AWARE);
    const position = new Map<number, number>();
    const start = this.base.length;
    const push = (entity: number, features: ArrayLike<number> | null, at: number) => {
      position.set(entity, this.base.length);
      this.base.push(row ? row[entity] : 0);
      this.mask.push(flags.get(entity) ?? 0);
      for (let f = 0; f < F; f++) this.features.push(features ? features[at + f] : 0);
    };
    for (let m = 0; m < candidates.entities.length; m++)
      if (!position.has(candidates.entities[m]))
        push(candidates.entities[m], candidates.features, m * F);
    let floor = 0;
    let rank = 1 + (N - 1) / 2;
    let top = 0;
    if (row && this.hasBase) {
      // base top-M (bounded selection) and the answer's base rank among unfiltered entities
      const M = Math.min(this.topM, N);
      const best: number[] = [];
      let better = 0;
      let equal = 0;
      const a = row[answer];
      for (let e = 0; e < N; e++) {
        if (flags.has(e)) continue;
        const s = row[e];
        if (e !== answer) {
          if (s > a) better++;
          else if (s === a) equal++;
        }
        if (best.length < M) {
          best.push(e);
          if (best.length === M) best.sort((x, y) => row[y] - row[x]);
        } else if (s > row[best[M - 1]]) {
          let i = M - 1;
          while (i > 0 && row[best[i - 1]] < s) {
            best[i] = best[i - 1];
            i--;
          }
          best[i] = e;
        }
      }
      if (best.length < M) best.sort((x, y) => row[y] - row[x]);
      rank = 1 + better + equal / 2;
      top = best.length;
      floor = best.length > 0 ? row[best[best.length - 1]] : -Infinity;
      for (const e of best) if (!position.has(e)) push(e, null, 0);
    }
    if (!position.has(answer)) push(answer, null, 0);
    for (const e of flags.keys()) if (!position.has(e)) push(e, null, 0);
    const exact = this.base.length - start;
    const eligible = N - exact;
    let drawn = 0;
    for (
      let attempt = 0;
      eligible > 0 && drawn < this.samples && attempt < 20 * this.samples;
      attempt++
    ) {
      const e = Math.floor(this.random() * N);
      if (position.has(e)) continue;
      this.base.push(row ? row[e] : 0);
      this.mask.push(0);
      for (let f = 0; f < F; f++) this.features.push(0);
      drawn++;
    }
    this.exact.push(exact);
    this.weight.push(drawn > 0 ? eligible / drawn : 0);
    this.rest.push(Math.max(0, eligible));
    this.floor.push(floor);
    this.baseRank.push(rank);
    this.baseCandidates.push(top);
    this.answer.push(position.get(answer)!);
    this.offsets.push(this.base.length);
  }

  build(): RankQuerySet {
    return {
      F: this.F,
      offsets: Int32Array.from(this.offsets),
      base: Float32Array.from(this.base),
      features: Float32Array.from(this.features),
      answer: Int32Array.from(this.answer),
      exactCount: Int32Array.from(this.exact),
      sampleWeight: Float32Array.from(this.weight),
      excludeMask: Uint8Array.from(this.mask),
      rest: Int32Array.from(this.rest),
      baseFloor: Float32Array.from(this.floor),
      baseRank: Float32Array.from(this.baseRank),
      baseCandidates: Int32Array.from(this.baseCandidates),
      hasBase: this.hasBase,
    };
  }
}

/** Pure: the queries of several sets in one (same F). */
export function concatRankSets(sets: readonly RankQuerySet[]): RankQuerySet {
  if (sets.length === 0)
    throw new InvalidInputError('sets', 'needs at least one query set', 'invalid_argument');
  const b = new RankQueryBuilder(sets[0].F, sets[0].hasBase);
  const out = b.build();
  const cat = <T extends Int32Array | Float32Array | Uint8Array>(
    pick: (s: RankQuerySet) => T,
    make: (n: number) => T,
  ): T => {
    const n = sets.reduce((a, s) => a + pick(s).length, 0);
    const x = make(n);
    let at = 0;
    for (const s of sets) {
      x.set(pick(s), at);
      at += pick(s).length;
    }
    return x;
  };
  const offsets: number[] = [0];
  const answer: number[] = [];
  let shift = 0;
  for (const s of sets) {
    for (let q = 0; q < s.answer.length; q++) {
      offsets.push(shift + s.offsets[q + 1]);
      answer.push(shift + s.answer[q]);
    }
    shift += s.base.length;
  }
  const i32 = (n: number) => new Int32Array(n);
  const f32 = (n: number) => new Float32Array(n);
  return {
    ...out,
    offsets: Int32Array.from(offsets),
    answer: Int32Array.from(answer),
    base: cat((s) => s.base, f32),
    features: cat((s) => s.features, f32),
    exactCount: cat((s) => s.exactCount, i32),
    sampleWeight: cat((s) => s.sampleWeight, f32),
    excludeMask: cat(
      (s) => s.excludeMask,
      (n) => new Uint8Array(n),
    ),
    rest: cat((s) => s.rest, i32),
    baseFloor: cat((s) => s.baseFloor, f32),
    baseRank: cat((s) => s.baseRank, f32),
    baseCandidates: cat((s) => s.baseCandidates, i32),
  };
}

/** theta = [beta, w_0 .. w_{F-1}]. Mean listwise softmax loss + l2 ||theta - prior||^2 over the free parameters. */
function objective(
  set: RankQuerySet,
  theta: Float64Array,
  l2: number,
  free: Uint8Array,
  withDerivatives: boolean,
): { value: number; gradient: Float64Array; hessian: Float64Array } {
  const D = 1 + set.F;
  const F = set.F;
  const Q = set.answer.length;
  const gradient = new Float64Array(D);
  const hessian = new Float64Array(D * D);
  const mean = new Float64Array(D);
  const x = new Float64Array(D);
  let scores = new Float64Array(256);
  let total = 0;
  for (let q = 0; q < Q; q++) {
    const start = set.offsets[q];
    const n = set.offsets[q + 1] - start;
    if (scores.length < n) scores = new Float64Array(2 * n);
    let max = -Infinity;
    for (let c = 0; c < n; c++) {
      const at = start + c;
      let s = theta[0] * set.base[at];
      for (let f = 0; f < F; f++) s += theta[1 + f] * set.features[at * F + f];
      scores[c] = s;
      if (s > max && !(set.excludeMask[at] & EXCLUDED_TIME_AWARE)) max = s;
    }
    const exact = set.exactCount[q];
    const weight = set.sampleWeight[q];
    let sum = 0;
    for (let c = 0; c < n; c++) {
      if (set.excludeMask[start + c] & EXCLUDED_TIME_AWARE) continue;
      sum += (c < exact ? 1 : weight) * Math.exp(scores[c] - max);
    }
    const a = set.answer[q];
    total += max + Math.log(sum) - scores[a - start];
    if (!withDerivatives) continue;
    mean.fill(0);
    const second = new Float64Array(D * D);
    for (let c = 0; c < n; c++) {
      const at = start + c;
      if (set.excludeMask[at] & EXCLUDED_TIME_AWARE) continue;
      const p = ((c < exact ? 1 : weight) * Math.exp(scores[c] - max)) / sum;
      if (p < 1e-12) continue;
      x[0] = set.base[at];
      for (let f = 0; f < F; f++) x[1 + f] = set.features[at * F + f];
      for (let i = 0; i < D; i++) {
        if (x[i] === 0) continue;
        mean[i] += p * x[i];
        for (let j = 0; j <= i; j++) second[i * D + j] += p * x[i] * x[j];
      }
    }
    x[0] = set.base[a];
    for (let f = 0; f < F; f++) x[1 + f] = set.features[a * F + f];
    for (let i = 0; i < D; i++) {
      gradient[i] += mean[i] - x[i];
      for (let j = 0; j <= i; j++) {
        const h = second[i * D + j] - mean[i] * mean[j];
        hessian[i * D + j] += h;
        if (i !== j) hessian[j * D + i] += h;
      }
    }
  }
  const scale = 1 / Math.max(1, Q);
  let value = total * scale;
  for (let i = 0; i < D; i++) value += l2 * theta[i] * theta[i];
  for (let i = 0; i < D; i++) {
    gradient[i] = free[i] ? gradient[i] * scale + 2 * l2 * theta[i] : 0;
    for (let j = 0; j < D; j++)
      hessian[i * D + j] = free[i] && free[j] ? hessian[i * D + j] * scale : i === j ? 1 : 0;
    if (free[i]) hessian[i * D + i] += 2 * l2 + 1e-9;
  }
  return { value, gradient, hessian };
}

/**
 * Fits theta (beta and the F weights) by Newton's method with backtracking, the weights kept >= 0 by an active set
 * (a weight that would go negative is pinned at 0 and the rest refitted). `fixed[i]` pins parameter i at `initial[i]`.
 */
export function fitRanker(
  set: RankQuerySet,
  initial: ArrayLike<number>,
  options: { l2?: number; fixed?: readonly boolean[]; maxIterations?: number } = {},
): Float64Array {
  const D = 1 + set.F;
  const l2 = options.l2 ?? 1e-4;
  let theta = Float64Array.from(initial);
  const free = new Uint8Array(D).fill(1);
  options.fixed?.forEach((pinned, i) => pinned && (free[i] = 0));
  if (!set.hasBase) {
    free[0] = 0;
    theta[0] = 0;
  }
  for (let round = 0; round < D; round++) {
    let current = objective(set, theta, l2, free, true);
    for (let it = 0; it < (options.maxIterations ?? 25); it++) {
      const step = solveSymmetric(
        current.hessian,
        current.gradient.map((g) => -g),
      );
      let t = 1;
      let accepted = false;
      for (let k = 0; k < 25; k++, t /= 2) {
        const candidate = theta.map((v, i) => v + t * step[i]);
        const value = objective(set, candidate, l2, free, false).value;
        if (value <= current.value) {
          const improvement = current.value - value;
          theta = candidate;
          current = objective(set, theta, l2, free, true);
          accepted = improvement > 1e-8;
          break;
        }
      }
      if (!accepted) break;
    }
    let pinned = false;
    for (let i = 1; i < D; i++) {
      if (free[i] && theta[i] < 0) {
        theta[i] = 0;
        free[i] = 0;
        pinned = true;
      }
    }
    if (!pinned) break;
  }
  if (set.hasBase) theta[0] = Math.max(theta[0], 0);
  return theta;
}

/**
 * Pure: filtered MRR (%) of every query under theta in each mode, and (perQuery) each query's reciprocal rank
 * averaged over the modes. Exact over the candidates; the rest score beta * base <= beta * baseFloor (estimated from
 * the base rank when the answer is below that) or, without a base, exactly 0.
 */
export function rankMrrs(
  set: RankQuerySet,
  theta: ArrayLike<number>,
  perQuery?: Float64Array,
  /** Each query's reciprocal rank (%) per mode (raw, static, timeAware), for paired tests per mode. */
  perQueryModes?: readonly Float64Array[],
): Record<Mode, number> & { mean: number } {
  const F = set.F;
  const Q = set.answer.length;
  const bits = MODES.map((m) => modeBit[m]);
  const sums = [0, 0, 0];
  const better = [0, 0, 0];
  const equal = [0, 0, 0];
  const beta = theta[0];
  const w = Float64Array.from({ length: F }, (_, f) => theta[1 + f]);
  const active = Array.from({ length: F }, (_, f) => f).filter((f) => w[f] !== 0);
  for (let q = 0; q < Q; q++) {
    const start = set.offsets[q];
    const end = start + set.exactCount[q];
    const scoreOf = (at: number) => {
      let s = beta * set.base[at];
      const o = at * F;
      for (let i = 0; i < active.length; i++) s += w[active[i]] * set.features[o + active[i]];
      return Math.fround(s);
    };
    const a = set.answer[q];
    const target = scoreOf(a);
    better.fill(0);
    equal.fill(0);
    for (let at = start; at < end; at++) {
      if (at === a) continue;
      const s = scoreOf(at);
      if (s < target) continue;
      const mask = set.excludeMask[at];
      if (mask === 0) {
        if (s > target) {
          better[0]++;
          better[1]++;
          better[2]++;
        } else {
          equal[0]++;
          equal[1]++;
          equal[2]++;
        }
        continue;
      }
      for (let m = 0; m < 3; m++) {
        if (mask & bits[m]) continue;
        if (s > target) better[m]++;
        else equal[m]++;
      }
    }
    let restBetter = 0;
    let restEqual = 0;
    if (set.hasBase && beta > 0) {
      if (!(target >= beta * set.baseFloor[q]))
        restBetter = Math.max(0, set.baseRank[q] - 1 - set.baseCandidates[q]);
    } else if (target === 0) restEqual = set.rest[q];
    else if (target < 0) restBetter = set.rest[q];
    let mean = 0;
    for (let m = 0; m < 3; m++) {
      const rr = 1 / (1 + better[m] + restBetter + (equal[m] + restEqual) / 2);
      sums[m] += rr;
      if (perQueryModes) perQueryModes[m][q] = 100 * rr;
      mean += rr;
    }
    if (perQuery) perQuery[q] = (100 * mean) / 3;
  }
  const k = 100 / Math.max(1, Q);
  const out = { raw: sums[0] * k, static: sums[1] * k, timeAware: sums[2] * k, mean: 0 };
  out.mean = (out.raw + out.static + out.timeAware) / 3;
  return out;
}

/**
 * Direct ascent of the mean selection MRR from `start`: coordinate moves over the free parameters (beta
 * multiplicative, weights additive and kept >= 0), step sizes halving when no move improves.
 */
export function ascendRanker(
  set: RankQuerySet,
  start: ArrayLike<number>,
  options: {
    maxEvaluations?: number;
    fixed?: readonly boolean[];
    onProgress?: (evaluations: number, max: number) => void;
  } = {},
): { theta: Float64Array; mrr: number } {
  const D = 1 + set.F;
  let theta = Float64Array.from(start);
  let best = rankMrrs(set, theta).mean;
  let evaluations = 1;
  const max = options.maxEvaluations ?? 100;
  const steps = Array.from(theta, (v, d) => (d === 0 ? 2 : Math.max(0.5 * Math.abs(v), 0.25)));
  for (let round = 0; round < 6 && evaluations < max; round++) {
    let improved = true;
    while (improved && evaluations < max) {
      improved = false;
      for (let d = 0; d < D && evaluations < max; d++) {
        if (options.fixed?.[d] || (d === 0 && (!set.hasBase || theta[0] <= 0))) continue;
        for (const sign of [1, -1]) {
          const trial = Float64Array.from(theta);
          trial[d] =
            d === 0 ? theta[0] * steps[0] ** sign : Math.max(0, theta[d] + sign * steps[d]);
          if (trial[d] === theta[d]) continue;
          const mrr = rankMrrs(set, trial).mean;
          evaluations++;
          options.onProgress?.(evaluations, max);
          if (mrr > best + 1e-6) {
            best = mrr;
            theta = trial;
            improved = true;
            // a move that pays is tried again with a longer step
            steps[d] = d === 0 ? steps[d] ** 2 : 2 * steps[d];
            break;
          }
        }
      }
    }
    for (let d = 0; d < D; d++) steps[d] = d === 0 ? Math.sqrt(steps[d]) : steps[d] / 4;
  }
  return { theta, mrr: best };
}
