// The NLSM trainer's fused kernels as onnxruntime graphs (the 'onnx' training engine, fused-fit.ts): one zero-input
// GRU step forward, its hand-derived backward, and the whole window objective (reparameterised samples, the
// efficient-form edge logits, the importance-weighted likelihood, the closed-form priors and entropies) with its
// gradient. onnxruntime runs them as a plain linear-algebra engine (vectorised GEMMs and element-wise kernels, one
// thread): the same maths as graph.ts on tfjs, which stays the reference the tests compare against.
// Owns: building these graphs and their sessions (cached per process). Must not touch parameters, draws or Adam
// (fused-fit.ts); must not import kafkajs, src/kafka, src/window or src/serve.
import * as ort from 'onnxruntime-node';
import {
  DataType,
  IR_VERSION,
  floatTensor,
  int64Tensor,
  node,
  onnx,
  valueInfo,
  type AttributeValue,
} from '../../model/onnx-builder.ts';

/** ScatterND with reduction='add' (the scatter of edge gradients) needs opset 16; 18 takes ReduceSum axes as input. */
const KERNEL_OPSET = 18;

/** A graph under construction: ops get generated output names; constants become initializers. */
class GraphBuilder {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private count = 0;

  op(
    type: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    out?: string,
  ): string {
    const name = out ?? `${type.toLowerCase()}_${this.count++}`;
    this.nodes.push(node(type, inputs, [name], attributes));
    return name;
  }

  scalar(value: number): string {
    const name = `const_${this.count++}`;
    this.initializers.push(floatTensor(name, [], Float32Array.of(value)));
    return name;
  }

  ints(values: number[]): string {
    const name = `ints_${this.count++}`;
    this.initializers.push(int64Tensor(name, [values.length], values));
    return name;
  }

  add = (a: string, b: string, out?: string): string => this.op('Add', [a, b], {}, out);
  sub = (a: string, b: string, out?: string): string => this.op('Sub', [a, b], {}, out);
  mul = (a: string, b: string, out?: string): string => this.op('Mul', [a, b], {}, out);
  /** Sum over `axes`; keepdims 0. */
  sum = (x: string, axes: number[], out?: string): string =>
    this.op('ReduceSum', [x, this.ints(axes)], { keepdims: 0 }, out);
  /** Sum of all elements (a scalar). */
  total = (x: string, out?: string): string => this.op('ReduceSum', [x], { keepdims: 0 }, out);
  /** x @ w (transA / transB: Gemm flags; both operands 2-D). */
  gemm = (x: string, w: string, transA = 0, transB = 0, out?: string): string =>
    this.op('Gemm', [x, w], { transA, transB }, out);

  async session(
    name: string,
    inputs: [string, number, Array<number | string>][],
    outputs: [string, number, Array<number | string>][],
  ): Promise<ort.InferenceSession> {
    const graph = onnx.GraphProto.create({
      name,
      node: this.nodes,
      initializer: this.initializers,
      input: inputs.map(([n, type, dims]) => valueInfo(n, type, dims)),
      output: outputs.map(([n, type, dims]) => valueInfo(n, type, dims)),
    });
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: KERNEL_OPSET }],
      graph,
    });
    return ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  }
}

const F = DataType.FLOAT;
const I64 = DataType.INT64;

/**
 * One zero-input GRU step (graph.ts gruStep; with `framed`, logVarGruStep's frame h = (x - centre) / scale and
 * y = centre + scale h'). The three gates' weights come concatenated, W = [Uu | Ur | Un] [H, 3H] with biases
 * b = [bu | br | bhn] [3H]: [pu | pr | q] = h W + b, u = sigmoid(pu), r = sigmoid(pr), n = tanh(bn + r q),
 * h' = n + u (h - n). Outputs y and what the backward step needs: u, r, q, n [M, H] (and h when framed; else h = x).
 */
function gruForwardSession(framed: boolean): Promise<ort.InferenceSession> {
  const g = new GraphBuilder();
  const h = framed ? g.op('Div', [g.sub('x', 'centre'), 'scale'], {}, 'h') : 'x';
  const gates = g.add(g.op('MatMul', [h, 'W']), 'b'); // [M, 3H]
  g.nodes.push(node('Split', [gates], ['pu', 'pr', 'q'], { axis: 1, num_outputs: 3 }));
  const u = g.op('Sigmoid', ['pu'], {}, 'u');
  const r = g.op('Sigmoid', ['pr'], {}, 'r');
  const n = g.op('Tanh', [g.add('bn', g.mul(r, 'q'))], {}, 'n');
  const next = g.add(n, g.mul(u, g.sub(h, n)), framed ? undefined : 'y');
  if (framed) g.add(g.mul(next, 'scale'), 'centre', 'y');
  const rows = (name: string): [string, number, string[]] => [name, F, ['M', 'H']];
  return g.session(
    framed ? 'gru_forward_framed' : 'gru_forward',
    [
      rows('x'),
      ['W', F, ['H', 'G']],
      ['b', F, ['G']],
      ['bn', F, ['H']],
      ...(framed
        ? ([
            ['centre', F, []],
            ['scale', F, []],
          ] as [string, number, string[]][])
        : []),
    ],
    ['y', ...(framed ? ['h'] : []), 'u', 'r', 'q', 'n'].map(rows),
  );
}

/**
 * The backward of gruForwardSession: given dy (the gradient at y) and `direct` (the gradient the previous state
 * already has from its own terms), dx = direct + J^T dy. With dh' = scale dy: dpu = dh' (h - n) u (1 - u),
 * dpn = dh' (1 - u) (1 - n^2), dq = dpn r, dpr = dpn q r (1 - r), dG = [dpu | dpr | dq], dh = dh' u + dG W^T.
 * Also outputs dG [M, 3H] and dpn [M, H]: the weights' gradients of all steps at once are gruWeightGradSession's.
 */
function gruBackwardSession(framed: boolean): Promise<ort.InferenceSession> {
  const g = new GraphBuilder();
  const one = g.scalar(1);
  const dNext = framed ? g.mul('dy', 'scale') : 'dy';
  const keep = g.sub(one, 'u');
  const dpu = g.mul(g.mul(dNext, g.sub('h', 'n')), g.mul('u', keep));
  const dpn = g.mul(g.mul(dNext, keep), g.sub(one, g.mul('n', 'n')), 'dpn');
  const dq = g.mul(dpn, 'r');
  const dpr = g.mul(g.mul(dpn, 'q'), g.mul('r', g.sub(one, 'r')));
  const dGates = g.op('Concat', [dpu, dpr, dq], { axis: 1 }, 'dG'); // [M, 3H]
  const dh = g.add(g.mul(dNext, 'u'), g.gemm(dGates, 'W', 0, 1));
  g.add('direct', framed ? g.op('Div', [dh, 'scale']) : dh, 'dx');
  const rows = (name: string): [string, number, string[]] => [name, F, ['M', 'H']];
  return g.session(
    framed ? 'gru_backward_framed' : 'gru_backward',
    [
      ...['dy', 'direct', 'h', 'u', 'r', 'q', 'n'].map(rows),
      ['W', F, ['H', 'G']],
      ...(framed ? ([['scale', F, []]] as [string, number, string[]][]) : []),
    ],
    [rows('dx'), ['dG', F, ['M', 'G']], rows('dpn')],
  );
}

/**
 * A GRU's weight gradients summed over the window's steps, from the steps' inputs h, gate gradients dG and dpn
 * stacked over the steps ([S M, H], [S M, 3H], [S M, H]): dW = h^T dG [H, 3H], db = column sums of dG, dbn of dpn.
 */
function gruWeightGradSession(): Promise<ort.InferenceSession> {
  const g = new GraphBuilder();
  g.gemm('h', 'dG', 1, 0, 'dW');
  g.sum('dG', [0], 'db');
  g.sum('dpn', [0], 'dbn');
  return g.session(
    'gru_weight_gradient',
    [
      ['h', F, ['M', 'H']],
      ['dG', F, ['M', 'G']],
      ['dpn', F, ['M', 'H']],
    ],
    [
      ['dW', F, ['H', 'G']],
      ['db', F, ['G']],
      ['dbn', F, ['H']],
    ],
  );
}

/** Static shape of a window objective graph: L slots, K attributes, directed (P = 4) or not (P = 3). */
export interface ObjectiveShape {
  L: number;
  K: number;
  directed: boolean;
}

/**
 * The window objective (graph.ts windowElbo) and its gradient. Inputs: psi means / log-variances / noise
 * [L, U, K] (slot 0's noise zeros: slot 0 uses the mean), theta ones [L, Rw, K * P]; edges subject / object
 * (rows of the stacked [L * U, K] z), relation (rows of the stacked theta) [E] int64; linear and softplus weights
 * [E]; per-slot coefficients [L, 1, 1] of the prior terms (meanCoef: 1 / sigma^2 at slot 0, else 0; varCoef: the
 * sum of 1 / (2 v) over the prior terms each slot's variance enters); the random walks' 1 / s^2 (scalars).
 * Outputs: logLikelihood, the ELBO without its constant terms (elboVariable), and the ELBO's gradient with respect
 * to the four trajectories.
 */
function objectiveSession(shape: ObjectiveShape): Promise<ort.InferenceSession> {
  const { L, K, directed } = shape;
  const P = directed ? 4 : 3;
  const g = new GraphBuilder();
  const half = g.scalar(0.5);
  const one = g.scalar(1);
  // samples: psi = m + exp(lv / 2) noise, z = sigmoid(psi); theta likewise
  const psiStd = g.op('Exp', [g.mul('psiLogVar', half)]);
  const z = g.op('Sigmoid', [g.add('psiMean', g.mul(psiStd, 'psiNoise'))]);
  const thetaStd = g.op('Exp', [g.mul('thetaLogVar', half)]);
  const theta = g.add('thetaMean', g.mul(thetaStd, 'thetaNoise'));
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
  const logLikelihood = g.sub(
    g.total(g.mul('linearWeight', logits)),
    g.total(g.mul('softplusWeight', g.op('Softplus', [logits]))),
    'logLikelihood',
  );
  // d logLikelihood / d logit, scattered back to the rows of z and theta's coefficients
  const dLogit = g.sub('linearWeight', g.mul('softplusWeight', g.op('Sigmoid', [logits]))); // [E]
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
  const dTheta = g.op('Reshape', [dThetaRows, g.op('Shape', ['thetaMean'])]);
  const dz = g.op('Reshape', [dzRows, g.op('Shape', ['psiMean'])]);
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
    return { value, dMean, dLogVar };
  };
  const psiPrior = priorAndGrads('psiMean', 'psiLogVar', 'psiMeanCoef', 'psiVarCoef', 'psiWalk');
  const thetaPrior = priorAndGrads(
    'thetaMean',
    'thetaLogVar',
    'thetaMeanCoef',
    'thetaVarCoef',
    'thetaWalk',
  );
  g.add(logLikelihood, g.add(psiPrior.value, thetaPrior.value), 'elboVariable');
  // d / d mean = d / d sample; d / d logVar adds d sample / d logVar = noise exp(lv / 2) / 2
  g.add(psiPrior.dMean, dPsi, 'dPsiMean');
  g.add(psiPrior.dLogVar, g.mul(dPsi, g.mul(g.mul(psiStd, 'psiNoise'), half)), 'dPsiLogVar');
  g.add(thetaPrior.dMean, dTheta, 'dThetaMean');
  g.add(
    thetaPrior.dLogVar,
    g.mul(dTheta, g.mul(g.mul(thetaStd, 'thetaNoise'), half)),
    'dThetaLogVar',
  );
  const psi: Array<number | string> = [L, 'U', K];
  const th: Array<number | string> = [L, 'Rw', K * P];
  const slotCoef: Array<number | string> = [L, 1, 1];
  return g.session(
    `window_objective_L${L}`,
    [
      ['psiMean', F, psi],
      ['psiLogVar', F, psi],
      ['psiNoise', F, psi],
      ['thetaMean', F, th],
      ['thetaLogVar', F, th],
      ['thetaNoise', F, th],
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
    ],
    [
      ['logLikelihood', F, []],
      ['elboVariable', F, []],
      ['dPsiMean', F, psi],
      ['dPsiLogVar', F, psi],
      ['dThetaMean', F, th],
      ['dThetaLogVar', F, th],
    ],
  );
}

/** The kernels' sessions, built once per process on first use (building is ~10-50 ms each). */
export class TrainingKernels {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  private cached(
    key: string,
    build: () => Promise<ort.InferenceSession>,
  ): Promise<ort.InferenceSession> {
    let session = this.sessions.get(key);
    if (!session) {
      session = build();
      this.sessions.set(key, session);
    }
    return session;
  }

  /** The GRU step forward; `framed`: a log-variance GRU in its frame. */
  gruForward(framed: boolean): Promise<ort.InferenceSession> {
    return this.cached(`forward/${framed}`, () => gruForwardSession(framed));
  }

  gruBackward(framed: boolean): Promise<ort.InferenceSession> {
    return this.cached(`backward/${framed}`, () => gruBackwardSession(framed));
  }

  gruWeightGradient(): Promise<ort.InferenceSession> {
    return this.cached('weight-gradient', gruWeightGradSession);
  }

  objective(shape: ObjectiveShape): Promise<ort.InferenceSession> {
    return this.cached(`objective/${shape.L}/${shape.K}/${shape.directed}`, () =>
      objectiveSession(shape),
    );
  }
}

/** One kernel set per process: sessions are stateless, so every trainer shares them. */
export const trainingKernels = new TrainingKernels();

/** A float32 tensor over (a view of) an existing array: no copy in, and outputs written in place. */
export function floatView(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function int64View(data: BigInt64Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}
