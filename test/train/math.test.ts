import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../../src/train/nlsm/backend.ts';
import {
  buildNegativeProposal,
  expandTheta,
  expectedLogNormalPrior,
  expectedLogRandomWalk,
  gaussianEntropy,
  gruStepReference,
  pairLogit,
  proposalProbability,
  queryVector,
  sampleNegatives,
  softplus,
} from '../../src/train/nlsm/math.ts';
import {
  edgeLogits,
  edgeLogitsFused,
  expectedLogNormalPriorTf,
  expectedLogRandomWalkTf,
  gaussianEntropyTf,
  gruStep,
} from '../../src/train/nlsm/graph.ts';
import { Xoshiro128 } from '../../src/core/random.ts';
import { randomGruWeights } from './synthetic.ts';

const close = (a: number, b: number, tol: number, what: string): void =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('efficient scoring equals the brute-force expectation over Bernoulli attributes (exact enumeration, K = 3)', async () => {
  await ensureBackend();
  const rng = new Xoshiro128(7);
  const K = 3;
  const R = 2;
  for (const directed of [true, false]) {
    const P = directed ? 4 : 3;
    const thetaFlat = rng.fillNormal(new Float32Array(R * K * P));
    const theta4 = expandTheta(thetaFlat, R, K, directed);
    const N = 4;
    const z = Float32Array.from({ length: N * K }, () => rng.nextFloat());
    for (let r = 0; r < R; r++) {
      for (let s = 0; s < N; s++) {
        for (let o = 0; o < N; o++) {
          const zs = z.subarray(s * K, s * K + K);
          const zo = z.subarray(o * K, o * K + K);
          // brute force: E over x ~ Bern(zs), y ~ Bern(zo) (all 2^(2K) joint outcomes) of sum_k Theta_k(x_k, y_k)
          let expectation = 0;
          for (let xs = 0; xs < 1 << K; xs++) {
            for (let ys = 0; ys < 1 << K; ys++) {
              let probability = 1;
              let value = 0;
              for (let k = 0; k < K; k++) {
                const x = (xs >> k) & 1;
                const y = (ys >> k) & 1;
                probability *= (x ? zs[k] : 1 - zs[k]) * (y ? zo[k] : 1 - zo[k]);
                value += theta4[(r * K + k) * 4 + 2 * x + y];
              }
              expectation += probability * value;
            }
          }
          close(pairLogit(theta4, r, K, zs, zo), expectation, 1e-5, `pairLogit r${r} s${s} o${o}`);
          const q = queryVector(theta4, r, K, zs, 'object');
          close(
            q.c + q.w.reduce((acc, w, k) => acc + w * zo[k], 0),
            expectation,
            1e-5,
            'object query',
          );
          const qs = queryVector(theta4, r, K, zo, 'subject');
          close(
            qs.c + qs.w.reduce((acc, w, k) => acc + w * zs[k], 0),
            expectation,
            1e-5,
            'subject query',
          );
        }
      }
    }
    // the tf graph computes the same logits
    const subjects = [0, 1, 2, 3, 0];
    const relations = [0, 1, 1, 0, 1];
    const objects = [3, 2, 1, 0, 0];
    const logits = tf.tidy(() =>
      edgeLogits(
        tf.tensor2d(z, [N, K]),
        tf.tensor2d(thetaFlat, [R, K * P]),
        tf.tensor1d(subjects, 'int32'),
        tf.tensor1d(relations, 'int32'),
        tf.tensor1d(objects, 'int32'),
        K,
        directed,
      ).dataSync(),
    );
    const fused = tf.tidy(() =>
      edgeLogitsFused(
        [tf.tensor2d(z, [N, K])],
        [tf.tensor2d(thetaFlat, [R, K * P])],
        {
          subjects: Int32Array.from(subjects),
          relations: Int32Array.from(relations),
          objects: Int32Array.from(objects),
        },
        K,
        directed,
      ).dataSync(),
    );
    subjects.forEach((s, e) => close(fused[e], logits[e], 1e-5, `fused ${e}`));
    subjects.forEach((s, e) =>
      close(
        logits[e],
        pairLogit(
          theta4,
          relations[e],
          K,
          z.subarray(s * K, s * K + K),
          z.subarray(objects[e] * K, objects[e] * K + K),
        ),
        1e-5,
        `edgeLogits ${e}`,
      ),
    );
  }
});

test('closed-form Gaussian prior, random-walk and entropy terms match Monte-Carlo estimates', async () => {
  await ensureBackend();
  const rng = new Xoshiro128(11);
  const D = 5;
  const mean = Float32Array.from([0.3, -1.2, 2.0, 0.0, 0.7]);
  const logVar = Float32Array.from([-1, 0.5, -2, 0, -0.3]);
  const meanPrev = Float32Array.from([0.1, -1.0, 1.5, 0.4, 0.2]);
  const logVarPrev = Float32Array.from([-0.5, 0.2, -1, -2, 0.1]);
  const priorVar = 4;
  const s2 = 0.5;
  const samples = 200_000;
  let prior = 0;
  let walk = 0;
  let negLogQ = 0;
  const logN = (x: number, mu: number, v: number): number =>
    -0.5 * Math.log(2 * Math.PI * v) - (x - mu) ** 2 / (2 * v);
  for (let n = 0; n < samples; n++) {
    for (let d = 0; d < D; d++) {
      const x = mean[d] + Math.exp(logVar[d] / 2) * rng.nextNormal();
      const xPrev = meanPrev[d] + Math.exp(logVarPrev[d] / 2) * rng.nextNormal();
      prior += logN(x, 0, priorVar);
      walk += logN(x, xPrev, s2);
      negLogQ -= logN(x, mean[d], Math.exp(logVar[d]));
    }
  }
  close(
    expectedLogNormalPrior(mean, logVar, priorVar),
    prior / samples,
    5e-3,
    'E log N(0, priorVar)',
  );
  close(
    expectedLogRandomWalk(meanPrev, logVarPrev, mean, logVar, s2),
    walk / samples,
    5e-3,
    'E log random walk',
  );
  close(gaussianEntropy(logVar), negLogQ / samples, 5e-3, 'entropy');
  // the tf versions equal the reference ones
  const [p, w, h] = tf.tidy(() => [
    expectedLogNormalPriorTf(tf.tensor1d(mean), tf.tensor1d(logVar), priorVar).dataSync()[0],
    expectedLogRandomWalkTf(
      tf.tensor1d(meanPrev),
      tf.tensor1d(logVarPrev),
      tf.tensor1d(mean),
      tf.tensor1d(logVar),
      s2,
    ).dataSync()[0],
    gaussianEntropyTf(tf.tensor1d(logVar)).dataSync()[0],
  ]);
  close(p, expectedLogNormalPrior(mean, logVar, priorVar), 1e-5, 'tf prior');
  close(w, expectedLogRandomWalk(meanPrev, logVarPrev, mean, logVar, s2), 1e-5, 'tf random walk');
  close(h, gaussianEntropy(logVar), 1e-5, 'tf entropy');
});

test('negative proposal: probabilities sum to 1 and the importance-weighted estimate is unbiased', () => {
  const U = 6;
  const R = 2;
  const positives = Int32Array.from([0, 0, 1, 0, 0, 2, 3, 1, 4, 5, 1, 5, 2, 0, 3]);
  const proposal = buildNegativeProposal(positives, U, R, 0.3);
  let total = 0;
  let exact = 0;
  const f = (i: number, r: number, j: number): number => softplus(0.3 * i - 0.5 * j + r - 1);
  for (let i = 0; i < U; i++)
    for (let r = 0; r < R; r++)
      for (let j = 0; j < U; j++) {
        total += proposalProbability(proposal, i, r, j);
        exact += f(i, r, j);
      }
  close(total, 1, 1e-9, 'sum of q');
  const rng = new Xoshiro128(3);
  let estimate = 0;
  const repeats = 4000;
  for (let rep = 0; rep < repeats; rep++) {
    const { triples, weights } = sampleNegatives(proposal, 20, rng);
    for (let m = 0; m < 20; m++)
      estimate += weights[m] * f(triples[3 * m], triples[3 * m + 1], triples[3 * m + 2]);
  }
  close(estimate / repeats, exact, 1e-2, 'mean of the IS estimate');
});

test('tf GRU step equals the plain-array reference', async () => {
  await ensureBackend();
  const rng = new Xoshiro128(5);
  const B = 3;
  const H = 4;
  const h = rng.fillNormal(new Float32Array(B * H));
  const w = randomGruWeights(rng, H, { matrix: 0.5, vector: 1 });
  const got = tf.tidy(() =>
    gruStep(tf.tensor2d(h, [B, H]), {
      Uu: tf.tensor2d(w.Uu, [H, H]),
      Ur: tf.tensor2d(w.Ur, [H, H]),
      Un: tf.tensor2d(w.Un, [H, H]),
      bu: tf.tensor1d(w.bu),
      br: tf.tensor1d(w.br),
      bn: tf.tensor1d(w.bn),
      bhn: tf.tensor1d(w.bhn),
    }).dataSync(),
  );
  const want = gruStepReference(h, B, H, w);
  for (let i = 0; i < want.length; i++) close(got[i], want[i], 1e-5, `gru ${i}`);
});

test('the fused edge-logit op has the same gradient as the composed tf ops', async () => {
  await ensureBackend();
  const rng = new Xoshiro128(9);
  for (const directed of [true, false]) {
    const K = 5;
    const R = 3;
    const N = 7;
    const P = directed ? 4 : 3;
    const z = tf.variable(
      tf.tensor2d(
        Float32Array.from({ length: N * K }, () => rng.nextFloat()),
        [N, K],
      ),
    );
    const theta = tf.variable(tf.tensor2d(rng.fillNormal(new Float32Array(R * K * P)), [R, K * P]));
    const E = 40;
    const edges = {
      subjects: Int32Array.from({ length: E }, () => rng.nextInt(N)),
      relations: Int32Array.from({ length: E }, () => rng.nextInt(R)),
      objects: Int32Array.from({ length: E }, () => rng.nextInt(N)),
    };
    const weights = tf.tensor1d(Float32Array.from({ length: E }, () => rng.nextNormal()));
    const loss = (logits: tf.Tensor1D): tf.Scalar =>
      tf.sum(tf.mul(weights, tf.softplus(logits))) as tf.Scalar;
    // two slots stacked: rows of slot 1 follow slot 0 (z rows N.., theta rows R..)
    const fused = tf.variableGrads(
      () =>
        loss(
          edgeLogitsFused(
            [tf.slice(z, [0, 0], [3, K]), tf.slice(z, [3, 0], [N - 3, K])],
            [tf.slice(theta, [0, 0], [1, K * P]), tf.slice(theta, [1, 0], [R - 1, K * P])],
            edges,
            K,
            directed,
          ),
        ),
      [z, theta],
    );
    const composed = tf.variableGrads(
      () =>
        loss(
          edgeLogits(
            z,
            theta,
            tf.tensor1d(edges.subjects, 'int32'),
            tf.tensor1d(edges.relations, 'int32'),
            tf.tensor1d(edges.objects, 'int32'),
            K,
            directed,
          ),
        ),
      [z, theta],
    );
    close(fused.value.dataSync()[0], composed.value.dataSync()[0], 1e-5, 'loss');
    for (const v of [z, theta]) {
      const a = fused.grads[v.name].dataSync();
      const b = composed.grads[v.name].dataSync();
      for (let i = 0; i < a.length; i++) close(a[i], b[i], 1e-4, `grad ${v.name}[${i}]`);
    }
    tf.dispose([
      z,
      theta,
      weights,
      fused.value,
      composed.value,
      ...Object.values(fused.grads),
      ...Object.values(composed.grads),
    ]);
  }
});
