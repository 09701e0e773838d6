import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toSnapshots } from '../../src/datasets/snapshots.ts';
import { HistoryIndex } from '../../src/model/history-index.ts';
import {
  RecurrencyForecaster,
  recurrencyRank,
  selectRecurrencyParams,
  uniformRecurrencyParams,
} from '../../src/baselines/recurrency.ts';
import { RecurrencyLinkForecaster } from '../../src/baselines/recurrency-models.ts';
import { rankOfTarget } from '../../src/eval/rank.ts';
import { mulberry32 } from '../../src/core/random.ts';

const close = (a: number, b: number, what = ''): void =>
  assert.ok(Math.abs(a - b) < 1e-6, `${what} ${a} vs ${b}`);

// step 0: (0,0,1); step 1: (0,0,1), (0,0,2), (3,0,2) and a duplicate (0,0,2). decay 0.5, query step 2.
const snaps = toSnapshots(
  Int32Array.from([0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 2, 1, 3, 0, 2, 1, 0, 0, 2, 1]),
  5,
  1,
);

test('history index: decayed strict and relaxed counts by hand', () => {
  const index = new HistoryIndex({ numRelations: 1, decay: 0.5 });
  for (const s of snaps) index.observe(s);
  index.observe(toSnapshots(Int32Array.from([0, 0, 2, 1]), 5, 1)[0]); // same step again: a set, no double count
  close(index.strictValue(2, 'object', 0, 0, 1), 0.25 + 0.5, 'strict(0,0,1)');
  close(index.strictValue(2, 'object', 0, 0, 2), 0.5, 'strict(0,0,2)');
  close(index.strictValue(2, 'subject', 2, 0, 3), 0.5, 'strict(3,0,2)');
  assert.equal(index.strictValue(2, 'object', 0, 0, 3), 0);
  // relaxed (., 0, o): o=1 decayed 0.5 + 1 = 1.5, o=2: 2; total 0.5 + 3 = 3.5
  const objects = index.relaxedDistribution('object', 0);
  assert.deepEqual([...objects.entities], [2, 1]);
  close(objects.values[0], 2 / 3.5);
  close(objects.values[1], 1.5 / 3.5);
  // relaxed (s, 0, .): s=0: 0.5 + 2 = 2.5, s=3: 1
  const subjects = index.relaxedDistribution('subject', 0);
  close(subjects.valueOf.get(0)!, 2.5 / 3.5);
  close(subjects.valueOf.get(3)!, 1 / 3.5);
  assert.equal(index.factsObserved, 4);
  assert.throws(
    () => index.observe({ step: 0, triples: new Int32Array(0), numEntities: 5, numRelations: 1 }),
    /before the last observed step/,
  );
  // sparse terms: row 0 = (0,0,?), row 1 = (?,0,2) strict only
  const terms = index.historyTerms(2, 'object', Int32Array.from([0, 3]), Int32Array.from([0, 0]), {
    relaxed: false,
  });
  assert.deepEqual([...terms.rowOffsets], [0, 2, 3]);
  assert.deepEqual([...terms.rows], [0, 0, 1]);
  assert.deepEqual([...terms.entities.subarray(0, 2)].sort(), [1, 2]);
  assert.equal(terms.entities[2], 2); // (3, 0, 2)
  close(terms.relaxed[2], 2 / 3.5);
  const full = index.historyTerms(2, 'object', Int32Array.from([4]), Int32Array.from([0]));
  assert.deepEqual([...full.entities], [2, 1]); // no strict history: the relaxed row
  assert.deepEqual([...full.strict], [0, 0]);
});

test('recurrency forecaster scores = strict + alpha * relaxed, and the sparse rank equals the dense rank', async () => {
  const f = new RecurrencyForecaster(uniformRecurrencyParams({ decay: 0.5, alpha: 0.1 }, 1), 1);
  for (const s of snaps) await f.observe(s);
  const scores = await f.score(2, 'object', Int32Array.from([0]), Int32Array.from([0]), 5);
  close(scores[1], 0.75 + (0.1 * 1.5) / 3.5);
  close(scores[2], 0.5 + (0.1 * 2) / 3.5);
  assert.equal(scores[3], 0);
  const subj = await f.score(2, 'subject', Int32Array.from([2]), Int32Array.from([0]), 5);
  assert.ok(subj[0] > subj[3] && subj[3] > 0 && subj[1] === 0);

  // random history: sparse recurrencyRank vs rankOfTarget on score()'s dense row
  const random = mulberry32(3);
  const N = 30;
  const R = 3;
  const facts: number[] = [];
  for (let t = 0; t < 12; t++)
    for (let k = 0; k < 25; k++)
      facts.push(Math.floor(random() * 8), Math.floor(random() * R), Math.floor(random() * 8), t);
  const history = toSnapshots(Int32Array.from(facts), N, R);
  for (const alpha of [0, 0.01, 1]) {
    const forecaster = new RecurrencyForecaster(
      uniformRecurrencyParams({ decay: 0.8, alpha }, R),
      R,
    );
    for (const s of history) await forecaster.observe(s);
    const index = forecaster.indexFor(0);
    for (let q = 0; q < 200; q++) {
      const direction = q % 2 === 0 ? 'object' : 'subject';
      const anchor = Math.floor(random() * 10);
      const r = Math.floor(random() * R);
      const target = Math.floor(random() * N);
      const excluded = Int32Array.from(
        new Set([Math.floor(random() * 10), Math.floor(random() * 10), target]),
      ).sort();
      const dense = await forecaster.score(
        14,
        direction,
        Int32Array.from([anchor]),
        Int32Array.from([r]),
        N,
      );
      const dist = index.relaxedDistribution(direction, r);
      const scaled = Float32Array.from(dist.values, (v) => alpha * v);
      const sparse = recurrencyRank(
        index,
        dist,
        scaled,
        alpha,
        14,
        direction,
        anchor,
        r,
        target,
        N,
        excluded,
      );
      assert.equal(sparse, rankOfTarget(dense, 0, N, target, excluded), `q ${q} alpha ${alpha}`);
    }
  }
});

test('selection picks a short memory after a regime change, and is deterministic', () => {
  // (0,0,2) at steps 0-19, then (0,0,1) at steps 20-29: a long memory keeps predicting 2 in the
  // validation steps 24-29; a short one follows the change.
  const facts: number[] = [];
  for (let t = 0; t < 30; t++) facts.push(0, 0, t < 20 ? 2 : 1, t);
  const all = toSnapshots(Int32Array.from(facts), 6, 1);
  const input = {
    history: all.slice(0, 24),
    validation: all.slice(24),
    protocol: 'single-step' as const,
    numEntities: 6,
    numRelations: 1,
  };
  const a = selectRecurrencyParams(input);
  const b = selectRecurrencyParams(input);
  assert.deepEqual(a.params, b.params);
  assert.ok(a.params.global.decay <= 0.8, `decay ${a.params.global.decay}`); // 0.8 already forgets the old regime by step 24
  const best = Math.max(...a.grid.map((g) => g.mrr));
  assert.equal(a.validationMrr.global, best);
  const longMemory = a.grid.find((g) => g.decay === 1 && g.alpha === 0)!;
  assert.ok(longMemory.mrr < best, `${longMemory.mrr} < ${best}`);
});

test('link adapter ranks past links above unseen pairs', async () => {
  const f = new RecurrencyLinkForecaster({ decay: 0.5, alpha: 0.01 });
  for (const s of snaps) await f.observe(s);
  const p = await f.linkProbability(2, Int32Array.from([0, 0, 4]), Int32Array.from([1, 4, 2]));
  assert.ok(p[0] > p[2] && p[2] > p[1] && p[1] === 0);
});
