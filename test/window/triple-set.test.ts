import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../../src/core/random.ts';
import { MAX_ENTITY_ID, sortTriples, TripleSet } from '../../src/window/triple-set.ts';

/** Reference: string-keyed dedup + lexicographic sort on (s, r, o). */
function reference(triples: number[][]): number[] {
  const unique = new Map<string, number[]>();
  for (const t of triples) unique.set(t.join(','), t);
  return [...unique.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]).flat();
}

for (const [label, maxEntity, maxRelation] of [
  ['small ids (packed uint32 sort)', 300, 12],
  ['ids filling all 32 bits (uint32 sort, top bit set)', 2 ** 14 - 1, 2 ** 4 - 1],
  ['ids up to 2^20 with 2^6 relations (packed float64 sort)', 2 ** 20 - 1, 2 ** 6 - 1],
  ['ids up to 2^26 - 1 with 2^20 relations (comparator sort)', MAX_ENTITY_ID, 2 ** 20 - 1],
] as const) {
  test(`triple set: growth, dedup and (s, r, o) order equal a reference, ${label}`, () => {
    const random = mulberry32(maxEntity);
    const pick = (max: number) => Math.floor(random() * (max + 1));
    const set = new TripleSet();
    const added: number[][] = [];
    let duplicates = 0;
    for (let i = 0; i < 20_000; i++) {
      // Re-add an earlier triple a third of the time: duplicates must be refused.
      const triple =
        added.length > 0 && random() < 1 / 3
          ? added[Math.floor(random() * added.length)]
          : [pick(maxEntity), pick(maxRelation), pick(maxEntity)];
      const isNew = !set.has(triple[0], triple[1], triple[2]);
      assert.equal(set.add(triple[0], triple[1], triple[2]), isNew);
      if (isNew) added.push(triple);
      else duplicates += 1;
    }
    assert.ok(duplicates > 1000, `the test re-adds triples (${duplicates})`);
    const expected = reference(added);
    assert.equal(set.size, expected.length / 3);
    assert.deepEqual([...set.toSortedTriples()], expected);
    assert.deepEqual([...TripleSet.fromTriples(set.toSortedTriples()).toSortedTriples()], expected);
    // sortTriples keeps duplicates of its input (it is a sort, not a set).
    const doubled = new Int32Array([...expected, ...expected.slice(0, 30)]);
    assert.equal(sortTriples(doubled).length, doubled.length);
  });
}

test('triple set: the extreme ids do not collide with their neighbours', () => {
  const set = new TripleSet();
  assert.equal(set.add(MAX_ENTITY_ID, 0, MAX_ENTITY_ID), true);
  assert.equal(set.add(MAX_ENTITY_ID, 0, MAX_ENTITY_ID - 1), true);
  assert.equal(set.add(0, 0, 0), true);
  assert.equal(set.add(MAX_ENTITY_ID, 0, MAX_ENTITY_ID), false);
  assert.deepEqual(
    [...set.toSortedTriples()],
    [0, 0, 0, MAX_ENTITY_ID, 0, MAX_ENTITY_ID - 1, MAX_ENTITY_ID, 0, MAX_ENTITY_ID],
  );
});
