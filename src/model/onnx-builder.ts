// Minimal helpers to assemble ONNX protobuf messages (tensors, nodes, value infos) with the onnx-proto definitions.
// Owns: the protobuf plumbing of ONNX graph building. Knows nothing about NLSM; must not import onnxruntime,
// src/train or tfjs (export runs in any process that has a ScoringState).
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type OnnxModel = InstanceType<typeof onnx.ModelProto>;

export const DataType = onnx.TensorProto.DataType;
/** The opset the scorer graph targets, and the IR version that goes with it (ONNX opset 17 <-> IR 8). */
export const OPSET_VERSION = 17;
export const IR_VERSION = 8;

/** A float32 initializer, stored little-endian in raw_data (compact and fast to decode). */
export function floatTensor(
  name: string,
  dims: number[],
  values: Float32Array,
): InstanceType<typeof onnx.TensorProto> {
  assertElementCount(name, dims, values.length);
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: DataType.FLOAT,
    rawData: littleEndianBytes(values),
  });
}

/** An int64 initializer (values given as JS numbers, all safe integers). */
export function int64Tensor(
  name: string,
  dims: number[],
  values: number[],
): InstanceType<typeof onnx.TensorProto> {
  assertElementCount(name, dims, values.length);
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: DataType.INT64,
    rawData: littleEndianBytes(data),
  });
}

export type AttributeValue = number | number[] | string;

/** A node; integer attributes are INT (or INTS for arrays), strings are STRING. */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, AttributeValue> = {},
  name = outputs[0],
): InstanceType<typeof onnx.NodeProto> {
  const attribute = Object.entries(attributes).map(([attributeName, value]) => {
    if (typeof value === 'string') {
      return onnx.AttributeProto.create({
        name: attributeName,
        type: onnx.AttributeProto.AttributeType.STRING,
        s: new TextEncoder().encode(value),
      });
    }
    if (Array.isArray(value)) {
      return onnx.AttributeProto.create({
        name: attributeName,
        type: onnx.AttributeProto.AttributeType.INTS,
        ints: value,
      });
    }
    if (!Number.isInteger(value))
      throw new TypeError(
        `attribute ${attributeName} of ${opType}: only integer attributes are supported, got ${value}`,
      );
    return onnx.AttributeProto.create({
      name: attributeName,
      type: onnx.AttributeProto.AttributeType.INT,
      i: value,
    });
  });
  return onnx.NodeProto.create({ opType, input: inputs, output: outputs, name, attribute });
}

/** A graph input/output description; a string dim is symbolic (e.g. 'B'), a number is fixed. */
export function valueInfo(
  name: string,
  elemType: number,
  dims: Array<number | string>,
  docString = '',
): InstanceType<typeof onnx.ValueInfoProto> {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return onnx.ValueInfoProto.create({
    name,
    docString,
    type: { tensorType: { elemType, shape: { dim } } },
  });
}

function assertElementCount(name: string, dims: number[], length: number): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== length)
    throw new RangeError(
      `initializer ${name}: dims [${dims.join(', ')}] need ${expected} values, got ${length}`,
    );
}

/** The bytes of a typed array in little-endian order (copied; every supported platform is little-endian). */
function littleEndianBytes(values: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(
    values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength),
  );
}
