// The 'onnx' training engine (src/train/nlsm/fused-fit.ts, onnx-kernels.ts: hand-derived gradients run by
// onnxruntime) against the reference (window-fit.ts: tfjs autodiff of graph.ts windowElbo): from the same seed and
// stream, both draw the same noise and negatives, so every window update must reach the same ELBO and the same
// parameters up to float32 rounding. NLSM (GRUs, log-variance frames, window shifts) and BAS, directed and not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNlsmForecaster } from '../../src/train/nlsm/index.ts';
import type { TrainerTestHooks } from '../../src/train/nlsm/parameters.ts';
import { plantedSnapshots } from './synthetic.ts';

async function trainBoth(
  model: 'nlsm' | 'bas',
  directed: boolean,
  steps: number,
  testHooks: TrainerTestHooks = {},
) {
  const snapshots = plantedSnapshots({ N: 60, R: 3, T: steps, subjects: 20, seed: 5 });
  const runs = [];
  for (const engine of ['tfjs', 'onnx'] as const) {
    const f = await createNlsmForecaster({
      model,
      numEntities: 60,
      numRelations: 3,
      directed,
      K: 8,
      windowSize: 5,
      epochsPerWindow: 3,
      minEpochsPerWindow: 3,
      seed: 11,
      engine,
      testHooks,
    });
    const elbos: number[] = [];
    for (const snapshot of snapshots) {
      const report = await f.trainer.observe(snapshot);
      elbos.push(report!.elbo);
    }
    const params = new Map([...f.trainer.params].map(([name, p]) => [name, p.value.slice()]));
    runs.push({ elbos, params, adamStep: f.trainer.adamStep });
    f.dispose();
  }
  return runs;
}

function assertSameTraining(runs: Awaited<ReturnType<typeof trainBoth>>): void {
  const [reference, fused] = runs;
  assert.equal(fused.adamStep, reference.adamStep);
  fused.elbos.forEach((elbo, i) => {
    assert.ok(Number.isFinite(elbo), `update ${i}: ELBO ${elbo}`);
    const tolerance = 1e-3 * Math.max(1, Math.abs(reference.elbos[i]));
    assert.ok(
      Math.abs(elbo - reference.elbos[i]) < tolerance,
      `update ${i}: ELBO per fact ${elbo} (onnx) vs ${reference.elbos[i]} (tfjs)`,
    );
  });
  for (const [name, value] of reference.params) {
    const other = fused.params.get(name)!;
    assert.equal(other.length, value.length, name);
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < value.length; i++) {
      worst = Math.max(worst, Math.abs(other[i] - value[i]));
      moved = Math.max(moved, Math.abs(value[i]));
    }
    assert.ok(worst < 2e-3 * Math.max(1, moved), `${name}: parameters differ by ${worst}`);
  }
}

test('NLSM, directed: the onnx engine trains exactly like tfjs autodiff (ELBO and parameters, through window shifts)', async () => {
  const runs = await trainBoth('nlsm', true, 7);
  assertSameTraining(runs);
  // the run is not trivially equal: training moved the GRU weights away from their initial values
  const first = plantedSnapshots({ N: 60, R: 3, T: 1, subjects: 20, seed: 5 });
  assert.equal(first.length, 1);
  assert.ok(runs[1].elbos[6] > runs[1].elbos[0], `ELBO per fact rose: ${runs[1].elbos.join(', ')}`);
});

test('NLSM, undirected (P = 3) and BAS: the onnx engine matches tfjs autodiff', async () => {
  assertSameTraining(await trainBoth('nlsm', false, 3));
  assertSameTraining(await trainBoth('bas', true, 6));
});

test('the onnx engine runs a window of many edges in chunks (priors counted once) and trains the same', async () => {
  // K = 8, 8 * 37 edge values per run: chunks of 37 edges, up to about 30 runs per epoch here
  assertSameTraining(await trainBoth('nlsm', true, 6, { edgeValuesPerRun: 8 * 37 }));
  assertSameTraining(await trainBoth('bas', true, 3, { edgeValuesPerRun: 8 * 37 }));
});
