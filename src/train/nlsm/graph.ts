// The NLSM computation graph on tfjs (SPEC section 1). Owns: the zero-input GRU step, the
// efficient-form edge logits, and the window ELBO (closed-form Gaussian prior / entropy terms plus
// the importance-weighted likelihood estimate). Pure functions of tensors; callers own tf.tidy and
// the variables. Must not import kafkajs, src/kafka or src/serve.
import * as tf from '@tensorflow/tfjs';

/** Weights of one zero-input GRU with hidden size H: gates update (u), reset (r), candidate (n). */
export interface GruWeights {
  Uu: tf.Tensor2D; // [H, H] recurrent weights of the update gate
  Ur: tf.Tensor2D; // [H, H] reset gate
  Un: tf.Tensor2D; // [H, H] candidate
  bu: tf.Tensor1D; // [H] biases (the input is all zeros, so the input weights vanish)
  br: tf.Tensor1D; // [H]
  bn: tf.Tensor1D; // [H] candidate bias outside the reset gate
  bhn: tf.Tensor1D; // [H] candidate recurrent bias, inside the reset gate
}

export const GRU_TENSOR_NAMES = ['Uu', 'Ur', 'Un', 'bu', 'br', 'bn', 'bhn'] as const;

/**
 * One GRU step with zero input; the hidden state IS the variational mean (or log-variance):
 * u = sigmoid(h Uu + bu), r = sigmoid(h Ur + br), n = tanh(bn + r * (h Un + bhn)),
 * h' = u * h + (1 - u) * n.
 */
export function gruStep(h: tf.Tensor2D, w: GruWeights): tf.Tensor2D {
  return tf.tidy(() => {
    const u = tf.sigmoid(tf.add(linear(h, w.Uu), w.bu)); // [B, H]
    const r = tf.sigmoid(tf.add(linear(h, w.Ur), w.br));
    const n = tf.tanh(tf.add(w.bn, tf.mul(r, tf.add(linear(h, w.Un), w.bhn))));
    return tf.add(n, tf.mul(u, tf.sub(h, n))) as tf.Tensor2D; // u h + (1 - u) n
  });
}

/**
 * Where a log-variance GRU's hidden state lives: logVar = centre + scale * h. The centre is the
 * log of the prior's step variance log(s^2), so h starts near 0 and the zero-input GRU, whose
 * candidate n = tanh(.) lies in [-1, 1], keeps its outputs in the hull of its initial state and
 * [centre - scale, centre + scale]. Why: with the raw log-variance as the hidden state (|h| ~
 * |log s^2| = 4.6 for s = 0.1, 9.2 for 0.01) every Adam step moves each gate pre-activation
 * h U by up to lr * H * |h| (H = 4K = 256 for theta: ~10-70 nats per step), so the update gate
 * of some units flips in one step and the log-variance jumps from log s^2 to the tanh range
 * (theta std ~1 per entry: logits shift by tens of nats and the link probabilities collapse).
 */
export interface LogVarFrame {
  centre: number;
  scale: number;
}

/** One GRU step of a log-variance trajectory in its frame: centre + scale * G((logVar - centre) / scale). */
export function logVarGruStep(logVar: tf.Tensor2D, w: GruWeights, frame: LogVarFrame): tf.Tensor2D {
  return tf.tidy(() => {
    const h = tf.div(tf.sub(logVar, frame.centre), frame.scale) as tf.Tensor2D;
    return tf.add(tf.mul(gruStep(h, w), frame.scale), frame.centre) as tf.Tensor2D;
  });
}

/** Rows a blocked GRU step (gruStepRows) evolves at a time: bounds the wasm heap (N = 1,000,000 rows at once fails). */
export const GRU_BLOCK_ROWS = 65_536;

/**
 * One GRU step (logVarGruStep when a frame is given) of a [rows, width] state held in a plain array, blockRows rows
 * at a time: the GRU acts row by row, so this is the step of the whole state, while the wasm heap holds one block's
 * intermediates instead of all N rows'. Returns a new array.
 */
export function gruStepRows(
  state: Float32Array,
  width: number,
  w: GruWeights,
  frame: LogVarFrame | null,
  blockRows = GRU_BLOCK_ROWS,
): Float32Array {
  const rows = state.length / width;
  const out = new Float32Array(state.length);
  for (let from = 0; from < rows; from += blockRows) {
    const count = Math.min(blockRows, rows - from);
    const block = tf.tidy(() => {
      const h = tf.tensor2d(state.subarray(from * width, (from + count) * width), [count, width]);
      return frame ? logVarGruStep(h, w, frame) : gruStep(h, w);
    });
    out.set(block.dataSync() as Float32Array, from * width);
    block.dispose();
  }
  return out;
}

/**
 * h W with a gradient that transposes explicitly (dh = dY transpose(W), dW = transpose(h) dY): the
 * wasm backend's matMul with transpose flags is 5-20x slower than a transpose plus a plain matMul.
 */
export function linear(h: tf.Tensor2D, W: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = inputs[0] as tf.Tensor2D;
    const weights = inputs[1] as tf.Tensor2D;
    const save = inputs[2] as tf.GradSaveFunc;
    save([x, weights]);
    return {
      value: tf.matMul(x, weights) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as tf.Tensor2D[];
        return [tf.matMul(dy, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy)];
      },
    };
  });
  return op(h, W) as tf.Tensor2D;
}

/**
 * Per-relation coefficients of the efficient form from theta [R, K * P] (P = 4 directed: 00, 01,
 * 10, 11; P = 3 undirected: 00, 01 = 10, 11): c0 = sum_k T00 [R], A = T10 - T00, B = T01 - T00,
 * C = T11 - T10 - T01 + T00, each [R, K]. logit(s, o) = c0 + A.zs + B.zo + C.(zs * zo).
 */
export function efficientCoefficients(
  theta: tf.Tensor2D,
  K: number,
  directed: boolean,
): { c0: tf.Tensor1D; A: tf.Tensor2D; B: tf.Tensor2D; C: tf.Tensor2D } {
  const R = theta.shape[0];
  const P = directed ? 4 : 3;
  const t = tf.reshape(theta, [R, K, P]);
  const entry = (p: number): tf.Tensor2D => tf.reshape(tf.slice(t, [0, 0, p], [R, K, 1]), [R, K]);
  const t00 = entry(0);
  const t01 = entry(1);
  const t10 = directed ? entry(2) : t01;
  const t11 = entry(P - 1);
  return {
    c0: tf.sum(t00, 1) as tf.Tensor1D,
    A: tf.sub(t10, t00),
    B: tf.sub(t01, t00),
    C: tf.add(tf.sub(tf.sub(t11, t10), t01), t00),
  };
}

/**
 * Logits of E edges. z [rows, K] (rows = stacked steps x nodes), theta [thetaRows, K * P];
 * subjects / objects index z rows, relations index theta rows. Returns [E].
 * Composed from tf ops (reference; the trainer uses the fused edgeLogitsFused).
 */
export function edgeLogits(
  z: tf.Tensor2D,
  theta: tf.Tensor2D,
  subjects: tf.Tensor1D,
  relations: tf.Tensor1D,
  objects: tf.Tensor1D,
  K: number,
  directed: boolean,
): tf.Tensor1D {
  const { c0, A, B, C } = efficientCoefficients(theta, K, directed);
  const zs = tf.gather(z, subjects); // [E, K]
  const zo = tf.gather(z, objects); // [E, K]
  const a = tf.gather(A, relations); // [E, K]
  const b = tf.gather(B, relations);
  const c = tf.gather(C, relations);
  const perAttribute = tf.add(tf.mul(zs, tf.add(a, tf.mul(c, zo))), tf.mul(b, zo)); // [E, K]
  return tf.add(tf.gather(c0, relations), tf.sum(perAttribute, 1)) as tf.Tensor1D;
}

/** Edge lists as plain arrays (indices into stacked z rows and theta rows). */
export interface EdgeIndex {
  subjects: Int32Array; // [E]
  relations: Int32Array; // [E]
  objects: Int32Array; // [E]
}

/**
 * The same logits as edgeLogits, as ONE differentiable op with a hand-written gradient (tf.customGrad):
 * a single pass over the E x K products forward and one backward, instead of five gathers and a dozen
 * E x K element-wise kernels (the wasm gather kernel is slow). Deterministic (sums in edge order).
 */
export function edgeLogitsFused(
  zSlots: tf.Tensor2D[],
  thetaSlots: tf.Tensor2D[],
  edges: EdgeIndex,
  K: number,
  directed: boolean,
): tf.Tensor1D {
  const P = directed ? 4 : 3;
  const L = zSlots.length;
  if (thetaSlots.length !== L)
    throw new RangeError(`${L} z slots but ${thetaSlots.length} theta slots`);
  const op = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const zIn = inputs.slice(0, L) as tf.Tensor2D[];
    const thetaIn = inputs.slice(L, 2 * L) as tf.Tensor2D[];
    // stacked copies: z rows slot * U + node, theta rows slot * R + r
    const zData = concatRows(zIn.map((t) => t.dataSync() as Float32Array));
    const thetaData = concatRows(thetaIn.map((t) => t.dataSync() as Float32Array));
    const thetaRows = thetaData.length / (K * P);
    const { c0, A, B, C } = coefficientsOf(thetaData, thetaRows, K, directed);
    const { subjects, relations, objects } = edges;
    const E = subjects.length;
    const logits = new Float32Array(E);
    for (let e = 0; e < E; e++) {
      const s = subjects[e] * K;
      const o = objects[e] * K;
      const r = relations[e];
      const base = r * K;
      let acc = c0[r];
      for (let k = 0; k < K; k++) {
        const zs = zData[s + k];
        const zo = zData[o + k];
        acc += zs * (A[base + k] + C[base + k] * zo) + B[base + k] * zo;
      }
      logits[e] = acc;
    }
    const value = tf.tensor1d(logits);
    const gradFunc = (dy: tf.Tensor1D): tf.Tensor[] => {
      const g = dy.dataSync() as Float32Array;
      const dz = new Float32Array(zData.length);
      const dA = new Float32Array(A.length);
      const dB = new Float32Array(B.length);
      const dC = new Float32Array(C.length);
      const dc0 = new Float32Array(thetaRows);
      for (let e = 0; e < E; e++) {
        const ge = g[e];
        if (ge === 0) continue;
        const s = subjects[e] * K;
        const o = objects[e] * K;
        const r = relations[e];
        const base = r * K;
        dc0[r] += ge;
        for (let k = 0; k < K; k++) {
          const zs = zData[s + k];
          const zo = zData[o + k];
          const c = C[base + k];
          dz[s + k] += ge * (A[base + k] + c * zo);
          dz[o + k] += ge * (B[base + k] + c * zs);
          dA[base + k] += ge * zs;
          dB[base + k] += ge * zo;
          dC[base + k] += ge * zs * zo;
        }
      }
      const dTheta = new Float32Array(thetaRows * K * P);
      for (let rk = 0; rk < thetaRows * K; rk++) {
        const r = Math.floor(rk / K);
        const d00 = -dA[rk] - dB[rk] + dC[rk] + dc0[r];
        const at = rk * P;
        if (directed) {
          dTheta[at] = d00;
          dTheta[at + 1] = dB[rk] - dC[rk]; // T01
          dTheta[at + 2] = dA[rk] - dC[rk]; // T10
          dTheta[at + 3] = dC[rk]; // T11
        } else {
          dTheta[at] = d00;
          dTheta[at + 1] = dA[rk] + dB[rk] - 2 * dC[rk]; // T01 = T10
          dTheta[at + 2] = dC[rk]; // T11
        }
      }
      const grads: tf.Tensor[] = [];
      let offset = 0;
      for (const t of zIn) {
        grads.push(tf.tensor2d(dz.subarray(offset, offset + t.size), t.shape));
        offset += t.size;
      }
      offset = 0;
      for (const t of thetaIn) {
        grads.push(tf.tensor2d(dTheta.subarray(offset, offset + t.size), t.shape));
        offset += t.size;
      }
      return grads;
    };
    return { value, gradFunc };
  });
  return op(...zSlots, ...thetaSlots) as tf.Tensor1D;
}

function concatRows(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** c0 [rows], A, B, C [rows * K] of the efficient form from flat theta [rows, K * P]. */
export function coefficientsOf(
  theta: Float32Array,
  rows: number,
  K: number,
  directed: boolean,
): { c0: Float32Array; A: Float32Array; B: Float32Array; C: Float32Array } {
  const P = directed ? 4 : 3;
  const c0 = new Float32Array(rows);
  const A = new Float32Array(rows * K);
  const B = new Float32Array(rows * K);
  const C = new Float32Array(rows * K);
  for (let rk = 0; rk < rows * K; rk++) {
    const at = rk * P;
    const t00 = theta[at];
    const t01 = theta[at + 1];
    const t10 = directed ? theta[at + 2] : t01;
    const t11 = theta[at + P - 1];
    c0[Math.floor(rk / K)] += t00;
    A[rk] = t10 - t00;
    B[rk] = t01 - t00;
    C[rk] = t11 - t10 - t01 + t00;
  }
  return { c0, A, B, C };
}

const LOG_2PI = Math.log(2 * Math.PI);

/** E_q[log N(x | 0, priorVar)] summed (closed form; see math.ts expectedLogNormalPrior). */
export function expectedLogNormalPriorTf(
  mean: tf.Tensor,
  logVar: tf.Tensor,
  priorVar: number,
): tf.Scalar {
  const n = mean.size;
  return tf.sub(
    -0.5 * n * (LOG_2PI + Math.log(priorVar)),
    tf.div(tf.sum(tf.add(tf.square(mean), tf.exp(logVar))), 2 * priorVar),
  ) as tf.Scalar;
}

/** E_q[log N(x_t | x_{t-1}, s2)] summed (closed form; see math.ts expectedLogRandomWalk). */
export function expectedLogRandomWalkTf(
  meanPrev: tf.Tensor,
  logVarPrev: tf.Tensor,
  mean: tf.Tensor,
  logVar: tf.Tensor,
  s2: number,
): tf.Scalar {
  const n = mean.size;
  const spread = tf.add(
    tf.add(tf.squaredDifference(mean, meanPrev), tf.exp(logVar)),
    tf.exp(logVarPrev),
  );
  return tf.sub(-0.5 * n * (LOG_2PI + Math.log(s2)), tf.div(tf.sum(spread), 2 * s2)) as tf.Scalar;
}

/** Entropy of the diagonal Gaussian, summed. */
export function gaussianEntropyTf(logVar: tf.Tensor): tf.Scalar {
  return tf.add(0.5 * logVar.size * (LOG_2PI + 1), tf.mul(0.5, tf.sum(logVar))) as tf.Scalar;
}

/** Variational trajectory of one window: per slot, means and log-variances. */
export interface Trajectory {
  psiMean: tf.Tensor2D[]; // L x [U, K]
  psiLogVar: tf.Tensor2D[]; // L x [U, K]
  thetaMean: tf.Tensor2D[]; // L x [R, K * P]
  thetaLogVar: tf.Tensor2D[]; // L x [R, K * P]
}

export interface WindowBatch {
  /** Standard-normal noise per slot >= 1 (slot 0 uses the mean): psi [U, K], theta [R, K * P]. */
  psiNoise: tf.Tensor2D[];
  thetaNoise: tf.Tensor2D[];
  /** Edges over the stacked slots: subject / object index slot * U + local node, relation slot * R + r. */
  edges: EdgeIndex;
  /** Coefficient of the logit (1 for positives, 0 for sampled pairs). */
  linearWeight: tf.Tensor1D;
  /** Coefficient of softplus(logit) (importance weight for sampled pairs, 0 for positives). */
  softplusWeight: tf.Tensor1D;
}

export interface ElboHyper {
  K: number;
  directed: boolean;
  sPsi2: number;
  sTheta2: number;
  sigmaPsi2: number;
  sigmaTheta2: number;
}

/**
 * ELBO of a window (SPEC section 1), as tensors so it is differentiable:
 * log-likelihood estimate sum_pos l - sum_all softplus(l) (the sum over all pairs estimated with
 * importance weights) at one reparameterised sample per slot (the mean at slot 0), plus the
 * closed-form prior terms (N(0, sigma^2) at slot 0, random walk after) and entropies.
 */
export function windowElbo(
  trajectory: Trajectory,
  batch: WindowBatch,
  hyper: ElboHyper,
): { elbo: tf.Scalar; logLikelihood: tf.Scalar } {
  const L = trajectory.psiMean.length;
  const zRows: tf.Tensor2D[] = [];
  const thetaRows: tf.Tensor2D[] = [];
  let prior: tf.Scalar = tf.scalar(0);
  let entropy: tf.Scalar = tf.scalar(0);
  for (let slot = 0; slot < L; slot++) {
    const pm = trajectory.psiMean[slot];
    const plv = trajectory.psiLogVar[slot];
    const tm = trajectory.thetaMean[slot];
    const tlv = trajectory.thetaLogVar[slot];
    const psiSample =
      slot === 0 ? pm : tf.add(pm, tf.mul(tf.exp(tf.mul(0.5, plv)), batch.psiNoise[slot - 1]));
    const thetaSample =
      slot === 0 ? tm : tf.add(tm, tf.mul(tf.exp(tf.mul(0.5, tlv)), batch.thetaNoise[slot - 1]));
    zRows.push(tf.sigmoid(psiSample) as tf.Tensor2D);
    thetaRows.push(thetaSample as tf.Tensor2D);
    if (slot === 0) {
      prior = tf.add(prior, expectedLogNormalPriorTf(pm, plv, hyper.sigmaPsi2));
      prior = tf.add(prior, expectedLogNormalPriorTf(tm, tlv, hyper.sigmaTheta2));
    } else {
      const pmPrev = trajectory.psiMean[slot - 1];
      const plvPrev = trajectory.psiLogVar[slot - 1];
      prior = tf.add(prior, expectedLogRandomWalkTf(pmPrev, plvPrev, pm, plv, hyper.sPsi2));
      const tmPrev = trajectory.thetaMean[slot - 1];
      const tlvPrev = trajectory.thetaLogVar[slot - 1];
      prior = tf.add(prior, expectedLogRandomWalkTf(tmPrev, tlvPrev, tm, tlv, hyper.sTheta2));
    }
    entropy = tf.add(entropy, tf.add(gaussianEntropyTf(plv), gaussianEntropyTf(tlv)));
  }
  const logits = edgeLogitsFused(zRows, thetaRows, batch.edges, hyper.K, hyper.directed);
  const logLikelihood = tf.sub(
    tf.sum(tf.mul(batch.linearWeight, logits)),
    tf.sum(tf.mul(batch.softplusWeight, tf.softplus(logits))),
  ) as tf.Scalar;
  return { elbo: tf.add(tf.add(logLikelihood, prior), entropy) as tf.Scalar, logLikelihood };
}
