// Entity rows (psi) take Adam steps of entityLrScale * lr (TKG_TRAIN_ENTITY_LR_SCALE), theta and the
// GRU weights lr: an entity is trained only in the windows that touch it, the shared weights in all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNlsmForecaster } from '../../src/train/nlsm/index.ts';
import { plantedSnapshots } from './synthetic.ts';

/** Largest |change| / lr of psi means and of GRU weights over the first Adam step (bias-corrected: +-lr each). */
async function firstStep(entityLrScale: number): Promise<{ psi: number; gru: number }> {
  const lr = 0.05;
  const f = await createNlsmForecaster({
    model: 'nlsm',
    numEntities: 30,
    numRelations: 2,
    directed: true,
    K: 4,
    windowSize: 3,
    seed: 3,
    epochsPerWindow: 1,
    minEpochsPerWindow: 1,
    learningRate: lr,
    entityLrScale,
  });
  const psiBefore = f.trainer.windowInitialState().psiMean;
  const gruBefore = f.trainer.gruWeightsCopy();
  const [first, second] = plantedSnapshots({ N: 30, R: 2, T: 2, subjects: 10 });
  await f.observe(first);
  await f.observe(second); // the GRUs get gradients once the window holds two slots
  const psiAfter = f.trainer.windowInitialState().psiMean;
  const gruAfter = f.trainer.gruWeightsCopy();
  const maxMove = (a: Float32Array, b: Float32Array): number =>
    a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  const gru = Math.max(...Object.keys(gruBefore).map((k) => maxMove(gruBefore[k], gruAfter[k])));
  f.dispose();
  return { psi: maxMove(psiBefore, psiAfter) / lr, gru: gru / lr };
}

test('entityLrScale: psi moves entityLrScale x lr per Adam step, GRU weights lr', async () => {
  const one = await firstStep(1);
  const two = await firstStep(2);
  // two steps (one per update), each at most ~scale * lr per coordinate (Adam: m / sqrt(v) <= ~1)
  assert.ok(one.psi > 1 && one.psi <= 2.01, `scale 1: psi moved ${one.psi.toFixed(4)} lr`);
  assert.ok(two.psi > 2.5 && two.psi <= 4.02, `scale 2: psi moved ${two.psi.toFixed(4)} lr`);
  assert.ok(one.gru <= 1.01 && two.gru <= 1.01, `GRU moved ${one.gru} / ${two.gru} lr`);
  assert.ok(two.gru > 0.5, `GRU moved ${two.gru.toFixed(4)} lr`);
});
