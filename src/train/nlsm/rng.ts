// Seeded pseudo-random numbers for the trainer. Owns: the only randomness src/train uses (no
// Math.random, no tf.random*), so a checkpoint can store the generator state and a resumed run
// draws exactly the numbers an uninterrupted one would. Must not import tfjs or other stages.

/** xoshiro128** (Blackman & Vigna): 128-bit state, period 2^128 - 1, fast in 32-bit JS integer maths. */
export class SeededRandom {
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
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.nextNormal();
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
