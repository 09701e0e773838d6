import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RankCollector,
  averageMetrics,
  buildAnswerFilter,
  filteredRanks,
  rankOfTarget,
  sparseFilteredRanks,
  summarizeRanks,
  trueAnswers,
} from '../../src/eval/rank.ts';

// Hand-made example. N = 6 entities, relation 1, query (7, 1, ?) at step 5, true answer 0.
// Scores of objects 0..5: [0.5, 0.9, 0.5, 0.1, 0.9, 0.5]
//   raw:        better {1, 4} = 2, equal others {2, 5} = 2      -> 1 + 2 + 2/2 = 4
//   static:     true ever (7,1,{0,1,2,4}) -> remove 1, 2, 4      -> better 0, equal {5} = 1 -> 1.5
//   time-aware: true at step 5 (7,1,{0,4}) -> remove 4           -> better 1, equal 2 -> 3
const scores = new Float32Array([0.5, 0.9, 0.5, 0.1, 0.9, 0.5]);
const train = new Int32Array([7, 1, 1, 7, 1, 2, 3, 0, 2]); // (7,1,1), (7,1,2), (3,0,2)
const testStep = new Int32Array([7, 1, 0, 7, 1, 4]); // step 5: (7,1,0), (7,1,4)

test('ranks with ties under raw, static and time-aware filters (hand computed)', () => {
  const staticFilter = buildAnswerFilter([train, testStep], 2);
  const timeAware = buildAnswerFilter([testStep], 2);
  assert.deepEqual([...trueAnswers(staticFilter, 'object', 7, 1)!], [0, 1, 2, 4]);
  assert.deepEqual([...trueAnswers(timeAware, 'object', 7, 1)!], [0, 4]);
  assert.deepEqual([...trueAnswers(staticFilter, 'subject', 2, 1)!], [7]);
  assert.deepEqual([...trueAnswers(staticFilter, 'subject', 2, 0)!], [3]);
  assert.equal(trueAnswers(staticFilter, 'object', 7, 0), undefined);
  const ranks = filteredRanks(
    scores,
    0,
    6,
    0,
    trueAnswers(staticFilter, 'object', 7, 1),
    trueAnswers(timeAware, 'object', 7, 1),
  );
  assert.deepEqual(ranks, { raw: 4, static: 1.5, timeAware: 3 });
  assert.equal(rankOfTarget(scores, 0, 6, 0), 4);
  assert.equal(rankOfTarget(scores, 0, 6, 3), 6); // the worst, no ties
  assert.equal(rankOfTarget(scores, 0, 6, 1), 1.5); // tied best with 4
});

test('rows at an offset, NaN counts as worst, constant scores give the middle rank', () => {
  const two = new Float32Array([...new Float32Array(6).fill(1), ...scores]);
  assert.equal(rankOfTarget(two, 6, 6, 0), 4);
  assert.equal(rankOfTarget(two, 0, 6, 2), 1 + 5 / 2); // all tied: (N + 1) / 2
  const withNaN = new Float32Array([NaN, 0.2, NaN, 0.1]);
  assert.equal(rankOfTarget(withNaN, 0, 4, 0), 3.5); // below both finite, tied with the other NaN
  assert.equal(rankOfTarget(withNaN, 0, 4, 3), 2);
  assert.throws(() => rankOfTarget(scores, 0, 6, 6), /outside/);
});

test('sparse rank equals the dense rank of the same row', () => {
  const N = 50;
  let seed = 12345;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const lookup = new Map<number, number>();
  for (let trial = 0; trial < 200; trial++) {
    const dense = new Float32Array(N);
    const entities: number[] = [];
    const values: number[] = [];
    for (let e = 0; e < N; e++) {
      if (rand() < 0.3) {
        const v = Math.fround(Math.floor(rand() * 4) / 4); // coarse values: many ties, some equal 0
        dense[e] = v;
        entities.push(e);
        values.push(v);
      }
    }
    const target = Math.floor(rand() * N);
    const excl = Int32Array.from(
      new Set([target, Math.floor(rand() * N), Math.floor(rand() * N)]),
    ).sort();
    const expected = filteredRanks(dense, 0, N, target, excl, undefined);
    const got = sparseFilteredRanks(
      Int32Array.from(entities),
      Float32Array.from(values),
      entities.length,
      N,
      target,
      0,
      excl,
      undefined,
      lookup,
    );
    assert.deepEqual(got, expected);
  }
});

test('MRR and Hits@k in percent, half ranks, and direction averaging', () => {
  const m = summarizeRanks([1, 2, 4, 1.5, 20]);
  assert.ok(Math.abs(m.mrr - (100 * (1 + 0.5 + 0.25 + 1 / 1.5 + 0.05)) / 5) < 1e-9);
  assert.equal(m.hits1, 20);
  assert.equal(m.hits3, 60);
  assert.equal(m.hits10, 80);
  const avg = averageMetrics([summarizeRanks([1, 1]), summarizeRanks([2, 4])]);
  assert.equal(avg.mrr, (100 + 37.5) / 2);
  assert.equal(avg.count, 4);
  const collector = new RankCollector();
  collector.add('object', { raw: 2, static: 1, timeAware: 1 });
  collector.add('subject', { raw: 4, static: 4, timeAware: 2 });
  const s = collector.summary();
  assert.equal(s.raw.mrr, (50 + 25) / 2);
  assert.equal(s.static.mrr, (100 + 25) / 2);
  assert.equal(s.perDirection.subject.timeAware.mrr, 50);
});

test('filters naming entities the scoring row does not have (ids >= N) leave the rank in [1, N] (issue 13 item 3)', () => {
  // a served model with N = 6 ranks against filter sets that already hold entities 6..9 (a newer vocabulary)
  const excluded = Int32Array.from([1, 4, 6, 7, 8, 9]);
  const two = new Float32Array(12);
  two.set(scores, 0);
  two.set([9, 9, 9, 9, 9, 9], 6); // the next row: must never be read for ids >= N
  const ranks = filteredRanks(two, 0, 6, 0, excluded, excluded);
  assert.deepEqual(ranks, { raw: 4, static: 2, timeAware: 2 });
  const lookup = new Map<number, number>();
  const sparse = sparseFilteredRanks(
    Int32Array.from([1, 4]),
    Float32Array.from([0.9, 0.9]),
    2,
    6,
    0,
    0.5,
    excluded,
    excluded,
    lookup,
  );
  for (const rank of Object.values(sparse)) assert.ok(rank >= 1 && rank <= 6, String(rank));
  const metrics = summarizeRanks([ranks.raw, ranks.static, sparse.timeAware]);
  assert.ok(Number.isFinite(metrics.mrr) && metrics.mrr <= 100);
});
