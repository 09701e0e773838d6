// nlsm-h in the live pipeline: HybridLiveModel (NLSM + fitted history term, refitted on the stream's own steps)
// fits, exports its weights as the bundle's term spec, resumes from its checkpoint with the same weights; the serving
// side's TermInputs computes exactly those terms; stepGains is served minus plain MRR per filter and direction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLiveModel, liveModelKinds } from '../../src/train/live/index.ts';
import { TermInputs } from '../../src/model/term-inputs.ts';
import { stepGains } from '../../src/pipeline/run-pipeline.ts';
import { HybridHistory } from '../../src/model/hybrid-history.ts';
import type { HybridWeights } from '../../src/model/hybrid-features.ts';
import type { TermSpec } from '../../src/model/terms.ts';
import type { StepMetricsRecord } from '../../src/serve/live-eval.ts';
import { syntheticTkg } from '../hybrid/helpers.ts';

test('HybridLiveModel: fits on its own recent steps, exports the weights, resumes with the same weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-hybrid-live-'));
  const { snapshots } = syntheticTkg({
    N: 40,
    R: 2,
    steps: 14,
    pairsPerStep: 30,
    repeat: 0.6,
    seed: 5,
  });
  const options = {
    kind: 'nlsm-h' as const,
    dir,
    seed: 3,
    K: 8,
    windowSize: 3,
    epochsPerWindow: 2,
    selectEvery: 5,
    selectionSteps: 2,
  };
  const lines: string[] = [];
  try {
    const model = await createLiveModel({ ...options, onProgress: (l) => lines.push(l) });
    const cut = 10;
    for (const s of snapshots.slice(0, cut)) {
      await model.observe(s);
      await model.checkpoint();
      // before the first fit: the recurrency form (reference scores, ties broken by the NLSM logit)
      if (s.step === 0)
        assert.equal(model.scoringParts(1, 1, 40, 2).notes.form, 'recurrency (initial)');
    }
    assert.ok(
      lines.some((l) => /nlsm-h: fitted/.test(l)),
      `no fit happened:\n${lines.join('\n')}`,
    );
    const exported = model.scoringParts(cut, 2, 40, 2);
    assert.notEqual(exported.notes.form, 'recurrency (initial)');
    assert.equal(exported.terms.kind, 'hybrid');
    const weights = (exported.terms as { weights: HybridWeights }).weights;
    assert.equal(weights.numRelations, 2);
    assert.equal(exported.dense.numEntities, 40);
    model.dispose();

    // restart: same weights and step, history rebuilt from the covered snapshots
    const resumed = await createLiveModel(options);
    assert.equal(resumed.lastStep, snapshots[cut - 1].step);
    for (const s of snapshots.slice(0, cut)) await resumed.replay(s);
    const again = resumed.scoringParts(cut, 2, 40, 2);
    assert.deepEqual(again.terms, exported.terms);
    await resumed.observe(snapshots[cut]); // and it keeps learning
    assert.equal(resumed.lastStep, snapshots[cut].step);
    resumed.dispose();

    // the serving side adds exactly the terms of those weights
    const serving = new TermInputs();
    const reference = new HybridHistory({
      numRelations: 2,
      decay: weights.decay,
      relaxedTopK: weights.relaxedTopK,
    });
    for (const s of snapshots.slice(0, cut)) {
      serving.add(s);
      reference.observe(s);
    }
    const state = serving.stateAt(exported.terms, snapshots[cut - 1].step)!;
    let compared = 0;
    for (const direction of ['object', 'subject'] as const)
      for (let anchor = 0; anchor < 40; anchor++) {
        const got = state.terms(direction, anchor, 1);
        const want = reference.terms(snapshots[cut].step, direction, anchor, 1, weights);
        assert.deepEqual(got?.entities ?? new Int32Array(0), want.entities);
        assert.deepEqual(got?.values ?? new Float32Array(0), want.values);
        compared += want.entities.length;
      }
    assert.ok(compared > 0);
    // a recurrency bundle on the same inputs gets its own state of the same step
    const recurrency: TermSpec = {
      kind: 'recurrency',
      numRelations: 2,
      decay: 0.5,
      strictWeight: 1,
      relaxedWeight: 0,
    };
    const other = serving.stateAt(recurrency, snapshots[cut - 1].step)!;
    assert.notEqual(other, state);
    assert.equal(other.lastStep, snapshots[cut - 1].step);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stepGains: served minus plain MRR per filter and direction', () => {
  const record = (filter: string, direction: string, mrr: number, count = 10) =>
    ({ filter, direction, mrr, count }) as unknown as StepMetricsRecord;
  const gains = stepGains(
    [record('raw', 'both', 50), record('timeAware', 'both', 70), record('static', 'object', 60, 0)],
    [
      record('raw', 'both', 45.5),
      record('timeAware', 'both', 71),
      record('static', 'object', 50, 0),
    ],
  );
  assert.deepEqual(gains, [
    { filter: 'raw', direction: 'both', gain: 4.5 },
    { filter: 'timeAware', direction: 'both', gain: -1 },
  ]);
});

test('every live model kind takes a relation and entities that first appear mid-stream (a live vocabulary grows)', async () => {
  const { snapshots: all } = syntheticTkg({
    N: 40,
    R: 3,
    steps: 12,
    pairsPerStep: 30,
    repeat: 0.6,
    seed: 9,
  });
  // steps 0..5 know relations 0..1 and entities 0..29; relation 2 and entities 30..39 appear at step 6
  const snapshots = all.map((s) => {
    if (s.step >= 6) return { ...s, numEntities: 40, numRelations: 3 };
    const kept: number[] = [];
    for (let i = 0; i < s.triples.length; i += 3)
      if (s.triples[i + 1] < 2 && s.triples[i] < 30 && s.triples[i + 2] < 30)
        kept.push(s.triples[i], s.triples[i + 1], s.triples[i + 2]);
    return { ...s, triples: Int32Array.from(kept), numEntities: 30, numRelations: 2 };
  });
  assert.ok(
    snapshots[6].triples.some((x, i) => i % 3 === 1 && x === 2),
    'relation 2 is new at step 6',
  );
  for (const kind of liveModelKinds) {
    const dir = mkdtempSync(join(tmpdir(), `tkg-live-grow-${kind}-`));
    try {
      const model = await createLiveModel({
        kind,
        dir,
        seed: 3,
        K: 4,
        windowSize: 3,
        epochsPerWindow: 1,
        selectEvery: 3,
        selectionSteps: 2,
      });
      for (const s of snapshots) {
        await model.observe(s);
        const parts = model.scoringParts(s.step + 1, s.step + 1, s.numEntities, s.numRelations);
        assert.equal(parts.dense.numEntities, s.numEntities, `${kind} step ${s.step}`);
      }
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
