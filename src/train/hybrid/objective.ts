// nlsm-h's fitting objective: a listwise softmax (multinomial logistic regression) over each query's candidates,
// other true answers of the same step removed (time-aware), with L2 regularisation, minimised by Newton's method.
// Owns: the parameter layouts (shared, per relation), the objective with its gradient and Hessian, the solver.
// Pure; must not import tfjs or Kafka.
import { InvalidInputError } from '../../core/errors.ts';
import { F, type HybridWeights } from '../../model/hybrid-features.ts';
import { type QuerySet } from './query-set.ts';
import { D, EXCLUDED_TIME_AWARE } from './query-set.ts';

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
