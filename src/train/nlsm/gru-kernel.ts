// The zero-input GRU step of the NLSM trainer's onnxruntime kernels, forward and hand-derived backward, emitted into
// a graph (graph-builder.ts): the same maths as graph.ts gruStep / logVarGruStep on tfjs. Owns: these two emitters.
// Must not build sessions (onnx-kernels.ts); must not import kafkajs, src/kafka, src/window or src/serve.
import type { GraphBuilder } from './graph-builder.ts';

/** A GRU's weights in a graph: the gates concatenated, W = [Uu | Ur | Un] [H, 3H], b = [bu | br | bhn], and bn. */
export interface GruInputs {
  W: string;
  b: string;
  bn: string;
}

/** A log-variance GRU's frame (scalars in the graph): h = (x - centre) / scale, y = centre + scale h'. */
export interface FrameInputs {
  centre: string;
  scale: string;
}

/** What a forward step leaves for its backward: the step's input h (in the frame) and its activations. */
export interface GruStepValues {
  y: string;
  h: string;
  u: string;
  r: string;
  q: string;
  n: string;
}

/**
 * One GRU step: [pu | pr | q] = h W + b, u = sigmoid(pu), r = sigmoid(pr), n = tanh(bn + r q), h' = n + u (h - n);
 * y = h' (or centre + scale h' in a frame). `out` names y.
 */
export function emitGruForward(
  g: GraphBuilder,
  x: string,
  w: GruInputs,
  frame: FrameInputs | null,
  out?: string,
): GruStepValues {
  const h = frame ? g.op('Div', [g.sub(x, frame.centre), frame.scale]) : x;
  const gates = g.add(g.op('MatMul', [h, w.W]), w.b); // [M, 3H]
  const [pu, pr, q] = g.ops('Split', [gates], 3, { axis: 1, num_outputs: 3 });
  const u = g.sigmoid(pu);
  const r = g.sigmoid(pr);
  const n = g.op('Tanh', [g.add(w.bn, g.mul(r, q))]);
  const next = g.add(n, g.mul(u, g.sub(h, n)), frame ? undefined : out);
  const y = frame ? g.add(g.mul(next, frame.scale), frame.centre, out) : next;
  return { y, h, u, r, q, n };
}

/**
 * The backward of emitGruForward: given dy (the gradient at y) and `direct` (the gradient the step's input already
 * has from its own terms), dx = direct + J^T dy. With dh' = scale dy: dpu = dh' (h - n) u (1 - u),
 * dpn = dh' (1 - u) (1 - n^2), dq = dpn r, dpr = dpn q r (1 - r), dG = [dpu | dpr | dq], dh = dh' u + dG W^T.
 * Returns dx and the weights' gradient terms of this step: dG [M, 3H] (dW = h^T dG, db its column sums) and dpn
 * (dbn its column sums).
 */
export function emitGruBackward(
  g: GraphBuilder,
  dy: string,
  direct: string,
  step: GruStepValues,
  W: string,
  scale: string | null,
): { dx: string; dG: string; dpn: string } {
  const one = g.scalar(1);
  const dNext = scale ? g.mul(dy, scale) : dy;
  const keep = g.sub(one, step.u);
  const dpu = g.mul(g.mul(dNext, g.sub(step.h, step.n)), g.mul(step.u, keep));
  const dpn = g.mul(g.mul(dNext, keep), g.sub(one, g.mul(step.n, step.n)));
  const dq = g.mul(dpn, step.r);
  const dpr = g.mul(g.mul(dpn, step.q), g.mul(step.r, g.sub(one, step.r)));
  const dG = g.op('Concat', [dpu, dpr, dq], { axis: 1 }); // [M, 3H]
  const dh = g.add(g.mul(dNext, step.u), g.gemm(dG, W, 0, 1));
  const dx = g.add(direct, scale ? g.op('Div', [dh, scale]) : dh);
  return { dx, dG, dpn };
}
