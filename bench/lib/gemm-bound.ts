// The serving benches' hardware bound: onnxruntime's plain Gemm [B, K] x [K, N] (what a query's `Z w` costs without
// anything else), a seeded random Z (speed does not depend on the values). Used by bench/serve.ts and the scale
// bench's serving cells. Owns: that session.
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

export async function plainGemmSession(
  N: number,
  K: number,
  threads = 1,
): Promise<ort.InferenceSession> {
  const random = mulberry32(7);
  const zT = Float32Array.from({ length: K * N }, random);
  const graph = onnx.GraphProto.create({
    name: 'plain_gemm',
    node: [node('Gemm', ['w', 'Z_T'], ['scores'])],
    initializer: [floatTensor('Z_T', [K, N], zT)],
    input: [valueInfo('w', DataType.FLOAT, ['B', K])],
    output: [valueInfo('scores', DataType.FLOAT, ['B', N])],
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
