// Test helpers for nlsm-h: a pure-JS base forecaster over a ScoringState (the same efficient logit the ONNX scorer
// computes) and a seeded synthetic TKG with recurring facts.
import type { Direction, ScoringState, Snapshot, TkgForecaster } from '../../src/core/types.ts';
import { mulberry32 } from '../../src/core/random.ts';

export { mulberry32 };

/** Efficient NLSM logit of (s, r, o) from a ScoringState (SPEC section 1), in float64. */
export function stateLogit(state: ScoringState, s: number, r: number, o: number): number {
  const { K, z, theta } = state;
  let sum = 0;
  for (let k = 0; k < K; k++) {
    const base = (r * K + k) * 4;
    const [t00, t01, t10, t11] = [theta[base], theta[base + 1], theta[base + 2], theta[base + 3]];
    const zs = z[s * K + k];
    const zo = z[o * K + k];
    sum += t00 + (t10 - t00) * zs + (t01 - t00) * zo + (t11 - t10 - t01 + t00) * zs * zo;
  }
  return sum;
}

/** A TkgForecaster whose logits come from a fixed ScoringState (observe does nothing). */
export class StateForecaster implements TkgForecaster {
  readonly name = 'state';
  readonly scoredSteps: number[] = [];
  constructor(readonly state: ScoringState) {}
  async observe(): Promise<void> {}
  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    this.scoredSteps.push(step);
    const out = new Float32Array(anchors.length * numEntities);
    for (let b = 0; b < anchors.length; b++)
      for (let e = 0; e < numEntities; e++)
        out[b * numEntities + e] =
          direction === 'object'
            ? stateLogit(this.state, anchors[b], relations[b], e)
            : stateLogit(this.state, e, relations[b], anchors[b]);
    return out;
  }
}

export function randomState(N: number, R: number, K: number, seed: number, step = 0): ScoringState {
  const random = mulberry32(seed);
  return {
    numEntities: N,
    numRelations: R,
    K,
    z: Float32Array.from({ length: N * K }, () => random()),
    theta: Float32Array.from({ length: R * K * 4 }, () => random() * 2 - 1),
    step,
    version: 1,
  };
}

/** Flat sorted deduplicated triples of a snapshot. */
export function snapshotOf(
  step: number,
  facts: Array<[number, number, number]>,
  N: number,
  R: number,
): Snapshot {
  const keyed = [...new Map(facts.map((f) => [`${f[0]},${f[1]},${f[2]}`, f])).values()];
  keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return { step, triples: Int32Array.from(keyed.flat()), numEntities: N, numRelations: R };
}

/**
 * Synthetic TKG: every (s, r) pair of a fixed set has a "habit" object it repeats with probability `repeat`; with
 * the rest it picks an object by a latent affinity (that a base model knowing `affinity` ranks well). Returns the
 * snapshots and the affinity oracle.
 */
export function syntheticTkg(options: {
  N: number;
  R: number;
  steps: number;
  pairsPerStep: number;
  repeat: number;
  seed: number;
}): { snapshots: Snapshot[]; affinity: (s: number, r: number, o: number) => number } {
  const { N, R, steps, pairsPerStep, repeat, seed } = options;
  const random = mulberry32(seed);
  const position = Float64Array.from({ length: N }, () => random());
  const shift = Float64Array.from({ length: R }, () => random());
  const affinity = (s: number, r: number, o: number): number => {
    const d = Math.abs(((position[s] + shift[r]) % 1) - position[o]);
    return -Math.min(d, 1 - d) * 40;
  };
  const pairs = Array.from({ length: pairsPerStep * 3 }, () => [
    Math.floor(random() * N),
    Math.floor(random() * R),
  ]);
  const habit = pairs.map(() => Math.floor(random() * N));
  const sampleByAffinity = (s: number, r: number): number => {
    // the best of 16 random candidates by affinity
    let best = Math.floor(random() * N);
    for (let i = 0; i < 15; i++) {
      const c = Math.floor(random() * N);
      if (affinity(s, r, c) > affinity(s, r, best)) best = c;
    }
    return best;
  };
  const snapshots: Snapshot[] = [];
  for (let t = 0; t < steps; t++) {
    const facts: Array<[number, number, number]> = [];
    for (let i = 0; i < pairsPerStep; i++) {
      const p = Math.floor(random() * pairs.length);
      const [s, r] = pairs[p];
      facts.push([s, r, random() < repeat ? habit[p] : sampleByAffinity(s, r)]);
    }
    snapshots.push(snapshotOf(t, facts, N, R));
  }
  return { snapshots, affinity };
}

/** A base forecaster whose logits are a noisy version of an affinity oracle. */
export class OracleForecaster implements TkgForecaster {
  readonly name = 'oracle';
  readonly scoredSteps: number[] = [];
  constructor(
    private readonly affinity: (s: number, r: number, o: number) => number,
    private readonly noise: number,
    private readonly seed: number,
  ) {}
  async observe(): Promise<void> {}
  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    this.scoredSteps.push(step);
    const random = mulberry32(this.seed * 7919 + step);
    const out = new Float32Array(anchors.length * numEntities);
    for (let b = 0; b < anchors.length; b++)
      for (let e = 0; e < numEntities; e++) {
        const value =
          direction === 'object'
            ? this.affinity(anchors[b], relations[b], e)
            : this.affinity(e, relations[b], anchors[b]);
        out[b * numEntities + e] = value + this.noise * (random() - 0.5);
      }
    return out;
  }
}
