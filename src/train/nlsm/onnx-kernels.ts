// The NLSM trainer's fused kernels as onnxruntime sessions (the 'onnx' training engine, fused-fit.ts): the whole
// epoch of an NLSM window (every trajectory rolled through its GRU, the window objective, the gradient back through
// the GRUs to the initial state and the GRU weights) as ONE graph run, the window objective alone (BAS, and NLSM
// windows of one slot), and one GRU step (the window shift). onnxruntime runs them as a plain linear-algebra engine
// (vectorised GEMMs and element-wise kernels, one thread): the same maths as graph.ts on tfjs, which stays the
// reference the tests compare against. Owns: composing the emitters (gru-kernel.ts, objective-kernel.ts) into these
// graphs and caching their sessions. Must not touch parameters, draws or Adam (fused-fit.ts); must not import
// kafkajs, src/kafka, src/window or src/serve.
import * as ort from 'onnxruntime-node';
import { F, GraphBuilder, type ValueSpec } from './graph-builder.ts';
import { emitGruBackward, emitGruForward, type GruStepValues } from './gru-kernel.ts';
import {
  emitObjective,
  objectiveInputs,
  type ObjectiveShape,
  type TrajectoryInputs,
} from './objective-kernel.ts';

export type { ObjectiveShape } from './objective-kernel.ts';

export const TRAJECTORIES = ['psiMean', 'psiLogVar', 'thetaMean', 'thetaLogVar'] as const;
export type TrajectoryName = (typeof TRAJECTORIES)[number];
/** Trajectories whose GRU runs in a log-variance frame (the frame's centre and scale are graph inputs). */
const FRAMED: ReadonlySet<TrajectoryName> = new Set(['psiLogVar', 'thetaLogVar']);

/** One GRU step y = G(x) (the window shift of every row); `framed`: a log-variance GRU in its frame. */
function gruStepSession(framed: boolean): Promise<ort.InferenceSession> {
  const g = new GraphBuilder();
  const frame = framed ? { centre: 'centre', scale: 'scale' } : null;
  emitGruForward(g, 'x', { W: 'W', b: 'b', bn: 'bn' }, frame, 'y');
  const frameInputs: ValueSpec[] = framed
    ? [
        ['centre', F, []],
        ['scale', F, []],
      ]
    : [];
  return g.session(
    framed ? 'gru_step_framed' : 'gru_step',
    [['x', F, ['M', 'H']], ['W', F, ['H', 'G']], ['b', F, ['G']], ['bn', F, ['H']], ...frameInputs],
    [['y', F, ['M', 'H']]],
  );
}

function trajectoryDims(shape: ObjectiveShape, name: TrajectoryName): Array<number | string> {
  const width = name.startsWith('psi') ? shape.K : shape.K * (shape.directed ? 4 : 3);
  return [name.startsWith('psi') ? 'U' : 'Rw', width];
}

/** The window objective over given trajectories [L, rows, width] (BAS's slots, or an NLSM window of one slot). */
/** The objective session's gradient outputs, one per trajectory ([L, rows, width]). */
export const OBJECTIVE_GRADIENTS: Record<TrajectoryName, string> = {
  psiMean: 'dPsiMean',
  psiLogVar: 'dPsiLogVar',
  thetaMean: 'dThetaMean',
  thetaLogVar: 'dThetaLogVar',
};

function objectiveSession(shape: ObjectiveShape): Promise<ort.InferenceSession> {
  const g = new GraphBuilder();
  const names = {
    psiMean: 'psiMean',
    psiLogVar: 'psiLogVar',
    thetaMean: 'thetaMean',
    thetaLogVar: 'thetaLogVar',
  };
  emitObjective(g, shape, names, OBJECTIVE_GRADIENTS);
  const stacked = (name: TrajectoryName): Array<number | string> => [
    shape.L,
    ...trajectoryDims(shape, name),
  ];
  return g.session(
    `window_objective_L${shape.L}`,
    [...TRAJECTORIES.map((t): ValueSpec => [t, F, stacked(t)]), ...objectiveInputs(shape)],
    [
      ['elboVariable', F, []],
      ...TRAJECTORIES.map((t): ValueSpec => [OBJECTIVE_GRADIENTS[t], F, stacked(t)]),
    ],
  );
}

/**
 * One epoch of an NLSM window of L >= 2 slots as one graph. Inputs: each trajectory's initial state `<t>0`
 * ([U, K] or [Rw, K P]), its GRU `<t>W`, `<t>b`, `<t>bn` (gru-kernel.ts GruInputs), the log-variance frames
 * `<t>Centre`, `<t>Scale`, and the objective's inputs. Slots 1..L-1 are rolled by the GRUs; the objective's gradient
 * goes back through them (last slot first). Outputs: elboVariable, the initial states' gradients `d<t>0` and the
 * GRU weights' `d<t>W`, `d<t>b`, `d<t>bn`, each summed over the steps.
 */
function epochSession(shape: ObjectiveShape): Promise<ort.InferenceSession> {
  const { L } = shape;
  const g = new GraphBuilder();
  const steps = {} as Record<TrajectoryName, GruStepValues[]>;
  const stacked = {} as TrajectoryInputs;
  for (const t of TRAJECTORIES) {
    const frame = FRAMED.has(t) ? { centre: `${t}Centre`, scale: `${t}Scale` } : null;
    const weights = { W: `${t}W`, b: `${t}b`, bn: `${t}bn` };
    const states = [`${t}0`];
    steps[t] = [];
    for (let slot = 1; slot < L; slot++) {
      const step = emitGruForward(g, states[slot - 1], weights, frame);
      steps[t].push(step);
      states.push(step.y);
    }
    stacked[t] = g.op(
      'Concat',
      states.map((s) => g.op('Unsqueeze', [s, g.ints([0])])),
      { axis: 0 },
    );
  }
  const gradient = emitObjective(g, shape, stacked);
  for (const t of TRAJECTORIES) {
    const direct = g
      .ops('Split', [gradient[t]], L, { axis: 0, num_outputs: L })
      .map((d) => g.op('Squeeze', [d, g.ints([0])]));
    let total = direct[L - 1];
    const dW: string[] = [];
    const db: string[] = [];
    const dbn: string[] = [];
    for (let slot = L - 1; slot >= 1; slot--) {
      const step = steps[t][slot - 1];
      const back = emitGruBackward(
        g,
        total,
        direct[slot - 1],
        step,
        `${t}W`,
        FRAMED.has(t) ? `${t}Scale` : null,
      );
      total = back.dx;
      dW.push(g.gemm(step.h, back.dG, 1, 0));
      db.push(g.sum(back.dG, [0]));
      dbn.push(g.sum(back.dpn, [0]));
    }
    g.op('Identity', [total], {}, `d${t}0`);
    g.op('Sum', dW, {}, `d${t}W`);
    g.op('Sum', db, {}, `d${t}b`);
    g.op('Sum', dbn, {}, `d${t}bn`);
  }
  const inputs: ValueSpec[] = [];
  const outputs: ValueSpec[] = [['elboVariable', F, []]];
  for (const t of TRAJECTORIES) {
    const [rows, H] = trajectoryDims(shape, t);
    inputs.push([`${t}0`, F, [rows, H]], [`${t}W`, F, [H, 3 * (H as number)]]);
    inputs.push([`${t}b`, F, [3 * (H as number)]], [`${t}bn`, F, [H]]);
    if (FRAMED.has(t)) inputs.push([`${t}Centre`, F, []], [`${t}Scale`, F, []]);
    outputs.push([`d${t}0`, F, [rows, H]], [`d${t}W`, F, [H, 3 * (H as number)]]);
    outputs.push([`d${t}b`, F, [3 * (H as number)]], [`d${t}bn`, F, [H]]);
  }
  return g.session(`window_epoch_L${L}`, [...inputs, ...objectiveInputs(shape)], outputs);
}

/**
 * A trainer's kernel sessions, built on first use (building is ~10-50 ms each). Of each kind it keeps the session
 * of the last shape only: every session holds its own memory arena (up to ~1.3 GiB for a window's largest edge
 * chunk), and once the window is full every update has the same shape (L = m), so the warm-up's smaller windows'
 * sessions are released instead of kept.
 */
export class TrainingKernels {
  private readonly sessions = new Map<
    string,
    { key: string; session: Promise<ort.InferenceSession> }
  >();

  private cached(
    kind: string,
    key: string,
    build: () => Promise<ort.InferenceSession>,
  ): Promise<ort.InferenceSession> {
    const held = this.sessions.get(kind);
    if (held?.key === key) return held.session;
    if (held) void held.session.then((session) => session.release());
    const session = build();
    this.sessions.set(kind, { key, session });
    return session;
  }

  /** One GRU step (the window shift); `framed`: a log-variance GRU in its frame. */
  gruStep(framed: boolean): Promise<ort.InferenceSession> {
    return this.cached(`step/${framed}`, '', () => gruStepSession(framed));
  }

  /** One epoch of an NLSM window (L >= 2): forward, objective and backward in one run. */
  epoch(shape: ObjectiveShape): Promise<ort.InferenceSession> {
    return this.cached('epoch', `${shape.L}/${shape.K}/${shape.directed}`, () =>
      epochSession(shape),
    );
  }

  objective(shape: ObjectiveShape): Promise<ort.InferenceSession> {
    return this.cached('objective', `${shape.L}/${shape.K}/${shape.directed}`, () =>
      objectiveSession(shape),
    );
  }

  /** Releases every session built so far (the trainer's dispose). */
  async release(): Promise<void> {
    const held = [...this.sessions.values()];
    this.sessions.clear();
    for (const { session } of held) await (await session).release();
  }
}

/** A float32 tensor over (a view of) an existing array: no copy in, and outputs written in place. */
export function floatView(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function int64View(data: BigInt64Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}
