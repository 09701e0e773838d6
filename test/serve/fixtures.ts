// Test fixtures for the serving tests: seeded random ScoringStates and the brute-force NLSM logit.
import type { ScoringState } from '../../src/core/types.ts';

import { mulberry32 } from '../../src/core/random.ts';

export { mulberry32 };

/** A random ScoringState: z in (0, 1) (sigmoid of a normal-ish psi), Theta entries in [-scale, scale]. */
export function randomScoringState(options: {
  seed: number;
  N: number;
  R: number;
  K: number;
  step?: number;
  version?: number;
  thetaScale?: number;
}): ScoringState {
  const random = mulberry32(options.seed);
  const { N, R, K } = options;
  const scale = options.thetaScale ?? 1;
  const z = Float32Array.from({ length: N * K }, () => 1 / (1 + Math.exp(-(random() * 6 - 3))));
  const theta = Float32Array.from({ length: R * K * 4 }, () => (random() * 2 - 1) * scale);
  return {
    numEntities: N,
    numRelations: R,
    K,
    z,
    theta,
    step: options.step ?? 7,
    version: options.version ?? 1,
  };
}

/**
 * Brute force, straight from SPEC section 1: logit(i, j) = sum_k E_{x~Bern(z_ik), y~Bern(z_jk)} Theta_{k,r}(x, y),
 * i the subject, j the object. Float64 throughout.
 */
export function bruteForceLogit(
  state: ScoringState,
  subject: number,
  relation: number,
  object: number,
): number {
  const { K, z, theta } = state;
  let sum = 0;
  for (let k = 0; k < K; k++) {
    const zs = z[subject * K + k];
    const zo = z[object * K + k];
    for (let x = 0; x < 2; x++) {
      for (let y = 0; y < 2; y++) {
        const probability = (x ? zs : 1 - zs) * (y ? zo : 1 - zo);
        sum += probability * theta[(relation * K + k) * 4 + 2 * x + y];
      }
    }
  }
  return sum;
}

/** Brute-force scores of every entity for one query: direction 0 = (anchor, r, ?), 1 = (?, r, anchor). */
export function bruteForceRow(
  state: ScoringState,
  anchor: number,
  relation: number,
  direction: 0 | 1,
): Float64Array {
  const row = new Float64Array(state.numEntities);
  for (let e = 0; e < state.numEntities; e++) {
    row[e] =
      direction === 0
        ? bruteForceLogit(state, anchor, relation, e)
        : bruteForceLogit(state, e, relation, anchor);
  }
  return row;
}
