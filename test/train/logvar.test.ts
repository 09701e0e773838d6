// The log-variance GRUs run in the frame logVar = log(s^2) + scale * h (src/train/graph.ts
// logVarGruStep): the fix for the UCI collapse, where one Adam step on a GRU fed the raw
// log-variance (|h| ~ 9 for s = 0.01) flipped update gates and threw log-variances into [-1, 1].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../../src/train/nlsm/backend.ts';
import {
  gruStep,
  logVarGruStep,
  type GruWeights,
  type LogVarFrame,
} from '../../src/train/nlsm/graph.ts';
import { logVarGruStepReference } from '../../src/train/nlsm/math.ts';
import { Xoshiro128 } from '../../src/core/random.ts';
import { randomGruWeights } from './synthetic.ts';

const H = 256; // theta GRU width for K = 64, directed
const S_THETA = 0.01;

/** The trainer's initial GRU: recurrent weights N(0, 0.01), update-gate bias 4. */
function initialGru(rng: Xoshiro128): Record<string, Float32Array> {
  const matrix = (): Float32Array => rng.fillNormal(new Float32Array(H * H), 0, 0.01);
  return {
    Uu: matrix(),
    Ur: matrix(),
    Un: matrix(),
    bu: new Float32Array(H).fill(4),
    br: new Float32Array(H),
    bn: new Float32Array(H),
    bhn: new Float32Array(H),
  };
}

function asTensors(w: Record<string, Float32Array>): GruWeights {
  const out = {} as Record<string, tf.Tensor>;
  for (const [k, v] of Object.entries(w))
    out[k] = v.length === H ? tf.tensor1d(v) : tf.tensor2d(v, [H, H]);
  return out as unknown as GruWeights;
}

/**
 * Largest change of a one-step-evolved log-variance after ONE Adam step (its first step moves
 * every weight by lr * sign(gradient)) on the prior term sum(exp(logVar')), a stand-in for the
 * random-walk penalty (exp(lv) / 2 s^2) whose gradient dominates while the variance is wrong.
 */
function shiftAfterOneAdamStep(frame: LogVarFrame | null, lr: number): number {
  return tf.tidy(() => {
    const weights = initialGru(new Xoshiro128(4));
    const logVar = tf.fill([8, H], Math.log(S_THETA ** 2)) as tf.Tensor2D; // [8, H]
    const step = (w: GruWeights): tf.Tensor2D =>
      frame ? logVarGruStep(logVar, w, frame) : gruStep(logVar, w);
    const names = Object.keys(weights);
    const variables = names.map((k) => tf.variable(asTensors({ [k]: weights[k] })[k as 'Uu']));
    const before = step(asTensors(weights));
    const asWeights = (): GruWeights =>
      Object.fromEntries(names.map((k, i) => [k, variables[i]])) as unknown as GruWeights;
    const { grads } = tf.variableGrads(() => tf.sum(tf.exp(step(asWeights()))) as tf.Scalar);
    for (let i = 0; i < names.length; i++) {
      const g = grads[variables[i].name];
      if (g) variables[i].assign(tf.sub(variables[i], tf.mul(tf.sign(g), lr)));
    }
    const after = step(asWeights());
    const shift = tf.max(tf.abs(tf.sub(after, before))).dataSync()[0];
    for (const v of variables) v.dispose();
    return shift;
  });
}

test('log-variance frame: one Adam step moves the evolved log-variance by < 0.1 (raw state: by nats)', async () => {
  await ensureBackend();
  const lr = 0.03;
  const raw = shiftAfterOneAdamStep(null, lr);
  const framed = shiftAfterOneAdamStep({ centre: Math.log(S_THETA ** 2), scale: 1 }, lr);
  // raw hidden state -9.2: pre-activations move by lr * H * 9.2 = 70, the update gate flips
  assert.ok(raw > 3, `raw-state GRU: one Adam step moved the log-variance by ${raw.toFixed(3)}`);
  assert.ok(
    framed < 0.1,
    `framed GRU: one Adam step moved the log-variance by ${framed.toFixed(4)}`,
  );
});

test('logVarGruStep equals the plain-array reference and stays within the hull of its state and centre +- scale', async () => {
  await ensureBackend();
  const rng = new Xoshiro128(11);
  const B = 5;
  const h = 6;
  const frame = { centre: Math.log(0.1 ** 2), scale: 2 };
  // large weights: the gates saturate either way
  const w = randomGruWeights(rng, h, { matrix: 20, vector: 20 });
  const logVar = rng.fillNormal(new Float32Array(B * h), frame.centre, 3);
  const got = tf.tidy(() =>
    logVarGruStep(
      tf.tensor2d(logVar, [B, h]),
      {
        Uu: tf.tensor2d(w.Uu, [h, h]),
        Ur: tf.tensor2d(w.Ur, [h, h]),
        Un: tf.tensor2d(w.Un, [h, h]),
        bu: tf.tensor1d(w.bu),
        br: tf.tensor1d(w.br),
        bn: tf.tensor1d(w.bn),
        bhn: tf.tensor1d(w.bhn),
      },
      frame,
    ).dataSync(),
  );
  const want = logVarGruStepReference(logVar, B, h, w, frame);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) < 1e-4, `[${i}] ${got[i]} vs ${want[i]}`);
    const lo = Math.min(logVar[i], frame.centre - frame.scale) - 1e-4;
    const hi = Math.max(logVar[i], frame.centre + frame.scale) + 1e-4;
    assert.ok(got[i] >= lo && got[i] <= hi, `[${i}] ${got[i]} outside [${lo}, ${hi}]`);
  }
});
