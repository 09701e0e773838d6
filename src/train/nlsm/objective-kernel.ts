// The window objective of the NLSM trainer's onnxruntime kernels, emitted into a graph (graph-builder.ts):
// reparameterised samples, the efficient-form edge logits, the importance-weighted likelihood, the closed-form
// priors and entropies, and the hand-derived gradient of all of it with respect to the four trajectories: the same
// maths as graph.ts windowElbo on tfjs. Owns: this emitter and its input list. Must not build sessions
// (onnx-kernels.ts); must not import kafkajs, src/kafka, src/window or src/serve.
import { F, I64, type GraphBuilder, type ValueSpec } from './graph-builder.ts';

export interface ObjectiveShape {
  L: number;
  K: number;
  directed: boolean;
}

/** The four trajectories' names in a graph, each [L, rows, width]. */
export interface TrajectoryInputs {
  psiMean: string;
  psiLogVar: string;
  thetaMean: string;
  thetaLogVar: string;
}

/**
 * The window objective (graph.ts windowElbo) and its gradient, emitted into `g`. Trajectories: psi means /
 * log-variances [L, U, K], theta ones [L, Rw, K * P]. Graph inputs it reads (OBJECTIVE_INPUTS): the noise psiNoise
 * [L, U, K] and thetaNoise [L, Rw, K P] (slot 0's zeros: slot 0 uses the mean); edges subject / object (rows of the
 * stacked [L * U, K] z), relation (rows of the stacked theta) [E] int64; linear and softplus weights [E]; per-slot
 * coefficients [L, 1, 1] of the prior terms (meanCoef: 1 / sigma^2 at slot 0, else 0; varCoef: the sum of 1 / (2 v)
 * over the prior terms each slot's variance enters); the random walks' 1 / s^2 and priorWeight, the weight of the
 * prior and entropy terms (scalars; 1, or 0 in all but one chunk of a window's edges). Emits elboVariable (the
 * ELBO without its constant terms, named so) and returns the ELBO's gradient with respect to the trajectories.
 */
export function emitObjective(
  g: GraphBuilder,
  shape: ObjectiveShape,
  trajectory: TrajectoryInputs,
  out: Partial<TrajectoryInputs> = {},
): TrajectoryInputs {
  const { L, K, directed } = shape;
  const { psiMean, psiLogVar, thetaMean, thetaLogVar } = trajectory;
  const P = directed ? 4 : 3;
  const half = g.scalar(0.5);
  const one = g.scalar(1);
  // samples: psi = m + exp(lv / 2) noise, z = sigmoid(psi); theta likewise
  const psiStd = g.op('Exp', [g.mul(psiLogVar, half)]);
  const z = g.sigmoid(g.add(psiMean, g.mul(psiStd, 'psiNoise')));
  const thetaStd = g.op('Exp', [g.mul(thetaLogVar, half)]);
  const theta = g.add(thetaMean, g.mul(thetaStd, 'thetaNoise'));
  const zRows = g.op('Reshape', [z, g.ints([-1, K])]); // [L U, K]
  const thetaRows = g.op('Reshape', [theta, g.ints([-1, K, P])]); // [L Rw, K, P]
  const entry = (p: number): string => g.op('Gather', [thetaRows, g.ints([p])], { axis: 2 });
  const t00 = g.op('Squeeze', [entry(0), g.ints([2])]); // [L Rw, K]
  const t01 = g.op('Squeeze', [entry(1), g.ints([2])]);
  const t10 = directed ? g.op('Squeeze', [entry(2), g.ints([2])]) : t01;
  const t11 = g.op('Squeeze', [entry(P - 1), g.ints([2])]);
  const A = g.sub(t10, t00);
  const B = g.sub(t01, t00);
  const C = g.add(g.sub(g.sub(t11, t10), t01), t00);
  const c0 = g.sum(t00, [1]); // [L Rw]
  // edge logits: c0 + zs . (A + C zo) + B . zo
  const zs = g.op('Gather', [zRows, 'subjects'], { axis: 0 }); // [E, K]
  const zo = g.op('Gather', [zRows, 'objects'], { axis: 0 });
  const a = g.op('Gather', [A, 'relations'], { axis: 0 });
  const b = g.op('Gather', [B, 'relations'], { axis: 0 });
  const c = g.op('Gather', [C, 'relations'], { axis: 0 });
  const aczo = g.add(a, g.mul(c, zo));
  const perAttribute = g.add(g.mul(zs, aczo), g.mul(b, zo));
  const logits = g.add(g.op('Gather', [c0, 'relations'], { axis: 0 }), g.sum(perAttribute, [1]));
  const softplus = g.op('Softplus', [logits]);
  const logLikelihood = g.sub(
    g.total(g.mul('linearWeight', logits)),
    g.total(g.mul('softplusWeight', softplus)),
  );
  // d logLikelihood / d logit, scattered back to the rows of z and theta's coefficients
  const dLogit = g.sub('linearWeight', g.mul('softplusWeight', g.sigmoid(logits, softplus))); // [E]
  const dLogitCol = g.op('Unsqueeze', [dLogit, g.ints([1])]); // [E, 1]
  const column = (indices: string): string => g.op('Unsqueeze', [indices, g.ints([1])]); // [E, 1]
  const subjectAt = column('subjects');
  const objectAt = column('objects');
  const relationAt = column('relations');
  const scatter = (into: string, at: string, updates: string): string =>
    g.op('ScatterND', [into, at, updates], { reduction: 'add' });
  const zeros = (like: string): string => g.op('ConstantOfShape', [g.op('Shape', [like])], {});
  const dzRows = scatter(
    scatter(zeros(zRows), subjectAt, g.mul(dLogitCol, aczo)),
    objectAt,
    g.mul(dLogitCol, g.add(b, g.mul(c, zs))),
  );
  const coefGrad = (updates: string): string => scatter(zeros(A), relationAt, updates);
  const dA = coefGrad(g.mul(dLogitCol, zs));
  const dB = coefGrad(g.mul(dLogitCol, zo));
  const dC = coefGrad(g.mul(dLogitCol, g.mul(zs, zo)));
  const dc0 = g.op('Unsqueeze', [scatter(zeros(c0), relationAt, dLogit), g.ints([1])]); // [L Rw, 1]
  const d00 = g.add(g.sub(g.sub(dC, dA), dB), dc0);
  const entries = directed
    ? [d00, g.sub(dB, dC), g.sub(dA, dC), dC]
    : [d00, g.sub(g.add(dA, dB), g.add(dC, dC)), dC];
  const dThetaRows = g.op(
    'Concat',
    entries.map((d) => g.op('Unsqueeze', [d, g.ints([2])])),
    { axis: 2 },
  ); // [L Rw, K, P]
  const dTheta = g.op('Reshape', [dThetaRows, g.op('Shape', [thetaMean])]);
  const dz = g.op('Reshape', [dzRows, g.op('Shape', [psiMean])]);
  const dPsi = g.mul(dz, g.mul(z, g.sub(one, z)));
  // priors (slot 0: N(0, sigma^2); later slots: random walk with step variance s^2) and entropies, variable parts
  const priorAndGrads = (
    mean: string,
    logVar: string,
    meanCoef: string,
    varCoef: string,
    walk: string,
  ): { value: string; dMean: string; dLogVar: string } => {
    const variance = g.op('Exp', [logVar]);
    const varTerm = g.mul(variance, varCoef);
    let value = g.sub(
      g.sub(g.mul(half, g.total(logVar)), g.total(varTerm)),
      g.mul(half, g.total(g.mul(meanCoef, g.mul(mean, mean)))),
    );
    let dMean = g.op('Neg', [g.mul(mean, meanCoef)]);
    const dLogVar = g.sub(half, varTerm);
    if (L > 1) {
      const slots = (from: number, to: number): string =>
        g.op('Slice', [mean, g.ints([from]), g.ints([to]), g.ints([0])]);
      const step = g.sub(slots(1, L), slots(0, L - 1)); // [L - 1, rows, width]
      value = g.sub(value, g.mul(g.mul(half, walk), g.total(g.mul(step, step))));
      const pull = g.mul(step, walk);
      const pad = (before: number): string => g.ints([before, 0, 0, 1 - before, 0, 0]);
      dMean = g.add(dMean, g.sub(g.op('Pad', [pull, pad(0)]), g.op('Pad', [pull, pad(1)])));
    }
    // priorWeight (0 or 1): a window whose edges run in several chunks counts its priors in one of them
    return {
      value: g.mul(value, 'priorWeight'),
      dMean: g.mul(dMean, 'priorWeight'),
      dLogVar: g.mul(dLogVar, 'priorWeight'),
    };
  };
  const psiPrior = priorAndGrads(psiMean, psiLogVar, 'psiMeanCoef', 'psiVarCoef', 'psiWalk');
  const thetaPrior = priorAndGrads(
    thetaMean,
    thetaLogVar,
    'thetaMeanCoef',
    'thetaVarCoef',
    'thetaWalk',
  );
  g.add(logLikelihood, g.add(psiPrior.value, thetaPrior.value), 'elboVariable');
  // d / d mean = d / d sample; d / d logVar adds d sample / d logVar = noise exp(lv / 2) / 2
  return {
    psiMean: g.add(psiPrior.dMean, dPsi, out.psiMean),
    psiLogVar: g.add(
      psiPrior.dLogVar,
      g.mul(dPsi, g.mul(g.mul(psiStd, 'psiNoise'), half)),
      out.psiLogVar,
    ),
    thetaMean: g.add(thetaPrior.dMean, dTheta, out.thetaMean),
    thetaLogVar: g.add(
      thetaPrior.dLogVar,
      g.mul(dTheta, g.mul(g.mul(thetaStd, 'thetaNoise'), half)),
      out.thetaLogVar,
    ),
  };
}

/** The graph inputs emitObjective reads besides the trajectories (dims for L slots, K attributes, P entries). */
export function objectiveInputs(shape: ObjectiveShape): ValueSpec[] {
  const { L, K } = shape;
  const D = K * (shape.directed ? 4 : 3);
  const slotCoef: Array<number | string> = [L, 1, 1];
  return [
    ['psiNoise', F, [L, 'U', K]],
    ['thetaNoise', F, [L, 'Rw', D]],
    ['subjects', I64, ['E']],
    ['relations', I64, ['E']],
    ['objects', I64, ['E']],
    ['linearWeight', F, ['E']],
    ['softplusWeight', F, ['E']],
    ['psiMeanCoef', F, slotCoef],
    ['psiVarCoef', F, slotCoef],
    ['thetaMeanCoef', F, slotCoef],
    ['thetaVarCoef', F, slotCoef],
    ['psiWalk', F, []],
    ['thetaWalk', F, []],
    ['priorWeight', F, []],
  ];
}
