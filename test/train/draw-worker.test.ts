// The 'onnx' engine's epoch draws made on the draw worker thread (src/train/nlsm/draw-worker.ts, one epoch ahead of
// the kernels) against drawing them in place when taken: from the same seed and stream every window update must
// produce the same ELBO, the same parameters and the same generator state, bit for bit. That includes updates the
// convergence rule stops early (the worker has drawn an epoch that is never used, so the generator must continue
// after the last epoch taken), an update a NaN loss aborts, and two trainers drawing at the same time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNlsmForecaster } from '../../src/train/nlsm/index.ts';
import type { DrawThread } from '../../src/train/nlsm/draw-worker.ts';
import type { TrainerTestHooks } from '../../src/train/nlsm/parameters.ts';
import { plantedSnapshots } from './synthetic.ts';

async function train(
  drawThread: DrawThread,
  testHooks: TrainerTestHooks = {},
  convergenceTolerance = 0.02,
) {
  const snapshots = plantedSnapshots({ N: 60, R: 3, T: 8, subjects: 20, seed: 5 });
  const f = await createNlsmForecaster({
    model: 'nlsm',
    numEntities: 60,
    numRelations: 3,
    directed: true,
    K: 8,
    windowSize: 5,
    epochsPerWindow: 12,
    minEpochsPerWindow: 2,
    // 0.02 stops most updates after a few epochs
    convergenceTolerance,
    seed: 11,
    engine: 'onnx',
    drawThread,
    testHooks,
  });
  const elbos: number[] = [];
  const epochs: number[] = [];
  for (const snapshot of snapshots) {
    const report = await f.trainer.observe(snapshot);
    elbos.push(report!.elbo);
    epochs.push(report!.epochs);
  }
  const params = new Map([...f.trainer.params].map(([name, p]) => [name, p.value.slice()]));
  const rngState = f.trainer.rng.getState();
  const nanRestores = f.nanRestores;
  f.dispose();
  return { elbos, epochs, params, rngState, nanRestores };
}

function assertIdentical(
  worker: Awaited<ReturnType<typeof train>>,
  inPlace: Awaited<ReturnType<typeof train>>,
): void {
  assert.deepEqual(worker.epochs, inPlace.epochs);
  assert.deepEqual(worker.elbos, inPlace.elbos);
  assert.deepEqual(worker.rngState, inPlace.rngState);
  assert.equal(worker.nanRestores, inPlace.nanRestores);
  for (const [name, value] of inPlace.params)
    assert.deepEqual(worker.params.get(name), value, `parameter ${name}`);
}

test('epoch draws on the worker thread train exactly as draws made in place, through early stops', async () => {
  const worker = await train('worker');
  const inPlace = await train('main');
  assertIdentical(worker, inPlace);
  // the convergence rule stopped some updates before their last epoch, so a drawn-ahead epoch was dropped
  assert.ok(
    worker.epochs.some((e) => e < 12),
    `epochs per update: ${worker.epochs.join(', ')}`,
  );
});

test('epoch draws on the worker thread: an update a NaN loss aborts continues the same way', async () => {
  const hooks = { corruptWorkingCopy: { update: 4, epoch: 2 } };
  const worker = await train('worker', hooks);
  const inPlace = await train('main', hooks);
  assert.equal(worker.nanRestores, 1);
  assertIdentical(worker, inPlace);
});

test('epoch draws on the worker thread: two trainers updating at once in one process draw their own epochs', async () => {
  // every update runs all its epochs, so the two trainers' updates overlap for many epochs
  const [a, b] = await Promise.all([train('worker', {}, 0), train('worker', {}, 0)]);
  const inPlace = await train('main', {}, 0);
  assertIdentical(a, inPlace);
  assertIdentical(b, inPlace);
});
