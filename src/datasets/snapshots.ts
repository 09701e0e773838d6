// Snapshots from encoded facts. Owns: grouping flat [s, r, o, step] facts into per-step, sorted,
// deduplicated Snapshot objects (SPEC section 3: snapshots are sets). Pure; no I/O.
import type { Snapshot } from '../core/types.ts';

/** Flat encoded facts: [s0, r0, o0, t0, s1, r1, o1, t1, ...] (4 ints per fact). */
export type FactArray = Int32Array;

/** Distinct steps present in a fact array, ascending. */
export function stepsOf(facts: FactArray): number[] {
  const steps = new Set<number>();
  for (let i = 3; i < facts.length; i += 4) steps.add(facts[i]);
  return [...steps].sort((a, b) => a - b);
}

/** Sorts flat triples by (s, r, o) and removes duplicates. */
export function sortUniqueTriples(triples: Int32Array): Int32Array {
  const n = triples.length / 3;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => {
    const da = triples[3 * a] - triples[3 * b];
    if (da !== 0) return da;
    const dr = triples[3 * a + 1] - triples[3 * b + 1];
    if (dr !== 0) return dr;
    return triples[3 * a + 2] - triples[3 * b + 2];
  });
  const out = new Int32Array(triples.length);
  let m = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const s = triples[3 * i];
    const r = triples[3 * i + 1];
    const o = triples[3 * i + 2];
    if (m > 0 && out[3 * m - 3] === s && out[3 * m - 2] === r && out[3 * m - 1] === o) continue;
    out[3 * m] = s;
    out[3 * m + 1] = r;
    out[3 * m + 2] = o;
    m++;
  }
  return out.slice(0, 3 * m);
}

/**
 * One Snapshot per step present in `facts` (ascending). With `fillGaps`, every integer step
 * between `fromStep` (default: the first present) and the last present step gets a snapshot,
 * empty where no fact fell into it (homogeneous networks: DySAT steps are contiguous).
 */
export function toSnapshots(
  facts: FactArray,
  numEntities: number,
  numRelations: number,
  options: { fillGaps?: boolean; fromStep?: number } = {},
): Snapshot[] {
  const byStep = new Map<number, number[]>();
  for (let i = 0; i < facts.length; i += 4) {
    const t = facts[i + 3];
    let list = byStep.get(t);
    if (list === undefined) byStep.set(t, (list = []));
    list.push(facts[i], facts[i + 1], facts[i + 2]);
  }
  let steps = [...byStep.keys()].sort((a, b) => a - b);
  if (options.fillGaps && steps.length > 0) {
    const first = options.fromStep ?? steps[0];
    const last = steps[steps.length - 1];
    steps = [];
    for (let t = first; t <= last; t++) steps.push(t);
  }
  return steps.map((step) => ({
    step,
    triples: sortUniqueTriples(Int32Array.from(byStep.get(step) ?? [])),
    numEntities,
    numRelations,
  }));
}

/** Concatenates fact arrays (e.g. train + valid). */
export function concatFacts(...parts: (FactArray | undefined)[]): FactArray {
  const present = parts.filter((p): p is FactArray => p !== undefined);
  const out = new Int32Array(present.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of present) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
