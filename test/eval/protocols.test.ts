import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Direction, LinkForecaster, Snapshot, TkgForecaster } from '../../src/core/types.ts';
import { toSnapshots } from '../../src/datasets/snapshots.ts';
import { runTkgProtocol } from '../../src/eval/protocols.ts';
import { buildAnswerFilter } from '../../src/eval/rank.ts';
import { aucWithTies, linkTestPairs, meanStd, runLinkProtocol } from '../../src/eval/link.ts';
import { mulberry32 } from '../../src/core/random.ts';
import { loadTkgDataset, tkgSnapshots } from '../../src/datasets/index.ts';
import { staticFilterSplits, tkgSplits } from '../../src/eval/evaluate.ts';

const N = 6;
const R = 2;

/** Steps 0..5; each step has (0, 0, a_t) and (2, 1, b_t): one answer per query and step. */
function tinyTkg(): Snapshot[] {
  const facts: number[] = [];
  for (let t = 0; t < 6; t++)
    facts.push(0, 0, 1 + (t % 3), t, 2, 1, 3 + (t % 2), t, 0, 0, 1 + (t % 3), t); // last one duplicates
  return toSnapshots(Int32Array.from(facts), N, R);
}

/** Knows the future: scores 1 for the true answers of the asked step, 0 otherwise. Records calls. */
class OracleForecaster implements TkgForecaster {
  readonly name = 'oracle';
  readonly calls: string[] = [];
  constructor(private readonly truth: Snapshot[]) {}
  async observe(snapshot: Snapshot): Promise<void> {
    this.calls.push(`observe ${snapshot.step}`);
  }
  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    this.calls.push(`score ${step}`);
    const out = new Float32Array(anchors.length * numEntities);
    const t = this.truth.find((s) => s.step === step)!.triples;
    for (let b = 0; b < anchors.length; b++) {
      for (let i = 0; i < t.length; i += 3) {
        const [s, r, o] = [t[i], t[i + 1], t[i + 2]];
        if (r !== relations[b]) continue;
        if (direction === 'object' && s === anchors[b]) out[b * numEntities + o] = 1;
        if (direction === 'subject' && o === anchors[b]) out[b * numEntities + s] = 1;
      }
    }
    return out;
  }
}

class ConstantForecaster implements TkgForecaster {
  readonly name = 'constant';
  async observe(): Promise<void> {}
  async score(
    _step: number,
    _d: Direction,
    anchors: Int32Array,
    _r: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    return new Float32Array(anchors.length * numEntities).fill(0.25);
  }
}

test('oracle forecaster: MRR 100 in every filter mode; multi-step never observes targets, single-step scores before observing', async () => {
  const snaps = tinyTkg();
  const staticFilter = buildAnswerFilter(
    snaps.map((s) => s.triples),
    R,
  );
  for (const protocol of ['multi-step', 'single-step'] as const) {
    const oracle = new OracleForecaster(snaps);
    const result = await runTkgProtocol({
      forecaster: oracle,
      history: snaps.slice(0, 3),
      targets: snaps.slice(3),
      protocol,
      staticFilter,
      numEntities: N,
      numRelations: R,
      batchSize: 1,
    });
    for (const mode of ['raw', 'static', 'timeAware'] as const) {
      assert.equal(result[mode].mrr, 100, `${protocol} ${mode}`);
      assert.equal(result[mode].hits1, 100);
    }
    assert.equal(result.queries, 3 * 2 * 2); // 3 steps x 2 distinct facts x 2 directions
    const calls = [...new Set(oracle.calls)];
    if (protocol === 'multi-step')
      assert.deepEqual(calls, [
        'observe 0',
        'observe 1',
        'observe 2',
        'score 3',
        'score 4',
        'score 5',
      ]);
    else
      assert.deepEqual(calls, [
        'observe 0',
        'observe 1',
        'observe 2',
        'score 3',
        'observe 3',
        'score 4',
        'observe 4',
        'score 5',
        'observe 5',
      ]);
    assert.deepEqual(
      result.steps.map((s) => s.mrr.raw),
      [100, 100, 100],
    );
  }
});

test('constant forecaster: ties give the expected middle ranks under each filter (hand computed)', async () => {
  // history step 0: (1,0,4), (5,0,2); test step 3: (1,0,2).
  const history = toSnapshots(Int32Array.from([1, 0, 4, 0, 5, 0, 2, 0]), N, R);
  const target = toSnapshots(Int32Array.from([1, 0, 2, 3]), N, R);
  const staticFilter = buildAnswerFilter(
    [...history, ...target].map((s) => s.triples),
    R,
  );
  const result = await runTkgProtocol({
    forecaster: new ConstantForecaster(),
    history,
    targets: target,
    protocol: 'multi-step',
    staticFilter,
    numEntities: N,
    numRelations: R,
  });
  // raw: 5 ties -> 1 + 5/2 = 3.5. static: object (1,0,?) ever {2,4} and subject (?,0,2) ever {1,5}: 4 ties -> 3.
  // time-aware: only the target is true at step 3 -> 3.5.
  const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
  close(result.raw.mrr, 100 / 3.5);
  close(result.static.mrr, 100 / 3);
  close(result.timeAware.mrr, 100 / 3.5);
  assert.equal(result.perDirection.object.static.hits3, 100);
  assert.equal(result.raw.hits3, 0);
});

test('protocol rejects targets that do not follow the history', async () => {
  const snaps = tinyTkg();
  const staticFilter = buildAnswerFilter(
    snaps.map((s) => s.triples),
    R,
  );
  await assert.rejects(
    runTkgProtocol({
      forecaster: new ConstantForecaster(),
      history: snaps.slice(2, 4),
      targets: snaps.slice(0, 1),
      protocol: 'multi-step',
      staticFilter,
      numEntities: N,
      numRelations: R,
    }),
    /not after/,
  );
});

test('AUC with ties equals the brute-force pair count', () => {
  const random = mulberry32(7);
  for (let trial = 0; trial < 50; trial++) {
    const P = 1 + Math.floor(random() * 30);
    const Q = 1 + Math.floor(random() * 30);
    const pos = Array.from({ length: P }, () => Math.floor(random() * 5) / 4);
    const neg = Array.from({ length: Q }, () => Math.floor(random() * 5) / 4);
    let pairs = 0;
    for (const p of pos) for (const q of neg) pairs += p > q ? 1 : p === q ? 0.5 : 0;
    assert.ok(Math.abs(aucWithTies(pos, neg) - pairs / (P * Q)) < 1e-12);
  }
  assert.equal(aucWithTies([1, 1], [1, 1, 1]), 0.5);
  assert.ok(Number.isNaN(aucWithTies([], [1])));
  assert.deepEqual(meanStd([1, 2, 3]), { mean: 2, std: 1 });
});

test('link protocol: positives only between seen nodes, oracle AUC 100, constant AUC 50, seeded negatives', async () => {
  // 5 steps on 8 nodes; node 7 appears only at the last step.
  const facts: number[] = [];
  for (let t = 0; t < 5; t++) for (let i = 0; i < 6; i++) facts.push(i, 0, (i + 1 + t) % 7, t);
  facts.push(7, 0, 1, 4, 1, 0, 1, 4); // unseen source, self-loop: neither is a positive
  const snaps = toSnapshots(Int32Array.from(facts), 8, 1);
  const seen = new Set([0, 1, 2, 3, 4, 5, 6]);
  const pairs = linkTestPairs(snaps[4], seen, mulberry32(1));
  assert.equal(pairs.positives, 6); // (i, (i + 5) % 7) for i < 6; (7, 1) has an unseen node, (1, 1) is a self-loop
  assert.equal(pairs.labels.length, 2 * pairs.positives);
  for (let k = 0; k < pairs.sources.length; k++) {
    assert.notEqual(pairs.sources[k], pairs.targets[k]);
    assert.ok(seen.has(pairs.sources[k]) && seen.has(pairs.targets[k]));
  }
  const again = linkTestPairs(snaps[4], seen, mulberry32(1));
  assert.deepEqual(again, pairs);
  const oracle = (): LinkForecaster => ({
    name: 'oracle',
    observe: async () => {},
    linkProbability: async (step, sources, targets) => {
      const t = snaps[step].triples;
      return Float32Array.from(sources, (s, k) => {
        for (let i = 0; i < t.length; i += 3) if (t[i] === s && t[i + 2] === targets[k]) return 1;
        return 0;
      });
    },
  });
  const good = await runLinkProtocol({
    createForecaster: async () => oracle(),
    snapshots: snaps,
    seeds: [1, 2, 3],
  });
  assert.deepEqual(good.microAuc, { mean: 100, std: 0 });
  assert.equal(good.macroAuc.mean, 100);
  assert.equal(good.perStepAuc.length, 4);
  const flat = await runLinkProtocol({
    createForecaster: async () => ({
      name: 'c',
      observe: async () => {},
      linkProbability: async (_s, sources) => new Float32Array(sources.length),
    }),
    snapshots: snaps,
    seeds: [1],
  });
  assert.equal(flat.microAuc.mean, 50);
  assert.equal(flat.macroAuc.mean, 50);
});

test('--target valid never reads the test split: YAGO history = train, target = valid; WIKI (no train) halves valid', () => {
  const yago = loadTkgDataset('yago');
  const dev = tkgSplits(yago, 'valid');
  const stepsOf = (s: readonly Snapshot[]) => s.map((x) => x.step);
  assert.deepEqual(stepsOf(dev.history), stepsOf(tkgSnapshots(yago, ['train'])));
  assert.deepEqual(stepsOf(dev.targets), stepsOf(tkgSnapshots(yago, ['valid'])));
  const testSteps = new Set(stepsOf(tkgSnapshots(yago, ['test'])));
  for (const s of [...dev.history, ...dev.targets]) assert.ok(!testSteps.has(s.step));
  assert.deepEqual(staticFilterSplits('valid'), ['train', 'valid']);
  assert.deepEqual(staticFilterSplits('test'), ['train', 'valid', 'test']);
  const wiki = loadTkgDataset('wiki');
  assert.equal(wiki.splits.train, undefined);
  const w = tkgSplits(wiki, 'valid');
  const valid = stepsOf(tkgSnapshots(wiki, ['valid']));
  assert.deepEqual([...stepsOf(w.history), ...stepsOf(w.targets)], valid);
  assert.equal(w.history.length, Math.ceil(valid.length / 2));
  assert.ok(w.targets.length > 0);
});
