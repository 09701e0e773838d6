// One window update on the 'onnx' training engine: the same fit as window-fit.ts (the same sub-graph, draws,
// ELBO, Adam, early stop, NaN recovery and write-back), with the gradient computed by fused kernels
// (onnx-kernels.ts) over typed arrays instead of tfjs autodiff: per epoch ONE onnxruntime run (an NLSM window: the
// GRU rollout, the objective and the gradient back to the initial state and the GRU weights; BAS or a one-slot
// window: the objective over its slots, which are the working copies themselves), then Adam in place on the working
// copies of the touched rows; each epoch's draws come from draw-worker.ts (made on another thread, one epoch ahead).
// Also the window shift's GRU step over all rows (gruStepRowsFused).
// Owns: this engine's fit loop and buffers. Must not touch the window's contents or shifts (trainer.ts), the draws'
// order (window-batch.ts) or forecasts; must not import kafkajs, src/kafka, src/window or src/serve.
import type * as ort from 'onnxruntime-node';
import { epochDraws } from './draw-worker.ts';
import { GRU_BLOCK_ROWS } from './graph.ts';
import {
  OBJECTIVE_GRADIENTS,
  TRAJECTORIES,
  floatView,
  int64View,
  type TrajectoryName,
} from './onnx-kernels.ts';
import type { Parameter, TrainerSettings, UpdateReport } from './parameters.ts';
import type { WindowTrainer } from './trainer.ts';
import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_EPSILON,
  type EpochEdges,
  recordEpoch,
  recordNanRestore,
  gatherRows,
  scatterRows,
  trainedParameters,
  type WindowUniverse,
} from './window-batch.ts';

const LOG_2PI = Math.log(2 * Math.PI);
const GRU_WEIGHTS = ['Uu', 'Ur', 'Un'] as const;
/** The bias added to each gate's product (bn, the candidate's outer bias, is separate). */
const GATE_BIASES = ['bu', 'br', 'bhn'] as const;

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

/** One trajectory's [L, rows, width] buffers: values (objective-only windows) and the objective's gradient. */
interface Trajectory {
  rows: number;
  width: number;
  value: Float32Array;
  direct: Float32Array;
}

/** Train on the window (its sub-graph has positives); fills `report`, with seconds per phase. */
export async function fitWindowFused(
  trainer: WindowTrainer,
  window: WindowUniverse,
  report: UpdateReport,
): Promise<void> {
  const s = trainer.settings;
  const L = trainer.slots.length;
  const { universe, relations, positives, proposals } = window;
  // NLSM windows of two slots or more run as one epoch graph; BAS and one-slot windows as the objective alone
  const epochGraph = s.model === 'nlsm' && L >= 2;
  const U = universe.length;
  const Rw = relations.length;
  const K = s.K;
  const D = K * trainer.P;
  const slice = (a: Float32Array, slot: number, size: number): Float32Array =>
    a.subarray(slot * size, (slot + 1) * size);
  const trajectory = (rows: number, width: number): Trajectory => ({
    rows,
    width,
    value: new Float32Array(epochGraph ? 0 : L * rows * width),
    direct: new Float32Array(epochGraph ? 0 : L * rows * width),
  });
  const traj: Record<TrajectoryName, Trajectory> = {
    psiMean: trajectory(U, K),
    psiLogVar: trajectory(U, K),
    thetaMean: trajectory(Rw, D),
    thetaLogVar: trajectory(Rw, D),
  };

  // working copies; in an objective-only window a trajectory parameter's value and gradient are its slot of the
  // trajectory's buffers, so nothing is stacked per epoch
  const working = new Map<string, Working>();
  for (const name of trainedParameters(trainer)) {
    const p = trainer.params.get(name)!;
    const rows = p.rows === 'entity' ? universe : p.rows === 'relation' ? relations : null;
    const [base, slotText] = name.split('@');
    const t = epochGraph ? undefined : (traj[base as TrajectoryName] as Trajectory | undefined);
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
      grad: t ? slice(t.direct, slot, size) : new Float32Array(size),
      rate: p.rows === 'entity' ? s.learningRate * s.entityLrScale : s.learningRate,
    });
  }

  const shape = { L, K, directed: s.directed };
  const session = await (epochGraph
    ? trainer.kernels.epoch(shape)
    : trainer.kernels.objective(shape));
  const priors = priorInputs(s, L, U * K, Rw * D);
  const psiShape = [L, U, K];
  const thetaShape = [L, Rw, D];
  let previousElbo = NaN;
  let nan = false;
  const phases = { setup: 0, draws: 0, gradient: 0, adam: 0 };
  let clock = performance.now();
  const lap = (phase: keyof typeof phases): void => {
    const now = performance.now();
    phases[phase] += (now - clock) / 1000;
    clock = now;
  };
  // the epochs' draws, made on the draw worker one epoch ahead while this thread runs the kernels and Adam
  const draws = epochDraws(
    trainer.rng,
    {
      proposals,
      negativesPerPositive: s.negativesPerPositive,
      L,
      U,
      Rw,
      K,
      D,
      epochs: s.epochsPerWindow,
    },
    s.drawThread ?? 'worker',
  );
  lap('setup');
  for (let epoch = 1; epoch <= s.epochsPerWindow; epoch++) {
    const { psi, theta, edges } = await draws.take(epoch);
    const hook = trainer.testHooks.corruptWorkingCopy;
    if (hook && hook.update === trainer.updates + 1 && hook.epoch === epoch)
      working.get(trainer.slotName('psiMean', 0))!.value.fill(NaN);
    lap('draws');
    const feeds: Record<string, ort.Tensor> = {
      psiNoise: floatView(psi, psiShape),
      thetaNoise: floatView(theta, thetaShape),
      ...priors.feeds,
    };
    const fetches: Record<string, ort.Tensor | null> = { elboVariable: null };
    const unpack: (() => void)[] = [];
    for (const base of TRAJECTORIES) {
      const t = traj[base];
      if (!epochGraph) {
        const dims = [L, t.rows, t.width];
        feeds[base] = floatView(t.value, dims);
        fetches[OBJECTIVE_GRADIENTS[base]] = floatView(t.direct, dims);
        continue;
      }
      const H = t.width;
      const gru = workingGru(working, `${base}Gru`);
      const initial = working.get(base)!;
      feeds[`${base}0`] = floatView(initial.value, [t.rows, H]);
      fetches[`d${base}0`] = floatView(initial.grad, [t.rows, H]);
      const { W, b } = packGru((part) => gru(part).value, H);
      feeds[`${base}W`] = floatView(W, [H, 3 * H]);
      feeds[`${base}b`] = floatView(b, [3 * H]);
      feeds[`${base}bn`] = floatView(gru('bn').value, [H]);
      fetches[`d${base}bn`] = floatView(gru('bn').grad, [H]);
      const dW = new Float32Array(H * 3 * H);
      const db = new Float32Array(3 * H);
      fetches[`d${base}W`] = floatView(dW, [H, 3 * H]);
      fetches[`d${base}b`] = floatView(db, [3 * H]);
      unpack.push(() => unpackGru(dW, db, (part) => gru(part).grad, H));
      const frame = trainer.logVarFrame(base);
      if (frame) {
        feeds[`${base}Centre`] = floatView(Float32Array.of(frame.centre), []);
        feeds[`${base}Scale`] = floatView(Float32Array.of(frame.scale), []);
      }
    }
    const elboVariable = await runInChunks(
      session,
      feeds,
      fetches,
      edges,
      Math.floor((trainer.testHooks.edgeValuesPerRun ?? EDGE_VALUES_PER_RUN) / s.K),
    );
    for (const f of unpack) f();
    lap('gradient');
    const elbo = elboVariable + priors.constant;
    const loss = -elbo / positives;
    if (!Number.isFinite(loss)) {
      nan = true;
      break;
    }
    trainer.adamStep++;
    adamStep(working.values(), trainer.adamStep, -1 / positives);
    lap('adam');
    if (recordEpoch(trainer, report, epoch, loss, previousElbo)) break;
    previousElbo = -loss;
  }
  // the generator continues after the last epoch used (an epoch drawn ahead and not used is dropped)
  draws.finish();
  if (nan) {
    recordNanRestore(trainer, report);
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
  report.phases = phases;
}

/**
 * The most edges one run takes: the objective's [E, K] intermediates then stay near 64 MiB each (about 20 of them
 * are alive at once), so a window of 100,000 facts per step trains in bounded memory instead of ~10 GiB.
 */
export const EDGE_VALUES_PER_RUN = 2 ** 24;

/**
 * Runs the epoch (or objective) graph over the epoch's edges in chunks of at most `edgesPerRun` edges:
 * the gradient is linear in the edges' terms, so the chunks' outputs add up to the whole window's (the priors and
 * entropies, priorWeight, count in the first chunk only; the GRU rollout is recomputed per chunk). The first chunk
 * writes into `fetches`' preallocated tensors, the others are added to them. Returns the summed elboVariable.
 */
async function runInChunks(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches: Record<string, ort.Tensor | null>,
  edges: EpochEdges,
  edgesPerRun: number,
): Promise<number> {
  const E = edges.linear.length;
  const chunks = Math.max(1, Math.ceil(E / Math.max(1, edgesPerRun)));
  let elboVariable = 0;
  for (let chunk = 0; chunk < chunks; chunk++) {
    const from = Math.floor((chunk * E) / chunks);
    const to = Math.floor(((chunk + 1) * E) / chunks);
    feeds.subjects = int64Of(edges.subjects.subarray(from, to));
    feeds.relations = int64Of(edges.relations.subarray(from, to));
    feeds.objects = int64Of(edges.objects.subarray(from, to));
    feeds.linearWeight = floatView(edges.linear.subarray(from, to), [to - from]);
    feeds.softplusWeight = floatView(edges.soft.subarray(from, to), [to - from]);
    feeds.priorWeight = floatView(Float32Array.of(chunk === 0 ? 1 : 0), []);
    const result = await session.run(
      feeds,
      chunk === 0 ? fetches : Object.fromEntries(Object.keys(fetches).map((name) => [name, null])),
    );
    elboVariable += (result.elboVariable.data as Float32Array)[0];
    if (chunk === 0) continue;
    for (const [name, into] of Object.entries(fetches)) {
      if (!into) continue;
      const total = into.data as Float32Array;
      const part = result[name].data as Float32Array;
      for (let i = 0; i < total.length; i++) total[i] += part[i];
    }
  }
  return elboVariable;
}

/** A GRU's gates concatenated: W = [Uu | Ur | Un] [H, 3H], b = [bu | br | bhn] (gru-kernel.ts GruInputs). */
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

/** The inverse of packGru, into the gradients of the gates' weights and biases. */
function unpackGru(
  dW: Float32Array,
  db: Float32Array,
  part: (name: string) => Float32Array,
  H: number,
): void {
  GRU_WEIGHTS.forEach((name, gate) => {
    const grad = part(name);
    for (let i = 0; i < H; i++)
      grad.set(dW.subarray(i * 3 * H + gate * H, i * 3 * H + (gate + 1) * H), i * H);
    part(GATE_BIASES[gate]).set(db.subarray(gate * H, (gate + 1) * H));
  });
}

const workingGru =
  (working: Map<string, Working>, gru: string) =>
  (name: string): Working =>
    working.get(`${gru}.${name}`)!;

/**
 * One step of a trajectory's GRU for every row of `state` ([rows, width]: the window shift of all N rows), by the
 * step kernel on blocks of `blockRows` rows with the trainer's current weights. Returns a new array.
 */
export async function gruStepRowsFused(
  trainer: WindowTrainer,
  base: TrajectoryName,
  state: Float32Array,
  width: number,
  blockRows = GRU_BLOCK_ROWS,
): Promise<Float32Array> {
  const frame = trainer.logVarFrame(base);
  const session = await trainer.kernels.gruStep(frame !== null);
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

/** Non-negative int32 ids as an int64 tensor: the low words of a little-endian BigInt64Array, no BigInt maths. */
function int64Of(ids: Int32Array): ort.Tensor {
  const wide = new BigInt64Array(ids.length);
  const words = new Int32Array(wide.buffer);
  for (let i = 0; i < ids.length; i++) words[2 * i] = ids[i];
  return int64View(wide, [ids.length]);
}

/** Adam on every working copy, in place; the gradient is `scale` times the stored one (the loss is -ELBO / F). */
function adamStep(working: Iterable<Working>, step: number, scale: number): void {
  // the bias corrections as factors (one division per element instead of three: 6.7 -> 4.3 ns per element)
  const inverseCorrection2 = 1 / (1 - ADAM_BETA2 ** step);
  for (const { value, m, v, grad, rate } of working) {
    const stepSize = rate / (1 - ADAM_BETA1 ** step);
    for (let i = 0; i < value.length; i++) {
      const g = grad[i] * scale;
      const mi = ADAM_BETA1 * m[i] + (1 - ADAM_BETA1) * g;
      const vi = ADAM_BETA2 * v[i] + (1 - ADAM_BETA2) * g * g;
      m[i] = mi;
      v[i] = vi;
      value[i] -= (stepSize * mi) / (Math.sqrt(vi * inverseCorrection2) + ADAM_EPSILON);
    }
  }
}

/**
 * The prior terms' per-slot coefficients (onnx-kernels.ts objectiveSession) and the ELBO's constant part: slot 0
 * N(0, sigma^2), slots 1..L-1 a random walk with step variance s^2, an entropy per slot.
 */
export function priorInputs(
  s: Pick<TrainerSettings, 'sigmaPsi' | 'sPsi' | 'sigmaTheta' | 'sTheta'>,
  L: number,
  psiSize: number,
  thetaSize: number,
): { feeds: Record<string, ort.Tensor>; constant: number } {
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
