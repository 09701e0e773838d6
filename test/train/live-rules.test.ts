// The live rule models (rules, nlsm-r) resume exactly: a model stopped after any step and reopened from its state
// directory (steps replayed up to its checkpoint) ends with the same rules, weights and scoring state as one that
// never stopped; a crash between the rule header and the NLSM checkpoint resumes from the older header; the
// buffered fitting queries survive the restart byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLiveModel, type LiveModelOptions } from '../../src/train/live/index.ts';
import { decodeRankQuerySet, encodeRankQuerySet } from '../../src/train/rules/query-codec.ts';
import { RankQueryBuilder } from '../../src/train/rules/ranker.ts';
import { CorruptCheckpointError } from '../../src/core/durable.ts';
import { RuleTermState } from '../../src/model/rule-term.ts';
import type { RuleTermSpec } from '../../src/model/rule-spec.ts';
import { syntheticTkg } from '../hybrid/helpers.ts';

const { snapshots } = syntheticTkg({
  N: 40,
  R: 3,
  steps: 22,
  pairsPerStep: 30,
  repeat: 0.6,
  seed: 4,
});

async function run(
  options: LiveModelOptions,
  from: number,
  to: number,
  lines: string[],
): Promise<Awaited<ReturnType<typeof createLiveModel>>> {
  const model = await createLiveModel({ ...options, onProgress: (l) => lines.push(l) });
  for (const s of snapshots.slice(0, from)) if (s.step <= model.lastStep) await model.replay(s);
  for (const s of snapshots.slice(from, to)) {
    await model.observe(s);
    await model.checkpoint();
  }
  return model;
}

/** Small live models that select early and refit often (every 3 steps on the last 2). */
function liveOptions(kind: 'rules' | 'nlsm-r', dir: string): LiveModelOptions {
  return {
    kind,
    dir,
    seed: 5,
    K: 4,
    windowSize: 3,
    epochsPerWindow: 1,
    selectEvery: 3,
    selectionSteps: 2,
  };
}

for (const kind of ['rules', 'nlsm-r'] as const) {
  test(`${kind} live: stopped and resumed after a fit, it ends exactly where an uninterrupted run ends`, async () => {
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), `tkg-live-${kind}-`)));
    const options = (dir: string) => liveOptions(kind, dir);
    try {
      const lines: string[] = [];
      const straight = await run(options(dirs[0]), 0, snapshots.length, lines);
      assert.ok(
        lines.filter((l) => /ranker .* fitted/.test(l)).length >= 2,
        `the run must refit at least twice:\n${lines.join('\n')}`,
      );
      const cut = 17; // after the first refits: the restart needs the buffered queries
      const first = await run(options(dirs[1]), 0, cut, []);
      first.dispose();
      const resumed = await run(options(dirs[1]), cut, snapshots.length, []);
      const last = snapshots[snapshots.length - 1];
      const want = straight.scoringParts(last.step + 1, 1, last.numEntities, last.numRelations);
      const got = resumed.scoringParts(last.step + 1, 1, last.numEntities, last.numRelations);
      assert.deepEqual(got.terms, want.terms);
      assert.deepEqual(got.notes, want.notes);
      assert.deepEqual(got.dense.theta, want.dense.theta);
      assert.deepEqual(got.dense.z, want.dense.z);
      straight.dispose();
      resumed.dispose();
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('rank query sets round-trip through their checkpoint bytes; foreign bytes are a corrupt checkpoint', () => {
  const builder = new RankQueryBuilder(2, true, 4, 4, 3);
  const row = Float32Array.from({ length: 6 }, (_, i) => Math.sin(i) * 3);
  builder.add({
    numEntities: 6,
    row,
    answer: 2,
    candidates: { entities: Int32Array.of(1, 2), features: Float32Array.of(0.5, 1, 0.25, 2) },
    excluded: Int32Array.of(4),
  });
  const set = builder.build();
  const back = decodeRankQuerySet(encodeRankQuerySet(set));
  assert.deepEqual(back, set);
  assert.throws(() => decodeRankQuerySet(new Uint8Array(16), 'x.bin'), CorruptCheckpointError);
});

test('nlsm-r live: a crash after the rule header but before the NLSM checkpoint resumes from the older header', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-live-crash-'));
  const options = liveOptions('nlsm-r', dir);
  try {
    const cut = 15;
    const model = await run(options, 0, cut, []);
    await model.observe(snapshots[cut]);
    // the first half of checkpoint(): the rule header of step `cut` is written, then the process dies
    const internals = model as unknown as {
      header: { lastStep: number | null; buffer: number[] };
      headers: { write(h: unknown): void };
    };
    internals.headers.write({ ...internals.header, buffer: [] });
    model.dispose();
    const resumed = await createLiveModel(options);
    assert.equal(resumed.lastStep, snapshots[cut - 1].step, 'the header that matches NLSM wins');
    resumed.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rules live: a relation first met after the term state was built joins it (its facts count, its queries get terms)', async () => {
  const { snapshots: all } = syntheticTkg({
    N: 40,
    R: 3,
    steps: 18,
    pairsPerStep: 30,
    repeat: 0.7,
    seed: 8,
  });
  // relation 2 first appears at step 13, after the state is built (MIN_SELECTION_STEPS = 10)
  const stream = all.map((s) => {
    if (s.step >= 13) return { ...s, numRelations: 3 };
    const kept: number[] = [];
    for (let i = 0; i < s.triples.length; i += 3)
      if (s.triples[i + 1] < 2) kept.push(s.triples[i], s.triples[i + 1], s.triples[i + 2]);
    return { ...s, triples: Int32Array.from(kept), numRelations: 2 };
  });
  const dir = mkdtempSync(join(tmpdir(), 'tkg-live-rules-grow-'));
  try {
    const model = await createLiveModel({ kind: 'rules', dir, seed: 5, K: 4, windowSize: 3 });
    for (const s of stream) await model.observe(s);
    const last = stream[stream.length - 1];
    const parts = model.scoringParts(last.step + 1, 1, last.numEntities, 3);
    assert.equal(parts.terms.kind, 'rules');
    const spec = (parts.terms as { spec: RuleTermSpec }).spec;
    assert.equal(spec.numRelations, 3, 'the term state grew to the new relation');
    // a serving state built from the spec over the same steps gives relation-2 queries terms
    const serving = new RuleTermState(spec);
    for (const s of stream) serving.observe(s);
    let rows = 0;
    for (let i = 0; i < last.triples.length; i += 3)
      if (
        last.triples[i + 1] === 2 &&
        serving.terms('object', last.triples[i], 2)!.entities.length > 0
      )
        rows++;
    assert.ok(rows > 0, 'no relation-2 query got a term');
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
