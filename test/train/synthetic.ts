// Planted synthetic temporal graphs for the trainer tests (not a test file itself).
import type { Snapshot } from '../../src/core/types.ts';
import { Xoshiro128 } from '../../src/core/random.ts';

/**
 * N entities, R relations, T steps. Every subject s < subjects has, per relation r, one planted object
 * that persists across steps and switches to another object with probability `switchRate` per step.
 * Each step contains each planted fact with probability `density`.
 */
export function plantedSnapshots(options: {
  N: number;
  R: number;
  T: number;
  subjects: number;
  density?: number;
  switchRate?: number;
  seed?: number;
}): Snapshot[] {
  const { N, R, T, subjects } = options;
  const rng = new Xoshiro128(options.seed ?? 1);
  const density = options.density ?? 0.7;
  const switchRate = options.switchRate ?? 0.02;
  const planted = new Int32Array(subjects * R);
  for (let i = 0; i < planted.length; i++) planted[i] = subjects + rng.nextInt(N - subjects);
  const snapshots: Snapshot[] = [];
  for (let t = 0; t < T; t++) {
    const facts: number[][] = [];
    for (let s = 0; s < subjects; s++) {
      for (let r = 0; r < R; r++) {
        if (rng.nextFloat() < switchRate) planted[s * R + r] = subjects + rng.nextInt(N - subjects);
        if (rng.nextFloat() < density) facts.push([s, r, planted[s * R + r]]);
      }
    }
    facts.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    snapshots.push({
      step: t,
      triples: Int32Array.from(facts.flat()),
      numEntities: N,
      numRelations: R,
    });
  }
  return snapshots;
}

/** Random GRU weights for one hidden size H: matrices [H, H] and biases [H] drawn from N(0, std^2). */
export function randomGruWeights(
  rng: Xoshiro128,
  H: number,
  std: { matrix: number; vector: number },
): {
  Uu: Float32Array;
  Ur: Float32Array;
  Un: Float32Array;
  bu: Float32Array;
  br: Float32Array;
  bn: Float32Array;
  bhn: Float32Array;
} {
  const matrix = (): Float32Array => rng.fillNormal(new Float32Array(H * H), 0, std.matrix);
  const vector = (): Float32Array => rng.fillNormal(new Float32Array(H), 0, std.vector);
  return {
    Uu: matrix(),
    Ur: matrix(),
    Un: matrix(),
    bu: vector(),
    br: vector(),
    bn: vector(),
    bhn: vector(),
  };
}
