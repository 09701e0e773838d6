// tfjs backend selection for the trainer. Owns: choosing tfjs-node ('tensorflow') when it can be
// imported, else the wasm backend (plus the one kernel the wasm build lacks for gather gradients),
// else 'cpu'. Must not import kafkajs, src/kafka or src/serve.
import * as tf from '@tensorflow/tfjs';
import { TkgError } from '../../core/errors.ts';

export type TrainBackend = 'tensorflow' | 'wasm' | 'cpu';

let chosen: Promise<TrainBackend> | undefined;

/**
 * Selects and initialises the backend once per process (tfjs keeps one engine per process).
 * `preferred` forces a backend; default: 'tensorflow' if @tensorflow/tfjs-node imports, else 'wasm'.
 */
export function ensureBackend(preferred?: TrainBackend): Promise<TrainBackend> {
  chosen ??= selectBackend(preferred);
  return chosen;
}

async function selectBackend(preferred?: TrainBackend): Promise<TrainBackend> {
  const order: TrainBackend[] = preferred ? [preferred] : ['tensorflow', 'wasm', 'cpu'];
  const failures: string[] = [];
  for (const name of order) {
    try {
      if (name === 'tensorflow') {
        const nodeBackend = '@tensorflow/tfjs-node'; // optional runtime dependency, not installed here
        await import(nodeBackend);
      } else if (name === 'wasm') {
        await import('@tensorflow/tfjs-backend-wasm');
        registerWasmSegmentSum();
        registerWasmGather();
      }
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
      failures.push(`${name}: setBackend returned false`);
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new TkgError(
    `no tfjs backend could be initialised (${failures.join('; ')}); install @tensorflow/tfjs-backend-wasm`,
    {
      reason: 'backend',
    },
  );
}

/**
 * The wasm backend (tfjs 4.22) has no UnsortedSegmentSum kernel, which the gradient of tf.gather
 * needs. This registers a plain-JS one (deterministic, sums in index order).
 */
function registerWasmSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
      const wasm = backend as unknown as {
        readSync(dataId: object): Float32Array | Int32Array;
        makeOutput(
          shape: number[],
          dtype: string,
          offset?: number,
          values?: Float32Array,
        ): tf.TensorInfo;
      };
      if (x.dtype !== 'float32') {
        throw new TkgError(
          `UnsortedSegmentSum (wasm, JS kernel) supports float32 only, got ${x.dtype}`,
          {
            reason: 'backend',
          },
        );
      }
      const values = wasm.readSync(x.dataId) as Float32Array;
      const ids = wasm.readSync(segmentIds.dataId) as Int32Array;
      const rows = ids.length;
      const inner = rows === 0 ? 0 : values.length / rows;
      const out = new Float32Array(numSegments * inner);
      for (let row = 0; row < rows; row++) {
        const target = ids[row];
        if (target < 0 || target >= numSegments) continue;
        const src = row * inner;
        const dst = target * inner;
        for (let c = 0; c < inner; c++) out[dst + c] += values[src + c];
      }
      return wasm.makeOutput(
        [numSegments, ...x.shape.slice(segmentIds.shape.length)],
        'float32',
        undefined,
        out,
      );
    },
  });
}

/**
 * The wasm GatherV2 kernel copies element by element (about 250 ms for [85000, 64] here); this JS
 * kernel copies contiguous rows with TypedArray.set (any axis, batchDims 0; float32 and int32).
 */
function registerWasmGather(): void {
  const existing = tf.getKernel('GatherV2', 'wasm');
  if (existing && (existing as { jsRowCopy?: boolean }).jsRowCopy) return;
  if (existing) tf.unregisterKernel('GatherV2', 'wasm');
  const config = {
    kernelName: 'GatherV2',
    backendName: 'wasm',
    jsRowCopy: true,
    kernelFunc: ({
      inputs,
      backend,
      attrs,
    }: {
      inputs: tf.NamedTensorInfoMap;
      backend: unknown;
      attrs?: tf.NamedAttrMap;
    }) => {
      const { x, indices } = inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
      const { axis: rawAxis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
      if (batchDims) {
        throw new TkgError(
          `GatherV2 (wasm, JS kernel) supports batchDims 0 only, got ${batchDims}`,
          { reason: 'backend' },
        );
      }
      const wasm = backend as {
        readSync(dataId: object): Float32Array | Int32Array;
        makeOutput(
          shape: number[],
          dtype: string,
          offset?: number,
          values?: Float32Array | Int32Array,
        ): tf.TensorInfo;
      };
      const axis = rawAxis < 0 ? rawAxis + x.shape.length : rawAxis;
      const values = wasm.readSync(x.dataId);
      const ids = wasm.readSync(indices.dataId);
      const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
      const dim = x.shape[axis];
      const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const n = ids.length;
      const out =
        x.dtype === 'int32'
          ? new Int32Array(outer * n * inner)
          : new Float32Array(outer * n * inner);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < n; i++) {
          const id = ids[i];
          if (id < 0 || id >= dim) {
            throw new TkgError(`GatherV2: index ${id} is outside [0, ${dim - 1}]`, {
              reason: 'backend',
            });
          }
          const src = (o * dim + id) * inner;
          out.set(values.subarray(src, src + inner), (o * n + i) * inner);
        }
      }
      const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
      return wasm.makeOutput(shape, x.dtype, undefined, out);
    },
  };
  tf.registerKernel(config as unknown as tf.KernelConfig);
}
