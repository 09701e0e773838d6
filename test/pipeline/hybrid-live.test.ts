// nlsm-h in the live pipeline: HybridLiveModel (NLSM + fitted history term, refitted on the stream's own steps)
// fits, exports its weights with the model, resumes from its checkpoint with the same weights; ServingHistory
// serves the announced weights; stepGains is served minus plain MRR per filter and direction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLiveModel } from '../../src/train/live-models.ts';
import { ServingHistory } from '../../src/serve/history-terms.ts';
import { stepGains } from '../../src/pipeline/run-pipeline.ts';
import { HybridHistory } from '../../src/model/hybrid-history.ts';
import { hybridWeightsFromMetadata } from '../../src/model/terms.ts';
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
        assert.equal(model.exportScorer(1, 1, 'v', 40, 2).metadata.form, 'recurrency (initial)');
    }
    assert.ok(
      lines.some((l) => /nlsm-h: fitted/.test(l)),
      `no fit happened:\n${lines.join('\n')}`,
    );
    const exported = model.exportScorer(cut, 2, 'v', 40, 2);
    assert.notEqual(exported.metadata.form, 'recurrency (initial)');
    const weights = hybridWeightsFromMetadata(exported.metadata)!;
    assert.equal(weights.numRelations, 2);
    assert.ok(exported.onnx.length > 0);
    model.dispose();

    // restart: same weights and step, history rebuilt from the covered snapshots
    const resumed = await createLiveModel(options);
    assert.equal(resumed.lastStep, snapshots[cut - 1].step);
    for (const s of snapshots.slice(0, cut)) await resumed.replay(s);
    const again = resumed.exportScorer(cut, 2, 'v', 40, 2);
    assert.deepEqual(hybridWeightsFromMetadata(again.metadata), weights);
    await resumed.observe(snapshots[cut]); // and it keeps learning
    assert.equal(resumed.lastStep, snapshots[cut].step);
    resumed.dispose();

    // the serving side adds exactly the terms of those weights
    const serving = new ServingHistory();
    serving.setFromMetadata(exported.metadata);
    const reference = new HybridHistory({
      numRelations: 2,
      decay: weights.decay,
      relaxedTopK: weights.relaxedTopK,
    });
    for (const s of snapshots.slice(0, cut)) {
      serving.observe(s);
      reference.observe(s);
    }
    assert.deepEqual(serving.hybridWeights, weights);
    let compared = 0;
    for (const direction of ['object', 'subject'] as const)
      for (let anchor = 0; anchor < 40; anchor++) {
        const got = serving.terms(direction, anchor, 1);
        const want = reference.terms(snapshots[cut].step, direction, anchor, 1, weights);
        assert.deepEqual(got?.entities ?? new Int32Array(0), want.entities);
        assert.deepEqual(got?.values ?? new Float32Array(0), want.values);
        compared += want.entities.length;
      }
    assert.ok(compared > 0);
    // a recurrency announcement switches the same history back to `history.*` parameters
    serving.setFromMetadata({
      'history.decay': '0.5',
      'history.strictWeight': '1',
      'history.relaxedWeight': '0',
    });
    assert.equal(serving.hybridWeights, undefined);
    assert.equal(serving.current?.decay, 0.5);
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
