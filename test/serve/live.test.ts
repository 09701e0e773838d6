// Live evaluation and forecasts, in-process: a step closing is ranked against the model that forecast it (even after
// a newer model was swapped in), metrics per filter and direction with drift, forecasts with sigmoid probabilities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot } from '../../src/core/types.ts';
import { summarizeRanks } from '../../src/eval/rank.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { exportScoringModel, vocabularyHash } from '../../src/model/scoring-graph.ts';
import { activePairs } from '../../src/serve/forecasts.ts';
import type { StepMetricsRecord } from '../../src/serve/live-eval.ts';
import { mrrDrift } from '../../src/serve/live-eval.ts';
import { Scorer } from '../../src/serve/scorer.ts';
import { StepCoordinator } from '../../src/serve/step-coordinator.ts';
import type { ForecastRecord } from '../../src/serve/forecasts.ts';
import { bruteForceRow, randomScoringState, mulberry32 } from './fixtures.ts';

const N = 40;
const R = 3;
const K = 8;
const entities = Array.from({ length: N }, (_, i) => `e${i}`);
const relations = ['likes', 'knows', 'visits'];
const hash = vocabularyHash(entities, relations);

function randomSnapshot(step: number, facts: number, seed: number): Snapshot {
  const random = mulberry32(seed);
  const set = new Set<string>();
  while (set.size < facts)
    set.add(`${Math.floor(random() * N)},${Math.floor(random() * R)},${Math.floor(random() * N)}`);
  const triples = [...set]
    .map((s) => s.split(',').map(Number))
    .sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return { step, triples: Int32Array.from(triples.flat()), numEntities: N, numRelations: R };
}

/** Brute-force raw ranks (ties averaged) of a snapshot's facts, both directions. */
function bruteRawRanks(
  state: ReturnType<typeof randomScoringState>,
  snapshot: Snapshot,
): { object: number[]; subject: number[] } {
  const out = { object: [] as number[], subject: [] as number[] };
  const rank = (row: Float64Array, target: number) => {
    let better = 0;
    let equal = 0;
    for (let e = 0; e < row.length; e++) {
      if (e === target) continue;
      if (Math.abs(row[e] - row[target]) < 1e-6) equal++;
      else if (row[e] > row[target]) better++;
    }
    return 1 + better + equal / 2;
  };
  for (let i = 0; i < snapshot.triples.length; i += 3) {
    const [s, r, o] = snapshot.triples.subarray(i, i + 3);
    out.object.push(rank(bruteForceRow(state, s, r, 0), o));
    out.subject.push(rank(bruteForceRow(state, o, r, 1), s));
  }
  return out;
}

test('mrrDrift is current minus the trailing mean', () => {
  assert.equal(mrrDrift(50, []), null);
  assert.equal(mrrDrift(50, [40, 60, 20]), 10);
});

test('steps closing are evaluated against the model that forecast them; forecasts published for the next step', async () => {
  const metrics = createMetrics();
  const scorer = new Scorer({ maxWaitMs: 0, metrics });
  const forecasts: ForecastRecord[][] = [];
  const evaluations: StepMetricsRecord[][] = [];
  const coordinator = new StepCoordinator({
    scorer,
    topK: 4,
    windowSize: 2,
    metrics,
    dataset: 'synthetic',
    publishForecasts: async (records) => void forecasts.push(records),
    publishEvaluations: async (records) => void evaluations.push(records),
  });
  const v1 = randomScoringState({ seed: 1, N, R, K, version: 1, step: 5 });
  const v2 = randomScoringState({ seed: 2, N, R, K, version: 2, step: 6 });
  const snapshots = [randomSnapshot(4, 30, 4), randomSnapshot(5, 30, 5), randomSnapshot(6, 30, 6)];

  await coordinator.onModel(
    await scorer.loadModel(exportScoringModel(v1, { vocabularyHash: hash }), {
      entities,
      relations,
    }),
  );
  assert.equal(await coordinator.onStepClosed(snapshots[0]), undefined, 'no model forecast step 4');
  // forecasts for step 5 with model 1: one record per active (s, r) of the window; an uncalibrated bundle's
  // probabilities are sigmoid(score)
  assert.equal(forecasts.length, 1);
  const pairs = activePairs([snapshots[0]]);
  assert.equal(forecasts[0].length, pairs.length / 2);
  for (const record of forecasts[0]) {
    assert.equal(record.step, 5);
    assert.equal(record.modelVersion, 1);
    assert.equal(record.objects.length, 4);
    const row = bruteForceRow(
      v1,
      Number(record.subject.slice(1)),
      relations.indexOf(record.relation),
      0,
    );
    const best = 1 / (1 + Math.exp(-[...row].sort((a, b) => b - a)[0]));
    assert.equal(record.calibration, 'sigmoid');
    assert.ok(Math.abs(record.objects[0].score! - [...row].sort((a, b) => b - a)[0]) < 1e-4);
    assert.ok(Math.abs(record.objects[0].probability - best) < 1e-5);
    assert.ok(
      record.objects.every((o, j) => j === 0 || o.probability <= record.objects[j - 1].probability),
    );
  }

  // model 2 (forecasting step 6) is swapped in BEFORE step 5 closes: step 5 must still be ranked by model 1
  await coordinator.onModel(
    await scorer.loadModel(exportScoringModel(v2, { vocabularyHash: hash }), {
      entities,
      relations,
    }),
  );
  assert.equal(forecasts.length, 1, 'no forecast for step 6 before step 5 closed');
  const step5 = await coordinator.onStepClosed(snapshots[1]);
  assert.ok(step5);
  assert.equal(step5.modelVersion, 1);
  assert.equal(forecasts.length, 2);
  assert.ok(forecasts[1].every((f) => f.step === 6 && f.modelVersion === 2));
  assert.equal(
    forecasts[1].length,
    activePairs(snapshots.slice(0, 2)).length / 2,
    'pairs of the 2-step window',
  );
  const expected5 = bruteRawRanks(v1, snapshots[1]);
  const record = (records: StepMetricsRecord[], filter: string, direction: string) =>
    records.find((r) => r.filter === filter && r.direction === direction)!;
  assert.equal(step5.records.length, 9);
  assert.ok(
    Math.abs(record(step5.records, 'raw', 'object').mrr - summarizeRanks(expected5.object).mrr) <
      1e-6,
  );
  assert.ok(
    Math.abs(record(step5.records, 'raw', 'subject').mrr - summarizeRanks(expected5.subject).mrr) <
      1e-6,
  );
  assert.equal(record(step5.records, 'raw', 'both').count, 60);
  assert.equal(record(step5.records, 'raw', 'both').drift, null);
  // filtered MRR is never below raw MRR (filters only remove competitors)
  for (const dir of ['object', 'subject', 'both']) {
    assert.ok(
      record(step5.records, 'static', dir).mrr >= record(step5.records, 'raw', dir).mrr - 1e-9,
    );
    assert.ok(
      record(step5.records, 'timeAware', dir).mrr >= record(step5.records, 'raw', dir).mrr - 1e-9,
    );
  }

  const step6 = await coordinator.onStepClosed(snapshots[2]);
  assert.ok(step6);
  assert.equal(step6.modelVersion, 2);
  const raw6 = record(step6.records, 'raw', 'both');
  assert.ok(
    Math.abs((raw6.drift ?? NaN) - (raw6.mrr - record(step5.records, 'raw', 'both').mrr)) < 1e-9,
  );
  assert.deepEqual(
    evaluations.map((e) => e[0].step),
    [5, 6],
  );

  // gauges
  const text = await metrics.registry.metrics();
  assert.match(
    text,
    new RegExp(
      `tkg_eval_mrr\\{filter="raw",direction="both",model="nlsm"\\} ${raw6.mrr.toFixed(3).slice(0, -1)}`,
    ),
  );
  assert.match(text, /tkg_eval_mrr_drift\{filter="static",direction="object",model="nlsm"\} -?\d/);
  assert.match(text, /tkg_eval_step 6/);
  assert.match(text, /tkg_model_version 2/);
  await coordinator.close();
  await scorer.close();
});

test('a trainer that lags the stream: bundles for steps that already closed are evaluated and forecast on arrival, in order', async () => {
  const scorer = new Scorer({ maxWaitMs: 0 });
  const forecasts: ForecastRecord[][] = [];
  const evaluations: StepMetricsRecord[][] = [];
  const coordinator = new StepCoordinator({
    scorer,
    topK: 3,
    windowSize: 2,
    publishForecasts: async (records) => void forecasts.push(records),
    publishEvaluations: async (records) => void evaluations.push(records),
  });
  const snapshots = [randomSnapshot(4, 30, 4), randomSnapshot(5, 30, 5), randomSnapshot(6, 30, 6)];
  for (const s of snapshots) assert.equal(await coordinator.onStepClosed(s), undefined);
  for (const step of [5, 6]) {
    const state = randomScoringState({ seed: step, N, R, K, version: step, step });
    const model = await scorer.loadModel(exportScoringModel(state, { vocabularyHash: hash }), {
      entities,
      relations,
    });
    const evaluation = await coordinator.onModel(model);
    assert.ok(evaluation, `step ${step} evaluated when its late bundle arrived`);
    assert.equal(evaluation.step, step);
    assert.equal(evaluation.modelVersion, step);
    // its forecasts use only the steps before it (never the step it forecasts)
    assert.ok(forecasts.at(-1)!.every((f) => f.step === step));
    const before = snapshots.filter((s) => s.step < step && s.step >= step - 2);
    assert.equal(forecasts.at(-1)!.length, activePairs(before).length / 2);
  }
  assert.deepEqual(
    evaluations.map((e) => e[0].step),
    [5, 6],
  );
  await coordinator.close();
  await scorer.close();
});
