// The dense part of a bundle's score for single (subject, relation, object) triples, in plain TypeScript: the same
// efficient NLSM logit the ONNX graph computes for all N entities at once (SPEC section 1), for the few pairs the
// trainer needs (calibration samples) and for tests that check the graph. Both query directions give a fact the same
// dense score; only the term differs by direction.
// Owns: pairLogits. Pure; imports only src/core.
import type { ScoringState } from '../core/types.ts';

/**
 * logit(s, r, o) = sum_k [ Th00 + (Th10 - Th00) z_sk + (Th01 - Th00) z_ok + (Th11 - Th10 - Th01 + Th00) z_sk z_ok ]
 * for every triple of `triples` (flat [s, r, o, ...]); ids must be inside the state.
 */
export function pairLogits(state: ScoringState, triples: Int32Array): Float64Array {
  const { K, z, theta } = state;
  const out = new Float64Array(triples.length / 3);
  for (let i = 0, n = 0; i < triples.length; i += 3, n++) {
    const zs = triples[i] * K;
    const zo = triples[i + 2] * K;
    const t = triples[i + 1] * K * 4;
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const th = t + 4 * k;
      const t00 = theta[th];
      const t01 = theta[th + 1];
      const t10 = theta[th + 2];
      const t11 = theta[th + 3];
      const a = z[zs + k];
      const b = z[zo + k];
      sum += t00 + (t10 - t00) * a + (t01 - t00) * b + (t11 - t10 - t01 + t00) * a * b;
    }
    out[n] = sum;
  }
  return out;
}
