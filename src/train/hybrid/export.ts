// Exporting nlsm-h's dense part: the base scale beta_r is folded into Theta (the logit is linear in Theta), so the
// ONNX graph is the plain efficient scorer `Z w + c`; the history term is added by the server (src/model/terms.ts).
// Owns: that export step. Must not import onnxruntime, Kafka or src/serve.
import type { ScoringState } from '../../core/types.ts';
import { TkgError } from '../../core/errors.ts';
import { exportScoringModel, type ExportOptions } from '../../model/scoring-graph.ts';
import { assertHybridWeights, type HybridWeights } from '../../model/hybrid-features.ts';

/** Pure: a ScoringState whose logits are beta_r times the original ones (Theta of relation r scaled by beta_r). */
export function scaleScoringState(state: ScoringState, baseScale: ArrayLike<number>): ScoringState {
  const { numRelations: R, K } = state;
  if (baseScale.length !== R) {
    throw new TkgError(
      `baseScale has ${baseScale.length} entries for ${R} relations; pass one per relation`,
      {
        reason: 'invalid_argument',
      },
    );
  }
  const theta = new Float32Array(state.theta.length); // [R, K, 4]
  for (let r = 0; r < R; r++) {
    const beta = baseScale[r];
    for (let i = r * K * 4; i < (r + 1) * K * 4; i++) theta[i] = beta * state.theta[i];
  }
  return { ...state, theta };
}

/** ONNX bytes of nlsm-h's dense part (the history term is added by the server through extra_index / extra_value). */
export function exportHybridScoringModel(
  state: ScoringState,
  weights: HybridWeights,
  options: ExportOptions,
): Uint8Array {
  assertHybridWeights(weights);
  return exportScoringModel(scaleScoringState(state, weights.baseScale), {
    ...options,
    modelName: options.modelName ?? 'nlsm-h',
  });
}
