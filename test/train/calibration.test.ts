// Calibration (issue 13 item 6): the weighted Platt fit recovers a known score -> probability map, and on YAGO the
// trainer's bundles give probabilities a user can threshold: among the forecast top-10 objects of the next step,
// the mean predicted probability matches the share that happened, bucket by bucket (reliability), far better than the
// raw sigmoid of the same scores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../../src/core/random.ts';
import type { Snapshot } from '../../src/core/types.ts';
import { loadTkgDataset, tkgSnapshots } from '../../src/datasets/index.ts';
import type { ModelBundle } from '../../src/model/bundle.ts';
import { probabilityOf } from '../../src/model/calibration.ts';
import { pairLogits } from '../../src/model/dense-scores.ts';
import { TermInputs } from '../../src/model/term-inputs.ts';
import { fitPlatt } from '../../src/train/calibration.ts';
import { createLiveModel } from '../../src/train/live/index.ts';
import { TrainerStage } from '../../src/train/stage.ts';

test('fitPlatt recovers a known logistic map from weighted samples', () => {
  const random = mulberry32(5);
  const score: number[] = [];
  const label: number[] = [];
  const weight: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const x = random() * 8 - 4;
    const p = 1 / (1 + Math.exp(-(1.7 * x - 0.8)));
    score.push(x);
    label.push(random() < p ? 1 : 0);
    weight.push(1);
  }
  const fit = fitPlatt(score, label, weight, [...score.keys()], { a: 1, b: 0 }, 1);
  assert.ok(Math.abs(fit.a - 1.7) < 0.1, `a = ${fit.a}`);
  assert.ok(Math.abs(fit.b + 0.8) < 0.1, `b = ${fit.b}`);
  // weights stand for repeated samples: doubling every negative's weight equals duplicating it
  const w2 = weight.map((w, i) => (label[i] ? w : 2 * w));
  const dup = fitPlatt(score, label, w2, [...score.keys()], { a: 1, b: 0 }, 1);
  assert.ok(dup.b < fit.b - 0.5, 'heavier negatives lower the base rate');
});

/** Top-k objects of every (s, r) of `active` under `bundle` with its term as of its history step. */
function forecastTopK(
  bundle: ModelBundle,
  dense: Parameters<typeof pairLogits>[0],
  inputs: TermInputs,
  active: Snapshot,
  k: number,
) {
  const N = bundle.entities.length;
  const state = inputs.stateAt(bundle.terms, bundle.step - 1);
  const out: Array<{ s: number; r: number; o: number; score: number }> = [];
  const seen = new Set<string>();
  const t = active.triples;
  for (let i = 0; i < t.length; i += 3) {
    const [s, r] = [t[i], t[i + 1]];
    if (s >= N || seen.has(`${s},${r}`)) continue;
    seen.add(`${s},${r}`);
    const triples = new Int32Array(3 * N);
    for (let o = 0; o < N; o++) triples.set([s, r, o], 3 * o);
    const row = Float64Array.from(pairLogits(dense, triples));
    const terms = state?.terms('object', s, r);
    terms?.entities.forEach((e, j) => (row[e] += terms.values[j]));
    const order = [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, k);
    for (const o of order) out.push({ s, r, o, score: row[o] });
  }
  return out;
}

test(
  'YAGO, recurrency bundles: calibrated forecast probabilities are reliable (10 buckets), the raw sigmoid is not',
  { timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tkg-calibration-'));
    try {
      const dataset = loadTkgDataset('yago');
      const steps = tkgSnapshots(dataset, ['train']).slice(0, 60);
      const vocabulary = { entityNames: dataset.entityNames, relationNames: dataset.relationNames };
      const model = await createLiveModel({
        kind: 'recurrency',
        dir,
        seed: 1,
        K: 8,
        windowSize: 5,
      });
      const bundles: ModelBundle[] = [];
      const stage = new TrainerStage({
        model,
        modelName: 'recurrency',
        dir,
        seed: 1,
        announce: async (bundle) => void bundles.push(bundle),
      });
      const inputs = new TermInputs();
      const predictions: Array<{ calibrated: number; raw: number; happened: boolean }> = [];
      for (let i = 0; i < steps.length; i++) {
        const snapshot = steps[i];
        const previous = bundles.at(-1);
        if (previous && i >= 45 && previous.calibration.kind === 'platt') {
          // the bundle forecasting this step: its top-10 objects for the pairs active in the step before
          const dense = {
            numEntities: previous.entities.length,
            numRelations: previous.relations.length,
            K: 1,
            z: new Float32Array(previous.entities.length),
            theta: new Float32Array(4 * previous.relations.length),
            step: previous.step,
            version: previous.version,
          };
          const facts = new Set<string>();
          for (let j = 0; j < snapshot.triples.length; j += 3)
            facts.add(
              `${snapshot.triples[j]},${snapshot.triples[j + 1]},${snapshot.triples[j + 2]}`,
            );
          for (const f of forecastTopK(previous, dense, inputs, steps[i - 1], 10)) {
            predictions.push({
              calibrated: probabilityOf(previous.calibration, 'object', f.r, f.score),
              raw: 1 / (1 + Math.exp(-f.score)),
              happened: facts.has(`${f.s},${f.r},${f.o}`),
            });
          }
        }
        inputs.add(snapshot);
        await stage.onSnapshot(snapshot, vocabulary);
      }
      assert.equal(bundles.at(-1)!.calibration.kind, 'platt');
      assert.ok(predictions.length > 2000, `${predictions.length} forecasts checked`);
      // expected calibration error over 10 equal-width buckets
      const ece = (pick: (p: (typeof predictions)[number]) => number) => {
        let total = 0;
        for (let b = 0; b < 10; b++) {
          const inBucket = predictions.filter((p) => Math.min(9, Math.floor(10 * pick(p))) === b);
          if (inBucket.length === 0) continue;
          const mean = inBucket.reduce((a, p) => a + pick(p), 0) / inBucket.length;
          const rate = inBucket.filter((p) => p.happened).length / inBucket.length;
          total += (inBucket.length / predictions.length) * Math.abs(mean - rate);
        }
        return total;
      };
      const calibratedError = ece((p) => p.calibrated);
      const rawError = ece((p) => p.raw);
      assert.ok(calibratedError < 0.05, `calibrated ECE ${calibratedError.toFixed(4)}`);
      assert.ok(calibratedError < rawError / 2, `raw ECE ${rawError.toFixed(4)}`);
      // and the probabilities spread: a user can pick a threshold
      const values = predictions.map((p) => p.calibrated).sort((a, b) => a - b);
      assert.ok(
        values[Math.floor(0.9 * values.length)] - values[Math.floor(0.1 * values.length)] > 0.2,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
