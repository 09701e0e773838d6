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

test('window shift: GRU weights kept, initial psi and theta (means, log-variances) become G(initial), block by block', async () => {
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
  trainer.testHooks.shiftBlockRows = 7; // 30 entity rows in blocks of 7, 7, 7, 7, 2
  await trainer.shiftWindow();
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

test('a window update trains only the rows of the entities and relations its facts touch (the rest keep value and moments)', async () => {
  const N = 30;
  const R = 3;
  // relation 1 and entities >= 20 never occur in the window
  const snapshots = plantedSnapshots({ N: 20, R, T: 2, subjects: 8 }).map((s) => {
    const kept: number[] = [];
    for (let i = 0; i < s.triples.length; i += 3)
      if (s.triples[i + 1] !== 1) kept.push(s.triples[i], s.triples[i + 1], s.triples[i + 2]);
    return { ...s, triples: Int32Array.from(kept), numEntities: N, numRelations: R };
  });
  const f = await createNlsmForecaster({
    model: 'nlsm',
    ...small,
    numEntities: N,
    numRelations: R,
    epochsPerWindow: 3,
  });
  await f.observe(snapshots[0]);
  const rowsOf = (name: string, rows: number[]): number[][] => {
    const p = f.trainer.params.get(name)!;
    return rows.flatMap((row) =>
      [p.value, p.m, p.v].map((a) => [...a.subarray(row * p.width, (row + 1) * p.width)]),
    );
  };
  const before = {
    untouchedRelation: rowsOf('thetaMean', [1]).concat(rowsOf('thetaLogVar', [1])),
    touchedRelations: rowsOf('thetaMean', [0, 2]),
    untouchedEntities: rowsOf('psiMean', [20, 29]).concat(rowsOf('psiLogVar', [20, 29])),
  };
  const report = await f.trainer.observe(snapshots[1]);
  assert.equal(report?.relations, 2, 'two relations trained');
  assert.ok(report!.universe <= 20);
  assert.deepEqual(
    rowsOf('thetaMean', [1]).concat(rowsOf('thetaLogVar', [1])),
    before.untouchedRelation,
    'the untouched relation row is not trained',
  );
  assert.deepEqual(
    rowsOf('psiMean', [20, 29]).concat(rowsOf('psiLogVar', [20, 29])),
    before.untouchedEntities,
    'untouched entity rows are not trained',
  );
  assert.notDeepEqual(rowsOf('thetaMean', [0, 2]), before.touchedRelations, 'touched rows train');
  const scores = await f.score(2, 'object', Int32Array.from([0, 1]), Int32Array.from([1, 2]), N);
  assert.ok(scores.every(Number.isFinite));
  f.dispose();
});
