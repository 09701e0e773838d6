// Entity-sharded serving (issue 17, item 3): shard graphs of a bundle give answers identical to the unsharded scorer
// (top-k lists and their order, scores, probabilities, raw / static / time-aware ranks, evidence), with the history
// term (recurrency, and the default model's rules term with mined rules) and the filters cut by range, ties that
// span shards, a one-entity shard, in process, in worker threads and through a Scorer with shards: 2 (which cuts
// each bundle it loads); a failing shard and a dead shard thread.
// Each shard graph holds only its range's rows; shard maps that do not cover [0, N) are refused naming the fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot } from '../../src/core/types.ts';
import { mulberry32 } from '../../src/core/random.ts';
import {
  exportScoringModel,
  exportScoringShards,
  shardScoringModel,
  vocabularyHash,
} from '../../src/model/scoring-graph.ts';
import {
  decodeShardMap,
  evenShardMap,
  type ShardMap,
  shardOf,
  sliceSorted,
} from '../../src/model/shard-map.ts';
import { TermInputs } from '../../src/model/term-inputs.ts';
import { encodeTermSpec, type TermSpec } from '../../src/model/terms.ts';
import { bucketCount, FEATURE_INDEX, recurrencyRuleSpec } from '../../src/model/rule-spec.ts';
import { FilterIndex } from '../../src/serve/filters.ts';
import { ServingModel } from '../../src/serve/model.ts';
import { Scorer, type ScoreRequest, type ScoreResult } from '../../src/serve/scorer.ts';
import { LocalShard, ShardedScorer } from '../../src/serve/sharded-scorer.ts';
import { type ShardWorker, WorkerShard } from '../../src/serve/shard-worker.ts';
import { ShardServer } from '../../src/serve/shard-server.ts';
import { RemoteShard, RemoteShardSet } from '../../src/serve/remote-shard.ts';
import type { ModelBundle } from '../../src/model/bundle.ts';
import { uncalibrated } from '../../src/model/calibration.ts';
import { randomScoringState } from './fixtures.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const N = 97;
const R = 4;
const K = 8;
const STEP = 6;
const hash = vocabularyHash(
  Array.from({ length: N }, (_, i) => `e${i}`),
  Array.from({ length: R }, (_, i) => `r${i}`),
);
const spec: TermSpec = {
  kind: 'recurrency',
  numRelations: R,
  decay: 0.7,
  strictWeight: 2.5,
  relaxedWeight: 0.8,
};

/** The default model's term kind: rules over the strict and relaxed counts, with mined length-1 rules and recency. */
function rulesSpec(): TermSpec {
  const spec = recurrencyRuleSpec({ numRelations: R, decay: 0.8, alpha: 0.5, relaxedTopK: 12 });
  spec.weights[FEATURE_INDEX.ruleSum] = 1.5;
  spec.weights[FEATURE_INDEX.recency] = 0.7;
  spec.weights[FEATURE_INDEX.logPair] = 0.2;
  const buckets = bucketCount(spec);
  for (let head = 0; head < 2 * R; head++)
    spec.rules.push([
      head,
      (head + 3) % (2 * R),
      Array.from({ length: buckets }, (_, i) => 0.2 + 0.05 * i),
    ]);
  return { kind: 'rules', spec };
}

function fixture(term: TermSpec = spec) {
  const state = randomScoringState({ seed: 21, N, R, K, step: STEP, version: 3 });
  // entities 40 and 80 are copies of 5 (ties across shards: the merge must keep the unsharded order)
  for (const copy of [40, 80]) state.z.set(state.z.subarray(5 * K, 6 * K), copy * K);
  const random = mulberry32(5);
  const snapshots: Snapshot[] = Array.from({ length: STEP + 1 }, (_, step) => {
    const triples: number[] = [];
    for (let i = 0; i < 60; i++)
      triples.push(Math.floor(random() * N), Math.floor(random() * R), Math.floor(random() * N));
    return { step, triples: Int32Array.from(triples), numEntities: N, numRelations: R };
  });
  const terms = new TermInputs();
  const filters = new FilterIndex();
  for (const snapshot of snapshots) {
    if (snapshot.step < STEP) terms.add(snapshot);
    filters.addSnapshot(snapshot); // the time-aware filter of STEP: the answers being ranked
  }
  const options = { vocabularyHash: hash, terms: encodeTermSpec(term) };
  const requests: ScoreRequest[] = [];
  const modes = ['raw', 'static', 'timeAware'] as const;
  const ks = [1, 3, 10, N + 5];
  const last = snapshots[STEP].triples;
  for (let i = 0; i < last.length; i += 3) {
    const [s, r, o] = [last[i], last[i + 1], last[i + 2]];
    const at = i / 3;
    const common = { relation: r, k: ks[at % 4], filter: modes[at % 3], evidence: at % 2 };
    requests.push({ direction: 'object', anchor: s, answer: o, ...common });
    requests.push({ direction: 'subject', anchor: o, answer: s, ...common });
  }
  // ties: (any, r, ?) ranks 5, 40 and 80 equally; queries without an answer too
  requests.push({ direction: 'object', anchor: 3, relation: 1, k: 12, answer: 40 });
  requests.push({ direction: 'object', anchor: 9, relation: 2, k: 7 });
  return { state, terms, filters, options, requests };
}

async function unsharded(f: ReturnType<typeof fixture>): Promise<ScoreResult[]> {
  const scorer = new Scorer({ terms: f.terms, filters: f.filters, maxBatch: 16 });
  await scorer.loadModel(exportScoringModel(f.state, f.options));
  const results = await scorer.scoreBatch(f.requests);
  await scorer.close();
  return results;
}

async function sharded(
  f: ReturnType<typeof fixture>,
  map: ShardMap,
  where: 'local' | 'worker',
): Promise<ScoreResult[]> {
  const bytes = exportScoringShards(f.state, f.options, map);
  const shards = await Promise.all(
    bytes.map(async (b) =>
      where === 'local' ? new LocalShard(await ServingModel.load(b)) : WorkerShard.start(b),
    ),
  );
  const scorer = new ShardedScorer(shards);
  const context = { terms: f.terms, filters: f.filters };
  try {
    const results: ScoreResult[] = [];
    for (let start = 0; start < f.requests.length; start += 16)
      results.push(...(await scorer.scoreBatch(f.requests.slice(start, start + 16), context)));
    return results;
  } finally {
    await scorer.close();
  }
}

function assertSame(actual: ScoreResult[], expected: ScoreResult[], label: string): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    const where = `${label}, query ${i}`;
    assert.deepEqual([...a.entities], [...e.entities], `${where}: top-k`);
    assert.deepEqual([...a.scores], [...e.scores], `${where}: scores`);
    assert.deepEqual([...a.probabilities], [...e.probabilities], `${where}: probabilities`);
    assert.deepEqual(a.ranks, e.ranks, `${where}: ranks`);
    assert.equal(a.rank, e.rank, `${where}: rank`);
    assert.deepEqual(a.evidence, e.evidence, `${where}: evidence`);
    assert.equal(a.modelVersion, e.modelVersion);
    assert.equal(a.historyStep, e.historyStep);
  }
}

test('sharded answers equal the unsharded scorer: 2 and 3 even shards, an uneven map with a one-entity shard', async () => {
  const f = fixture();
  const expected = await unsharded(f);
  // the fixture exercises what it claims: term entries, filtered ranks, ties across shards
  assert.ok(expected.some((r) => r.ranks && r.ranks.static < r.ranks.raw));
  assert.ok(expected.some((r) => (r.evidence?.flat().length ?? 0) > 0));
  const tie = expected.at(-2) as ScoreResult;
  assert.equal(tie.scores[tie.entities.indexOf(5)], tie.scores[tie.entities.indexOf(80)]);
  for (const map of [evenShardMap(N, 2), evenShardMap(N, 3), { bounds: [0, 1, 41, N] }])
    assertSame(await sharded(f, map, 'local'), expected, `bounds ${map.bounds.join(',')}`);
});

test("the default model's rules term (mined rules, recency) sharded: the same answers and evidence", async () => {
  const f = fixture(rulesSpec());
  const expected = await unsharded(f);
  assert.ok(
    expected.some((r) => r.evidence?.flat().some((e) => e.kind === 'rule')),
    'some evidence comes from a mined rule',
  );
  assertSame(await sharded(f, evenShardMap(N, 2), 'local'), expected, 'rules, 2 shards');
});

test('shards in worker threads give the same answers', async () => {
  const f = fixture();
  assertSame(await sharded(f, evenShardMap(N, 2), 'worker'), await unsharded(f), 'workers');
});

test("a shard graph holds only its range's rows; bad shard maps and wrong-shard rows are refused naming the fault", async () => {
  const f = fixture();
  // the unsharded graph holds Z and Z_T (2 N K floats); a shard holds Z_T of its range (N K / 2 of 2 shards)
  const big = randomScoringState({ seed: 2, N: 4000, R, K: 16 });
  const full = exportScoringModel(big, f.options);
  for (const part of exportScoringShards(big, f.options, evenShardMap(4000, 2)))
    assert.ok(part.length < 0.27 * full.length, `${part.length} vs ${full.length}`);
  const parts = exportScoringShards(f.state, f.options, evenShardMap(N, 2));
  const shard = await ServingModel.load(parts[1]);
  assert.deepEqual(shard.shard, { index: 1, lo: 49, hi: N });
  assert.deepEqual([...shard.rowsOf([50])], [...f.state.z.subarray(50 * K, 51 * K)]);
  assert.throws(() => shard.rowsOf([3]), /anchor: entity 3 is not in shard 1's range \[49, 97\)/);
  await shard.retire();
  assert.throws(() => decodeShardMap('{"bounds":[0,50,50,97]}', N), /bounds\[2\] = 50 after 50/);
  assert.throws(() => decodeShardMap('{"bounds":[0,50]}', N), /from 0 to N = 97/);
  assert.throws(() => evenShardMap(N, 0), /shards must be an integer in \[1, 97\]/);
  assert.throws(() => new ShardedScorer([]), /needs the shards of one sharded bundle/);
  const map = { bounds: [0, 10, 20, N] };
  assert.deepEqual(
    [0, 9, 10, 19, 20, 96, 97, -1].map((e) => shardOf(map, e)),
    [0, 0, 1, 1, 2, 2, -1, -1],
  );
  assert.deepEqual([...(sliceSorted(Int32Array.of(1, 10, 15, 20, 30), 10, 20) ?? [])], [10, 15]);
});

test('a Scorer with shards: 2 cuts each loaded bundle into worker shards: same answers through its queue; a swap releases the old shards; a dead shard thread is replaced at the next bundle', async () => {
  const f = fixture();
  const map = evenShardMap(N, 2);
  const full = exportScoringModel(f.state, f.options);
  // the cut of an exported graph is byte for byte the shards exported from its state
  assert.deepEqual(shardScoringModel(full, map), exportScoringShards(f.state, f.options, map));
  assert.throws(
    () => shardScoringModel(exportScoringShards(f.state, f.options, map)[0], map),
    /already a shard/,
  );
  const expected = await unsharded(f);
  const scorer = new Scorer({ shards: 2, terms: f.terms, filters: f.filters, maxBatch: 16 });
  const first = await scorer.loadModel(full);
  assert.ok(first.shards, 'the model is served by its shards');
  const results = await Promise.all(f.requests.map((q) => scorer.score(q)));
  assertSame(results, expected, 'Scorer shards: 2');
  const next = { ...f.state, version: 4, z: f.state.z.map((v) => 1 - v) };
  await scorer.loadModel(exportScoringModel(next, f.options));
  const after = await scorer.score(f.requests[0]);
  assert.equal(after.modelVersion, 4);
  assert.ok(first.isReleased, 'the replaced version closed its shards');
  // a shard thread dies: its version fails queries naming it, and the next bundle loads on a new thread
  const workers = (scorer as unknown as { workers: ShardWorker[] }).workers;
  await workers[1].terminate();
  await assert.rejects(scorer.score(f.requests[0]), /shard worker was terminated/);
  await scorer.loadModel(exportScoringModel({ ...f.state, version: 5 }, f.options));
  assert.deepEqual((await scorer.score(f.requests[0])).entities, expected[0].entities);
  await scorer.close();
});

test('a shard that fails a batch fails the batch with its error; every shard drops what it kept for it', async () => {
  const f = fixture();
  const parts = exportScoringShards(f.state, f.options, evenShardMap(N, 2));
  const shards = await Promise.all(
    parts.map(async (b) => new LocalShard(await ServingModel.load(b))),
  );
  const released: number[] = [];
  const failing = Object.assign(Object.create(shards[1]) as LocalShard, {
    score: () => Promise.reject(new Error('shard 1 is gone')),
  });
  for (const shard of [shards[0], failing]) {
    const release = shard.release.bind(shard);
    shard.release = (id: number) => (released.push(id), release(id));
  }
  const scorer = new ShardedScorer([shards[0], failing]);
  const context = { terms: f.terms, filters: f.filters };
  const withAnswers = f.requests.slice(0, 8);
  await assert.rejects(scorer.scoreBatch(withAnswers, context), /shard 1 is gone/);
  assert.deepEqual(released, [0, 0], 'both shards were told to drop batch 0');
  // shard 0 kept nothing: a counts call for batch 0 finds no scores
  await assert.rejects(
    shards[0].counts({
      id: 0,
      rows: Int32Array.of(0),
      answers: Int32Array.of(0),
      answerScores: Float32Array.of(0),
      staticExcluded: [undefined],
      timeAwareExcluded: [undefined],
    }),
    /kept no scores for batch 0/,
  );
  await Promise.all(shards.map((s) => s.close()));
});

test('a bundle with fewer entities than shards is served with one entity per shard', async () => {
  const tiny = randomScoringState({ seed: 4, N: 2, R: 1, K: 4 });
  const options = { vocabularyHash: vocabularyHash(['a', 'b'], ['r']) };
  const bytes = exportScoringModel(tiny, options);
  const one = new Scorer();
  const three = new Scorer({ shards: 3 });
  await one.loadModel(bytes);
  await three.loadModel(bytes);
  const q: ScoreRequest = { direction: 'object', anchor: 1, relation: 0, k: 5, answer: 0 };
  const [a, b] = [await one.score(q), await three.score(q)];
  assert.deepEqual([...b.entities], [...a.entities]);
  assert.deepEqual(b.ranks, a.ranks);
  await Promise.all([one.close(), three.close()]);
});

/** A bundle of the fixture's state (names e0.., r0..: the fixture's vocabulary hash). */
function bundleOf(
  f: ReturnType<typeof fixture>,
  version: number,
  term: TermSpec = spec,
): ModelBundle {
  return {
    name: 'nlsm',
    kind: 'nlsm',
    version,
    step: STEP,
    trainedStep: STEP - 1,
    createdAt: new Date(0).toISOString(),
    vocabularyHash: hash,
    onnx: exportScoringModel({ ...f.state, version }, f.options),
    location: null,
    entities: Array.from({ length: N }, (_, i) => `e${i}`),
    relations: Array.from({ length: R }, (_, i) => `r${i}`),
    terms: term,
    calibration: uncalibrated,
    notes: {},
  };
}

async function shardServers(count: number, keptScoresMs?: number) {
  const servers = Array.from(
    { length: count },
    (_, index) => new ShardServer({ index, count, keptScoresMs }),
  );
  const urls = await Promise.all(servers.map(async (s) => (await s.listen(0, '127.0.0.1')).url));
  return { servers, urls, close: () => Promise.all(servers.map((s) => s.close())) };
}

test('shard replicas over HTTP (2 and 3 of them) give the unsharded answers; the front holds no row of Z', async () => {
  const f = fixture();
  const expected = await unsharded(f);
  for (const count of [2, 3]) {
    const { servers, urls, close } = await shardServers(count);
    try {
      const bundle = bundleOf(f, 3);
      const set = new RemoteShardSet(
        urls.map((u) => [u]),
        { pollMs: 20 },
      );
      const loading = set.modelFor(bundle); // waits until every replica holds version 3
      for (const server of servers) await server.load(bundle, bundle.onnx!);
      const model = await loading;
      assert.ok(model.shards, 'served by its shards');
      assert.equal(model.sharedRows, undefined, 'the front holds no rows');
      const held = servers.map((s) => s.list()[0].metadata.shard!.map.bounds);
      assert.deepEqual(held[0], evenShardMap(N, count).bounds);
      const scorer = new Scorer({ terms: f.terms, filters: f.filters, maxBatch: 16 });
      scorer.swap(model);
      assertSame(
        await Promise.all(f.requests.map((q) => scorer.score(q))),
        expected,
        `${count} shard replicas`,
      );
      await scorer.close();
    } finally {
      await close();
    }
  }
});

test('shard replicas keep the newest two versions; a misordered or lagging set is refused naming the fix; kept scores of a batch whose counts never came are dropped', async () => {
  const f = fixture();
  const { servers, urls, close } = await shardServers(2, 300);
  try {
    for (const version of [3, 4, 5])
      for (const server of servers)
        await server.load(bundleOf(f, version), bundleOf(f, version).onnx!);
    assert.deepEqual(
      servers[0].list().map((h) => h.version),
      [4, 5],
      'version 3 retired',
    );
    const set = new RemoteShardSet(
      urls.map((u) => [u]),
      { pollMs: 20, timeoutMs: 300 },
    );
    await assert.rejects(
      set.modelFor(bundleOf(f, 3)),
      /every replica of shard 0 \(http:\/\/127\.0\.0\.1:\d+\) holds newer versions of nlsm than 3/,
    );
    await assert.rejects(set.modelFor(bundleOf(f, 6)), /did not hold it within 300 ms/);
    await assert.rejects(
      new RemoteShardSet([[urls[1]], [urls[0]]]).modelFor(bundleOf(f, 5)),
      /holds shard 1 of 2, but it is listed as shard 0 of 2 in TKG_SHARD_SERVERS: start it with TKG_SHARD_INDEX=0/,
    );
    const model = await set.modelFor(bundleOf(f, 4));
    const [shard] = (model.shards as unknown as { shards: RemoteShard[] }).shards;
    const request = {
      id: 0,
      anchorRows: new Float32Array(K),
      relations: Int32Array.of(0),
      directions: Int32Array.of(0),
      k: 2,
      answers: Int32Array.of(1),
    };
    const scored = await shard.score(request);
    assert.equal(scored.k, 2);
    await sleep(700); // past keptScoresMs: the sweep dropped the batch's scores
    await assert.rejects(
      shard.counts({
        id: 0,
        rows: Int32Array.of(0),
        answers: Int32Array.of(1),
        answerScores: Float32Array.of(scored.answerScores[0]),
        staticExcluded: [undefined],
        timeAwareExcluded: [undefined],
      }),
      /kept no scores for batch 0/,
    );
    await servers[1].close();
    await assert.rejects(
      model.shards!.scoreBatch([f.requests[0]], { filters: f.filters, terms: f.terms }),
      /shard replica http:\/\/127\.0\.0\.1:\d+ is unreachable/,
    );
  } finally {
    await close();
  }
});

test('two replicas of one shard: batches spread over both, one without the version or down is skipped, answers unchanged', async () => {
  const f = fixture();
  const expected = await unsharded(f);
  const servers = [0, 1, 1].map((index) => new ShardServer({ index, count: 2 }));
  const [u0, u1a, u1b] = await Promise.all(
    servers.map(async (s) => (await s.listen(0, '127.0.0.1')).url),
  );
  const calls = [0, 0, 0];
  servers.forEach((server, i) => {
    const call = server.call.bind(server);
    server.call = (rpc) => (calls[i]++, call(rpc));
  });
  try {
    const bundle = bundleOf(f, 3);
    await servers[0].load(bundle, bundle.onnx!);
    await servers[2].load(bundle, bundle.onnx!); // shard 1's second replica only
    const model = await new RemoteShardSet([[u0], [u1a, u1b]], { pollMs: 20 }).modelFor(bundle);
    const scorer = new Scorer({ terms: f.terms, filters: f.filters, maxBatch: 16 });
    scorer.swap(model);
    const all = () => Promise.all(f.requests.map((q) => scorer.score(q)));
    assertSame(await all(), expected, 'one replica of shard 1 lacks the version');
    assert.ok(calls[1] > 0, 'the replica without the version was asked and skipped');
    await servers[1].load(bundle, bundle.onnx!);
    const before = [...calls];
    assertSame(await all(), expected, 'both replicas of shard 1 hold it');
    assert.ok(calls[1] > before[1] && calls[2] > before[2], `both replicas served: ${calls}`);
    await servers[2].close();
    assertSame(await all(), expected, 'one replica of shard 1 is down');
    await scorer.close();
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
});
