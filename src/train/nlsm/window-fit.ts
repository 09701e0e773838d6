// One window update of the NLSM / BAS trainer (SPEC section 1, "Windowed training"): the nodes and relations the
// window touches (the sub-graph the ELBO sums over: its cost grows with the window's facts and the rows they touch,
// not with N or R), working copies of their parameters, epochs of Adam on the ELBO (graph.ts windowElbo) with the
// noise and the importance-weighted negatives of each epoch drawn from the trainer's seeded generator, early stop
// on convergence, NaN recovery (the working copies are dropped, the last good state stays) and the write-back.
// Owns: the fit loop and its draws, in this order (a resumed run repeats them exactly). Must not touch the window's
// contents or shifts (trainer.ts), forecasts (forecast.ts) or checkpoints; must not import kafkajs, src/kafka,
// src/window or src/serve.
import * as tf from '@tensorflow/tfjs';
import { buildNegativeProposal, sampleNegatives } from './math.ts';
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

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;

/** Working copy of one parameter on the fit's nodes: value and Adam moments as tf variables. */
type WorkingCopies = Map<string, { value: tf.Variable; m: tf.Variable; v: tf.Variable }>;

/** Train on the window: Adam on the ELBO, epochsPerWindow at most, stop early on convergence. */
export async function fitWindow(trainer: WindowTrainer): Promise<UpdateReport> {
  const t0 = performance.now();
  const s = trainer.settings;
  const L = trainer.slots.length;
  // the universe: nodes touched by the window, and the relations of its facts (ascending: every relation touched
  // = the identity); only they get GRU work, and the likelihood's sum over all pairs is over their sub-graph
  const local = new Int32Array(trainer.N).fill(-1);
  const universe: number[] = [];
  const relationLocal = new Int32Array(trainer.R).fill(-1);
  let positives = 0;
  for (const slot of trainer.slots) {
    for (let i = 0; i < slot.triples.length; i += 3) {
      for (const node of [slot.triples[i], slot.triples[i + 2]]) {
        if (local[node] < 0) {
          local[node] = universe.length;
          universe.push(node);
        }
      }
      relationLocal[slot.triples[i + 1]] = 0;
    }
    positives += slot.triples.length / 3;
  }
  const relations: number[] = [];
  for (let r = 0; r < trainer.R; r++)
    if (relationLocal[r] === 0) relationLocal[r] = relations.push(r) - 1;
  const report: UpdateReport = {
    step: trainer.lastObserved,
    epochs: 0,
    loss: NaN,
    elbo: NaN,
    seconds: 0,
    nanRestored: false,
    universe: universe.length,
    relations: relations.length,
  };
  if (positives === 0) {
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  }
  const U = universe.length;
  const Rw = relations.length;
  const proposals = trainer.slots.map((slot) => {
    const localTriples = new Int32Array(slot.triples.length);
    for (let i = 0; i < slot.triples.length; i += 3) {
      localTriples[i] = local[slot.triples[i]];
      localTriples[i + 1] = relationLocal[slot.triples[i + 1]];
      localTriples[i + 2] = local[slot.triples[i + 2]];
    }
    return buildNegativeProposal(localTriples, U, Rw, s.uniformNegativeFraction);
  });
  // first window: start the logit offset at the observed density log(F / (U^2 R)) of the sub-graph (U nodes, R =
  // Rw relations; all 4 entries of every theta shifted by offset / K move every logit by offset)
  if (trainer.updates === 0) initialiseDensityOffset(trainer, positives / L, U, Rw);

  // working copies: the touched entity and relation rows (copied row by row: no tensor of all N rows), all fixed
  // weights
  const names = [...trainer.params.keys()].filter((name) => {
    if (s.model === 'nlsm') return true;
    const slot = Number(name.split('@')[1]);
    return slot < L;
  });
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
    report.epochs = epoch;
    report.loss = loss;
    report.elbo = -loss;
    if (
      epoch >= s.minEpochsPerWindow &&
      s.convergenceTolerance > 0 &&
      Number.isFinite(previousElbo) &&
      -loss - previousElbo < s.convergenceTolerance * Math.abs(loss)
    ) {
      break;
    }
    previousElbo = -loss;
  }
  if (nan) {
    // restore the last good state: the arrays still hold it (working copies are never written back)
    trainer.nanRestores++;
    report.nanRestored = true;
    trainer.adamStep -= report.epochs;
    trainer.onNanRestore?.(trainer.nanRestores, trainer.lastObserved);
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
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

/** Rows `rows` of a [*, width] array, in that order: [rows.length * width]. */
function gatherRows(data: Float32Array, rows: readonly number[], width: number): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++)
    out.set(data.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return out;
}

function initialiseDensityOffset(
  trainer: WindowTrainer,
  factsPerStep: number,
  U: number,
  R: number,
): void {
  const offset = Math.log(Math.max(factsPerStep, 1) / (U * U * R)) / trainer.settings.K;
  for (const [name, p] of trainer.params) {
    if (name.split('@')[0] === 'thetaMean')
      for (let i = 0; i < p.value.length; i++) p.value[i] += offset;
  }
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
  proposals: ReturnType<typeof buildNegativeProposal>[],
  U: number,
  R: number,
): WindowBatch {
  const s = trainer.settings;
  const D = s.K * trainer.P;
  const L = trainer.slots.length;
  const psiNoise: tf.Tensor2D[] = [];
  const thetaNoise: tf.Tensor2D[] = [];
  for (let slot = 1; slot < L; slot++) {
    psiNoise.push(tf.tensor2d(trainer.rng.fillNormal(new Float32Array(U * s.K)), [U, s.K]));
    thetaNoise.push(tf.tensor2d(trainer.rng.fillNormal(new Float32Array(R * D)), [R, D]));
  }
  const parts: { triples: Int32Array; linear: Float32Array; soft: Float32Array; slot: number }[] =
    [];
  let total = 0;
  proposals.forEach((proposal, slot) => {
    const F = proposal.positives.length / 3;
    const M = Math.max(Math.ceil(s.negativesPerPositive * F), F === 0 ? 0 : 1);
    if (F > 0) {
      parts.push({
        triples: proposal.positives,
        linear: new Float32Array(F).fill(1),
        soft: new Float32Array(F),
        slot,
      });
      total += F;
    }
    if (M > 0) {
      const negatives = sampleNegatives(proposal, M, trainer.rng);
      parts.push({
        triples: negatives.triples,
        linear: new Float32Array(M),
        soft: negatives.weights,
        slot,
      });
      total += M;
    }
  });
  const subjects = new Int32Array(total);
  const relations = new Int32Array(total);
  const objects = new Int32Array(total);
  const linear = new Float32Array(total);
  const soft = new Float32Array(total);
  let e = 0;
  for (const part of parts) {
    const n = part.linear.length;
    for (let i = 0; i < n; i++, e++) {
      subjects[e] = part.slot * U + part.triples[3 * i];
      relations[e] = part.slot * R + part.triples[3 * i + 1];
      objects[e] = part.slot * U + part.triples[3 * i + 2];
    }
    linear.set(part.linear, e - n);
    soft.set(part.soft, e - n);
  }
  return {
    psiNoise,
    thetaNoise,
    edges: { subjects, relations, objects },
    linearWeight: tf.tensor1d(linear),
    softplusWeight: tf.tensor1d(soft),
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
