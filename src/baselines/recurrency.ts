// The recurrency reference model (after Gastinger et al., IJCAI 2024, "History repeats itself"):
// score(s, r, o, t) = strict + alpha * relaxed, where strict = sum over past occurrences of
// (s, r, o) of decay^(t - t_i) and relaxed = the normalised decayed frequency of (., r, o)
// (subject queries: of (s, r, .)). Owns: the TkgForecaster, exact sparse ranking of its scores,
// and the automatic choice of decay and alpha on a validation split (never the test split).
// Must not import kafkajs, src/kafka, src/train, src/serve or tfjs.
import type { Direction, Snapshot, TkgForecaster } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import { buildAnswerFilter, trueAnswers, tieAveragedRank } from '../eval/rank.ts';
import type { TkgProtocol } from '../eval/protocols.ts';
import { HistoryIndex, type RelaxedDistribution } from '../model/history-index.ts';

export interface RecurrencyParams {
  decay: number; // lambda in (0, 1]
  alpha: number; // weight of the relaxed term, >= 0
}

/** Global parameters plus (optionally different) parameters per relation. */
export interface RecurrencyModelParams {
  global: RecurrencyParams;
  /** perRelation[r]; equal to `global` for relations without enough validation queries. */
  perRelation: RecurrencyParams[];
}

export const defaultDecayGrid: readonly number[] = [
  1, 0.99, 0.95, 0.9, 0.8, 0.6, 0.4, 0.2, 0.1, 0.03,
];
export const defaultAlphaGrid: readonly number[] = [0, 1e-4, 1e-3, 0.01, 0.03, 0.1, 0.3, 1, 3];

/** fround(alpha * relaxed) per entity of a distribution, descending (the relaxed-only scores). */
function scaledRelaxed(dist: RelaxedDistribution, alpha: number): Float32Array {
  const out = new Float32Array(dist.values.length);
  for (let i = 0; i < out.length; i++) out[i] = alpha * dist.values[i];
  return out;
}

/** Number of values strictly greater than x / equal to x in a descending array. */
function countAboveEqual(desc: Float32Array, x: number): { above: number; equal: number } {
  let lo = 0;
  let hi = desc.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (desc[mid] > x) lo = mid + 1;
    else hi = mid;
  }
  const above = lo;
  hi = desc.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (desc[mid] >= x) lo = mid + 1;
    else hi = mid;
  }
  return { above, equal: lo - above };
}

/**
 * Exact tie-averaged rank of `target` under score(e) = fround(strict(e) + alpha * relaxed(e))
 * (unseen entities score 0), in O(|strict| + |excluded| + log M), never materialising the N-row.
 * Equals rankOfTarget() on the dense row that RecurrencyForecaster.score() returns.
 */
export function recurrencyRank(
  index: HistoryIndex,
  dist: RelaxedDistribution,
  scaled: Float32Array,
  alpha: number,
  step: number,
  direction: Direction,
  anchor: number,
  relation: number,
  target: number,
  numEntities: number,
  excluded: Int32Array | undefined,
): number {
  const scoreOf = (e: number): number =>
    Math.fround(
      index.strictValue(step, direction, anchor, relation, e) + alpha * (dist.valueOf.get(e) ?? 0),
    );
  const targetScore = scoreOf(target);
  let { above: better, equal } = countAboveEqual(scaled, targetScore);
  let unseen = numEntities - dist.entities.length;
  index.forEachStrict(step, direction, anchor, relation, (e, strictValue) => {
    const relaxedValue = dist.valueOf.get(e);
    if (relaxedValue === undefined) {
      unseen--;
    } else {
      const relaxedOnly = Math.fround(alpha * relaxedValue); // remove its relaxed-only count
      if (relaxedOnly > targetScore) better--;
      else if (relaxedOnly === targetScore) equal--;
    }
    const combined = Math.fround(strictValue + alpha * (relaxedValue ?? 0));
    if (combined > targetScore) better++;
    else if (combined === targetScore) equal++;
  });
  if (0 > targetScore) better += unseen;
  else if (targetScore === 0) equal += unseen;
  equal -= 1; // the target itself
  if (excluded !== undefined) {
    for (let i = 0; i < excluded.length; i++) {
      const e = excluded[i];
      if (e === target) continue;
      const s = scoreOf(e);
      if (s > targetScore) better--;
      else if (s === targetScore) equal--;
    }
  }
  return tieAveragedRank(better, equal);
}

/** The recurrency baseline as a TkgForecaster (training-free; observe() updates the history). */
export class RecurrencyForecaster implements TkgForecaster {
  readonly name = 'recurrency';
  readonly params: RecurrencyModelParams;
  private readonly indexes = new Map<number, HistoryIndex>(); // one per distinct decay

  constructor(params: RecurrencyModelParams, numRelations: number) {
    if (params.perRelation.length !== numRelations) {
      throw new InvalidInputError(
        'perRelation',
        `has ${params.perRelation.length} entries, expected one per relation (${numRelations})`,
        'invalid_argument',
      );
    }
    this.params = params;
    for (const p of [params.global, ...params.perRelation]) {
      if (!this.indexes.has(p.decay))
        this.indexes.set(p.decay, new HistoryIndex({ numRelations, decay: p.decay }));
    }
  }

  /** The history index used for relation r (exposed for nlsm-h and the server). */
  indexFor(relation: number): HistoryIndex {
    return this.indexes.get(this.params.perRelation[relation].decay)!;
  }

  async observe(snapshot: Snapshot): Promise<void> {
    for (const index of this.indexes.values()) index.observe(snapshot);
  }

  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    const B = anchors.length;
    const out = new Float32Array(B * numEntities); // [B, N]
    for (let b = 0; b < B; b++) {
      const r = relations[b];
      const { alpha } = this.params.perRelation[r];
      const index = this.indexFor(r);
      const dist = index.relaxedDistribution(direction, r);
      const offset = b * numEntities;
      for (let i = 0; i < dist.entities.length; i++)
        out[offset + dist.entities[i]] = alpha * dist.values[i];
      index.forEachStrict(step, direction, anchors[b], r, (e, strictValue) => {
        out[offset + e] = strictValue + alpha * (dist.valueOf.get(e) ?? 0);
      });
    }
    return out;
  }
}

export interface RecurrencySelection {
  params: RecurrencyModelParams;
  /** Validation time-aware MRR (%) of the chosen global parameters and of the per-relation choice. */
  validationMrr: { global: number; perRelation: number };
  /** Validation time-aware MRR (%) of every grid point (global parameters). */
  grid: Array<{ decay: number; alpha: number; mrr: number }>;
  queries: number;
  seconds: number;
}

/**
 * Chooses decay and alpha on a validation split: observe `history`, then rank every validation fact
 * (both directions) under the given protocol (multi-step: validation steps are not observed;
 * single-step: each is observed after it is scored), for every grid point, by time-aware-filtered
 * MRR (it needs only the validation step's own facts, so no test fact is ever consulted).
 * Per relation: the best grid point of that relation if it has >= minRelationQueries queries.
 */
export function selectRecurrencyParams(input: {
  history: readonly Snapshot[];
  validation: readonly Snapshot[];
  protocol: TkgProtocol;
  numEntities: number;
  numRelations: number;
  perRelation?: boolean;
  decayGrid?: readonly number[];
  alphaGrid?: readonly number[];
  minRelationQueries?: number;
  /** Called after each decay of the grid (done of total), e.g. for a progress line with an ETA. */
  onProgress?: (done: number, total: number, elapsedSeconds: number) => void;
}): RecurrencySelection {
  const t0 = performance.now();
  const decays = input.decayGrid ?? defaultDecayGrid;
  const alphas = input.alphaGrid ?? defaultAlphaGrid;
  const R = input.numRelations;
  const N = input.numEntities;
  if (input.validation.length === 0) {
    throw new InvalidInputError(
      'validation',
      'no validation snapshots: parameters cannot be selected',
      'invalid_argument',
    );
  }
  // reciprocal-rank sums [decay][alpha][relation] and query counts per relation
  const sums = decays.map(() => alphas.map(() => new Float64Array(R)));
  const counts = new Float64Array(R);
  for (let di = 0; di < decays.length; di++) {
    const index = new HistoryIndex({ numRelations: R, decay: decays[di] });
    for (const snapshot of input.history) index.observe(snapshot);
    for (const target of input.validation) {
      const timeAware = buildAnswerFilter([target.triples], R);
      const scaledCache = new Map<string, Float32Array>();
      for (const direction of ['object', 'subject'] as Direction[]) {
        for (let i = 0; i < target.triples.length; i += 3) {
          const s = target.triples[i];
          const r = target.triples[i + 1];
          const o = target.triples[i + 2];
          const anchor = direction === 'object' ? s : o;
          const answer = direction === 'object' ? o : s;
          if (di === 0) counts[r]++;
          const dist = index.relaxedDistribution(direction, r);
          const excluded = trueAnswers(timeAware, direction, anchor, r);
          for (let ai = 0; ai < alphas.length; ai++) {
            const cacheKey = `${direction}:${r}:${ai}`;
            let scaled = scaledCache.get(cacheKey);
            if (scaled === undefined)
              scaledCache.set(cacheKey, (scaled = scaledRelaxed(dist, alphas[ai])));
            const rank = recurrencyRank(
              index,
              dist,
              scaled,
              alphas[ai],
              target.step,
              direction,
              anchor,
              r,
              answer,
              N,
              excluded,
            );
            sums[di][ai][r] += 1 / rank;
          }
        }
      }
      if (input.protocol === 'single-step') index.observe(target);
    }
    input.onProgress?.(di + 1, decays.length, (performance.now() - t0) / 1000);
  }
  const total = counts.reduce((a, b) => a + b, 0);
  const grid: RecurrencySelection['grid'] = [];
  let best = { di: 0, ai: 0, mrr: -1 };
  for (let di = 0; di < decays.length; di++) {
    for (let ai = 0; ai < alphas.length; ai++) {
      const mrr = (100 * sums[di][ai].reduce((a, b) => a + b, 0)) / total;
      grid.push({ decay: decays[di], alpha: alphas[ai], mrr });
      if (mrr > best.mrr) best = { di, ai, mrr };
    }
  }
  const global: RecurrencyParams = { decay: decays[best.di], alpha: alphas[best.ai] };
  const minQueries = input.minRelationQueries ?? 200;
  const perRelation: RecurrencyParams[] = [];
  let perRelationSum = 0;
  for (let r = 0; r < R; r++) {
    let choice = { di: best.di, ai: best.ai };
    if (input.perRelation && counts[r] >= minQueries) {
      let bestValue = sums[best.di][best.ai][r];
      for (let di = 0; di < decays.length; di++) {
        for (let ai = 0; ai < alphas.length; ai++) {
          if (sums[di][ai][r] > bestValue) {
            bestValue = sums[di][ai][r];
            choice = { di, ai };
          }
        }
      }
    }
    perRelation.push({ decay: decays[choice.di], alpha: alphas[choice.ai] });
    perRelationSum += sums[choice.di][choice.ai][r];
  }
  return {
    params: { global, perRelation },
    validationMrr: { global: best.mrr, perRelation: (100 * perRelationSum) / total },
    grid,
    queries: total,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Fixed parameters for every relation (no selection). */
export function uniformRecurrencyParams(
  params: RecurrencyParams,
  numRelations: number,
): RecurrencyModelParams {
  return {
    global: params,
    perRelation: Array.from({ length: numRelations }, () => ({ ...params })),
  };
}
