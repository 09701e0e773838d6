import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/core/errors.ts';
import { syntheticDataset, syntheticSnapshots } from '../../src/datasets/synthetic.ts';

test('synthetic graph: deterministic, distinct facts per step, recurring share from the last steps, skewed degrees', () => {
  const options = { numEntities: 5000, numRelations: 20, factsPerStep: 2000, steps: 12, seed: 3 };
  const a = syntheticDataset(options);
  const b = syntheticDataset(options);
  assert.deepEqual(a, b, 'same options, same snapshots');
  assert.notDeepEqual(syntheticDataset({ ...options, seed: 4 })[1].triples, a[1].triples);
  const key = (t: Int32Array, i: number) => `${t[i]},${t[i + 1]},${t[i + 2]}`;
  const degree = new Map<number, number>();
  for (const [index, s] of a.entries()) {
    assert.equal(s.step, index);
    assert.equal(s.triples.length, 3 * 2000);
    assert.equal(s.numEntities, 5000);
    const keys = new Set<string>();
    for (let i = 0; i < s.triples.length; i += 3) {
      if (i > 0) {
        const order =
          s.triples[i - 3] - s.triples[i] ||
          s.triples[i - 2] - s.triples[i + 1] ||
          s.triples[i - 1] - s.triples[i + 2];
        assert.ok(order < 0, `step ${index}: triples sorted by (s, r, o) at fact ${i / 3}`);
      }
      keys.add(key(s.triples, i));
      assert.ok(s.triples[i] >= 0 && s.triples[i] < 5000 && s.triples[i + 2] < 5000);
      assert.ok(s.triples[i + 1] >= 0 && s.triples[i + 1] < 20);
      for (const e of [s.triples[i], s.triples[i + 2]]) degree.set(e, (degree.get(e) ?? 0) + 1);
    }
    assert.equal(keys.size, 2000, `step ${index}: facts are distinct`);
    if (index > 0) {
      const earlier = new Set<string>();
      for (const p of a.slice(Math.max(0, index - 10), index))
        for (let i = 0; i < p.triples.length; i += 3) earlier.add(key(p.triples, i));
      let recurring = 0;
      for (const k of keys) if (earlier.has(k)) recurring++;
      assert.ok(
        recurring >= 0.58 * 2000 && recurring <= 0.7 * 2000,
        `step ${index}: ${recurring} recurring`,
      );
    }
  }
  const degrees = [...degree.values()].sort((x, y) => y - x);
  const total = degrees.reduce((x, y) => x + y, 0);
  const top = degrees.slice(0, 50).reduce((x, y) => x + y, 0);
  assert.ok(
    top / total > 0.1,
    `the top 1% of entities carry ${((100 * top) / total).toFixed(1)}% of the endpoints`,
  );
});

test('synthetic graph: streams lazily and names the bad option', () => {
  const stream = syntheticSnapshots({ numEntities: 1_000_000, factsPerStep: 1000, steps: 1000 });
  const first = stream.next().value!;
  assert.equal(first.triples.length, 3000);
  assert.ok(first.triples.every((id: number) => id >= 0 && id < 1_000_000));
  assert.throws(
    () => syntheticDataset({ numEntities: 0, factsPerStep: 10, steps: 1 }),
    (e: unknown) => e instanceof ConfigError && /numEntities/.test((e as Error).message),
  );
  assert.throws(
    () => syntheticDataset({ numEntities: 4, numRelations: 1, factsPerStep: 10, steps: 1 }),
    /too dense/,
  );
});
