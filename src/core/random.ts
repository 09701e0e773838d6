// The project's two seeded PRNGs, each a fixed, documented algorithm (the same seed gives the same numbers on every
// platform). Owns: both generators and the seed mixer. Pure: no module globals, no Math.random; must not import
// other stages.
//
// Which is used where, and why there are two:
// - `Xoshiro128` (xoshiro128**, 128-bit state, Box-Muller normals) is the NLSM / BAS trainer's only randomness
//   (src/train/nlsm: initial weights, the noise and negative samples of every epoch). Its full state, cached normal
//   included, goes into trainer checkpoints (getState / setState), so a resumed run draws exactly the numbers an
//   uninterrupted one would.
// - `mulberry32` (32-bit state, a closure returning floats in [0, 1)) serves everything that needs cheap, stateless
//   uniform draws from a (seed, step) pair: evaluation's negative link pairs (src/eval/link.ts), calibration's
//   sampled negatives (src/train/calibration.ts), the rule and nlsm-h fitters' samples (src/train/live/rules.ts,
//   src/train/hybrid/live.ts), the demo query trickle (src/pipeline/query-trickle.ts), the synthetic scale data
//   (src/datasets/synthetic.ts), benches and test fixtures.
// Putting every user on one of them would change the draws, and so the measured numbers, of the trained models
// and evaluation protocols that use the other; they stay two, named by their algorithm.

/** xoshiro128** (Blackman & Vigna): 128-bit state, period 2^128 - 1, fast in 32-bit JS integer maths. */
export class Xoshiro128 {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  /** A cached second normal from Box-Muller (NaN = none); part of the state. */
  private spareNormal = NaN;

  constructor(seed: number) {
    // splitmix32 expands the seed into four non-zero words
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  /** Standard normal (Box-Muller, both values used). */
  nextNormal(): number {
    if (!Number.isNaN(this.spareNormal)) {
      const v = this.spareNormal;
      this.spareNormal = NaN;
      return v;
    }
    let u = this.nextFloat();
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }

  /** Fills `out` with standard normals scaled by `std` (plus `mean`). */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    // exactly the numbers of repeated nextNormal() calls: a Box-Muller pair per two entries, the generator's
    // state in locals (the same steps as nextUint32, 3-4x faster than a call per uniform)
    let i = 0;
    if (out.length > 0 && !Number.isNaN(this.spareNormal))
      out[i++] = mean + std * this.nextNormal();
    let s0 = this.s0;
    let s1 = this.s1;
    let s2 = this.s2;
    let s3 = this.s3;
    let word: number;
    for (; i + 1 < out.length; i += 2) {
      let u = 0;
      let v = 0;
      // two uniforms (the first redrawn while 0), each one step of nextUint32 written out
      for (let draw = 0; draw < 2; draw++) {
        do {
          word = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
          const t = (s1 << 9) >>> 0;
          s2 = (s2 ^ s0) >>> 0;
          s3 = (s3 ^ s1) >>> 0;
          s1 = (s1 ^ s2) >>> 0;
          s0 = (s0 ^ s3) >>> 0;
          s2 = (s2 ^ t) >>> 0;
          s3 = rotl(s3, 11);
        } while (draw === 0 && word === 0);
        if (draw === 0) u = word / 4294967296;
        else v = word / 4294967296;
      }
      const radius = Math.sqrt(-2 * Math.log(u));
      const angle = 2 * Math.PI * v;
      out[i] = mean + std * (radius * Math.cos(angle));
      out[i + 1] = mean + std * (radius * Math.sin(angle));
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    if (i < out.length) out[i] = mean + std * this.nextNormal();
    return out;
  }

  /** The full generator state (for checkpoints). */
  getState(): number[] {
    return [this.s0, this.s1, this.s2, this.s3, this.spareNormal];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 5)
      throw new RangeError(`random state must have 5 numbers, got ${state.length}`);
    [this.s0, this.s1, this.s2, this.s3] = state.slice(0, 4).map((v) => v >>> 0);
    this.spareNormal = state[4] === null ? NaN : Number(state[4]);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** mulberry32: a fast 32-bit PRNG, 32-bit state; returns floats in [0, 1). Same seed, same sequence. */
export function mulberry32(seed: number): () => number {
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
