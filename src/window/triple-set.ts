// The open snapshot of one step: a set of (subject, relation, object) id triples.
// Owns: deduplication and the sorted flat Int32Array form of src/core/types.ts Snapshot.triples.
// Must not touch names, Kafka or files. Entity ids must be < 2^26 (packed with the object into one
// safe integer per relation); the vocabulary enforces that bound.

export const MAX_ENTITY_ID = 2 ** 26 - 1;
const OBJECT_SPAN = 2 ** 26;

export class TripleSet {
  /** relation -> set of subject * 2^26 + object */
  private readonly byRelation = new Map<number, Set<number>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds a triple; returns false if it was already present. */
  add(subject: number, relation: number, object: number): boolean {
    let pairs = this.byRelation.get(relation);
    if (!pairs) {
      pairs = new Set();
      this.byRelation.set(relation, pairs);
    }
    const key = subject * OBJECT_SPAN + object;
    if (pairs.has(key)) return false;
    pairs.add(key);
    this.count += 1;
    return true;
  }

  has(subject: number, relation: number, object: number): boolean {
    return this.byRelation.get(relation)?.has(subject * OBJECT_SPAN + object) ?? false;
  }

  /** Flat [s0, r0, o0, s1, ...] sorted by (s, r, o). */
  toSortedTriples(): Int32Array {
    const n = this.count;
    const unsorted = new Int32Array(n * 3); // [F * 3]
    let i = 0;
    for (const [relation, pairs] of this.byRelation) {
      for (const key of pairs) {
        const subject = Math.floor(key / OBJECT_SPAN);
        unsorted[i++] = subject;
        unsorted[i++] = relation;
        unsorted[i++] = key - subject * OBJECT_SPAN;
      }
    }
    return sortTriples(unsorted);
  }

  static fromTriples(triples: Int32Array): TripleSet {
    const set = new TripleSet();
    for (let i = 0; i < triples.length; i += 3) set.add(triples[i], triples[i + 1], triples[i + 2]);
    return set;
  }
}

/** Returns a new flat triple array sorted by (s, r, o). Input [F * 3]. */
export function sortTriples(triples: Int32Array): Int32Array {
  const n = triples.length / 3;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => {
    const a3 = a * 3;
    const b3 = b * 3;
    return (
      triples[a3] - triples[b3] ||
      triples[a3 + 1] - triples[b3 + 1] ||
      triples[a3 + 2] - triples[b3 + 2]
    );
  });
  const sorted = new Int32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const from = order[i] * 3;
    sorted[i * 3] = triples[from];
    sorted[i * 3 + 1] = triples[from + 1];
    sorted[i * 3 + 2] = triples[from + 2];
  }
  return sorted;
}
