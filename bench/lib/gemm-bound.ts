// The benches' matrix-product bounds: one-node onnxruntime sessions `c = a b` with a seeded random weight (speed does
// not depend on the values). The serving bound is the plain Gemm [B, K] x [K, N] (what a query's `Z w` costs without
// anything else; bench/serve.ts and the scale bench's serving cells); the scale bench's dense training bound times
// MatMuls of the GRU shapes. Owns: those sessions.
import * as ort from 'onnxruntime-node';
import { mulberry32 } from '../../src/core/random.ts';
import {
  DataType,
  IR_VERSION,
  OPSET_VERSION,
  floatTensor,
  node,
  onnx,
  valueInfo,
} from '../../src/model/onnx-builder.ts';

/**
 * A one-node onnxruntime session `c = a b` (op Gemm or MatMul): input a [rows, k] (rows 'B': any batch), a seeded
 * random weight b [k, n] (speed does not depend on the values), one sequential executor with `threads` intra-op
 * threads. The serving benches' Gemm bound and the scale bench's dense training bound are both built by it.
 */
export async function productSession(
  op: 'Gemm' | 'MatMul',
  rows: number | 'B',
  k: number,
  n: number,
  seed: number,
  threads = 1,
): Promise<ort.InferenceSession> {
  const random = mulberry32(seed);
  const graph = onnx.GraphProto.create({
    name: `plain_${op.toLowerCase()}`,
    node: [node(op, ['a', 'b'], ['c'])],
    initializer: [floatTensor('b', [k, n], Float32Array.from({ length: k * n }, random))],
    input: [valueInfo('a', DataType.FLOAT, [rows, k])],
    output: [valueInfo('c', DataType.FLOAT, [rows, n])],
  });
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    graph,
  });
  return ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

/** The plain Gemm of the serving shape: run it as `session.run({ a: w }, { c: scores })`, w [B, K], scores [B, N]. */
export function plainGemmSession(N: number, K: number, threads = 1): Promise<ort.InferenceSession> {
  return productSession('Gemm', 'B', K, N, 7, threads);
}
