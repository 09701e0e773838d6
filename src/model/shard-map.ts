// The entity shard map of a model bundle (issue 17, item 3): S contiguous entity ranges [bounds[i], bounds[i + 1]),
// one per serving shard. A shard's scoring graph holds the rows of Z for its range only (src/model/scoring-graph.ts),
// so a replica's memory is about N / S of the unsharded graph's.
// Owns: building, validating and looking up shard maps, and cutting sorted entity lists (filters, terms) by range.
// Pure; must not import onnxruntime, Kafka, src/train or src/serve.

/** S + 1 increasing entity boundaries from 0 to N: shard i holds entities [bounds[i], bounds[i + 1]). */
export interface ShardMap {
  bounds: readonly number[];
}

/** The range of one shard. */
export interface ShardRange {
  index: number;
  /** First entity id of the shard. */
  lo: number;
  /** One past its last entity id. */
  hi: number;
}

/** S ranges of (almost) equal size over N entities; throws a RangeError naming the bad argument. */
export function evenShardMap(numEntities: number, shards: number): ShardMap {
  if (!Number.isInteger(numEntities) || numEntities < 1)
    throw new RangeError(`numEntities must be a positive integer, got ${numEntities}`);
  if (!Number.isInteger(shards) || shards < 1 || shards > numEntities)
    throw new RangeError(
      `shards must be an integer in [1, ${numEntities}] (one entity per shard at least), got ${shards}`,
    );
  const bounds = Array.from({ length: shards + 1 }, (_, i) =>
    Math.round((i * numEntities) / shards),
  );
  return { bounds };
}

/** Throws a RangeError naming the fault unless `map` covers [0, numEntities) with non-empty, increasing ranges. */
export function assertShardMap(map: ShardMap, numEntities: number): void {
  const { bounds } = map;
  if (!Array.isArray(bounds) || bounds.length < 2)
    throw new RangeError(
      `shard map bounds must list S + 1 >= 2 entity boundaries, got ${JSON.stringify(bounds)}`,
    );
  if (bounds[0] !== 0 || bounds[bounds.length - 1] !== numEntities)
    throw new RangeError(
      `shard map bounds must run from 0 to N = ${numEntities}, got ${bounds[0]} .. ${bounds[bounds.length - 1]}`,
    );
  for (let i = 1; i < bounds.length; i++)
    if (!Number.isInteger(bounds[i]) || bounds[i] <= bounds[i - 1])
      throw new RangeError(
        `shard map bounds must be increasing integers (every shard non-empty); bounds[${i}] = ${bounds[i]} after ${bounds[i - 1]}`,
      );
}

export function shardCount(map: ShardMap): number {
  return map.bounds.length - 1;
}

export function shardRange(map: ShardMap, index: number): ShardRange {
  if (!Number.isInteger(index) || index < 0 || index >= shardCount(map))
    throw new RangeError(`shard index must be in [0, ${shardCount(map)}), got ${index}`);
  return { index, lo: map.bounds[index], hi: map.bounds[index + 1] };
}

/** The shard holding `entity` (binary search over the bounds); -1 outside [0, N). */
export function shardOf(map: ShardMap, entity: number): number {
  const { bounds } = map;
  if (entity < bounds[0] || entity >= bounds[bounds.length - 1]) return -1;
  let lo = 0;
  let hi = bounds.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (bounds[mid] <= entity) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** First index i of a sorted array with sorted[i] >= value. */
export function lowerBound(sorted: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The part of a sorted entity list inside [lo, hi), as a view (no copy); undefined stays undefined. */
export function sliceSorted(
  sorted: Int32Array | undefined,
  lo: number,
  hi: number,
): Int32Array | undefined {
  if (sorted === undefined) return undefined;
  return sorted.subarray(lowerBound(sorted, lo), lowerBound(sorted, hi));
}

export function encodeShardMap(map: ShardMap): string {
  return JSON.stringify({ bounds: map.bounds });
}

/** Parse a shard map written by encodeShardMap; throws a RangeError naming the fault. */
export function decodeShardMap(json: string, numEntities: number): ShardMap {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new RangeError(`shard map is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const bounds = (parsed as { bounds?: unknown })?.bounds;
  if (!Array.isArray(bounds) || !bounds.every((b) => typeof b === 'number'))
    throw new RangeError(`shard map needs "bounds": an array of entity ids, got ${json}`);
  const map = { bounds: bounds as number[] };
  assertShardMap(map, numEntities);
  return map;
}
