import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Direction } from '../../src/core/types.ts';
import { ServingModel } from '../../src/serve/model.ts';
import { Scorer } from '../../src/serve/scorer.ts';
import { F, type HybridWeights } from '../../src/model/hybrid-features.ts';
import { HybridForecaster } from '../../src/train/hybrid/forecaster.ts';
import { HybridTermState } from '../../src/model/term-states.ts';
import { TermInputs } from '../../src/model/term-inputs.ts';
import { scaleScoringState } from '../../src/train/hybrid/export.ts';
import { exportScoringModel } from '../../src/model/scoring-graph.ts';
import {
  decodeTermSpec,
  encodeTermSpec,
  termSpecFromLegacyMetadata,
  type TermSpec,
} from '../../src/model/terms.ts';
import { StateForecaster, randomState, mulberry32, syntheticTkg } from './helpers.ts';

const N = 60;
const R = 3;
const K = 8;

function weights(seed: number, decay = 0.6): HybridWeights {
  const random = mulberry32(seed);
  return {
    numRelations: R,
    decay,
    relaxedTopK: 5,
    baseScale: [0.8, 1.7, 0.3],
    history: Array.from({ length: 2 * R * F }, () => random() * 4 - 1),
  };
}

test('ONNX scores with the HybridTermState equal in-process nlsm-h scores (max abs diff <= 1e-4)', async () => {
  const { snapshots } = syntheticTkg({ N, R, steps: 8, pairsPerStep: 40, repeat: 0.6, seed: 9 });
  const state = randomState(N, R, K, 21, 8);
  const w = weights(3);
  const inProcess = new HybridForecaster(new StateForecaster(state), {
    numEntities: N,
    numRelations: R,
    decay: w.decay,
    weights: w,
  });
  const provider = new HybridTermState(w);
  const inputs = new TermInputs();
  for (const s of snapshots) {
    await inProcess.observe(s);
    provider.observe(s);
    inputs.add(s);
  }
  const spec: TermSpec = { kind: 'hybrid', weights: w };
  const model = await ServingModel.load(
    exportScoringModel(
      { ...scaleScoringState(state, w.baseScale), step: snapshots.at(-1)!.step + 1 },
      { vocabularyHash: 'test', modelName: 'nlsm-h', terms: encodeTermSpec(spec) },
    ),
  );
  assert.deepEqual(model.terms, spec, 'the file carries its term spec');
  assert.equal(model.historyStep, snapshots.at(-1)!.step);
  assert.equal(model.metadata.modelName, 'nlsm-h');
  const random = mulberry32(4);
  let maxDiff = 0;
  let termsSeen = 0;
  for (const direction of ['object', 'subject'] as Direction[]) {
    // anchors that have a history (from the last snapshot) and random ones
    const last = snapshots[snapshots.length - 1].triples;
    const B = 24;
    const anchors = Int32Array.from({ length: B }, (_, b) =>
      b % 2 === 0
        ? last[3 * (b % (last.length / 3)) + (direction === 'object' ? 0 : 2)]
        : Math.floor(random() * N),
    );
    const relations = Int32Array.from({ length: B }, (_, b) =>
      b % 2 === 0 ? last[3 * (b % (last.length / 3)) + 1] : b % R,
    );
    const expected = await inProcess.score(8, direction, anchors, relations, N);
    const extraIndex: number[] = [];
    const extraValue: number[] = [];
    for (let b = 0; b < B; b++) {
      const terms = provider.terms(direction, anchors[b], relations[b]);
      if (!terms) continue;
      termsSeen += terms.entities.length;
      terms.entities.forEach((e, i) => {
        extraIndex.push(b, e);
        extraValue.push(terms.values[i]);
      });
    }
    const out = await model.run(
      {
        anchors,
        relations,
        directions: Int32Array.from({ length: B }, () => (direction === 'object' ? 0 : 1)),
        extraIndex,
        extraValue: Float32Array.from(extraValue),
        k: 5,
      },
      true,
    );
    for (let i = 0; i < B * N; i++)
      maxDiff = Math.max(maxDiff, Math.abs(out.allScores![i] - expected[i]));
  }
  assert.ok(termsSeen > 100, `history terms were exercised (${termsSeen})`);
  assert.ok(maxDiff <= 1e-4, `max abs diff ${maxDiff}`);

  // the same through the Scorer (micro-batching, top-k): top-k scores equal the in-process row's best scores
  const scorer = new Scorer({ terms: inputs, maxBatch: 8 });
  scorer.swap(model);
  const row = await inProcess.score(
    8,
    'object',
    Int32Array.of(anchorsWithHistory(snapshots)),
    Int32Array.of(0),
    N,
  );
  const result = await scorer.score({
    direction: 'object',
    anchor: anchorsWithHistory(snapshots),
    relation: 0,
    k: 10,
  });
  const best = [...row].sort((a, b) => b - a).slice(0, 10);
  result.scores.forEach((s, i) =>
    assert.ok(Math.abs(s - best[i]) <= 1e-4, `top-${i + 1}: ${s} vs ${best[i]}`),
  );
  await scorer.close();
});

function anchorsWithHistory(snapshots: { triples: Int32Array }[]): number {
  const last = snapshots[snapshots.length - 1].triples;
  for (let i = 0; i < last.length; i += 3) if (last[i + 1] === 0) return last[i];
  return last[0];
}

test('term specs: JSON codec, legacy metadata, a new decay rebuilds the counts, an old step gets its own state', () => {
  const { snapshots } = syntheticTkg({ N, R, steps: 6, pairsPerStep: 30, repeat: 0.6, seed: 2 });
  const w = weights(5);
  const spec: TermSpec = { kind: 'hybrid', weights: w };
  assert.deepEqual(decodeTermSpec(encodeTermSpec(spec)), spec);
  assert.deepEqual(termSpecFromLegacyMetadata({ 'history.hybrid': JSON.stringify(w) }, R), spec);
  assert.deepEqual(termSpecFromLegacyMetadata({}, R), { kind: 'none' });
  assert.throws(
    () => decodeTermSpec('{"kind":"hybrid","weights":{"numRelations":3}}'),
    /re-export/,
  );
  assert.throws(() => decodeTermSpec('{"kind":"magic"}'), /unknown/);

  const inputs = new TermInputs();
  for (const s of snapshots) inputs.add(s);
  inputs.add(snapshots[2]); // an old step is ignored
  const last = snapshots[5].step;
  const t = snapshots[5].triples;
  const other: TermSpec = { kind: 'hybrid', weights: weights(5, 0.3) };
  const fresh = new HybridTermState(weights(5, 0.3));
  for (const s of snapshots) fresh.observe(s);
  inputs.stateAt(spec, last);
  const a = inputs.stateAt(other, last)!.terms('object', t[0], t[1]); // rebuilt with the new decay
  const b = fresh.terms('object', t[0], t[1]);
  assert.ok(a && b);
  assert.deepEqual([...a.entities], [...b.entities]);
  assert.deepEqual([...a.values], [...b.values]);
  assert.equal(inputs.stateAt(other, last)!.terms('object', t[0], 99), undefined);
  // a held bundle of an older step gets the state of exactly that step, and the current one is not disturbed
  const older = new HybridTermState(weights(5, 0.3));
  for (const s of snapshots.slice(0, 4)) older.observe(s);
  const atOld = inputs.stateAt(other, snapshots[3].step)!.terms('object', t[0], t[1]);
  assert.deepEqual(atOld, older.terms('object', t[0], t[1]));
  assert.deepEqual(inputs.stateAt(other, last)!.terms('object', t[0], t[1]), b);
});
