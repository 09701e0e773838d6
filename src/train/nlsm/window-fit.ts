// One window update of the NLSM / BAS trainer on the 'tfjs' engine (SPEC section 1, "Windowed training"), the
// reference the 'onnx' engine (fused-fit.ts) is tested against: over the window's sub-graph (window-batch.ts: the
// nodes and relations its facts touch, so the cost grows with the window's facts and the rows they touch, not with
// N or R), working copies of their parameters as tf variables, epochs of Adam on the ELBO (graph.ts windowElbo,
// tfjs autodiff) with each epoch's draws (window-batch.ts drawEpoch), early stop on convergence, NaN recovery (the
// working copies are dropped, the last good state stays) and the write-back.
// Owns: this engine's fit loop. Must not touch the window's
// contents or shifts (trainer.ts), forecasts (forecast.ts) or checkpoints; must not import kafkajs, src/kafka,
// src/window or src/serve.
import * as tf from '@tensorflow/tfjs';
import type { NegativeProposal } from './math.ts';
import {
  GRU_TENSOR_NAMES,
  gruStep,
  logVarGruStep,
  windowElbo,
  type GruWeights,
  type Trajectory,
  type WindowBatch,
} from './graph.ts';
import {
  basName,
  toTensor,
  type GruName,
  type Parameter,
  type UpdateReport,
} from './parameters.ts';
import type { WindowTrainer } from './trainer.ts';
import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_EPSILON,
  drawEpoch,
  recordEpoch,
  recordNanRestore,
  gatherRows,
  trainedParameters,
  type WindowUniverse,
} from './window-batch.ts';

/** Working copy of one parameter on the fit's nodes: value and Adam moments as tf variables. */
type WorkingCopies = Map<string, { value: tf.Variable; m: tf.Variable; v: tf.Variable }>;

/** Train on the window (its sub-graph has positives): Adam on the ELBO, at most epochsPerWindow epochs. */
export async function fitWindow(
  trainer: WindowTrainer,
  window: WindowUniverse,
  report: UpdateReport,
): Promise<void> {
  const s = trainer.settings;
  const L = trainer.slots.length;
  const { universe, relations, positives, proposals } = window;
  const U = universe.length;
  const Rw = relations.length;

  // working copies: the touched entity and relation rows (copied row by row: no tensor of all N rows), all fixed
  // weights
  const names = trainedParameters(trainer);
  const rowsOf = (p: Parameter): readonly number[] | null =>
    p.rows === 'entity' ? universe : p.rows === 'relation' ? relations : null;
  const variables: WorkingCopies = new Map();
  for (const name of names) {
    const p = trainer.params.get(name)!;
    const rows = rowsOf(p);
    const make = (data: Float32Array): tf.Variable =>
      tf.tidy(() =>
        rows
          ? tf.variable(tf.tensor2d(gatherRows(data, rows, p.width), [rows.length, p.width]), true)
          : tf.variable(toTensor({ ...p, value: data }), true),
      );
    variables.set(name, { value: make(p.value), m: make(p.m), v: make(p.v) });
  }
  const varList = [...variables.values()].map((x) => x.value);
  const hyper = {
    K: s.K,
    directed: s.directed,
    sPsi2: s.sPsi ** 2,
    sTheta2: s.sTheta ** 2,
    sigmaPsi2: s.sigmaPsi ** 2,
    sigmaTheta2: s.sigmaTheta ** 2,
  };
  let previousElbo = NaN;
  let nan = false;
  for (let epoch = 1; epoch <= s.epochsPerWindow; epoch++) {
    const batch = sampleBatch(trainer, proposals, U, Rw);
    const hook = trainer.testHooks.corruptWorkingCopy;
    if (hook && hook.update === trainer.updates + 1 && hook.epoch === epoch) {
      const target = variables.get(trainer.slotName('psiMean', 0))!.value;
      tf.tidy(() => target.assign(tf.mul(target, NaN)));
    }
    const { value, grads } = tf.variableGrads(() => {
      const { elbo } = windowElbo(trajectory(trainer, variables, L), batch, hyper);
      return tf.div(tf.neg(elbo), positives) as tf.Scalar;
    }, varList);
    const loss = (await value.data())[0];
    value.dispose();
    disposeBatch(batch);
    if (!Number.isFinite(loss)) {
      for (const g of Object.values(grads)) g.dispose();
      nan = true;
      break;
    }
    trainer.adamStep++;
    adamUpdate(trainer, variables, grads);
    for (const g of Object.values(grads)) g.dispose();
    if (recordEpoch(trainer, report, epoch, loss, previousElbo)) break;
    previousElbo = -loss;
  }
  if (nan) {
    recordNanRestore(trainer, report);
  } else {
    for (const [name, working] of variables) {
      const p = trainer.params.get(name)!;
      const rows = rowsOf(p);
      const read = async (t: tf.Variable, into: Float32Array): Promise<void> => {
        const data = (await t.data()) as Float32Array;
        if (rows) {
          for (let u = 0; u < rows.length; u++) {
            into.set(data.subarray(u * p.width, (u + 1) * p.width), rows[u] * p.width);
          }
        } else {
          into.set(data);
        }
      };
      await read(working.value, p.value);
      await read(working.m, p.m);
      await read(working.v, p.v);
    }
  }
  for (const working of variables.values()) {
    working.value.dispose();
    working.m.dispose();
    working.v.dispose();
  }
  trainer.clearCache();
}

/** Means and log-variances per slot: the GRUs roll the initial state (NLSM) or the slots' own parameters (BAS). */
function trajectory(
  trainer: WindowTrainer,
  variables: Map<string, { value: tf.Variable }>,
  L: number,
): Trajectory {
  const get = (name: string): tf.Tensor2D => variables.get(name)!.value as tf.Tensor2D;
  const t: Trajectory = { psiMean: [], psiLogVar: [], thetaMean: [], thetaLogVar: [] };
  if (trainer.settings.model === 'bas') {
    for (let slot = 0; slot < L; slot++) {
      t.psiMean.push(get(basName('psiMean', slot)));
      t.psiLogVar.push(get(basName('psiLogVar', slot)));
      t.thetaMean.push(get(basName('thetaMean', slot)));
      t.thetaLogVar.push(get(basName('thetaLogVar', slot)));
    }
    return t;
  }
  const gru = (name: GruName): GruWeights => {
    const w = {} as Record<string, tf.Tensor>;
    for (const part of GRU_TENSOR_NAMES) w[part] = variables.get(`${name}.${part}`)!.value;
    return w as unknown as GruWeights;
  };
  const weights = {
    pm: gru('psiMeanGru'),
    ps: gru('psiLogVarGru'),
    tm: gru('thetaMeanGru'),
    ts: gru('thetaLogVarGru'),
  };
  const psiFrame = trainer.logVarFrame('psiLogVar')!;
  const thetaFrame = trainer.logVarFrame('thetaLogVar')!;
  t.psiMean.push(get('psiMean'));
  t.psiLogVar.push(get('psiLogVar'));
  t.thetaMean.push(get('thetaMean'));
  t.thetaLogVar.push(get('thetaLogVar'));
  for (let slot = 1; slot < L; slot++) {
    t.psiMean.push(gruStep(t.psiMean[slot - 1], weights.pm));
    t.psiLogVar.push(logVarGruStep(t.psiLogVar[slot - 1], weights.ps, psiFrame));
    t.thetaMean.push(gruStep(t.thetaMean[slot - 1], weights.tm));
    t.thetaLogVar.push(logVarGruStep(t.thetaLogVar[slot - 1], weights.ts, thetaFrame));
  }
  return t;
}

/** Noise and edges (positives + importance-weighted samples) for one epoch, from the seeded generator. */
function sampleBatch(
  trainer: WindowTrainer,
  proposals: NegativeProposal[],
  U: number,
  R: number,
): WindowBatch {
  const K = trainer.settings.K;
  const D = K * trainer.P;
  const L = trainer.slots.length;
  const psi = Array.from({ length: L }, () => new Float32Array(U * K));
  const theta = Array.from({ length: L }, () => new Float32Array(R * D));
  const edges = drawEpoch(
    trainer,
    proposals,
    U,
    R,
    (t) => psi[t],
    (t) => theta[t],
  );
  return {
    psiNoise: psi.slice(1).map((noise) => tf.tensor2d(noise, [U, K])),
    thetaNoise: theta.slice(1).map((noise) => tf.tensor2d(noise, [R, D])),
    edges,
    linearWeight: tf.tensor1d(edges.linear),
    softplusWeight: tf.tensor1d(edges.soft),
  };
}

function adamUpdate(
  trainer: WindowTrainer,
  variables: WorkingCopies,
  grads: tf.NamedTensorMap,
): void {
  const lr = trainer.settings.learningRate;
  const correction1 = 1 - ADAM_BETA1 ** trainer.adamStep;
  const correction2 = 1 - ADAM_BETA2 ** trainer.adamStep;
  tf.tidy(() => {
    for (const [name, working] of variables) {
      const g = grads[working.value.name];
      if (!g) continue;
      working.m.assign(tf.add(tf.mul(working.m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)));
      working.v.assign(tf.add(tf.mul(working.v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)));
      const step = tf.div(
        tf.div(working.m, correction1),
        tf.add(tf.sqrt(tf.div(working.v, correction2)), ADAM_EPSILON),
      );
      const rate =
        trainer.params.get(name)!.rows === 'entity' ? lr * trainer.settings.entityLrScale : lr;
      working.value.assign(tf.sub(working.value, tf.mul(step, rate)));
    }
  });
}

function disposeBatch(batch: WindowBatch): void {
  for (const t of [...batch.psiNoise, ...batch.thetaNoise]) t.dispose();
  batch.linearWeight.dispose();
  batch.softplusWeight.dispose();
}
