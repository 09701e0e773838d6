// In-process scorer: micro-batching, top-k with k clamped to N, ranks with averaged ties under raw / static /
// time-aware filters, the sparse history term, atomic model swap under concurrent load, and input validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot } from '../../src/core/types.ts';
import { InvalidInputError } from '../../src/core/errors.ts';
import { exportScoringModel, vocabularyHash } from '../../src/model/scoring-graph.ts';
import { ModelRejectedError, ServingModel } from '../../src/serve/model.ts';
import { Scorer } from '../../src/serve/scorer.ts';
import { TermInputs } from '../../src/model/term-inputs.ts';
import { encodeTermSpec, type TermSpec } from '../../src/model/terms.ts';
import { bruteForceRow, randomScoringState } from './fixtures.ts';

const N = 60;
const R = 4;
const K = 8;
const entities = Array.from({ length: N }, (_, i) => `e${i}`);
const relationNames = Array.from({ length: R }, (_, i) => `r${i}`);
const hash = vocabularyHash(entities, relationNames);

function stateWithTies(version: number, seed: number) {
  const state = randomScoringState({ seed, N, R, K, version, step: 10 });
  // entities 6 and 7 are copies of 5: identical scores as objects of any object query
  for (const copy of [6, 7]) state.z.set(state.z.subarray(5 * K, 6 * K), copy * K);
  return state;
}

function expectedRank(row: Float64Array, target: number, excluded: number[] = []): number {
  let better = 0;
  let equal = 0;
  for (let e = 0; e < row.length; e++) {
    if (e === target || excluded.includes(e)) continue;
    const d = row[e] - row[target];
    if (Math.abs(d) < 1e-5) equal++;
    else if (d > 0) better++;
  }
  return 1 + better + equal / 2;
}

test('top-k matches brute force, k is clamped to N, and concurrent queries are micro-batched', async () => {
  const state = stateWithTies(1, 3);
  const scorer = new Scorer({ maxBatch: 16, maxWaitMs: 1 });
  const model = await scorer.loadModel(exportScoringModel(state, { vocabularyHash: hash }), {
    entities,
    relations: relationNames,
  });
  let runs = 0;
  const originalRun = model.run.bind(model);
  model.run = (batch, all) => {
    runs++;
    return originalRun(batch, all);
  };
  const requests = Array.from({ length: 40 }, (_, i) => ({
    direction: (i % 2 === 0 ? 'object' : 'subject') as 'object' | 'subject',
    anchor: (i * 7) % N,
    relation: i % R,
    k: 5,
  }));
  const results = await Promise.all(requests.map((q) => scorer.score(q)));
  assert.ok(runs <= 5, `40 concurrent queries took ${runs} runs (expected micro-batches of <= 16)`);
  for (const [i, q] of requests.entries()) {
    const row = bruteForceRow(state, q.anchor, q.relation, q.direction === 'object' ? 0 : 1);
    assert.equal(results[i].modelVersion, 1);
    assert.equal(results[i].entities.length, 5);
    for (let j = 0; j < 5; j++)
      assert.ok(Math.abs(results[i].scores[j] - row[results[i].entities[j]]) <= 1e-4);
    const best = [...row].sort((a, b) => b - a)[0];
    assert.ok(Math.abs(results[i].scores[0] - best) <= 1e-4);
  }
  const clamped = await scorer.score({ direction: 'object', anchor: 0, relation: 0, k: 10 * N });
  assert.equal(clamped.entities.length, N);
  await scorer.close();
});

test('ranks of supplied answers: averaged ties, raw / static / time-aware filters', async () => {
  const state = stateWithTies(1, 4);
  const scorer = new Scorer({ maxWaitMs: 0 });
  await scorer.loadModel(exportScoringModel(state, { vocabularyHash: hash }));
  // static: (2, 1, o) true for o in {5, 9, 11} at steps 3 and 8; time-aware at the model's step 10: only o = 9
  const snapshot = (step: number, triples: number[]): Snapshot => ({
    step,
    triples: Int32Array.from(triples),
    numEntities: N,
    numRelations: R,
  });
  scorer.filters.addSnapshot(snapshot(3, [2, 1, 5, 2, 1, 11]));
  scorer.filters.addSnapshot(snapshot(10, [2, 1, 9]));
  const row = bruteForceRow(state, 2, 1, 0);
  for (const answer of [5, 9, 20]) {
    const raw = await scorer.score({ direction: 'object', anchor: 2, relation: 1, k: 3, answer });
    assert.ok(raw.ranks);
    assert.equal(raw.rank, raw.ranks.raw);
    assert.ok(Math.abs(raw.ranks.raw - expectedRank(row, answer)) < 1e-9, `raw rank of ${answer}`);
    assert.ok(
      Math.abs(raw.ranks.static - expectedRank(row, answer, [5, 9, 11])) < 1e-9,
      `static rank of ${answer}`,
    );
    assert.ok(
      Math.abs(raw.ranks.timeAware - expectedRank(row, answer, [9])) < 1e-9,
      `time-aware rank of ${answer}`,
    );
    const filtered = await scorer.score({
      direction: 'object',
      anchor: 2,
      relation: 1,
      k: 3,
      answer,
      filter: 'static',
    });
    assert.equal(filtered.rank, filtered.ranks?.static);
  }
  // ties: 5, 6, 7 score the same, so answer 5's raw rank is a half-integer above `better` (1 + better + 2/2)
  const tie = await scorer.score({ direction: 'object', anchor: 2, relation: 1, k: 3, answer: 5 });
  const better = Array.from(row).filter((s) => s > row[5] + 1e-5).length;
  assert.equal(tie.ranks?.raw, 1 + better + 1);
  // the static filter removes the other true answers from the top-k list
  const top = await scorer.score({
    direction: 'object',
    anchor: 2,
    relation: 1,
    k: N,
    filter: 'static',
  });
  assert.equal(top.entities.length, N - 3);
  for (const e of [5, 9, 11]) assert.ok(!top.entities.includes(e));
  await scorer.close();
});

test("a bundle's sparse term is added to the scores, from the closed steps up to its history step", async () => {
  const state = { ...randomScoringState({ seed: 9, N, R, K }), step: 4 };
  const spec: TermSpec = {
    kind: 'recurrency',
    numRelations: R,
    decay: 1,
    strictWeight: 1000,
    relaxedWeight: 0,
  };
  const bytes = exportScoringModel(state, { vocabularyHash: hash, terms: encodeTermSpec(spec) });
  // without the closed steps the term needs, the bundle cannot score (never a silent term-less answer)
  const blind = new Scorer({ maxWaitMs: 0 });
  await blind.loadModel(bytes);
  await assert.rejects(
    blind.score({ direction: 'object', anchor: 1, relation: 2, k: 1 }),
    /needs the closed steps up to 3/,
  );
  await blind.close();
  const terms = new TermInputs();
  terms.add({ step: 3, triples: Int32Array.of(1, 2, 33), numEntities: N, numRelations: R });
  const scorer = new Scorer({ terms, maxWaitMs: 0 });
  await scorer.loadModel(bytes);
  const [boosted, plain] = await Promise.all([
    scorer.score({ direction: 'object', anchor: 1, relation: 2, k: 1, answer: 33 }),
    scorer.score({ direction: 'object', anchor: 1, relation: 3, k: 1 }),
  ]);
  assert.equal(boosted.entities[0], 33);
  assert.equal(boosted.rank, 1);
  assert.equal(boosted.historyStep, 3);
  assert.ok(Math.abs(boosted.scores[0] - (bruteForceRow(state, 1, 2, 0)[33] + 1000)) < 1e-3);
  const best = bruteForceRow(state, 1, 3, 0).reduce((a, b) => Math.max(a, b), -Infinity);
  assert.ok(Math.abs(plain.scores[0] - best) < 1e-4);
  await scorer.close();
});

test('atomic swap: concurrent queries during swaps all succeed, each scored entirely by the version it reports', async () => {
  const states = [1, 2, 3].map((version) =>
    randomScoringState({ seed: 100 + version, N, R, K, version, step: 10 + version }),
  );
  const scorer = new Scorer({ maxBatch: 8, maxWaitMs: 1 });
  await scorer.loadModel(exportScoringModel(states[0], { vocabularyHash: hash }));
  const pending: Array<Promise<{ result: Awaited<ReturnType<Scorer['score']>>; anchor: number }>> =
    [];
  let stop = false;
  const client = async (offset: number) => {
    for (let i = 0; !stop; i++) {
      const anchor = (i * 13 + offset) % N;
      pending.push(
        scorer
          .score({ direction: 'object', anchor, relation: 1, k: 3 })
          .then((result) => ({ result, anchor })),
      );
      if (i % 4 === 0) await new Promise((r) => setImmediate(r));
    }
  };
  const clients = [client(0), client(5)];
  for (const state of states.slice(1)) {
    await new Promise((r) => setTimeout(r, 20));
    await scorer.loadModel(exportScoringModel(state, { vocabularyHash: hash }));
  }
  await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await Promise.all(clients);
  const settled = await Promise.allSettled(pending);
  const failed = settled.filter((s) => s.status === 'rejected');
  assert.equal(
    failed.length,
    0,
    `failed: ${failed.map((f) => String((f as PromiseRejectedResult).reason)).join('; ')}`,
  );
  const versions = new Set<number>();
  for (const s of settled) {
    const { result, anchor } = (
      s as PromiseFulfilledResult<{ result: Awaited<ReturnType<Scorer['score']>>; anchor: number }>
    ).value;
    versions.add(result.modelVersion);
    const state = states[result.modelVersion - 1];
    assert.equal(result.step, state.step);
    const row = bruteForceRow(state, anchor, 1, 0);
    for (let j = 0; j < result.entities.length; j++)
      assert.ok(
        Math.abs(result.scores[j] - row[result.entities[j]]) <= 1e-4,
        'mixed-version answer',
      );
  }
  assert.ok(settled.length > 50, `only ${settled.length} queries`);
  assert.ok(versions.size >= 2, `saw versions ${[...versions]}`);
  assert.equal(scorer.model?.version, 3);
  await scorer.close();
});

test('invalid queries are rejected naming the field; corrupt or mismatched models are rejected and the old one keeps serving', async () => {
  const state = randomScoringState({ seed: 1, N, R, K, version: 4 });
  const bytes = exportScoringModel(state, { vocabularyHash: hash });
  const scorer = new Scorer({ maxWaitMs: 0 });
  await assert.rejects(
    scorer.score({ direction: 'object', anchor: 0, relation: 0, k: 1 }),
    /no model loaded/,
  );
  await scorer.loadModel(bytes, { entities, relations: relationNames });
  await assert.rejects(
    scorer.score({ direction: 'object', anchor: N, relation: 0, k: 1 }),
    (e: unknown) => e instanceof InvalidInputError && /subject: entity id 60/.test(e.message),
  );
  await assert.rejects(
    scorer.score({ direction: 'subject', anchor: 0, relation: R, k: 1 }),
    /relation id 4 is outside/,
  );
  await assert.rejects(
    scorer.score({ direction: 'object', anchor: 0, relation: 0, k: 0 }),
    /k: must be a positive integer/,
  );
  const corrupt = bytes.slice(0, Math.floor(bytes.length / 2));
  await assert.rejects(
    scorer.loadModel(corrupt),
    (e: unknown) => e instanceof ModelRejectedError && e.reason === 'corrupt',
  );
  const garbage = Uint8Array.from(bytes);
  for (let i = 100; i < 400; i++) garbage[i] ^= 0x5a;
  await assert.rejects(scorer.loadModel(garbage), ModelRejectedError);
  await assert.rejects(
    scorer.loadModel(bytes, { entities: entities.slice(1), relations: relationNames }),
    (e: unknown) => e instanceof ModelRejectedError && e.reason === 'incompatible',
  );
  await assert.rejects(
    ServingModel.load(bytes, {
      vocabulary: { entities: entities.map((e) => `${e}x`), relations: relationNames },
    }),
    /vocabulary hash/,
  );
  const still = await scorer.score({ direction: 'object', anchor: 0, relation: 0, k: 2 });
  assert.equal(still.modelVersion, 4);
  await scorer.close();
});
