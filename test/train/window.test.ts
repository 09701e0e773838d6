import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createNlsmForecaster } from '../../src/train/nlsm/index.ts';
import { gruStepReference, logVarGruStepReference } from '../../src/train/nlsm/math.ts';
import { plantedSnapshots } from './synthetic.ts';

const small = {
  numEntities: 30,
  numRelations: 2,
  directed: true,
  K: 4,
  windowSize: 3,
  seed: 3,
  negativesPerPositive: 2,
};

test('window shift: GRU weights kept, initial psi and theta (means, log-variances) become G(initial)', async () => {
  const snapshots = plantedSnapshots({ N: 30, R: 2, T: 5, subjects: 10 });
  const f = await createNlsmForecaster({ model: 'nlsm', ...small, epochsPerWindow: 2 });
  for (const s of snapshots.slice(0, 3)) await f.observe(s);
  const trainer = f.trainer;
  assert.deepEqual(
    trainer.slots.map((s) => s.step),
    [0, 1, 2],
  );
  const before = trainer.windowInitialState();
  const weights = trainer.gruWeightsCopy();
  trainer.shiftWindow();
  const after = trainer.windowInitialState();
  assert.deepEqual(
    trainer.slots.map((s) => s.step),
    [1, 2],
  );
  assert.deepEqual(trainer.gruWeightsCopy(), weights, 'GRU weights unchanged by the shift');
  const K = 4;
  const D = 4 * K;
  // log-variance GRUs evolve in their frame log(s^2) + scale * h (s = 0.1, scale 1 by default)
  const frame = { centre: Math.log(0.1 ** 2), scale: 1 };
  const expect = (state: Float32Array, rows: number, H: number, gru: string): Float32Array => {
    const w = {
      Uu: weights[`${gru}.Uu`],
      Ur: weights[`${gru}.Ur`],
      Un: weights[`${gru}.Un`],
      bu: weights[`${gru}.bu`],
      br: weights[`${gru}.br`],
      bn: weights[`${gru}.bn`],
      bhn: weights[`${gru}.bhn`],
    };
    return gru.includes('LogVar')
      ? logVarGruStepReference(state, rows, H, w, frame)
      : gruStepReference(state, rows, H, w);
  };
  const cases: [Float32Array, Float32Array, number, number, string][] = [
    [before.psiMean, after.psiMean, 30, K, 'psiMeanGru'],
    [before.psiLogVar, after.psiLogVar, 30, K, 'psiLogVarGru'],
    [before.thetaMean, after.thetaMean, 2, D, 'thetaMeanGru'],
    [before.thetaLogVar, after.thetaLogVar, 2, D, 'thetaLogVarGru'],
  ];
  for (const [old, got, rows, H, gru] of cases) {
    const want = expect(old, rows, H, gru);
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `${gru}[${i}] ${got[i]} vs ${want[i]}`);
    assert.ok(
      old.some((v, i) => Math.abs(v - got[i]) > 1e-4),
      `${gru}: the shift changed the state`,
    );
  }
  f.dispose();
});

test('observe() shifts once per new step and keeps m slots; BAS starts a new slot from the latest embedding', async () => {
  const snapshots = plantedSnapshots({ N: 30, R: 2, T: 6, subjects: 10 });
  const nlsm = await createNlsmForecaster({ model: 'nlsm', ...small, epochsPerWindow: 1 });
  const bas = await createNlsmForecaster({ model: 'bas', ...small, epochsPerWindow: 1 });
  for (const s of snapshots) {
    await nlsm.observe(s);
    await bas.observe(s);
  }
  assert.deepEqual(
    nlsm.trainer.slots.map((s) => s.step),
    [3, 4, 5],
  );
  assert.deepEqual(
    bas.trainer.slots.map((s) => s.step),
    [3, 4, 5],
  );
  // a skipped step becomes an empty slot; replays of old steps are ignored
  await nlsm.observe({ ...snapshots[5], step: 8 });
  assert.deepEqual(
    nlsm.trainer.slots.map((s) => [s.step, s.triples.length > 0]),
    [
      [6, false],
      [7, false],
      [8, true],
    ],
  );
  await nlsm.observe(snapshots[2]);
  assert.equal(nlsm.trainer.skippedReplays, 1);
  nlsm.dispose();
  bas.dispose();
});

test('new entities appear without restart (rows from the prior; scores cover the new N)', async () => {
  const snapshots = plantedSnapshots({ N: 30, R: 2, T: 4, subjects: 10 });
  const f = await createNlsmForecaster({ model: 'nlsm', ...small, epochsPerWindow: 1 });
  for (const s of snapshots.slice(0, 3)) await f.observe(s);
  assert.equal(f.trainer.N, 30);
  const grown = {
    step: 3,
    triples: Int32Array.from([0, 0, 34, 35, 1, 2]),
    numEntities: 36,
    numRelations: 2,
  };
  await f.observe(grown);
  assert.equal(f.trainer.N, 36);
  const scores = await f.score(4, 'object', Int32Array.from([35, 40]), Int32Array.from([1, 0]), 41);
  assert.equal(scores.length, 2 * 41);
  assert.ok(scores.every(Number.isFinite));
  const state = f.scoringState(4);
  assert.equal(state.z.length, 36 * 4);
  assert.equal(state.theta.length, 2 * 4 * 4);
  f.dispose();
});

test('no tensor leak: tf.memory().numTensors is flat over 100 window steps (observe + score)', async () => {
  const snapshots = plantedSnapshots({ N: 40, R: 2, T: 105, subjects: 12, switchRate: 0.05 });
  for (const model of ['nlsm', 'bas'] as const) {
    const f = await createNlsmForecaster({ model, ...small, numEntities: 40, epochsPerWindow: 2 });
    const counts: number[] = [];
    for (const s of snapshots) {
      await f.observe(s);
      await f.score(s.step + 2, 'subject', Int32Array.from([12, 13]), Int32Array.from([0, 1]), 40);
      if (s.step >= 5) counts.push(tf.memory().numTensors);
    }
    assert.equal(counts.length, 100);
    assert.equal(
      Math.max(...counts),
      Math.min(...counts),
      `${model}: tensors ${Math.min(...counts)}..${Math.max(...counts)}`,
    );
    f.dispose();
  }
});
