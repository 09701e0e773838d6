// The rule ranker's query sets as bytes, for the live rule model's checkpoint (src/train/live/rules.ts keeps the
// last steps' fitting queries: their base logits came from the model that forecast each step, which a restart
// cannot recompute). Owns: that byte form (the TKGW container of src/core/durable.ts, every array as an Int32 block).
// Must not know when or where sets are written.
import { CorruptCheckpointError, decodeContainer, encodeContainer } from '../../core/durable.ts';
import type { RankQuerySet } from './ranker.ts';

const FORMAT = 'tkg-rank-query-set';
const INT_FIELDS = ['offsets', 'answer', 'exactCount', 'rest', 'baseCandidates'] as const;
const FLOAT_FIELDS = ['base', 'features', 'sampleWeight', 'baseFloor', 'baseRank'] as const;

const asInt32 = (a: Float32Array): Int32Array =>
  new Int32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

/** Pure: a query set as a TKGW container (header: format, F, hasBase; blocks: every array). */
export function encodeRankQuerySet(set: RankQuerySet): Uint8Array {
  return encodeContainer({ format: FORMAT, F: set.F, hasBase: set.hasBase }, [
    ...INT_FIELDS.map((name) => set[name]),
    ...FLOAT_FIELDS.map((name) => asInt32(set[name])),
    Int32Array.from(set.excludeMask),
  ]);
}

/** Pure: the inverse of encodeRankQuerySet; a foreign or damaged buffer is a CorruptCheckpointError naming `source`. */
export function decodeRankQuerySet(bytes: Uint8Array, source = '<bytes>'): RankQuerySet {
  const { header, blocks } = decodeContainer(bytes, source);
  if (header.format !== FORMAT || typeof header.F !== 'number')
    throw new CorruptCheckpointError(source, `format ${String(header.format)}, expected ${FORMAT}`);
  if (blocks.length !== INT_FIELDS.length + FLOAT_FIELDS.length + 1)
    throw new CorruptCheckpointError(source, `${blocks.length} blocks`);
  const out: Record<string, unknown> = { F: header.F, hasBase: header.hasBase === true };
  INT_FIELDS.forEach((name, i) => (out[name] = blocks[i]));
  FLOAT_FIELDS.forEach(
    (name, i) => (out[name] = new Float32Array(blocks[INT_FIELDS.length + i].buffer)),
  );
  out.excludeMask = Uint8Array.from(blocks[blocks.length - 1]);
  return out as unknown as RankQuerySet;
}
