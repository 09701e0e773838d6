// Pure maths of NLSM (SPEC section 1) on plain typed arrays. Owns: the efficient link logit, the
// closed-form Gaussian prior / entropy terms, theta layout conversions and the negative-sampling
// proposal. No tfjs here: these are the reference implementations the tests check the tf graph
// against, and what scoring falls back to. Must not import kafkajs, src/kafka, src/serve.
import type { Xoshiro128 } from '../../core/random.ts';

/** Free entries of one 2x2 interaction matrix: 4 directed (00, 01, 10, 11), 3 undirected (00, 01 = 10, 11). */
export function thetaEntries(directed: boolean): 3 | 4 {
  return directed ? 4 : 3;
}

/**
 * Expands flat theta [R, K * P] (P = 3 or 4, layout k * P + p) to the full [R, K, 4] form of
 * ScoringState: index ((r * K) + k) * 4 + (2x + y).
 */
export function expandTheta(
  theta: Float32Array,
  R: number,
  K: number,
  directed: boolean,
): Float32Array {
  const P = thetaEntries(directed);
  if (theta.length !== R * K * P) {
    throw new RangeError(`theta has ${theta.length} values; expected R*K*P = ${R}*${K}*${P}`);
  }
  const out = new Float32Array(R * K * 4); // [R, K, 4]
  for (let rk = 0; rk < R * K; rk++) {
    const src = rk * P;
    const dst = rk * 4;
    if (directed) {
      out[dst] = theta[src];
      out[dst + 1] = theta[src + 1];
      out[dst + 2] = theta[src + 2];
      out[dst + 3] = theta[src + 3];
    } else {
      out[dst] = theta[src];
      out[dst + 1] = theta[src + 1];
      out[dst + 2] = theta[src + 1];
      out[dst + 3] = theta[src + 2];
    }
  }
  return out;
}

/**
 * Efficient-form logit of one pair (SPEC "Efficient scoring"):
 * sum_k [T00 + (T10 - T00) zs + (T01 - T00) zo + (T11 - T10 - T01 + T00) zs zo].
 * theta4 is [R, K, 4]; zs, zo are the K attributes of subject and object.
 */
export function pairLogit(
  theta4: Float32Array,
  r: number,
  K: number,
  zs: ArrayLike<number>,
  zo: ArrayLike<number>,
): number {
  let logit = 0;
  for (let k = 0; k < K; k++) {
    const base = (r * K + k) * 4;
    const t00 = theta4[base];
    const t01 = theta4[base + 1];
    const t10 = theta4[base + 2];
    const t11 = theta4[base + 3];
    logit +=
      t00 + (t10 - t00) * zs[k] + (t01 - t00) * zo[k] + (t11 - t10 - t01 + t00) * zs[k] * zo[k];
  }
  return logit;
}

/**
 * A query as one vector w [K] plus a scalar c, so that scores of all N candidates are Z w + c.
 * direction 'object': (anchor = subject, r, ?); 'subject': (?, r, anchor = object).
 */
export function queryVector(
  theta4: Float32Array,
  r: number,
  K: number,
  zAnchor: ArrayLike<number>,
  direction: 'object' | 'subject',
): { w: Float32Array; c: number } {
  const w = new Float32Array(K);
  let c = 0;
  for (let k = 0; k < K; k++) {
    const base = (r * K + k) * 4;
    const t00 = theta4[base];
    const t01 = theta4[base + 1];
    const t10 = theta4[base + 2];
    const t11 = theta4[base + 3];
    const interaction = t11 - t10 - t01 + t00;
    if (direction === 'object') {
      w[k] = t01 - t00 + interaction * zAnchor[k];
      c += t00 + (t10 - t00) * zAnchor[k];
    } else {
      w[k] = t10 - t00 + interaction * zAnchor[k];
      c += t00 + (t01 - t00) * zAnchor[k];
    }
  }
  return { w, c };
}

/** Numerically stable log(1 + e^x). */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

const LOG_2PI = Math.log(2 * Math.PI);

/**
 * E_q[log N(x | 0, priorVar I)] for q = N(mean, exp(logVar)) per dimension, summed:
 * sum_d -1/2 log(2 pi priorVar) - (m_d^2 + exp(lv_d)) / (2 priorVar).
 */
export function expectedLogNormalPrior(
  mean: ArrayLike<number>,
  logVar: ArrayLike<number>,
  priorVar: number,
): number {
  let total = 0;
  for (let d = 0; d < mean.length; d++) {
    total +=
      -0.5 * (LOG_2PI + Math.log(priorVar)) - (mean[d] ** 2 + Math.exp(logVar[d])) / (2 * priorVar);
  }
  return total;
}

/**
 * E_q[log N(x_t | x_{t-1}, s2 I)] with x_t ~ N(m, exp(lv)) and x_{t-1} ~ N(mPrev, exp(lvPrev))
 * independent under the mean-field q, summed over dimensions:
 * -1/2 log(2 pi s2) - ((m - mPrev)^2 + exp(lv) + exp(lvPrev)) / (2 s2).
 */
export function expectedLogRandomWalk(
  meanPrev: ArrayLike<number>,
  logVarPrev: ArrayLike<number>,
  mean: ArrayLike<number>,
  logVar: ArrayLike<number>,
  s2: number,
): number {
  let total = 0;
  for (let d = 0; d < mean.length; d++) {
    total +=
      -0.5 * (LOG_2PI + Math.log(s2)) -
      ((mean[d] - meanPrev[d]) ** 2 + Math.exp(logVar[d]) + Math.exp(logVarPrev[d])) / (2 * s2);
  }
  return total;
}

/** Entropy of N(m, exp(lv)) summed over dimensions: sum_d 1/2 (log(2 pi e) + lv_d). */
export function gaussianEntropy(logVar: ArrayLike<number>): number {
  let total = 0;
  for (let d = 0; d < logVar.length; d++) total += 0.5 * (LOG_2PI + 1 + logVar[d]);
  return total;
}

/**
 * Negative-sampling proposal over all (i, r, j) with i, j in a node universe of size U and r < R.
 * A mixture: with probability `uniformFraction` a uniform pair, otherwise a uniformly chosen
 * positive whose subject (half the time) or object (other half) is replaced by a uniform node.
 * Its probability is computable from (s, r) and (r, o) degree counts, so
 * sum_all f = E_q[f / q] and (1/M) sum_m f(x_m) / q(x_m) is an unbiased estimate of the sum over
 * all U * R * U pairs, while most samples are the corruptions that matter for ranking.
 * Node ids here are LOCAL (0..U-1).
 */
export interface NegativeProposal {
  U: number;
  R: number;
  /** Positives [F * 3] (local ids). */
  positives: Int32Array;
  uniformFraction: number;
  /** Count of positives per (s, r): key s * R + r. */
  subjectRelationCount: Map<number, number>;
  /** Count of positives per (r, o): key r * U + o. */
  relationObjectCount: Map<number, number>;
}

export function buildNegativeProposal(
  positives: Int32Array,
  U: number,
  R: number,
  uniformFraction: number,
): NegativeProposal {
  const F = positives.length / 3;
  const subjectRelationCount = new Map<number, number>();
  const relationObjectCount = new Map<number, number>();
  for (let f = 0; f < F; f++) {
    const s = positives[3 * f];
    const r = positives[3 * f + 1];
    const o = positives[3 * f + 2];
    subjectRelationCount.set(s * R + r, (subjectRelationCount.get(s * R + r) ?? 0) + 1);
    relationObjectCount.set(r * U + o, (relationObjectCount.get(r * U + o) ?? 0) + 1);
  }
  // With no positives only the uniform component exists.
  return {
    U,
    R,
    positives,
    uniformFraction: F === 0 ? 1 : uniformFraction,
    subjectRelationCount,
    relationObjectCount,
  };
}

/** q(i, r, j) of the mixture proposal. */
export function proposalProbability(p: NegativeProposal, i: number, r: number, j: number): number {
  const F = p.positives.length / 3;
  let q = p.uniformFraction / (p.U * p.U * p.R);
  if (F > 0 && p.uniformFraction < 1) {
    const sr = p.subjectRelationCount.get(i * p.R + r) ?? 0;
    const ro = p.relationObjectCount.get(r * p.U + j) ?? 0;
    q += ((1 - p.uniformFraction) * 0.5 * (sr + ro)) / (F * p.U);
  }
  return q;
}

/**
 * Draws M samples from the proposal. Returns local triples [M * 3] and importance weights
 * 1 / (M q) [M], so sum_m weight_m f(x_m) estimates sum over all pairs of f without bias.
 */
export function sampleNegatives(
  p: NegativeProposal,
  M: number,
  rng: Xoshiro128,
): { triples: Int32Array; weights: Float32Array } {
  const F = p.positives.length / 3;
  const triples = new Int32Array(M * 3);
  const weights = new Float32Array(M);
  for (let m = 0; m < M; m++) {
    let i: number;
    let r: number;
    let j: number;
    if (F === 0 || rng.nextFloat() < p.uniformFraction) {
      i = rng.nextInt(p.U);
      r = rng.nextInt(p.R);
      j = rng.nextInt(p.U);
    } else {
      const f = rng.nextInt(F);
      i = p.positives[3 * f];
      r = p.positives[3 * f + 1];
      j = p.positives[3 * f + 2];
      if (rng.nextFloat() < 0.5) j = rng.nextInt(p.U);
      else i = rng.nextInt(p.U);
    }
    triples[3 * m] = i;
    triples[3 * m + 1] = r;
    triples[3 * m + 2] = j;
    weights[m] = 1 / (M * proposalProbability(p, i, r, j));
  }
  return { triples, weights };
}

/**
 * Reference zero-input GRU step on plain arrays (tests check the tf graph and window shifts
 * against it). h [B, H]; Uu, Ur, Un [H, H]; bu, br, bn, bhn [H]; returns [B, H]:
 * u = sigmoid(h Uu + bu), r = sigmoid(h Ur + br), n = tanh(bn + r (h Un + bhn)), h' = u h + (1 - u) n.
 */
export function gruStepReference(
  h: Float32Array,
  B: number,
  H: number,
  w: {
    Uu: Float32Array;
    Ur: Float32Array;
    Un: Float32Array;
    bu: Float32Array;
    br: Float32Array;
    bn: Float32Array;
    bhn: Float32Array;
  },
): Float32Array {
  const out = new Float32Array(B * H);
  for (let row = 0; row < B; row++) {
    for (let j = 0; j < H; j++) {
      let au = w.bu[j];
      let ar = w.br[j];
      let an = w.bhn[j];
      for (let i = 0; i < H; i++) {
        const hi = h[row * H + i];
        au += hi * w.Uu[i * H + j];
        ar += hi * w.Ur[i * H + j];
        an += hi * w.Un[i * H + j];
      }
      const u = sigmoid(au);
      const r = sigmoid(ar);
      const n = Math.tanh(w.bn[j] + r * an);
      out[row * H + j] = u * h[row * H + j] + (1 - u) * n;
    }
  }
  return out;
}

/** Reference of graph.ts logVarGruStep: centre + scale * GRU((logVar - centre) / scale). logVar [B, H]. */
export function logVarGruStepReference(
  logVar: Float32Array,
  B: number,
  H: number,
  w: Parameters<typeof gruStepReference>[3],
  frame: { centre: number; scale: number },
): Float32Array {
  const h = Float32Array.from(logVar, (v) => (v - frame.centre) / frame.scale);
  return gruStepReference(h, B, H, w).map((v) => frame.centre + frame.scale * v);
}
