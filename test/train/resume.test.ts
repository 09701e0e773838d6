import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNlsmForecaster, type NlsmOptions } from '../../src/train/nlsm/index.ts';
import { plantedSnapshots } from './synthetic.ts';

const options = (extra: Partial<NlsmOptions> = {}): NlsmOptions => ({
  model: 'nlsm',
  numEntities: 40,
  numRelations: 3,
  directed: true,
  K: 6,
  windowSize: 3,
  epochsPerWindow: 3,
  seed: 17,
  ...extra,
});

test('a run stopped and resumed from its checkpoint equals an uninterrupted run (exactly)', async () => {
  const snapshots = plantedSnapshots({ N: 40, R: 3, T: 9, subjects: 15, seed: 4 });
  const dir = mkdtempSync(join(tmpdir(), 'tkg-train-resume-'));
  try {
    for (const model of ['nlsm', 'bas'] as const) {
      const checkpointDir = join(dir, model);
      const uninterrupted = await createNlsmForecaster(options({ model }));
      for (const s of snapshots) await uninterrupted.observe(s);

      const first = await createNlsmForecaster(
        options({ model, checkpointDir, checkpointEvery: 1 }),
      );
      for (const s of snapshots.slice(0, 5)) await first.observe(s);
      first.dispose(); // "crash" after step 4 (its checkpoint is on disk)

      const resumed = await createNlsmForecaster(
        options({ model, checkpointDir, checkpointEvery: 1 }),
      );
      assert.equal(resumed.lastObservedStep, 4);
      for (const s of snapshots) await resumed.observe(s); // replays of steps 0-4 are ignored
      assert.equal(resumed.trainer.skippedReplays, 5);

      for (const [name, p] of uninterrupted.trainer.params) {
        assert.deepEqual(resumed.trainer.params.get(name)!.value, p.value, `${model}: ${name}`);
        assert.deepEqual(resumed.trainer.params.get(name)!.m, p.m, `${model}: Adam m of ${name}`);
      }
      const anchors = Int32Array.from([0, 1, 2, 3]);
      const relations = Int32Array.from([0, 1, 2, 0]);
      const a = await uninterrupted.score(11, 'object', anchors, relations, 40);
      const b = await resumed.score(11, 'object', anchors, relations, 40);
      assert.deepEqual(b, a, `${model}: multi-step scores identical`);
      uninterrupted.dispose();
      resumed.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a NaN loss restores the last good state, is counted and never reaches the parameters', async () => {
  const snapshots = plantedSnapshots({ N: 40, R: 3, T: 6, subjects: 15, seed: 5 });
  const restores: number[][] = [];
  const f = await createNlsmForecaster(
    options({
      onNanRestore: (count, step) => restores.push([count, step]),
      testHooks: { corruptWorkingCopy: { update: 4, epoch: 2 } },
    }),
  );
  for (const s of snapshots.slice(0, 3)) await f.observe(s);
  // the state before update 4 (after the window shift that update 4 performs first)
  await f.observe(snapshots[3]);
  assert.equal(f.nanRestores, 1);
  assert.deepEqual(restores, [[1, 3]]);
  for (const p of f.trainer.params.values()) {
    assert.ok(p.value.every(Number.isFinite), 'no NaN in the parameters');
  }
  await f.observe(snapshots[4]);
  await f.observe(snapshots[5]);
  assert.equal(f.nanRestores, 1, 'later updates train normally');
  const scores = await f.score(
    6,
    'subject',
    Int32Array.from([20, 21]),
    Int32Array.from([0, 1]),
    40,
  );
  assert.ok(scores.every(Number.isFinite));
  f.dispose();
});
