// Ranking maths of SPEC section 2. Owns: rank of the true answer with averaged ties, the three
// filter modes (raw, static, time-aware) as answer sets keyed by (anchor, relation), and MRR /
// Hits@k summaries. Pure functions over typed arrays; must not import kafkajs, src/kafka,
// src/train or tfjs (src/serve imports this file, so it stays dependency-free).
import type { Direction, FilterMode } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';

/** Rank of the true answer under each filter mode. Ranks are 1-based and may be half-integers (ties). */
export interface FilteredRanks {
  raw: number;
  static: number;
  timeAware: number;
}

/** MRR and Hits@k in percent, over `count` queries. */
export interface RankMetrics {
  mrr: number;
  hits1: number;
  hits3: number;
  hits10: number;
  count: number;
}

/**
 * True answers per (anchor, relation), one map per direction:
 * `object` maps key(s, r) to the sorted distinct objects o with (s, r, o) true;
 * `subject` maps key(o, r) to the sorted distinct subjects s with (s, r, o) true.
 */
export interface AnswerFilter {
  numRelations: number;
  object: Map<number, Int32Array>;
  subject: Map<number, Int32Array>;
}

/** Key of an (anchor, relation) pair in an AnswerFilter: anchor * R + relation (exact below 2^53). */
export function filterKey(anchor: number, relation: number, numRelations: number): number {
  return anchor * numRelations + relation;
}

/**
 * Builds the answer sets from flat triple arrays ([s0, r0, o0, s1, ...], e.g. Snapshot.triples).
 * Static filter: pass every split's triples of every step. Time-aware filter: pass one step's triples.
 */
export function buildAnswerFilter(
  tripleArrays: readonly Int32Array[],
  numRelations: number,
): AnswerFilter {
  if (!Number.isInteger(numRelations) || numRelations < 1) {
    throw new InvalidInputError(
      'numRelations',
      `must be a positive integer, got ${numRelations}`,
      'invalid_argument',
    );
  }
  const objects = new Map<number, Set<number>>();
  const subjects = new Map<number, Set<number>>();
  const add = (map: Map<number, Set<number>>, key: number, value: number): void => {
    let set = map.get(key);
    if (set === undefined) map.set(key, (set = new Set<number>()));
    set.add(value);
  };
  for (const triples of tripleArrays) {
    if (triples.length % 3 !== 0) {
      throw new InvalidInputError(
        'triples',
        `length ${triples.length} is not a multiple of 3; pass flat [s, r, o, ...]`,
        'invalid_argument',
      );
    }
    for (let i = 0; i < triples.length; i += 3) {
      const s = triples[i];
      const r = triples[i + 1];
      const o = triples[i + 2];
      if (r < 0 || r >= numRelations) {
        throw new InvalidInputError(
          'relation',
          `id ${r} outside [0, ${numRelations}); pass the dataset's relation count`,
          'invalid_argument',
        );
      }
      add(objects, filterKey(s, r, numRelations), o);
      add(subjects, filterKey(o, r, numRelations), s);
    }
  }
  const freeze = (map: Map<number, Set<number>>): Map<number, Int32Array> => {
    const out = new Map<number, Int32Array>();
    for (const [key, set] of map) out.set(key, Int32Array.from(set).sort());
    return out;
  };
  return { numRelations, object: freeze(objects), subject: freeze(subjects) };
}

/** Entities that are true answers of (anchor, relation, ?) [object] or (?, relation, anchor) [subject]. */
export function trueAnswers(
  filter: AnswerFilter,
  direction: Direction,
  anchor: number,
  relation: number,
): Int32Array | undefined {
  const map = direction === 'object' ? filter.object : filter.subject;
  return map.get(filterKey(anchor, relation, filter.numRelations));
}

/** NaN scores count as the worst possible score (never an optimistic rank). */
function sanitize(score: number): number {
  return Number.isNaN(score) ? -Infinity : score;
}

/**
 * Counts entities scoring strictly better than, and equal to, the target in one dense score row
 * scores[offset .. offset + numEntities). The target itself is not counted as equal.
 */
export function countBetterEqual(
  scores: Float32Array,
  offset: number,
  numEntities: number,
  target: number,
): { better: number; equal: number } {
  if (target < 0 || target >= numEntities) {
    throw new InvalidInputError(
      'target',
      `entity ${target} outside [0, ${numEntities})`,
      'invalid_argument',
    );
  }
  if (offset < 0 || offset + numEntities > scores.length) {
    throw new InvalidInputError(
      'offset',
      `row [${offset}, ${offset + numEntities}) outside scores of length ${scores.length}`,
      'invalid_argument',
    );
  }
  const targetScore = sanitize(scores[offset + target]);
  let better = 0;
  let equal = 0;
  const end = offset + numEntities;
  if (Number.isFinite(targetScore)) {
    for (let i = offset; i < end; i++) {
      const s = scores[i]; // NaN compares false on both tests: counted as worse, consistent with sanitize
      if (s > targetScore) better++;
      else if (s === targetScore) equal++;
    }
  } else {
    for (let i = offset; i < end; i++) {
      const s = sanitize(scores[i]);
      if (s > targetScore) better++;
      else if (s === targetScore) equal++;
    }
  }
  return { better, equal: equal - 1 };
}

/** rank = 1 + #better + #equal-others / 2 (SPEC section 2: never the optimistic rank). */
export function tieAveragedRank(better: number, equalOthers: number): number {
  if (!(better >= 0 && equalOthers >= 0))
    throw new RangeError(
      `rank counts better=${better}, equal=${equalOthers} are negative: an excluded entity was removed twice or was never counted`,
    );
  return 1 + better + equalOthers / 2;
}

/**
 * Removes the filtered entities (other than the target) from better/equal counts.
 * `excluded` lists entities to remove (e.g. other true answers); the target is skipped if present.
 */
export function filterCounts(
  scores: Float32Array,
  offset: number,
  numEntities: number,
  target: number,
  counts: { better: number; equal: number },
  excluded: Int32Array | undefined,
): { better: number; equal: number } {
  if (excluded === undefined || excluded.length === 0) return counts;
  const targetScore = sanitize(scores[offset + target]);
  let { better, equal } = counts;
  for (let i = 0; i < excluded.length; i++) {
    const e = excluded[i];
    // Entities outside the row (ids the scoring model does not have, e.g. newer than its vocabulary) were never
    // counted: removing them would push the rank below 1 (and MRR to infinity).
    if (e === target || e < 0 || e >= numEntities) continue;
    const s = sanitize(scores[offset + e]);
    if (s > targetScore) better--;
    else if (s === targetScore) equal--;
  }
  return { better, equal };
}

/** Rank of `target` in one dense score row, optionally filtering out `excluded` entities. */
export function rankOfTarget(
  scores: Float32Array,
  offset: number,
  numEntities: number,
  target: number,
  excluded?: Int32Array,
): number {
  const counts = filterCounts(
    scores,
    offset,
    numEntities,
    target,
    countBetterEqual(scores, offset, numEntities, target),
    excluded,
  );
  return tieAveragedRank(counts.better, counts.equal);
}

/** Raw, static-filtered and time-aware-filtered ranks from ONE pass over the row. */
export function filteredRanks(
  scores: Float32Array,
  offset: number,
  numEntities: number,
  target: number,
  staticExcluded: Int32Array | undefined,
  timeAwareExcluded: Int32Array | undefined,
): FilteredRanks {
  const raw = countBetterEqual(scores, offset, numEntities, target);
  const st = filterCounts(scores, offset, numEntities, target, raw, staticExcluded);
  const ta = filterCounts(scores, offset, numEntities, target, raw, timeAwareExcluded);
  return ranksOfCounts({ raw, static: st, timeAware: ta });
}

/** Better / equal-other counts of a target under each filter mode (what a rank is made of). */
export type FilteredCounts = Record<FilterMode, { better: number; equal: number }>;

/** rank = 1 + #better + #equal-others / 2 under each mode. */
export function ranksOfCounts(counts: FilteredCounts): FilteredRanks {
  return {
    raw: tieAveragedRank(counts.raw.better, counts.raw.equal),
    static: tieAveragedRank(counts.static.better, counts.static.equal),
    timeAware: tieAveragedRank(counts.timeAware.better, counts.timeAware.equal),
  };
}

/**
 * The counts of filteredRanks over one slice of the entities (an entity shard): scores[offset .. offset + width)
 * are the scores of entities lo .. lo + width - 1, `targetScore` is the target's score (from its own shard). The
 * target is not counted; excluded entities of the slice are removed. Summed over slices covering [0, N), the
 * counts are filteredRanks' exactly (test/serve/sharded-scorer.test.ts).
 */
export function sliceFilteredCounts(
  scores: Float32Array,
  offset: number,
  width: number,
  lo: number,
  target: number,
  targetScore: number,
  staticExcluded: Int32Array | undefined,
  timeAwareExcluded: Int32Array | undefined,
): FilteredCounts {
  const t = sanitize(targetScore);
  const count = (s: number, into: { better: number; equal: number }, by: number): void => {
    if (s > t) into.better += by;
    else if (s === t) into.equal += by;
  };
  const raw = { better: 0, equal: 0 };
  for (let i = offset; i < offset + width; i++) count(sanitize(scores[i]), raw, 1);
  if (target >= lo && target < lo + width) raw.equal -= 1; // the target itself
  const filtered = (excluded: Int32Array | undefined): { better: number; equal: number } => {
    const out = { ...raw };
    for (const e of excluded ?? []) {
      if (e === target || e < lo || e >= lo + width) continue; // another slice's, or the target
      count(sanitize(scores[offset + e - lo]), out, -1);
    }
    return out;
  };
  return { raw, static: filtered(staticExcluded), timeAware: filtered(timeAwareExcluded) };
}

/** Sum of per-slice counts (sliceFilteredCounts over disjoint slices). */
export function addFilteredCounts(parts: readonly FilteredCounts[]): FilteredCounts {
  const sum = (mode: FilterMode) => ({
    better: parts.reduce((acc, p) => acc + p[mode].better, 0),
    equal: parts.reduce((acc, p) => acc + p[mode].equal, 0),
  });
  return { raw: sum('raw'), static: sum('static'), timeAware: sum('timeAware') };
}

/**
 * Rank of `target` when only `entities` carry explicit scores and every other entity scores
 * `defaultScore` (a sparse row, e.g. the recurrency baseline: unseen candidates score 0).
 * `entities` must be distinct. O(nnz + |excluded| log nnz) instead of O(N).
 */
export function sparseFilteredRanks(
  entities: Int32Array,
  values: Float32Array | Float64Array,
  count: number,
  numEntities: number,
  target: number,
  defaultScore: number,
  staticExcluded: Int32Array | undefined,
  timeAwareExcluded: Int32Array | undefined,
  lookup: Map<number, number>,
): FilteredRanks {
  // lookup: entity -> index into values (caller-owned scratch, rebuilt here for this row)
  lookup.clear();
  for (let i = 0; i < count; i++) lookup.set(entities[i], i);
  const scoreOf = (e: number): number => {
    const i = lookup.get(e);
    return i === undefined ? defaultScore : sanitize(values[i]);
  };
  const targetScore = scoreOf(target);
  let better = 0;
  let equal = 0;
  for (let i = 0; i < count; i++) {
    const s = sanitize(values[i]);
    if (s > targetScore) better++;
    else if (s === targetScore) equal++;
  }
  const implicit = numEntities - count;
  if (defaultScore > targetScore) better += implicit;
  else if (defaultScore === targetScore) equal += implicit;
  equal -= 1; // the target itself
  const adjust = (excluded: Int32Array | undefined): { better: number; equal: number } => {
    let b = better;
    let q = equal;
    if (excluded !== undefined) {
      for (let i = 0; i < excluded.length; i++) {
        const e = excluded[i];
        if (e === target || e < 0 || e >= numEntities) continue; // outside the row: never counted
        const s = scoreOf(e);
        if (s > targetScore) b--;
        else if (s === targetScore) q--;
      }
    }
    return { better: b, equal: q };
  };
  const st = adjust(staticExcluded);
  const ta = adjust(timeAwareExcluded);
  return {
    raw: tieAveragedRank(better, equal),
    static: tieAveragedRank(st.better, st.equal),
    timeAware: tieAveragedRank(ta.better, ta.equal),
  };
}

/** MRR and Hits@1/3/10 in percent. A (half-integer) rank counts as a hit at k when rank <= k. */
export function summarizeRanks(ranks: ArrayLike<number>): RankMetrics {
  const n = ranks.length;
  if (n === 0) return { mrr: 0, hits1: 0, hits3: 0, hits10: 0, count: 0 };
  let rr = 0;
  let h1 = 0;
  let h3 = 0;
  let h10 = 0;
  for (let i = 0; i < n; i++) {
    const r = ranks[i];
    rr += 1 / r;
    if (r <= 1) h1++;
    if (r <= 3) h3++;
    if (r <= 10) h10++;
  }
  return {
    mrr: (100 * rr) / n,
    hits1: (100 * h1) / n,
    hits3: (100 * h3) / n,
    hits10: (100 * h10) / n,
    count: n,
  };
}

/** Mean of per-direction metrics (SPEC: "each direction and their mean"); count is the total. */
export function averageMetrics(parts: readonly RankMetrics[]): RankMetrics {
  if (parts.length === 0) return { mrr: 0, hits1: 0, hits3: 0, hits10: 0, count: 0 };
  const mean = (f: (m: RankMetrics) => number): number =>
    parts.reduce((acc, m) => acc + f(m), 0) / parts.length;
  return {
    mrr: mean((m) => m.mrr),
    hits1: mean((m) => m.hits1),
    hits3: mean((m) => m.hits3),
    hits10: mean((m) => m.hits10),
    count: parts.reduce((acc, m) => acc + m.count, 0),
  };
}

/**
 * Collects ranks per (direction, filter mode) as they are produced, and summarises them.
 * (A growable buffer, the only state in this file.)
 */
export class RankCollector {
  private readonly ranks: Record<Direction, Record<FilterMode, number[]>> = {
    object: { raw: [], static: [], timeAware: [] },
    subject: { raw: [], static: [], timeAware: [] },
  };

  add(direction: Direction, ranks: FilteredRanks): void {
    const bucket = this.ranks[direction];
    bucket.raw.push(ranks.raw);
    bucket.static.push(ranks.static);
    bucket.timeAware.push(ranks.timeAware);
  }

  ranksOf(direction: Direction, mode: FilterMode): readonly number[] {
    return this.ranks[direction][mode];
  }

  /** Per-direction metrics and their mean, for each filter mode. */
  summary(): RankingSummary {
    const modes: FilterMode[] = ['raw', 'static', 'timeAware'];
    const perDirection = {
      object: {} as Record<FilterMode, RankMetrics>,
      subject: {} as Record<FilterMode, RankMetrics>,
    };
    const mean = {} as Record<FilterMode, RankMetrics>;
    for (const mode of modes) {
      perDirection.object[mode] = summarizeRanks(this.ranks.object[mode]);
      perDirection.subject[mode] = summarizeRanks(this.ranks.subject[mode]);
      mean[mode] = averageMetrics([perDirection.object[mode], perDirection.subject[mode]]);
    }
    return { raw: mean.raw, static: mean.static, timeAware: mean.timeAware, perDirection };
  }
}

/** TKG ranking result: direction-averaged metrics per filter mode, plus per-direction detail. */
export interface RankingSummary {
  raw: RankMetrics;
  static: RankMetrics;
  timeAware: RankMetrics;
  perDirection: Record<Direction, Record<FilterMode, RankMetrics>>;
}
