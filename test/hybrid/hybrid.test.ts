import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot } from '../../src/core/types.ts';
import { buildAnswerFilter } from '../../src/eval/rank.ts';
import { runTkgProtocol } from '../../src/eval/protocols.ts';
import type { TkgModelContext } from '../../src/eval/evaluate.ts';
import { F, historyTermValue, type HybridWeights } from '../../src/model/hybrid-features.ts';
import { HybridForecaster } from '../../src/train/hybrid/forecaster.ts';
import { HybridHistory } from '../../src/model/hybrid-history.ts';
import { QuerySetBuilder, concatQuerySets } from '../../src/train/hybrid/query-set.ts';
import { hybridObjective, parameterCount, expandShared } from '../../src/train/hybrid/objective.ts';
import {
  selectionMrr,
  ascendSharedMrr,
  modeMrrs,
  oneStandardErrorChoice,
  selectForm,
} from '../../src/train/hybrid/selection.ts';
import { hybridTkgModel } from '../../src/train/hybrid/models.ts';
import { RecurrencyForecaster, uniformRecurrencyParams } from '../../src/baselines/recurrency.ts';
import {
  OracleForecaster,
  StateForecaster,
  randomState,
  snapshotOf,
  stateLogit,
  syntheticTkg,
} from './helpers.ts';

const handWeights: HybridWeights = {
  numRelations: 2,
  decay: 0.5,
  relaxedTopK: 1,
  baseScale: [2, 0.5],
  // [2R, F]: object r0, object r1, subject r0, subject r1
  // features: strict, log(1 + strict), seen, log(1 + frequency), relaxed, log(1 + 100 relaxed)
  history: [
    0.25, 0.7, 1.5, -0.2, 2, 0.3, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.9, 1.1, 0.4, 0.6, 1.3, -0.5, 9, 9,
    9, 9, 9, 9,
  ],
};

function handSnapshots(): Snapshot[] {
  return [
    snapshotOf(
      0,
      [
        [0, 0, 1],
        [2, 0, 1],
      ],
      5,
      2,
    ),
    snapshotOf(
      1,
      [
        [0, 0, 1],
        [0, 0, 3],
        [4, 1, 2],
      ],
      5,
      2,
    ),
  ];
}

test('nlsm-h score = beta_r * base logit + w . history features, checked against a hand computation', async () => {
  const state = randomState(5, 2, 3, 11);
  const forecaster = new HybridForecaster(new StateForecaster(state), {
    numEntities: 5,
    numRelations: 2,
    decay: 0.5,
    weights: handWeights,
  });
  for (const s of handSnapshots()) await forecaster.observe(s);
  const w = handWeights.history;
  const term = (slot: number, strict: number, frequency: number, relaxed: number): number =>
    w[slot * F] * strict +
    w[slot * F + 1] * Math.log1p(strict) +
    w[slot * F + 2] * (frequency > 0 ? 1 : 0) +
    w[slot * F + 3] * Math.log1p(frequency) +
    w[slot * F + 4] * relaxed +
    w[slot * F + 5] * Math.log1p(100 * relaxed);
  // object query (0, r0, ?) at step 3: o=1 seen at steps 0, 1; o=3 at step 1. Relaxed (., r0, o) as of step 1:
  // o=1: 2 * 0.5 + 1 = 2, o=3: 1, total 3; top-1 relaxed is o=1 (already a strict candidate).
  // step 3 is h = 1 step past the forecast origin (last observed 1): the base logit is scaled by decay^1 = 0.5
  const objectScores = await forecaster.score(3, 'object', Int32Array.of(0), Int32Array.of(0), 5);
  const expectedObject = [0, 1, 2, 3, 4].map((o) => 2 * 0.5 * stateLogit(state, 0, 0, o));
  expectedObject[1] += term(0, 0.5 ** 3 + 0.5 ** 2, 2, 2 / 3);
  expectedObject[3] += term(0, 0.5 ** 2, 1, 1 / 3);
  // subject query (?, r0, 1) at step 3: s=0 at steps 0, 1; s=2 at step 0. Relaxed (s, r0, .): s=0: 0.5 + 2 = 2.5,
  // s=2: 0.5, total 2 * 0.5 + 2 = 3 (the relation-1 fact does not count).
  const subjectScores = await forecaster.score(3, 'subject', Int32Array.of(1), Int32Array.of(0), 5);
  const expectedSubject = [0, 1, 2, 3, 4].map((s) => 2 * 0.5 * stateLogit(state, s, 0, 1));
  expectedSubject[0] += term(2, 0.5 ** 3 + 0.5 ** 2, 2, 2.5 / 3);
  expectedSubject[2] += term(2, 0.5 ** 3, 1, 0.5 / 3);
  // relation 1, object query from 4: o=2 seen once; beta = 0.5
  const r1 = await forecaster.score(3, 'object', Int32Array.of(4), Int32Array.of(1), 5);
  const expectedR1 = [0, 1, 2, 3, 4].map((o) => 0.5 * 0.5 * stateLogit(state, 4, 1, o));
  expectedR1[2] += term(1, 0.5 ** 2, 1, 1);
  for (const [got, want] of [
    [objectScores, expectedObject],
    [subjectScores, expectedSubject],
    [r1, expectedR1],
  ] as const) {
    for (let e = 0; e < 5; e++)
      assert.ok(Math.abs(got[e] - want[e]) < 1e-4, `entity ${e}: ${[...got]} vs ${want}`);
  }
  // relaxedTopK = 1 puts a relaxed-only term on the top relaxed entity when it has no strict history
  const history = new HybridHistory({ numRelations: 2, decay: 0.5, relaxedTopK: 1 });
  for (const s of handSnapshots()) history.observe(s);
  const unseen = history.candidates(3, 'object', 2, 0); // (2, r0, ?): o=1 is strict (step 0) and top relaxed
  assert.deepEqual([...unseen.entities], [1]);
  const fresh = history.candidates(3, 'object', 3, 0); // no strict history: only the top relaxed o=1
  assert.deepEqual([...fresh.entities], [1]);
  assert.deepEqual(
    [...fresh.features],
    [0, 0, 0, 0, Math.fround(2 / 3), Math.fround(Math.log1p(100 * (2 / 3)))],
  );
});

test('terms() (serving fast path, duplicate entries add up) equals the term of candidates() per entity', () => {
  const { snapshots } = syntheticTkg({
    N: 80,
    R: 3,
    steps: 12,
    pairsPerStep: 50,
    repeat: 0.5,
    seed: 8,
  });
  const weights: HybridWeights = {
    numRelations: 3,
    decay: 0.7,
    relaxedTopK: 6,
    baseScale: [1, 1, 1],
    history: Array.from({ length: 6 * F }, (_, i) => ((i * 37) % 11) / 5 - 1),
  };
  const history = new HybridHistory({ numRelations: 3, decay: 0.7, relaxedTopK: 6 });
  for (const s of snapshots) history.observe(s);
  let compared = 0;
  for (const direction of ['object', 'subject'] as const) {
    for (let anchor = 0; anchor < 80; anchor++) {
      for (let r = 0; r < 3; r++) {
        const fast = new Map<number, number>();
        const terms = history.terms(13, direction, anchor, r, weights);
        terms.entities.forEach((e, i) => fast.set(e, (fast.get(e) ?? 0) + terms.values[i]));
        const { entities, features } = history.candidates(13, direction, anchor, r);
        assert.equal(fast.size, entities.length);
        const slot = (direction === 'object' ? 0 : 3) + r;
        entities.forEach((e, m) => {
          assert.ok(
            Math.abs(fast.get(e)! - historyTermValue(weights, slot, features, m * F)) < 1e-5,
          );
          compared++;
        });
      }
    }
  }
  assert.ok(compared > 1000);
});

test('objective gradient and Hessian match finite differences', () => {
  const random = (() => {
    let x = 7;
    return () => (x = (x * 16807) % 2147483647) / 2147483647;
  })();
  const R = 2;
  const builder = new QuerySetBuilder(R, 4);
  for (let q = 0; q < 30; q++) {
    const row = Float32Array.from({ length: 12 }, () => random() * 4 - 2);
    const entities = Int32Array.of(q % 12, (q + 5) % 12);
    const features = Float32Array.from({ length: 2 * F }, () => random());
    builder.add({
      slot: q % (2 * R),
      row,
      answer: (q * 7) % 12,
      history: { entities, features },
      excluded: Int32Array.of((q + 1) % 12),
    });
  }
  const set = builder.build();
  const P = parameterCount('perRelation', R);
  const theta = Float64Array.from({ length: P }, () => random() - 0.5);
  const prior = Float64Array.from({ length: P }, () => random() - 0.5);
  const options = { layout: 'perRelation' as const, l2: 0.01, prior };
  const { gradient, hessian } = hybridObjective(set, theta, options, true);
  const h = 1e-5;
  for (let p = 0; p < P; p++) {
    const plus = Float64Array.from(theta);
    const minus = Float64Array.from(theta);
    plus[p] += h;
    minus[p] -= h;
    const numeric =
      (hybridObjective(set, plus, options, false).value -
        hybridObjective(set, minus, options, false).value) /
      (2 * h);
    assert.ok(
      Math.abs(numeric - gradient![p]) < 1e-5,
      `gradient ${p}: ${numeric} vs ${gradient![p]}`,
    );
    const gPlus = hybridObjective(set, plus, options, true).gradient!;
    const gMinus = hybridObjective(set, minus, options, true).gradient!;
    for (let k = 0; k < P; k++) {
      const numericH = (gPlus[k] - gMinus[k]) / (2 * h);
      assert.ok(Math.abs(numericH - hessian![p * P + k]) < 1e-4, `hessian ${p},${k}`);
    }
  }
  // concatenation keeps every query's candidates and answer
  const both = concatQuerySets(set, set);
  const theta0 = expandShared([1, 0.3, 0.2, 0.1, 0.4, 0.2, 0.1], R);
  assert.ok(Math.abs(selectionMrr(both, theta0) - selectionMrr(set, theta0)) < 1e-9);
  assert.equal(both.answer[30] - both.offsets[30], set.answer[0] - set.offsets[0]);
});

test('direct MRR ascent never lowers the fitting MRR and the recurrency form breaks ties with the base logit', () => {
  let x = 11;
  const random = () => (x = (x * 16807) % 2147483647) / 2147483647;
  const R = 2;
  const builder = new QuerySetBuilder(R, 8, 16, 3);
  for (let q = 0; q < 200; q++) {
    const row = Float32Array.from({ length: 40 }, () => random() * 4 - 2);
    const answer = (q * 7) % 40;
    row[answer] += 3; // an informative base
    const entities = Int32Array.of(answer, (q + 5) % 40, (q + 9) % 40);
    const features = new Float32Array(3 * F);
    for (let m = 0; m < 3; m++) {
      const strict = random() * 2;
      features.set([strict, Math.log1p(strict), 1, Math.log1p(1), 0.1 * random(), 0], m * F);
    }
    builder.add({ slot: q % (2 * R), row, answer, history: { entities, features } });
  }
  const set = builder.build();
  const start = [0.01, 1, 0, 0, 0, 0.5, 0];
  const before = selectionMrr(set, expandShared(start, R));
  const { mrr, shared } = ascendSharedMrr(set, start);
  assert.ok(mrr >= before, `${mrr} < ${before}`);
  assert.ok(Math.abs(selectionMrr(set, expandShared(shared, R)) - mrr) < 1e-9);
  // beta = 0+ (tie-break only) is worse than using the informative base, which the ascent finds
  assert.ok(mrr > before + 3, `ascent ${mrr} vs start ${before}`);
});

function context(
  history: Snapshot[],
  validation: Snapshot[],
  N: number,
  R: number,
  protocol: 'multi-step' | 'single-step',
): TkgModelContext {
  return {
    numEntities: N,
    numRelations: R,
    protocol,
    seed: 1,
    selection: { history, validation, description: 'synthetic train -> valid' },
    log: () => {},
  };
}

async function runSynthetic(
  protocol: 'multi-step' | 'single-step',
  targets: Snapshot[] | undefined = undefined,
): Promise<{
  hybrid: number;
  base: number;
  recurrency: number;
  weights: HybridWeights;
  scoredBeforeTest: number[];
  testSteps: number[];
}> {
  const N = 120;
  const R = 3;
  const { snapshots, affinity } = syntheticTkg({
    N,
    R,
    steps: 30,
    pairsPerStep: 60,
    repeat: 0.5,
    seed: 5,
  });
  const train = snapshots.slice(0, 20);
  const valid = snapshots.slice(20, 24);
  const test = targets ?? snapshots.slice(24);
  const staticFilter = buildAnswerFilter(
    snapshots.map((s) => s.triples),
    R,
  );
  const run = async (forecaster: Parameters<typeof runTkgProtocol>[0]['forecaster']) =>
    (
      await runTkgProtocol({
        forecaster,
        history: [...train, ...valid],
        targets: test,
        protocol,
        staticFilter,
        numEntities: N,
        numRelations: R,
      })
    ).timeAware.mrr;
  const base = new OracleForecaster(affinity, 2, 3);
  const hybridBase = new OracleForecaster(affinity, 2, 3);
  let scoredBeforeTest: number[] = [];
  const model = await hybridTkgModel({
    createBase: async () => hybridBase,
    maxQueriesPerPhase: 2000,
  })(context(train, valid, N, R, protocol));
  const wrapped = Object.assign(Object.create(model), {
    score: async (...args: Parameters<typeof model.score>) => {
      if (scoredBeforeTest.length === 0) scoredBeforeTest = [...hybridBase.scoredSteps];
      return model.score(...args);
    },
    observe: (s: Snapshot) => model.observe(s),
  });
  const hybrid = await run(wrapped);
  const recurrency = await run(
    new RecurrencyForecaster(uniformRecurrencyParams({ decay: 0.9, alpha: 0.1 }, R), R),
  );
  return {
    hybrid,
    base: await run(base),
    recurrency,
    weights: (model as HybridForecaster).weights!,
    scoredBeforeTest,
    testSteps: test.map((s) => s.step),
  };
}

test('fitting improves a held-out metric: nlsm-h beats its base and recurrency on unseen synthetic steps', async () => {
  for (const protocol of ['multi-step', 'single-step'] as const) {
    const result = await runSynthetic(protocol);
    assert.ok(
      result.hybrid > result.base + 5,
      `${protocol}: nlsm-h ${result.hybrid} vs base ${result.base}`,
    );
    assert.ok(
      result.hybrid > result.recurrency + 2,
      `${protocol}: nlsm-h ${result.hybrid} vs recurrency ${result.recurrency}`,
    );
    assert.ok(
      result.weights.history.some((w) => w !== 0),
      'history weights were fitted',
    );
  }
});

test('selection never reads the test split: weights are identical with a different test split', async () => {
  const a = await runSynthetic('multi-step');
  const N = 120;
  const R = 3;
  // a different "test split" (other facts on the same steps)
  const other = [24, 25, 26, 27, 28, 29].map((step) =>
    snapshotOf(
      step,
      Array.from(
        { length: 40 },
        (_, i) => [(i * 7 + step) % N, i % R, (i * 13 + step) % N] as [number, number, number],
      ),
      N,
      R,
    ),
  );
  const b = await runSynthetic('multi-step', other);
  assert.deepEqual(b.weights, a.weights);
  // before the first test query the base was only asked about train / valid steps
  assert.ok(a.scoredBeforeTest.length > 0);
  for (const step of a.scoredBeforeTest) assert.ok(step < 24, `step ${step} scored while fitting`);
});

test('selection MRRs in raw / static / time-aware mode equal dense ranks; selectForm keeps the reference unless beaten in every mode', () => {
  let x = 23;
  const random = () => (x = (x * 16807) % 2147483647) / 2147483647;
  const R = 2;
  const N = 24;
  // topM = N: every entity is an exact candidate, so the selection MRRs must be the exact dense ones
  const builder = new QuerySetBuilder(R, N, 0, 5);
  const queries: Array<{
    slot: number;
    row: Float32Array;
    answer: number;
    entities: Int32Array;
    features: Float32Array;
    timeAware: Int32Array;
    known: Int32Array;
  }> = [];
  for (let q = 0; q < 120; q++) {
    // coarse logits: ties happen
    const row = Float32Array.from({ length: N }, () => Math.round(random() * 6) / 2);
    const answer = Math.floor(random() * N);
    const entities = Int32Array.of((answer + 1) % N, answer, (answer + 7) % N);
    const features = Float32Array.from({ length: 3 * F }, () => Math.round(random() * 4) / 4);
    const timeAware = Int32Array.of(answer, (answer + 1) % N);
    const known = Int32Array.of((answer + 2) % N, (answer + 3) % N, (answer + 1) % N);
    const slot = q % (2 * R);
    queries.push({ slot, row, answer, entities, features, timeAware, known });
    builder.add({
      slot,
      row,
      answer,
      history: { entities, features },
      excluded: timeAware,
      staticExcluded: known,
    });
  }
  const set = builder.build();
  const theta = expandShared([0.7, 0.5, -0.2, 0.3, 0.1, 0.8, 0.05], R);
  const dense = (mode: 'raw' | 'static' | 'timeAware'): number => {
    let sum = 0;
    for (const q of queries) {
      const score = (e: number): number => {
        let s = theta[q.slot % R] * q.row[e];
        const m = q.entities.indexOf(e);
        if (m >= 0)
          for (let f = 0; f < F; f++) s += theta[R + q.slot * F + f] * q.features[m * F + f];
        return Math.fround(s);
      };
      const skip = new Set<number>();
      if (mode !== 'raw') for (const e of q.timeAware) skip.add(e);
      if (mode === 'static') for (const e of q.known) skip.add(e);
      skip.delete(q.answer);
      const target = score(q.answer);
      let better = 0;
      let equal = 0;
      for (let e = 0; e < N; e++) {
        if (e === q.answer || skip.has(e)) continue;
        if (score(e) > target) better++;
        else if (score(e) === target) equal++;
      }
      sum += 1 / (1 + better + equal / 2);
    }
    return (100 * sum) / queries.length;
  };
  const modes = modeMrrs(set, theta);
  for (const mode of ['raw', 'static', 'timeAware'] as const)
    assert.ok(
      Math.abs(modes[mode] - dense(mode)) < 1e-9,
      `${mode}: ${modes[mode]} vs ${dense(mode)}`,
    );
  assert.ok(modes.raw < modes.timeAware && modes.timeAware < modes.static);
  assert.equal(selectionMrr(set, theta, 'static'), modes.static);
  // selectForm: the best mean loses raw to the reference, so the next best qualifying form wins
  const m = (raw: number, st: number, ta: number) => ({
    validation: { raw, static: st, timeAware: ta, mean: (raw + st + ta) / 3 },
  });
  const forms = [m(50, 80, 70), m(49.9, 90, 80), m(50.1, 81, 71), m(50, 79.9, 75)];
  assert.deepEqual(selectForm(forms, 0), { index: 2, qualifies: [true, false, true, false] });
  assert.equal(selectForm(forms, null).index, 1);
  assert.equal(selectForm([m(50, 80, 70), m(40, 70, 60)], 0).index, 0);
});

test('oneStandardErrorChoice: the simplest option within one standard error of the best', () => {
  const random = seededRandomForTest(9);
  const Q = 400;
  const base = Float64Array.from({ length: Q }, () => 100 * random());
  const noisy = (shift: number, noise: number) =>
    Float64Array.from(base, (v) => v + shift + noise * (random() - 0.5));
  // option 1 is better than option 0 by far more than its standard error; option 2 adds 0.01 on average with a
  // +-10 swing per query (standard error 0.5): not worth its complexity
  const option1 = noisy(5, 1);
  const option2 = Float64Array.from(option1, (v, q) => v + 0.01 + (q % 2 === 0 ? 10 : -10));
  const options = [noisy(0, 0), option1, option2];
  assert.equal(oneStandardErrorChoice(options), 1);
  assert.equal(oneStandardErrorChoice(options, [true, false, true]), 2);
  assert.equal(oneStandardErrorChoice([noisy(0, 0), noisy(0.001, 10)]), 0);
});

function seededRandomForTest(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 16807) % 2147483647) / 2147483647;
}
