import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventTimeWindow } from '../../src/window/event-time-window.ts';
import { decodeWindowState, encodeWindowState } from '../../src/window/checkpoint.ts';
import { writeFileAtomic, decodeContainer } from '../../src/core/durable.ts';
import { SnapshotStore } from '../../src/window/snapshot-store.ts';
import { sortTriples, TripleSet } from '../../src/window/triple-set.ts';
import type { EncodedFact, Snapshot } from '../../src/core/types.ts';
import { mulberry32 } from '../../src/core/random.ts';

const fact = (subject: number, relation: number, object: number, step: number): EncodedFact => ({
  subject,
  relation,
  object,
  step,
});

function collect(window: EventTimeWindow): Snapshot[] {
  const out: Snapshot[] = [];
  window.onSnapshot((s) => out.push(s));
  return out;
}

test('triples: a snapshot is sorted by (s, r, o) and deduplicated', () => {
  const set = new TripleSet();
  assert.equal(set.add(5, 1, 2), true);
  assert.equal(set.add(1, 3, 9), true);
  assert.equal(set.add(1, 0, 7), true);
  assert.equal(set.add(5, 1, 2), false);
  assert.equal(set.add(1, 0, 3), true);
  assert.deepEqual([...set.toSortedTriples()], [1, 0, 3, 1, 0, 7, 1, 3, 9, 5, 1, 2]);
  assert.deepEqual(
    [...sortTriples(new Int32Array([2, 0, 0, 1, 5, 5, 1, 5, 4]))],
    [1, 5, 4, 1, 5, 5, 2, 0, 0],
  );
  assert.equal(set.has(1, 3, 9) && !set.has(9, 3, 1), true);
});

test('watermark: with lateness 0, step t closes when step t+1 is seen on every partition', () => {
  const window = new EventTimeWindow({ allowedLateness: 0 });
  const closed = collect(window);
  window.addPartition(0);
  window.addPartition(1);
  window.add(fact(1, 0, 2, 0), 0);
  window.add(fact(3, 0, 4, 0), 1);
  window.add(fact(1, 0, 5, 1), 0);
  assert.equal(closed.length, 0, 'partition 1 has not moved past step 0 yet');
  assert.equal(window.watermark(), 0);
  window.add(fact(3, 0, 4, 1), 1);
  assert.deepEqual(
    closed.map((s) => s.step),
    [0],
  );
  assert.deepEqual([...closed[0].triples], [1, 0, 2, 3, 0, 4]);
  assert.equal(closed[0].numEntities, 6);
  assert.equal(window.nextStepToClose(), 1);
  window.flush();
  assert.deepEqual(
    closed.map((s) => s.step),
    [0, 1],
  );
  assert.deepEqual([...closed[1].triples], [1, 0, 5, 3, 0, 4]);
});

test('lateness: allowed lateness L keeps step t open until a step > t + L is seen; older facts are late', () => {
  const window = new EventTimeWindow({ allowedLateness: 2 });
  const closed = collect(window);
  const late: Array<[EncodedFact, number]> = [];
  window.onLate((f, p) => late.push([f, p]));
  window.add(fact(1, 0, 1, 0));
  window.add(fact(1, 0, 1, 2));
  assert.equal(closed.length, 0);
  assert.equal(window.add(fact(2, 0, 2, 1)), 'added', 'step 1 within lateness still counts');
  window.add(fact(1, 0, 1, 3)); // watermark 3 - 2 = 1: closes step 0
  assert.deepEqual(
    closed.map((s) => s.step),
    [0],
  );
  assert.equal(window.add(fact(9, 0, 9, 0)), 'late');
  assert.equal(window.add(fact(2, 0, 3, 1)), 'added');
  window.add(fact(1, 0, 1, 6)); // watermark 4: closes 1, 2, 3
  assert.deepEqual(
    closed.map((s) => s.step),
    [0, 1, 2, 3],
  );
  assert.deepEqual([...closed[1].triples], [2, 0, 2, 2, 0, 3]);
  assert.equal(window.add(fact(7, 0, 7, 3)), 'late');
  assert.deepEqual(
    late.map(([f]) => f.subject),
    [9, 7],
  );
  assert.equal(window.counts.late, 2);
});

test('duplicates change nothing and are counted', () => {
  const window = new EventTimeWindow();
  const closed = collect(window);
  assert.equal(window.add(fact(1, 2, 3, 0)), 'added');
  assert.equal(window.add(fact(1, 2, 3, 0)), 'duplicate');
  assert.equal(window.add(fact(1, 2, 3, 1)), 'added', 'same triple, other step');
  window.flush();
  assert.deepEqual(
    closed.map((s) => [s.step, s.triples.length]),
    [
      [0, 3],
      [1, 3],
    ],
  );
  assert.equal(window.counts.duplicate, 1);
});

test('steps close in order; empty steps between facts are emitted as empty snapshots', () => {
  const window = new EventTimeWindow();
  const closed = collect(window);
  window.add(fact(1, 0, 1, 2));
  window.add(fact(1, 0, 1, 5));
  assert.deepEqual(
    closed.map((s) => [s.step, s.triples.length / 3]),
    [
      [2, 1],
      [3, 0],
      [4, 0],
    ],
  );
  const noEmpty = new EventTimeWindow({ emitEmptySteps: false });
  const closedNoEmpty = collect(noEmpty);
  noEmpty.add(fact(1, 0, 1, 2));
  noEmpty.add(fact(1, 0, 1, 5));
  noEmpty.flush();
  assert.deepEqual(
    closedNoEmpty.map((s) => s.step),
    [2, 5],
  );
  const typo = new EventTimeWindow({ maxConsecutiveEmptySteps: 100 });
  const closedTypo = collect(typo);
  typo.add(fact(1, 0, 1, 0));
  typo.add(fact(1, 0, 1, 1_000_000));
  typo.flush();
  assert.deepEqual(
    closedTypo.map((s) => s.step),
    [0, 1_000_000],
    'a huge gap is skipped, not a million empty snapshots',
  );
});

test('async iterator yields closed snapshots and ends after end()', async () => {
  const window = new EventTimeWindow();
  const iterator = window.snapshots();
  const consumed = (async () => {
    const steps: number[] = [];
    for await (const s of iterator) steps.push(s.step);
    return steps;
  })();
  window.add(fact(1, 0, 1, 0));
  window.add(fact(1, 0, 1, 1));
  await new Promise((r) => setImmediate(r));
  window.add(fact(1, 0, 1, 2));
  window.end();
  assert.deepEqual(await consumed, [0, 1, 2]);
});

test('checkpoint round trip: a restored window continues exactly like an uninterrupted one (seeded random stream)', () => {
  const random = mulberry32(7);
  const partitions = 3;
  const facts: Array<[EncodedFact, number]> = [];
  for (let i = 0; i < 20_000; i++) {
    const partition = Math.floor(random() * partitions);
    const step = Math.floor(i / 1000) + Math.floor(random() * 3) - 1; // slightly out of order
    facts.push([
      fact(
        Math.floor(random() * 500),
        Math.floor(random() * 5),
        Math.floor(random() * 500),
        Math.max(0, step),
      ),
      partition,
    ]);
  }
  const run = (cutAt: number | null) => {
    let window = new EventTimeWindow({ allowedLateness: 1 });
    const closed: Snapshot[] = [];
    window.onSnapshot((s) => closed.push(s));
    let lateCount = 0;
    window.onLate(() => lateCount++);
    facts.forEach(([f, p], i) => {
      if (i === cutAt) {
        const bytes = encodeWindowState(window.state(), { note: 'x' });
        const { state, extra } = decodeWindowState(bytes);
        assert.deepEqual(extra, { note: 'x' });
        window = new EventTimeWindow({ allowedLateness: 1 }, state);
        window.onSnapshot((s) => closed.push(s));
        window.onLate(() => lateCount++);
      }
      window.add(f, p);
    });
    window.flush();
    return { closed, lateCount };
  };
  const clean = run(null);
  assert.ok(
    clean.closed.length >= 19 && clean.lateCount > 0,
    `closed ${clean.closed.length}, late ${clean.lateCount}`,
  );
  for (const cut of [1, 4321, 9999, 15_000]) {
    const resumed = run(cut);
    assert.deepEqual(
      resumed.closed.map((s) => s.step),
      clean.closed.map((s) => s.step),
    );
    assert.deepEqual(
      resumed.closed.map((s) => [...s.triples].join(',')),
      clean.closed.map((s) => [...s.triples].join(',')),
    );
    assert.equal(resumed.lateCount, clean.lateCount);
  }
});

test('checkpoint of ~200k open facts encodes and decodes quickly; atomic file write leaves no temp files', () => {
  const window = new EventTimeWindow({ allowedLateness: 1000 });
  const random = mulberry32(3);
  for (let i = 0; i < 200_000; i++) {
    window.add(
      fact(
        Math.floor(random() * 10_000),
        Math.floor(random() * 10),
        Math.floor(random() * 10_000),
        Math.floor(i / 2000),
      ),
    );
  }
  const n = window.openFactCount();
  assert.ok(n > 199_000, `open facts ${n}`);
  const started = performance.now();
  const bytes = encodeWindowState(window.state());
  const dir = mkdtempSync(join(tmpdir(), 'tkg-window-'));
  try {
    writeFileAtomic(join(dir, 'window.ckpt'), bytes);
    const restored = new EventTimeWindow({ allowedLateness: 1000 }, decodeWindowState(bytes).state);
    const elapsedMs = performance.now() - started;
    assert.equal(restored.openFactCount(), n);
    assert.ok(bytes.length < n * 12 + 10_000, `checkpoint ${bytes.length} bytes for ${n} facts`);
    assert.ok(elapsedMs < 2000, `checkpoint round trip took ${elapsedMs.toFixed(0)} ms`);
    assert.deepEqual(readdirSync(dir), ['window.ckpt']);
    assert.throws(() => decodeContainer(bytes.subarray(0, bytes.length - 4)), /truncated|trailing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('snapshot store: one file per closed step, read back identical', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-snapshots-'));
  try {
    const store = new SnapshotStore(dir);
    store.write({ step: 3, triples: new Int32Array([1, 0, 2]), numEntities: 3, numRelations: 1 });
    store.write({ step: 1, triples: new Int32Array(0), numEntities: 3, numRelations: 1 });
    assert.deepEqual(store.steps(), [1, 3]);
    assert.deepEqual(store.read(3), {
      step: 3,
      triples: new Int32Array([1, 0, 2]),
      numEntities: 3,
      numRelations: 1,
    });
    assert.equal(store.read(2), null);
    assert.deepEqual(
      [...store.readFrom(2)].map((s) => s.step),
      [3],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
