// One window update on the 'onnx' training engine: the same fit as window-fit.ts (the same sub-graph, draws,
// ELBO, Adam, early stop, NaN recovery and write-back), with the gradient computed by fused kernels
// (onnx-kernels.ts) over typed arrays instead of tfjs autodiff: per epoch one GRU step forward per GRU and slot, one
// run of the whole window objective and its gradient, one GRU step backward per GRU and slot, and Adam in place on
// the working copies of the touched rows. The trajectories live in [L, rows, width] arrays whose slot 0 (NLSM) or
// every slot (BAS) IS the working copy of its parameter, so nothing is stacked or copied per epoch.
// Owns: this engine's fit loop and buffers. Must not touch the window's contents or shifts (trainer.ts), the draws'
// order (window-batch.ts) or forecasts; must not import kafkajs, src/kafka, src/window or src/serve.
import type * as ort from 'onnxruntime-node';
import { GRU_BLOCK_ROWS } from './graph.ts';
import { floatView, int64View, trainingKernels } from './onnx-kernels.ts';
import type { Parameter, UpdateReport } from './parameters.ts';
import type { WindowTrainer } from './trainer.ts';
import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_EPSILON,
  drawEpoch,
  emptyReport,
  gatherRows,
  scatterRows,
  trainedParameters,
  windowUniverse,
} from './window-batch.ts';

const LOG_2PI = Math.log(2 * Math.PI);
const TRAJECTORIES = ['psiMean', 'psiLogVar', 'thetaMean', 'thetaLogVar'] as const;
export type TrajectoryName = (typeof TRAJECTORIES)[number];
const GRU_WEIGHTS = ['Uu', 'Ur', 'Un'] as const;
/** The bias added to each gate's product (bn, the candidate's outer bias, is separate). */
const GATE_BIASES = ['bu', 'br', 'bhn'] as const;
const SAVED = ['h', 'u', 'r', 'q', 'n'] as const;

/** A parameter's working copy: the touched rows (or all of a fixed one), Adam moments, gradient, step size. */
interface Working {
  p: Parameter;
  rows: readonly number[] | null;
  value: Float32Array;
  m: Float32Array;
  v: Float32Array;
  grad: Float32Array;
  rate: number;
}

/** One trajectory's buffers: [L, rows, width] values and gradients, the GRU's saved activations [L - 1, ...]. */
interface Trajectory {
  rows: number;
  width: number;
  value: Float32Array;
  noise: Float32Array; // samples' noise (means: unused)
  direct: Float32Array; // the objective's gradient per slot
  total: Float32Array; // the gradient through the GRUs (NLSM)
  saved: Record<(typeof SAVED)[number], Float32Array>; // [L - 1, rows, width] each
  gates: Float32Array; // [L - 1, rows, 3 width]: the gate pre-activations' gradients per step
  candidate: Float32Array; // [L - 1, rows, width]: the candidate pre-activation's gradient per step
}

export async function fitWindowFused(trainer: WindowTrainer): Promise<UpdateReport> {
  const t0 = performance.now();
  const s = trainer.settings;
  const L = trainer.slots.length;
  const { universe, relations, positives, proposals } = windowUniverse(trainer);
  const report = emptyReport(trainer, universe.length, relations.length);
  if (positives === 0) {
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  }
  const nlsm = s.model === 'nlsm';
  const U = universe.length;
  const Rw = relations.length;
  const K = s.K;
  const D = K * trainer.P;
  const slice = (a: Float32Array, slot: number, size: number): Float32Array =>
    a.subarray(slot * size, (slot + 1) * size);
  const trajectory = (rows: number, width: number): Trajectory => {
    const size = L * rows * width;
    const savedSize = Math.max(L - 1, 0) * rows * width;
    return {
      rows,
      width,
      value: new Float32Array(size),
      noise: new Float32Array(size),
      direct: new Float32Array(size),
      total: new Float32Array(size),
      saved: {
        h: new Float32Array(savedSize),
        u: new Float32Array(savedSize),
        r: new Float32Array(savedSize),
        q: new Float32Array(savedSize),
        n: new Float32Array(savedSize),
      },
      gates: new Float32Array(3 * savedSize),
      candidate: new Float32Array(savedSize),
    };
  };
  const traj: Record<TrajectoryName, Trajectory> = {
    psiMean: trajectory(U, K),
    psiLogVar: trajectory(U, K),
    thetaMean: trajectory(Rw, D),
    thetaLogVar: trajectory(Rw, D),
  };

  // working copies; a trajectory parameter's value is its slot of the trajectory, its gradient that slot of the
  // gradient (through the GRUs for NLSM's initial state, the objective's own for BAS's slots)
  const working = new Map<string, Working>();
  for (const name of trainedParameters(trainer)) {
    const p = trainer.params.get(name)!;
    const rows = p.rows === 'entity' ? universe : p.rows === 'relation' ? relations : null;
    const [base, slotText] = name.split('@');
    const t = traj[base as TrajectoryName] as Trajectory | undefined;
    const size = rows ? rows.length * p.width : p.value.length;
    const slot = slotText === undefined ? 0 : Number(slotText);
    const value = t ? slice(t.value, slot, size) : new Float32Array(size);
    if (rows) gatherRows(p.value, rows, p.width, value);
    else value.set(p.value);
    working.set(name, {
      p,
      rows,
      value,
      m: rows ? gatherRows(p.m, rows, p.width) : p.m.slice(),
      v: rows ? gatherRows(p.v, rows, p.width) : p.v.slice(),
      grad: t ? slice(nlsm ? t.total : t.direct, slot, size) : new Float32Array(size),
      rate: p.rows === 'entity' ? s.learningRate * s.entityLrScale : s.learningRate,
    });
  }

  const objective = await trainingKernels.objective({ L, K, directed: s.directed });
  const priors = priorInputs(trainer, L, U * K, Rw * D);
  const psiShape = [L, U, K];
  const thetaShape = [L, Rw, D];
  let previousElbo = NaN;
  let nan = false;
  const phases = { setup: 0, draws: 0, forward: 0, objective: 0, backward: 0, adam: 0 };
  let clock = performance.now();
  const lap = (phase: keyof typeof phases): void => {
    const now = performance.now();
    phases[phase] += (now - clock) / 1000;
    clock = now;
  };
  lap('setup');
  for (let epoch = 1; epoch <= s.epochsPerWindow; epoch++) {
    const edges = drawEpoch(
      trainer,
      proposals,
      U,
      Rw,
      (slot) => slice(traj.psiMean.noise, slot, U * K),
      (slot) => slice(traj.thetaMean.noise, slot, Rw * D),
    );
    const hook = trainer.testHooks.corruptWorkingCopy;
    if (hook && hook.update === trainer.updates + 1 && hook.epoch === epoch)
      working.get(trainer.slotName('psiMean', 0))!.value.fill(NaN);
    lap('draws');
    if (nlsm) await rollForward(trainer, traj, working, L);
    lap('forward');
    const E = edges.linear.length;
    const result = await objective.run(
      {
        psiMean: floatView(traj.psiMean.value, psiShape),
        psiLogVar: floatView(traj.psiLogVar.value, psiShape),
        psiNoise: floatView(traj.psiMean.noise, psiShape),
        thetaMean: floatView(traj.thetaMean.value, thetaShape),
        thetaLogVar: floatView(traj.thetaLogVar.value, thetaShape),
        thetaNoise: floatView(traj.thetaMean.noise, thetaShape),
        subjects: int64Of(edges.subjects),
        relations: int64Of(edges.relations),
        objects: int64Of(edges.objects),
        linearWeight: floatView(edges.linear, [E]),
        softplusWeight: floatView(edges.soft, [E]),
        ...priors.feeds,
      },
      {
        dPsiMean: floatView(traj.psiMean.direct, psiShape),
        dPsiLogVar: floatView(traj.psiLogVar.direct, psiShape),
        dThetaMean: floatView(traj.thetaMean.direct, thetaShape),
        dThetaLogVar: floatView(traj.thetaLogVar.direct, thetaShape),
        elboVariable: null,
      },
    );
    lap('objective');
    const elbo = (result.elboVariable.data as Float32Array)[0] + priors.constant;
    const loss = -elbo / positives;
    if (!Number.isFinite(loss)) {
      nan = true;
      break;
    }
    if (nlsm) await rollBackward(trainer, traj, working, L);
    lap('backward');
    trainer.adamStep++;
    adamStep(working.values(), trainer.adamStep, -1 / positives);
    lap('adam');
    report.epochs = epoch;
    report.loss = loss;
    report.elbo = elbo / positives;
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
    // the last good state is still in the parameters (working copies are never written back)
    trainer.nanRestores++;
    report.nanRestored = true;
    trainer.adamStep -= report.epochs;
    trainer.onNanRestore?.(trainer.nanRestores, trainer.lastObserved);
  } else {
    for (const w of working.values()) {
      for (const [from, into] of [
        [w.value, w.p.value],
        [w.m, w.p.m],
        [w.v, w.p.v],
      ]) {
        if (w.rows) scatterRows(from, w.rows, w.p.width, into);
        else into.set(from);
      }
    }
  }
  trainer.clearCache();
  report.seconds = (performance.now() - t0) / 1000;
  report.phases = phases;
  return report;
}

/** A GRU's gates concatenated: W = [Uu | Ur | Un] [H, 3H], b = [bu | br | bhn] (onnx-kernels.ts gruForwardSession). */
function packGru(
  part: (name: string) => Float32Array,
  H: number,
): { W: Float32Array; b: Float32Array } {
  const W = new Float32Array(H * 3 * H);
  const b = new Float32Array(3 * H);
  GRU_WEIGHTS.forEach((name, gate) => {
    const weights = part(name);
    for (let i = 0; i < H; i++) W.set(weights.subarray(i * H, (i + 1) * H), i * 3 * H + gate * H);
    b.set(part(GATE_BIASES[gate]), gate * H);
  });
  return { W, b };
}

const workingGru =
  (working: Map<string, Working>, gru: string) =>
  (name: string): Float32Array =>
    working.get(`${gru}.${name}`)!.value;

/**
 * One step of a trajectory's GRU for every row of `state` ([rows, width]: the window shift of all N rows), by the
 * forward kernel on blocks of `blockRows` rows with the trainer's current weights. Returns a new array.
 */
export async function gruStepRowsFused(
  trainer: WindowTrainer,
  base: TrajectoryName,
  state: Float32Array,
  width: number,
  blockRows = GRU_BLOCK_ROWS,
): Promise<Float32Array> {
  const frame = frameOf(trainer, base);
  const session = await trainingKernels.gruForward(frame !== null);
  const gru = `${base}Gru`;
  const { W, b } = packGru((name) => trainer.params.get(`${gru}.${name}`)!.value, width);
  const feeds: Record<string, ort.Tensor> = {
    W: floatView(W, [width, 3 * width]),
    b: floatView(b, [3 * width]),
    bn: floatView(trainer.params.get(`${gru}.bn`)!.value, [width]),
  };
  if (frame) {
    feeds.centre = floatView(Float32Array.of(frame.centre), []);
    feeds.scale = floatView(Float32Array.of(frame.scale), []);
  }
  const rows = state.length / width;
  const out = new Float32Array(state.length);
  for (let from = 0; from < rows; from += blockRows) {
    const count = Math.min(blockRows, rows - from);
    const block = (a: Float32Array): ort.Tensor =>
      floatView(a.subarray(from * width, (from + count) * width), [count, width]);
    feeds.x = block(state);
    await session.run(feeds, { y: block(out) });
  }
  return out;
}

function frameOf(
  trainer: WindowTrainer,
  base: TrajectoryName,
): { centre: number; scale: number } | null {
  return trainer.logVarFrame(base);
}

/** NLSM: slots 1..L-1 of every trajectory from slot 0 by its GRU, saving each step's activations. */
async function rollForward(
  trainer: WindowTrainer,
  traj: Record<TrajectoryName, Trajectory>,
  working: Map<string, Working>,
  L: number,
): Promise<void> {
  for (const base of TRAJECTORIES) {
    const t = traj[base];
    const size = t.rows * t.width;
    const dims = [t.rows, t.width];
    const H = t.width;
    const frame = frameOf(trainer, base);
    const session = await trainingKernels.gruForward(frame !== null);
    const gru = `${base}Gru`;
    const { W, b } = packGru(workingGru(working, gru), H);
    const feeds: Record<string, ort.Tensor> = {
      W: floatView(W, [H, 3 * H]),
      b: floatView(b, [3 * H]),
      bn: floatView(working.get(`${gru}.bn`)!.value, [H]),
    };
    if (frame) {
      feeds.centre = floatView(Float32Array.of(frame.centre), []);
      feeds.scale = floatView(Float32Array.of(frame.scale), []);
    }
    for (let slot = 1; slot < L; slot++) {
      const fetches: Record<string, ort.Tensor> = {
        y: floatView(t.value.subarray(slot * size, (slot + 1) * size), dims),
      };
      for (const name of SAVED) {
        if (name === 'h' && !frame) continue; // h = x, the previous slot
        fetches[name] = floatView(t.saved[name].subarray((slot - 1) * size, slot * size), dims);
      }
      feeds.x = floatView(t.value.subarray((slot - 1) * size, slot * size), dims);
      await session.run(feeds, fetches);
    }
  }
}

/**
 * NLSM: the gradient through the GRUs, last slot first: total[L - 1] = direct[L - 1], total[t - 1] = direct[t - 1]
 * + J_t^T total[t]; total[0] is the initial state's gradient; the GRU weights' gradients summed over the steps.
 */
async function rollBackward(
  trainer: WindowTrainer,
  traj: Record<TrajectoryName, Trajectory>,
  working: Map<string, Working>,
  L: number,
): Promise<void> {
  for (const base of TRAJECTORIES) {
    const t = traj[base];
    const gru = `${base}Gru`;
    const size = t.rows * t.width;
    const dims = [t.rows, t.width];
    const H = t.width;
    const frame = frameOf(trainer, base);
    const session = await trainingKernels.gruBackward(frame !== null);
    const weightGradient = await trainingKernels.gruWeightGradient();
    t.total.set(t.direct.subarray((L - 1) * size), (L - 1) * size);
    const feeds: Record<string, ort.Tensor> = {
      W: floatView(packGru(workingGru(working, gru), H).W, [H, 3 * H]),
    };
    if (frame) feeds.scale = floatView(Float32Array.of(frame.scale), []);
    for (let slot = L - 1; slot >= 1; slot--) {
      const previous = (a: Float32Array, width = H): ort.Tensor =>
        floatView(a.subarray((slot - 1) * t.rows * width, slot * t.rows * width), [t.rows, width]);
      feeds.dy = floatView(t.total.subarray(slot * size, (slot + 1) * size), dims);
      feeds.direct = previous(t.direct);
      for (const name of SAVED)
        feeds[name] = previous(name === 'h' && !frame ? t.value : t.saved[name]);
      await session.run(feeds, {
        dx: previous(t.total),
        dG: previous(t.gates, 3 * H),
        dpn: previous(t.candidate),
      });
    }
    // the weights' gradients of all L - 1 steps in one product over the stacked steps
    const steps = (L - 1) * t.rows;
    const sums = await weightGradient.run({
      h: floatView((frame ? t.saved.h : t.value).subarray(0, steps * H), [steps, H]),
      dG: floatView(t.gates, [steps, 3 * H]),
      dpn: floatView(t.candidate, [steps, H]),
    });
    const dW = sums.dW.data as Float32Array;
    const db = sums.db.data as Float32Array;
    working.get(`${gru}.bn`)!.grad.set(sums.dbn.data as Float32Array);
    GRU_WEIGHTS.forEach((part, gate) => {
      const grad = working.get(`${gru}.${part}`)!.grad;
      for (let i = 0; i < H; i++)
        grad.set(dW.subarray(i * 3 * H + gate * H, i * 3 * H + (gate + 1) * H), i * H);
      working.get(`${gru}.${GATE_BIASES[gate]}`)!.grad.set(db.subarray(gate * H, (gate + 1) * H));
    });
  }
}

/** Non-negative int32 ids as an int64 tensor: the low words of a little-endian BigInt64Array, no BigInt maths. */
function int64Of(ids: Int32Array): ort.Tensor {
  const wide = new BigInt64Array(ids.length);
  const words = new Int32Array(wide.buffer);
  for (let i = 0; i < ids.length; i++) words[2 * i] = ids[i];
  return int64View(wide, [ids.length]);
}

/** Adam on every working copy, in place; the gradient is `scale` times the stored one (the loss is -ELBO / F). */
function adamStep(working: Iterable<Working>, step: number, scale: number): void {
  const correction1 = 1 - ADAM_BETA1 ** step;
  const correction2 = 1 - ADAM_BETA2 ** step;
  for (const { value, m, v, grad, rate } of working) {
    for (let i = 0; i < value.length; i++) {
      const g = grad[i] * scale;
      const mi = ADAM_BETA1 * m[i] + (1 - ADAM_BETA1) * g;
      const vi = ADAM_BETA2 * v[i] + (1 - ADAM_BETA2) * g * g;
      m[i] = mi;
      v[i] = vi;
      value[i] -= (rate * (mi / correction1)) / (Math.sqrt(vi / correction2) + ADAM_EPSILON);
    }
  }
}

/**
 * The prior terms' per-slot coefficients (onnx-kernels.ts objectiveSession) and the ELBO's constant part: slot 0
 * N(0, sigma^2), slots 1..L-1 a random walk with step variance s^2, an entropy per slot.
 */
function priorInputs(
  trainer: WindowTrainer,
  L: number,
  psiSize: number,
  thetaSize: number,
): { feeds: Record<string, ort.Tensor>; constant: number } {
  const s = trainer.settings;
  const coefficients = (prior: number, walk: number): [Float32Array, Float32Array] => {
    const meanCoef = new Float32Array(L);
    const varCoef = new Float32Array(L);
    meanCoef[0] = 1 / prior;
    varCoef[0] = 1 / (2 * prior);
    for (let slot = 1; slot < L; slot++) {
      varCoef[slot] += 1 / (2 * walk); // its own step
      varCoef[slot - 1] += 1 / (2 * walk); // the step from it
    }
    return [meanCoef, varCoef];
  };
  const constant = (n: number, prior: number, walk: number): number =>
    -0.5 * n * (LOG_2PI + Math.log(prior)) -
    0.5 * n * (L - 1) * (LOG_2PI + Math.log(walk)) +
    0.5 * n * L * (LOG_2PI + 1);
  const [psiMeanCoef, psiVarCoef] = coefficients(s.sigmaPsi ** 2, s.sPsi ** 2);
  const [thetaMeanCoef, thetaVarCoef] = coefficients(s.sigmaTheta ** 2, s.sTheta ** 2);
  const slotDims = [L, 1, 1];
  return {
    feeds: {
      psiMeanCoef: floatView(psiMeanCoef, slotDims),
      psiVarCoef: floatView(psiVarCoef, slotDims),
      thetaMeanCoef: floatView(thetaMeanCoef, slotDims),
      thetaVarCoef: floatView(thetaVarCoef, slotDims),
      psiWalk: floatView(Float32Array.of(1 / s.sPsi ** 2), []),
      thetaWalk: floatView(Float32Array.of(1 / s.sTheta ** 2), []),
    },
    constant:
      constant(psiSize, s.sigmaPsi ** 2, s.sPsi ** 2) +
      constant(thetaSize, s.sigmaTheta ** 2, s.sTheta ** 2),
  };
}
