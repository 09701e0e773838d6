// Seeded randomness shared by evaluation (negative sampling), the demo query trickle and tests. Owns: a small deterministic PRNG.
// Pure: the generator state lives in the returned closure, never in a module global.

/** mulberry32: a fast 32-bit PRNG; returns floats in [0, 1). Same seed, same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes two integers into one 32-bit seed (e.g. run seed and step). */
export function mixSeed(a: number, b: number): number {
  let h = Math.imul((a | 0) ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ (b | 0), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
