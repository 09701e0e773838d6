// ONNX export of the NLSM next-step scorer (SPEC section 1, "Efficient scoring"; issue 8 item 2's sparse history term).
// Owns: turning a ScoringState into ONNX bytes (opset 17) and reading its metadata back.
// Must not import onnxruntime, src/train or tfjs: a ScoringState (plain typed arrays) is all it needs.
//
// The graph, for a batch of B queries (direction 0 = object query (s, r, ?), 1 = subject query (?, r, o)):
//   row      = direction * R + relation                                   // [B]   row of the stacked tables
//   z_anchor = Z[anchor]                                                   // [B, K]
//   w        = W_base[row] + W_slope[row] * z_anchor                       // [B, K]
//   c        = C_base[row] + sum_k C_slope[row] * z_anchor                 // [B, 1]
//   scores   = Gemm(w, Z_T, c)                                            // [B, N]  ONE GEMM per batch
//   all      = ScatterND(scores, extra_index, extra_value, reduction=add)   // [B, N]  sparse history term
//   top      = TopK(all, min(k, N))                                         // [B, k]
// A shard graph (exportScoringShards, issue 17 item 3) holds Z_T for its entity range [lo, hi) only: it takes the
// anchors' rows as the input z_anchor [B, K] (the anchor's shard supplies them: readShardRows), scores its n = hi - lo
// entities with the same nodes, and returns local ids (entity - lo). The shard map rides in its metadata.
// with per (r, k): A = Th00, Bs = Th10 - Th00, Co = Th01 - Th00, D = Th11 - Th10 - Th01 + Th00 and
//   object query : w = Co_r + D_r * z_s,  c = sum(A_r + Bs_r * z_s)   (rows 0..R-1 of the stacked tables)
//   subject query: w = Bs_r + D_r * z_o,  c = sum(A_r + Co_r * z_o)   (rows R..2R-1)
import { createHash } from 'node:crypto';
import type { ScoringState } from '../core/types.ts';
import {
  type ShardMap,
  assertShardMap,
  decodeShardMap,
  encodeShardMap,
  shardRange,
} from './shard-map.ts';
import {
  DataType,
  IR_VERSION,
  OPSET_VERSION,
  floatTensor,
  int64Tensor,
  node,
  onnx,
  type OnnxModel,
  valueInfo,
} from './onnx-builder.ts';

export const SCORER_INPUTS = [
  'anchor',
  'relation',
  'direction',
  'extra_index',
  'extra_value',
  'k',
] as const;
export const SCORER_OUTPUTS = ['indices', 'scores', 'all_scores'] as const;
/** A shard graph's inputs: the anchors' rows instead of their ids. */
export const SHARD_INPUTS = ['z_anchor', ...SCORER_INPUTS.slice(1)];
export const PRODUCER_NAME = 'tkg-stream';

/** Metadata stored in the ONNX model's metadata_props (all values are strings there). */
export interface ScoringModelMetadata {
  version: number;
  step: number;
  vocabularyHash: string;
  numEntities: number; // N
  numRelations: number; // R
  K: number;
  /** Model family, e.g. 'nlsm' or 'nlsm-h' (free text). */
  modelName: string;
  /** The bundle's term spec and calibration JSON, when the file carries them (ExportOptions). */
  terms?: string;
  calibration?: string;
  /** Set on a shard graph: the bundle's shard map and which of its ranges this graph scores. */
  shard?: { index: number; map: ShardMap };
}

export interface ExportOptions {
  /** Hash of the vocabulary (names -> ids) the ids refer to; the server refuses to mix vocabularies. */
  vocabularyHash: string;
  modelName?: string;
  /** The bundle's term spec and calibration JSON (src/model/terms.ts, calibration.ts), so the file describes itself. */
  terms?: string;
  calibration?: string;
}

/** Per-relation tables of the efficient form, stacked as [object rows; subject rows]. */
export interface EfficientScoringTables {
  wBase: Float32Array; // [2R, K]  rows r: Co_r, rows R + r: Bs_r
  wSlope: Float32Array; // [2R, K]  D_r twice
  cSlope: Float32Array; // [2R, K]  rows r: Bs_r, rows R + r: Co_r
  cBase: Float32Array; // [2R, 1]  sum_k A_r twice
}

/** Pure: the efficient-form tables of a ScoringState (SPEC section 1). Sums in float64, stored as float32. */
export function efficientScoringTables(state: ScoringState): EfficientScoringTables {
  const { numRelations: R, K, theta } = state;
  const wBase = new Float32Array(2 * R * K);
  const wSlope = new Float32Array(2 * R * K);
  const cSlope = new Float32Array(2 * R * K);
  const cBase = new Float32Array(2 * R);
  for (let r = 0; r < R; r++) {
    let sumA = 0;
    for (let k = 0; k < K; k++) {
      const base = (r * K + k) * 4;
      const th00 = theta[base];
      const th01 = theta[base + 1];
      const th10 = theta[base + 2];
      const th11 = theta[base + 3];
      const bs = th10 - th00;
      const co = th01 - th00;
      const d = th11 - th10 - th01 + th00;
      sumA += th00;
      const objectRow = r * K + k;
      const subjectRow = (R + r) * K + k;
      wBase[objectRow] = co;
      wBase[subjectRow] = bs;
      wSlope[objectRow] = d;
      wSlope[subjectRow] = d;
      cSlope[objectRow] = bs;
      cSlope[subjectRow] = co;
    }
    cBase[r] = sumA;
    cBase[R + r] = sumA;
  }
  return { wBase, wSlope, cSlope, cBase };
}

/** Throws a RangeError naming the inconsistent field when a ScoringState's arrays do not match its sizes. */
export function assertScoringState(state: ScoringState): void {
  const { numEntities: N, numRelations: R, K } = state;
  for (const [name, value] of Object.entries({ numEntities: N, numRelations: R, K })) {
    if (!Number.isInteger(value) || value < 1)
      throw new RangeError(`ScoringState.${name} must be a positive integer, got ${value}`);
  }
  if (state.z.length !== N * K)
    throw new RangeError(
      `ScoringState.z has ${state.z.length} values, expected N * K = ${N} * ${K}`,
    );
  if (state.theta.length !== R * K * 4)
    throw new RangeError(
      `ScoringState.theta has ${state.theta.length} values, expected R * K * 4 = ${R} * ${K} * 4`,
    );
  if (!state.z.every(Number.isFinite) || !state.theta.every(Number.isFinite)) {
    throw new RangeError(
      `ScoringState (version ${state.version}) contains NaN or infinite values; refusing to export`,
    );
  }
}

/** Build the scorer's ONNX model (opset 17) from a ScoringState; returns the serialized bytes. */
export function exportScoringModel(state: ScoringState, options: ExportOptions): Uint8Array {
  assertScoringState(state);
  return buildScoringModel(graphParts(state), options, undefined);
}

/** What a scoring graph is built from: the rows of Z and the efficient-form tables. */
interface GraphParts {
  numEntities: number;
  numRelations: number;
  K: number;
  z: Float32Array; // [N, K]
  tables: EfficientScoringTables;
  version: number;
  step: number;
}

function graphParts(state: ScoringState): GraphParts {
  const { numEntities, numRelations, K, z, version, step } = state;
  return { numEntities, numRelations, K, z, tables: efficientScoringTables(state), version, step };
}

/**
 * One shard graph per range of `map` (same tables, Z_T of the range only). Scores of a shard's entities equal the
 * unsharded graph's: the same nodes run on the same rows (test/serve/sharded-scorer.test.ts).
 */
export function exportScoringShards(
  state: ScoringState,
  options: ExportOptions,
  map: ShardMap,
): Uint8Array[] {
  assertScoringState(state);
  assertShardMap(map, state.numEntities);
  const parts = graphParts(state);
  return map.bounds.slice(1).map((_, index) => buildScoringModel(parts, options, { index, map }));
}

/**
 * Cut an exported unsharded graph into the shard graphs of `map` (what exportScoringShards gives for its state): a
 * replica that received one bundle serves it sharded. Throws a RangeError for a graph that is not an unsharded one.
 */
export function shardScoringModel(bytes: Uint8Array, map: ShardMap): Uint8Array[] {
  return cutScoringModel(bytes, () => map).shards;
}

/**
 * shardScoringModel with the map chosen from the graph's own metadata (e.g. its N), decoding the bytes once; also
 * returns that metadata.
 */
export function cutScoringModel(
  bytes: Uint8Array,
  mapFor: (metadata: ScoringModelMetadata) => ShardMap,
): { metadata: ScoringModelMetadata; shards: Uint8Array[] } {
  const { metadata, parts, options, map } = graphToCut(bytes, mapFor);
  const shards = map.bounds
    .slice(1)
    .map((_, index) => buildScoringModel(parts, options, { index, map }));
  return { metadata, shards };
}

/** One shard graph of cutScoringModel's cut (a shard replica's range), without the others; RangeError off the map. */
export function cutScoringShard(
  bytes: Uint8Array,
  mapFor: (metadata: ScoringModelMetadata) => ShardMap,
  index: number,
): { metadata: ScoringModelMetadata; shard: Uint8Array } {
  const { metadata, parts, options, map } = graphToCut(bytes, mapFor);
  shardRange(map, index); // throws naming the valid indices
  return { metadata, shard: buildScoringModel(parts, options, { index, map }) };
}

function graphToCut(
  bytes: Uint8Array,
  mapFor: (metadata: ScoringModelMetadata) => ShardMap,
): { metadata: ScoringModelMetadata; parts: GraphParts; options: ExportOptions; map: ShardMap } {
  const model = decodeModel(bytes);
  const metadata = metadataOf(model);
  if (metadata.shard)
    throw new RangeError('the graph is already a shard; cut the unsharded graph of the bundle');
  const { numEntities: N, numRelations: R, K } = metadata;
  const map = mapFor(metadata);
  assertShardMap(map, N);
  const read = (name: string, length: number): Float32Array => {
    const tensor = model.graph?.initializer?.find((t) => t.name === name);
    if (!tensor?.rawData || tensor.rawData.length !== 4 * length)
      throw new RangeError(
        `graph initializer ${name} is missing or not ${length} float32 values; export it with exportScoringModel`,
      );
    return littleEndianFloats(tensor.rawData);
  };
  const parts: GraphParts = {
    numEntities: N,
    numRelations: R,
    K,
    z: read('Z', N * K),
    tables: {
      wBase: read('W_base', 2 * R * K),
      wSlope: read('W_slope', 2 * R * K),
      cSlope: read('C_slope', 2 * R * K),
      cBase: read('C_base', 2 * R),
    },
    version: metadata.version,
    step: metadata.step,
  };
  const options: ExportOptions = {
    vocabularyHash: metadata.vocabularyHash,
    modelName: metadata.modelName,
    terms: metadata.terms,
    calibration: metadata.calibration,
  };
  return { metadata, parts, options, map };
}

function buildScoringModel(
  state: GraphParts,
  options: ExportOptions,
  shard: { index: number; map: ShardMap } | undefined,
): Uint8Array {
  const { numEntities: N, numRelations: R, K, tables } = state;
  const { lo, hi } = shard ? shardRange(shard.map, shard.index) : { lo: 0, hi: N };
  const n = hi - lo; // entities this graph scores
  const zTransposed = new Float32Array(K * n); // [K, n]
  for (let e = 0; e < n; e++)
    for (let k = 0; k < K; k++) zTransposed[k * n + e] = state.z[(lo + e) * K + k];

  const initializer = [
    // A shard takes its anchors' rows as an input: only the unsharded graph gathers them from Z.
    ...(shard ? [] : [floatTensor('Z', [N, K], state.z)]),
    floatTensor('Z_T', [K, n], zTransposed),
    floatTensor('W_base', [2 * R, K], tables.wBase),
    floatTensor('W_slope', [2 * R, K], tables.wSlope),
    floatTensor('C_slope', [2 * R, K], tables.cSlope),
    floatTensor('C_base', [2 * R, 1], tables.cBase),
    int64Tensor('num_relations', [], [R]),
    int64Tensor('num_entities', [1], [n]),
    int64Tensor('attribute_axis', [1], [1]),
  ];
  const nodes = [
    node('Mul', ['direction', 'num_relations'], ['direction_offset']),
    node('Add', ['direction_offset', 'relation'], ['table_row']), // [B]
    ...(shard ? [] : [node('Gather', ['Z', 'anchor'], ['z_anchor'], { axis: 0 })]), // [B, K]
    node('Gather', ['W_base', 'table_row'], ['w_base'], { axis: 0 }),
    node('Gather', ['W_slope', 'table_row'], ['w_slope'], { axis: 0 }),
    node('Mul', ['w_slope', 'z_anchor'], ['w_anchor']),
    node('Add', ['w_base', 'w_anchor'], ['w']), // [B, K]
    node('Gather', ['C_slope', 'table_row'], ['c_slope'], { axis: 0 }),
    node('Mul', ['c_slope', 'z_anchor'], ['c_terms']),
    node('ReduceSum', ['c_terms', 'attribute_axis'], ['c_anchor'], { keepdims: 1 }), // [B, 1]
    node('Gather', ['C_base', 'table_row'], ['c_base'], { axis: 0 }), // [B, 1]
    node('Add', ['c_base', 'c_anchor'], ['c']), // [B, 1]
    node('Gemm', ['w', 'Z_T', 'c'], ['gemm_scores']), // [B, N]
    node('ScatterND', ['gemm_scores', 'extra_index', 'extra_value'], ['all_scores'], {
      reduction: 'add',
    }),
    node('Min', ['k', 'num_entities'], ['k_clamped']), // [1]
    node('TopK', ['all_scores', 'k_clamped'], ['scores', 'indices'], {
      axis: 1,
      largest: 1,
      sorted: 1,
    }),
  ];
  const graph = onnx.GraphProto.create({
    name: shard ? 'tkg_nlsm_scorer_shard' : 'tkg_nlsm_scorer',
    docString:
      'NLSM next-step scorer: scores = (W_base + W_slope * z_anchor) Z^T + c, plus a sparse history term, then top-k.' +
      (shard ? ` Shard ${shard.index}: entities [${lo}, ${hi}), local ids.` : ''),
    node: nodes,
    initializer,
    input: [
      shard
        ? valueInfo(
            'z_anchor',
            DataType.FLOAT,
            ['B', K],
            "rows of the anchors (subject for direction 0, object for 1), from the anchor's shard",
          )
        : valueInfo(
            'anchor',
            DataType.INT64,
            ['B'],
            'subject id (direction 0) or object id (direction 1)',
          ),
      valueInfo('relation', DataType.INT64, ['B'], 'relation id'),
      valueInfo(
        'direction',
        DataType.INT64,
        ['B'],
        '0 = object query (s, r, ?), 1 = subject query (?, r, o)',
      ),
      valueInfo(
        'extra_index',
        DataType.INT64,
        ['M', 2],
        shard
          ? '(batch row, entity - lo) of each history term in this range; M may be 0'
          : '(batch row, entity) of each history term; M may be 0',
      ),
      valueInfo('extra_value', DataType.FLOAT, ['M'], 'value added to all_scores[row, entity]'),
      valueInfo('k', DataType.INT64, [1], 'top-k size; clamped to N'),
    ],
    output: [
      valueInfo(
        'indices',
        DataType.INT64,
        ['B', 'k_out'],
        shard ? 'top-k local ids (entity - lo), best first' : 'top-k entity ids, best first',
      ),
      valueInfo('scores', DataType.FLOAT, ['B', 'k_out'], 'top-k logits'),
      valueInfo('all_scores', DataType.FLOAT, ['B', n], 'logits of every entity (of the range)'),
    ],
  });
  const metadata: ScoringModelMetadata = {
    version: state.version,
    step: state.step,
    vocabularyHash: options.vocabularyHash,
    numEntities: N,
    numRelations: R,
    K,
    modelName: options.modelName ?? 'nlsm',
  };
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: PRODUCER_NAME,
    producerVersion: '1',
    modelVersion: state.version,
    docString: `tkg-stream ${metadata.modelName} scorer forecasting step ${state.step}`,
    graph,
    metadataProps: [
      ...Object.entries(metadata).map(([key, value]) => ({ key, value: String(value) })),
      ...(shard
        ? [
            { key: 'shardIndex', value: String(shard.index) },
            { key: 'shardMap', value: encodeShardMap(shard.map) },
          ]
        : []),
      ...(options.terms !== undefined ? [{ key: 'terms', value: options.terms }] : []),
      ...(options.calibration !== undefined
        ? [{ key: 'calibration', value: options.calibration }]
        : []),
    ],
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Read a scorer model's metadata; throws a RangeError naming the missing or malformed key. */
export function readScoringModelMetadata(bytes: Uint8Array): ScoringModelMetadata {
  return metadataOf(decodeModel(bytes));
}

/** The decoded ONNX model; throws a RangeError for bytes that are not one. */
function decodeModel(bytes: Uint8Array): OnnxModel {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new RangeError(`not an ONNX model (${bytes.length} bytes): ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** A decoded scorer model's metadata; throws a RangeError naming the missing or malformed key. */
function metadataOf(model: OnnxModel): ScoringModelMetadata {
  const props = new Map((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
  const integer = (key: string, min: number): number => {
    const value = Number(props.get(key));
    if (!props.has(key) || !Number.isSafeInteger(value) || value < min) {
      throw new RangeError(
        `ONNX model metadata ${key} must be an integer >= ${min}, got ${JSON.stringify(props.get(key))}`,
      );
    }
    return value;
  };
  const vocabularyHash = props.get('vocabularyHash');
  if (vocabularyHash === undefined)
    throw new RangeError(
      'ONNX model metadata vocabularyHash is missing (was it exported by tkg-stream?)',
    );
  return {
    version: integer('version', 0),
    step: integer('step', Number.MIN_SAFE_INTEGER),
    vocabularyHash,
    numEntities: integer('numEntities', 1),
    numRelations: integer('numRelations', 1),
    K: integer('K', 1),
    modelName: props.get('modelName') ?? 'nlsm',
    ...(props.has('terms') ? { terms: props.get('terms') } : {}),
    ...(props.has('calibration') ? { calibration: props.get('calibration') } : {}),
    ...(props.has('shardMap') ? { shard: readShard(props, integer('numEntities', 1)) } : {}),
  };
}

function readShard(props: Map<string, string>, numEntities: number): ScoringModelMetadata['shard'] {
  const map = decodeShardMap(props.get('shardMap') as string, numEntities);
  const index = Number(props.get('shardIndex'));
  shardRange(map, index); // throws naming the index when it is not one of the map's
  return { index, map };
}

/**
 * A scoring graph's metadata and, for a shard graph, the rows of Z it holds, from one decode of its bytes (see
 * shardRowsOf). Throws a RangeError naming what is malformed.
 */
export function readScoringGraph(
  bytes: Uint8Array,
  sharedRows = false,
): { metadata: ScoringModelMetadata; rows: Float32Array | undefined } {
  const model = decodeModel(bytes);
  const metadata = metadataOf(model);
  return { metadata, rows: metadata.shard ? shardRowsOf(model, sharedRows) : undefined };
}

/**
 * The rows of Z a shard graph holds ([hi - lo, K], row-major, entity lo first), read back from its Z_T: the anchor
 * rows the shard supplies to every shard's z_anchor input (`shared`: in a SharedArrayBuffer). Throws a RangeError
 * for a graph that is not a shard.
 */
function shardRowsOf(model: OnnxModel, shared: boolean): Float32Array {
  const zt = model.graph?.initializer?.find((t) => t.name === 'Z_T');
  if (!model.metadataProps?.some((p) => p.key === 'shardMap') || !zt?.rawData || !zt.dims)
    throw new RangeError(
      'not a shard graph (no shardMap metadata or no Z_T): export it with exportScoringShards',
    );
  const [K, n] = zt.dims.map(Number);
  const columns = littleEndianFloats(zt.rawData.subarray(0, K * n * 4));
  // shared: in a SharedArrayBuffer, so the threads of one process read the rows without a message
  const rows = shared
    ? new Float32Array(new SharedArrayBuffer(4 * n * K))
    : new Float32Array(n * K);
  for (let k = 0; k < K; k++) for (let e = 0; e < n; e++) rows[e * K + k] = columns[k * n + e];
  return rows;
}

const littleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** float32 values from little-endian bytes (an initializer's rawData), copied into their own buffer. */
function littleEndianFloats(raw: Uint8Array): Float32Array {
  const out = new Float32Array(raw.length / 4);
  if (littleEndianHost) new Uint8Array(out.buffer).set(raw);
  else {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  }
  return out;
}

/** A stable hash of an ordered vocabulary (entity names then relation names), for ExportOptions.vocabularyHash. */
export function vocabularyHash(entities: readonly string[], relations: readonly string[]): string {
  const hash = createHash('sha256');
  hash.update(`entities:${entities.length}\n`);
  for (const name of entities) hash.update(`${JSON.stringify(name)}\n`);
  hash.update(`relations:${relations.length}\n`);
  for (const name of relations) hash.update(`${JSON.stringify(name)}\n`);
  return hash.digest('hex').slice(0, 16);
}
