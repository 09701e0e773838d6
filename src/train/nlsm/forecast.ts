// Forecasts of the NLSM / BAS trainer: the model's means at a step (NLSM rolls the GRUs forward from the window's
// initial state, BAS reads its slot), cached per step until the parameters change, and what is read from them:
// scores of TKG queries, link probabilities and the scoring state (z, Theta) the ONNX exporter and serving take.
// Owns: the per-step cache and the score maths. Must not change the trainer's parameters, window or random state;
// must not import kafkajs, src/kafka, src/window or src/serve.
import * as tf from '@tensorflow/tfjs';
import type { Direction, ScoringState } from '../../core/types.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { expandTheta } from './math.ts';
import { efficientCoefficients, gruStep, gruStepRows } from './graph.ts';
import { basName, disposeGru, gruTensors } from './parameters.ts';
import type { WindowTrainer } from './trainer.ts';

interface CachedStep {
  z: tf.Tensor2D; // [N + 1, K]: row N is z = 0.5 (entities the model has not seen)
  psiMean: Float32Array | null; // [N * K] (NLSM, for rolling further; a plain array, rolled in row blocks)
  thetaMean: tf.Tensor2D; // [R, K * P]
  coefficients: { c0: tf.Tensor1D; A: tf.Tensor2D; B: tf.Tensor2D; C: tf.Tensor2D };
}

/** The trainer's forecasts, one cached state per step asked for (clear() whenever the parameters change). */
export class StepForecasts {
  private readonly cache = new Map<number, CachedStep>();
  /** The last scored step's candidates transposed, [K, count] (see candidatesOf); one step's only, to bound memory. */
  private candidates: { step: number; count: number; transposed: tf.Tensor2D } | undefined;

  constructor(private readonly trainer: WindowTrainer) {}

  clear(): void {
    this.candidates?.transposed.dispose();
    this.candidates = undefined;
    for (const c of this.cache.values()) disposeCached(c);
    this.cache.clear();
  }

  /** Means at `step`: NLSM rolls the GRUs from the window's initial state; BAS uses the latest slot. */
  private stateAt(step: number): CachedStep {
    const hit = this.cache.get(step);
    if (hit) return hit;
    if (this.trainer.slots.length === 0) {
      throw new InvalidInputError(
        'step',
        `cannot forecast step ${step}: no snapshot observed yet`,
        'not_trained',
      );
    }
    const s = this.trainer.settings;
    const D = s.K * this.trainer.P;
    const start = this.trainer.windowStart;
    const target = Math.max(step, start); // before the window: the window's first step
    let built: CachedStep;
    if (s.model === 'bas') {
      const slot = Math.min(target - start, this.trainer.slots.length - 1);
      const psi = this.trainer.params.get(basName('psiMean', slot))!.value;
      const theta = this.trainer.params.get(basName('thetaMean', slot))!.value;
      built = this.buildCached(psi, tf.tensor2d(theta, [this.trainer.R, D]), false);
    } else {
      // the nearest cached step below target, else the window's initial state
      let from = start;
      let psiMean: Float32Array | null = null;
      let thetaMean: tf.Tensor2D | null = null;
      for (const [cachedStep, c] of this.cache) {
        if (cachedStep <= target && cachedStep >= from && c.psiMean) {
          from = cachedStep;
          psiMean = c.psiMean;
          thetaMean = c.thetaMean;
        }
      }
      const weights = gruTensors(this.trainer.params);
      let psi = psiMean ?? this.trainer.params.get('psiMean')!.value;
      let theta = thetaMean
        ? thetaMean.clone()
        : tf.tensor2d(this.trainer.params.get('thetaMean')!.value, [this.trainer.R, D]);
      for (let k = from; k < target; k++) {
        psi = gruStepRows(psi, s.K, weights.psiMeanGru, null);
        const nextTheta = gruStep(theta, weights.thetaMeanGru);
        theta.dispose();
        theta = nextTheta;
      }
      disposeGru(weights);
      built = this.buildCached(psi, theta, true);
    }
    this.cache.set(step, built);
    return built;
  }

  private buildCached(psiMean: Float32Array, thetaMean: tf.Tensor2D, keepPsi: boolean): CachedStep {
    const s = this.trainer.settings;
    const z = tf.tidy(
      () =>
        tf.concat(
          [tf.sigmoid(tf.tensor2d(psiMean, [this.trainer.N, s.K])), tf.fill([1, s.K], 0.5)],
          0,
        ) as tf.Tensor2D,
    );
    const coefficients = tf.tidy(() => efficientCoefficients(thetaMean, s.K, s.directed));
    return { z, psiMean: keepPsi ? psiMean : null, thetaMean, coefficients };
  }

  /** Scores of all numEntities candidates for B queries at `step`: [B * numEntities]. */
  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    if (anchors.length !== relations.length) {
      throw new InvalidInputError(
        'relations',
        `${relations.length} relations for ${anchors.length} anchors`,
        'invalid_query',
      );
    }
    const state = this.stateAt(step);
    const B = anchors.length;
    const anchorRows = Int32Array.from(anchors, (a) =>
      a >= 0 && a < this.trainer.N ? a : this.trainer.N,
    );
    const relationRows = Int32Array.from(relations, (r) => {
      if (r < 0 || r >= this.trainer.R) {
        throw new InvalidInputError(
          'relations',
          `relation ${r} is outside 0..${this.trainer.R - 1}`,
          'invalid_query',
        );
      }
      return r;
    });
    const candidates = this.candidatesOf(step, state, numEntities);
    const scores = tf.tidy(() => {
      const { c0, A, B: Bm, C } = state.coefficients;
      const rel = tf.tensor1d(relationRows, 'int32');
      const za = tf.gather(state.z, tf.tensor1d(anchorRows, 'int32')); // [B, K]
      const a = tf.gather(A, rel); // [B, K]
      const b = tf.gather(Bm, rel);
      const c = tf.gather(C, rel);
      // object queries: w = B + C z_s, offset c0 + A.z_s; subject queries swap A and B
      const w = tf.add(direction === 'object' ? b : a, tf.mul(c, za)); // [B, K]
      const offset = tf.add(
        tf.gather(c0, rel),
        tf.sum(tf.mul(direction === 'object' ? a : b, za), 1),
      ); // [B]
      return tf.add(tf.matMul(w, candidates), tf.reshape(offset, [B, 1])); // [B, numEntities]
    });
    const data = (await scores.data()) as Float32Array;
    scores.dispose();
    return data;
  }

  /**
   * The candidates' z rows of a step as [K, numEntities] (unknown ids take the z = 0.5 row), kept until another
   * step (or count) is scored: the wasm backend's matMul with transposeB ran ~9x slower than the same product with
   * the transpose stored (a [512, 64] x [64, 7,129] batch: 499 ms against 57 ms, two other jobs on the machine).
   */
  private candidatesOf(step: number, state: CachedStep, numEntities: number): tf.Tensor2D {
    const held = this.candidates;
    if (held?.step === step && held.count === numEntities) return held.transposed;
    held?.transposed.dispose();
    const transposed = tf.tidy(() =>
      tf.transpose(
        numEntities <= this.trainer.N
          ? tf.slice(state.z, [0, 0], [numEntities, -1])
          : padRows(state.z, this.trainer.N, numEntities),
      ),
    ) as tf.Tensor2D;
    this.candidates = { step, count: numEntities, transposed };
    return transposed;
  }

  /** Link probabilities sigmoid(logit) of (source, relation 0, target) pairs at `step`. */
  async linkProbability(
    step: number,
    sources: Int32Array,
    targets: Int32Array,
    relation = 0,
  ): Promise<Float32Array> {
    if (sources.length !== targets.length) {
      throw new InvalidInputError(
        'targets',
        `${targets.length} targets for ${sources.length} sources`,
        'invalid_query',
      );
    }
    const state = this.stateAt(step);
    const clamp = (xs: Int32Array): Int32Array =>
      Int32Array.from(xs, (x) => (x >= 0 && x < this.trainer.N ? x : this.trainer.N));
    const out = tf.tidy(() => {
      const rel = tf.fill([sources.length], relation, 'int32') as tf.Tensor1D;
      const { c0, A, B, C } = state.coefficients;
      const zs = tf.gather(state.z, tf.tensor1d(clamp(sources), 'int32'));
      const zo = tf.gather(state.z, tf.tensor1d(clamp(targets), 'int32'));
      const perK = tf.add(
        tf.add(tf.mul(tf.gather(A, rel), zs), tf.mul(tf.gather(B, rel), zo)),
        tf.mul(tf.gather(C, rel), tf.mul(zs, zo)),
      );
      return tf.sigmoid(tf.add(tf.gather(c0, rel), tf.sum(perK, 1)));
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  /** z and Theta at `step` as plain arrays (for the ONNX exporter and serving). */
  scoringState(step: number): ScoringState {
    const state = this.stateAt(step);
    const z = tf.tidy(() => tf.slice(state.z, [0, 0], [this.trainer.N, -1]));
    const zData = z.dataSync() as Float32Array;
    z.dispose();
    const theta = expandTheta(
      state.thetaMean.dataSync() as Float32Array,
      this.trainer.R,
      this.trainer.settings.K,
      this.trainer.settings.directed,
    );
    return {
      numEntities: this.trainer.N,
      numRelations: this.trainer.R,
      K: this.trainer.settings.K,
      z: zData.slice(),
      theta,
      step,
      version: this.trainer.updates,
    };
  }
}

function padRows(zWithUnknown: tf.Tensor2D, N: number, total: number): tf.Tensor2D {
  const known = tf.slice(zWithUnknown, [0, 0], [N, -1]);
  const unknown = tf.tile(tf.slice(zWithUnknown, [N, 0], [1, -1]), [total - N, 1]);
  return tf.concat([known, unknown], 0) as tf.Tensor2D;
}

function disposeCached(c: CachedStep): void {
  c.z.dispose();
  c.thetaMean.dispose();
  c.coefficients.c0.dispose();
  c.coefficients.A.dispose();
  c.coefficients.B.dispose();
  c.coefficients.C.dispose();
}
