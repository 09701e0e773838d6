// The open snapshot of one step: a set of (subject, relation, object) id triples.
// Owns: deduplication and the sorted flat Int32Array form of src/core/types.ts Snapshot.triples.
// Must not touch names, Kafka or files. Entity ids must be < 2^26 (the vocabulary enforces that bound).
//
// Layout (hot path of ingest: one add() per fact): an open-addressing hash set with linear probing.
// `triples` holds the facts in insertion order ([capacity * 3], flat s, r, o) and `slots` maps a hash
// bucket to 1 + the fact's index (0 = empty). No per-fact objects, so no garbage per fact.

export const MAX_ENTITY_ID = 2 ** 26 - 1;

const INITIAL_FACTS = 64;
/** Grow when the table is more than half full (linear probing stays short). */
const MAX_LOAD = 0.5;

/** 32-bit hash of a triple (multiply-xorshift mix of the three ids). */
function hashTriple(subject: number, relation: number, object: number): number {
  let h = Math.imul(subject, 0x9e3779b1) ^ Math.imul(relation + 0x7f4a7c15, 0x85ebca77);
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae3d) ^ object;
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f);
  return (h ^ (h >>> 16)) >>> 0;
}

export class TripleSet {
  private triples: Int32Array; // [capacityFacts * 3], first `count` facts used, insertion order
  private slots: Int32Array; // [buckets], 0 = empty, else 1 + fact index
  private mask: number;
  private count = 0;

  constructor(expectedFacts = INITIAL_FACTS) {
    const facts = Math.max(INITIAL_FACTS, expectedFacts);
    let buckets = 1;
    while (buckets * MAX_LOAD < facts) buckets *= 2;
    this.slots = new Int32Array(buckets);
    this.mask = buckets - 1;
    this.triples = new Int32Array(Math.floor(buckets * MAX_LOAD) * 3);
  }

  get size(): number {
    return this.count;
  }

  /** Adds a triple; returns false if it was already present. */
  add(subject: number, relation: number, object: number): boolean {
    const triples = this.triples;
    const slots = this.slots;
    const mask = this.mask;
    let bucket = hashTriple(subject, relation, object) & mask;
    for (;;) {
      const entry = slots[bucket];
      if (entry === 0) break;
      const at = (entry - 1) * 3;
      if (triples[at] === subject && triples[at + 1] === relation && triples[at + 2] === object)
        return false;
      bucket = (bucket + 1) & mask;
    }
    if (this.count + 1 > slots.length * MAX_LOAD) {
      this.grow();
      return this.add(subject, relation, object);
    }
    const at = this.count * 3;
    this.triples[at] = subject;
    this.triples[at + 1] = relation;
    this.triples[at + 2] = object;
    this.count += 1;
    slots[bucket] = this.count;
    return true;
  }

  has(subject: number, relation: number, object: number): boolean {
    const triples = this.triples;
    let bucket = hashTriple(subject, relation, object) & this.mask;
    for (;;) {
      const entry = this.slots[bucket];
      if (entry === 0) return false;
      const at = (entry - 1) * 3;
      if (triples[at] === subject && triples[at + 1] === relation && triples[at + 2] === object)
        return true;
      bucket = (bucket + 1) & this.mask;
    }
  }

  /** Flat [s0, r0, o0, s1, ...] sorted by (s, r, o). */
  toSortedTriples(): Int32Array {
    return sortTriples(this.triples.subarray(0, this.count * 3));
  }

  static fromTriples(triples: Int32Array): TripleSet {
    const set = new TripleSet(triples.length / 3);
    for (let i = 0; i < triples.length; i += 3) set.add(triples[i], triples[i + 1], triples[i + 2]);
    return set;
  }

  /** Double the table and re-insert every fact (insertion order is kept). */
  private grow(): void {
    const buckets = this.slots.length * 2;
    const slots = new Int32Array(buckets);
    const mask = buckets - 1;
    const triples = new Int32Array(Math.floor(buckets * MAX_LOAD) * 3);
    triples.set(this.triples.subarray(0, this.count * 3));
    for (let i = 0; i < this.count; i++) {
      let bucket = hashTriple(triples[i * 3], triples[i * 3 + 1], triples[i * 3 + 2]) & mask;
      while (slots[bucket] !== 0) bucket = (bucket + 1) & mask;
      slots[bucket] = i + 1;
    }
    this.slots = slots;
    this.mask = mask;
    this.triples = triples;
  }
}

/** Bits needed to hold every value in [0, max]. */
function bitsFor(max: number): number {
  return max <= 0 ? 1 : Math.floor(Math.log2(max)) + 1;
}

/**
 * Returns a new flat triple array sorted by (s, r, o). Input [F * 3] of non-negative ids.
 * When the three ids fit in 32 bits together (e.g. 2^14 entities and 2^4 relations) each triple is packed
 * into one uint32, in 53 bits (e.g. 2^20 entities and 2^13 relations) into one float64, and sorted
 * natively; otherwise an index sort with a comparator.
 */
export function sortTriples(triples: Int32Array): Int32Array {
  const n = triples.length / 3;
  let maxS = 0;
  let maxR = 0;
  let maxO = 0;
  let negative = false;
  for (let i = 0; i < triples.length; i += 3) {
    const s = triples[i];
    const r = triples[i + 1];
    const o = triples[i + 2];
    if (s > maxS) maxS = s;
    if (r > maxR) maxR = r;
    if (o > maxO) maxO = o;
    if ((s | r | o) < 0) negative = true;
  }
  const oBits = bitsFor(maxO);
  const rBits = bitsFor(maxR);
  const bits = bitsFor(maxS) + rBits + oBits;
  if (!negative && bits <= 32) return sortPacked32(triples, n, rBits, oBits);
  if (!negative && bits <= 53) return sortPacked(triples, n, rBits, oBits);
  return sortByComparator(triples, n);
}

/** Native uint32 sort of s << (rBits+oBits) | r << oBits | o (the ids fit in 32 bits together). */
function sortPacked32(triples: Int32Array, n: number, rBits: number, oBits: number): Int32Array {
  const keys = new Uint32Array(n); // [F]
  const sShift = rBits + oBits;
  for (let i = 0; i < n; i++)
    keys[i] =
      ((triples[i * 3] << sShift) | (triples[i * 3 + 1] << oBits) | triples[i * 3 + 2]) >>> 0;
  keys.sort();
  const oMask = oBits >= 32 ? -1 : (1 << oBits) - 1;
  const rMask = (1 << rBits) - 1;
  const sorted = new Int32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    sorted[i * 3] = sShift >= 32 ? 0 : key >>> sShift;
    sorted[i * 3 + 1] = (key >>> oBits) & rMask;
    sorted[i * 3 + 2] = key & oMask;
  }
  return sorted;
}

/** Native float64 sort of s * 2^(rBits+oBits) + r * 2^oBits + o (exact: the sum stays below 2^53). */
function sortPacked(triples: Int32Array, n: number, rBits: number, oBits: number): Int32Array {
  const oSpan = 2 ** oBits;
  const rSpan = 2 ** rBits;
  const keys = new Float64Array(n); // [F]
  for (let i = 0; i < n; i++)
    keys[i] = (triples[i * 3] * rSpan + triples[i * 3 + 1]) * oSpan + triples[i * 3 + 2];
  keys.sort();
  const sorted = new Int32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const key = keys[i];
    const sr = Math.floor(key / oSpan);
    const s = Math.floor(sr / rSpan);
    sorted[i * 3] = s;
    sorted[i * 3 + 1] = sr - s * rSpan;
    sorted[i * 3 + 2] = key - sr * oSpan;
  }
  return sorted;
}

function sortByComparator(triples: Int32Array, n: number): Int32Array {
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
