// The graph builder of the NLSM trainer's onnxruntime kernels (onnx-kernels.ts): ops with generated output names,
// constants as initializers, and the session every kernel runs in (one thread, sequential: the engine's cost is
// one core's; subnormal floats flushed to zero). Owns: that plumbing. Knows no maths; must not import kafkajs,
// src/kafka, src/window or src/serve.
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

export const F = DataType.FLOAT;
export const I64 = DataType.INT64;

/** A graph input or output: name, element type, dims (a string dim is symbolic). */
export type ValueSpec = [string, number, Array<number | string>];

/** A graph under construction: ops get generated output names; constants become initializers. */
export class GraphBuilder {
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

  /** An op with several outputs (generated names). */
  ops(
    type: string,
    inputs: string[],
    outputs: number,
    attributes: Record<string, AttributeValue> = {},
  ): string[] {
    const names = Array.from({ length: outputs }, () => `${type.toLowerCase()}_${this.count++}`);
    this.nodes.push(node(type, inputs, names, attributes));
    return names;
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
  /**
   * sigmoid(x) to full relative precision: onnxruntime's Sigmoid kernel is accurate in absolute terms only
   * (sigmoid(-17) comes out 2.2x too large, sigmoid(-20) as 0), and the importance-weighted negatives' gradients
   * w sigmoid(logit) live exactly there. Computed as 1 / (1 + exp(-x)), four cheap element-wise passes (each
   * operation rounds once, so the result is within a few float32 ulps); with sp = softplus(x) already at hand, as
   * exp(x - sp). (onnxruntime's Softplus costs ~13 ns per element, several times the four passes together.)
   */
  sigmoid(x: string, softplus?: string): string {
    if (softplus) return this.op('Exp', [this.sub(x, softplus)]);
    const one = this.scalar(1);
    return this.op('Div', [one, this.add(one, this.op('Exp', [this.op('Neg', [x])]))]);
  }

  /** Sum of all elements (a scalar). */
  total = (x: string, out?: string): string => this.op('ReduceSum', [x], { keepdims: 0 }, out);
  /** x @ w (transA / transB: Gemm flags; both operands 2-D). */
  gemm = (x: string, w: string, transA = 0, transB = 0, out?: string): string =>
    this.op('Gemm', [x, w], { transA, transB }, out);

  async session(
    name: string,
    inputs: ValueSpec[],
    outputs: ValueSpec[],
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
      // flush subnormal floats (below 1.2e-38) to zero: the GRU weights' gradients reach that range, where the CPU's
      // arithmetic falls back to microcode (a [344, 256]^T [344, 768] MatMul: 243-294 ms with subnormal inputs,
      // 1.8-3.6 ms without); YAGO's bench trains bit-identical values with it (test/train/kernels.test.ts checks
      // the flush itself)
      extra: { session: { set_denormal_as_zero: '1' } },
    });
  }
}
