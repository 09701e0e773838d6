// nlsm-h's fitting queries (issue 8 item 2): per query its candidates (history candidates + the base model's top-M +
// the true answer), their base logits and history features, and which candidates the time-aware / static filters
// exclude. Owns: the query-set layout, its builder and concatenation. Pure; must not import tfjs or Kafka.
import { mulberry32 } from '../../core/random.ts';
import { F } from '../../model/hybrid-features.ts';

/** D = 1 + F local parameters per query: beta (scale of the base logit) and the F history weights. */
export const D = 1 + F;

/** Filter modes of the selection MRR (as the evaluation reports them). */
export type SelectionMode = 'raw' | 'static' | 'timeAware';
export const SELECTION_MODES: readonly SelectionMode[] = ['raw', 'static', 'timeAware'];

/** excludeMask bits: the candidate is another true answer of the query's own step / a known fact of the query. */
export const EXCLUDED_TIME_AWARE = 1;
export const EXCLUDED_STATIC = 2;
export const modeBit: Record<SelectionMode, number> = {
  raw: 0,
  static: EXCLUDED_STATIC,
  timeAware: EXCLUDED_TIME_AWARE,
};

/**
 * Candidates of many queries, CSR layout. Candidate c of query q is offsets[q] <= c < offsets[q + 1]; the first
 * exactCount[q] are exact (history candidates, the base top-M, the answer, the filtered entities), the rest a uniform
 * sample (with replacement) of the other entities, each standing for sampleWeight[q] entities in the softmax's
 * normaliser (an unbiased estimate of the sum over all N: without it the top-M negatives would teach the fit that a
 * high base logit means a wrong answer). Filtered entities (other true answers of the step, known facts) are exact
 * candidates flagged in excludeMask, so one set ranks the answer in every filter mode; the fit skips the
 * time-aware-filtered ones (other true answers are not wrong).
 */
export interface QuerySet {
  numRelations: number; // R
  slot: Int32Array; // [Q] direction * R + relation
  offsets: Int32Array; // [Q + 1]
  base: Float32Array; // [C] base logit of each candidate
  features: Float32Array; // [C * F] history features (0 without history)
  answer: Int32Array; // [Q] absolute candidate index of the true answer
  /** Base logits of non-candidates are <= this (the M-th best base logit among non-excluded entities). */
  baseFloor: Float32Array; // [Q]
  /** Base top-M candidates of the query (they are the M best by base logit). */
  baseCandidates: Int32Array; // [Q]
  /** Tie-averaged rank of the answer by base logit alone among all N (time-aware filtered). */
  baseRank: Float32Array; // [Q]
  exactCount: Int32Array; // [Q]
  sampleWeight: Float32Array; // [Q]
  /** EXCLUDED_TIME_AWARE | EXCLUDED_STATIC per candidate (0: ranked in every mode). */
  excludeMask: Uint8Array; // [C]
}

export function querySetSize(set: QuerySet): number {
  return set.slot.length;
}

/** Accumulates queries into a QuerySet. */
export class QuerySetBuilder {
  private readonly slot: number[] = [];
  private readonly offsets: number[] = [0];
  private base: number[] = [];
  private features: number[] = [];
  private excludeMask: number[] = [];
  private readonly answer: number[] = [];
  private readonly baseFloor: number[] = [];
  private readonly baseCandidates: number[] = [];
  private readonly baseRank: number[] = [];
  private readonly exactCount: number[] = [];
  private readonly sampleWeight: number[] = [];
  private readonly random: () => number;

  constructor(
    readonly numRelations: number,
    readonly topM: number,
    readonly samples = 64,
    seed = 1,
  ) {
    this.random = mulberry32(seed);
  }

  get queries(): number {
    return this.slot.length;
  }

  /**
   * Adds one query. `row` holds the base logits of all N entities; `history` its history candidates; `excluded`
   * other true answers of the same step (time-aware filter), `staticExcluded` the known facts' answers of the query
   * (static filter; sorted or not; the answer itself is ignored in both).
   */
  add(query: {
    slot: number;
    row: Float32Array; // [N]
    answer: number;
    history: { entities: Int32Array; features: Float32Array };
    excluded?: Int32Array;
    staticExcluded?: Int32Array;
  }): void {
    const { row, answer, history } = query;
    const N = row.length;
    // flags: EXCLUDED_TIME_AWARE implies EXCLUDED_STATIC (a fact true at the step is a known fact)
    const flags = new Map<number, number>();
    if (query.staticExcluded)
      for (const e of query.staticExcluded) if (e !== answer) flags.set(e, EXCLUDED_STATIC);
    if (query.excluded)
      for (const e of query.excluded)
        if (e !== answer) flags.set(e, EXCLUDED_STATIC | EXCLUDED_TIME_AWARE);
    // base top-M by a bounded min-heap over the row (flagged entities are exact candidates anyway)
    const M = Math.min(this.topM, N - flags.size);
    const heap = new Int32Array(Math.max(0, M));
    let size = 0;
    const less = (a: number, b: number): boolean => row[a] < row[b] || (row[a] === row[b] && a > b);
    const siftDown = (i: number): void => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < size && less(heap[l], heap[m])) m = l;
        if (r < size && less(heap[r], heap[m])) m = r;
        if (m === i) return;
        const t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
      }
    };
    const answerScore = row[answer];
    let better = 0;
    let equal = 0;
    for (let e = 0; e < N; e++) {
      if (flags.size > 0 && flags.has(e)) continue;
      const s = row[e];
      if (e !== answer) {
        if (s > answerScore) better++;
        else if (s === answerScore) equal++;
      }
      if (M <= 0) continue;
      if (size < M) {
        heap[size] = e;
        let i = size++;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if (!less(heap[i], heap[p])) break;
          const t = heap[i];
          heap[i] = heap[p];
          heap[p] = t;
          i = p;
        }
      } else if (less(heap[0], e)) {
        heap[0] = e;
        siftDown(0);
      }
    }
    const start = this.base.length;
    const position = new Map<number, number>();
    const push = (entity: number, features: Float32Array | null, at: number): void => {
      position.set(entity, this.base.length);
      this.base.push(row[entity]);
      this.excludeMask.push(flags.get(entity) ?? 0);
      for (let f = 0; f < F; f++) this.features.push(features ? features[at + f] : 0);
    };
    for (let m = 0; m < history.entities.length; m++) {
      const entity = history.entities[m];
      if (position.has(entity)) continue;
      push(entity, history.features, m * F);
    }
    for (let i = 0; i < size; i++) if (!position.has(heap[i])) push(heap[i], null, 0);
    if (!position.has(answer)) push(answer, null, 0);
    for (const entity of flags.keys()) if (!position.has(entity)) push(entity, null, 0);
    const exact = this.base.length - start;
    const eligible = N - exact;
    let drawn = 0;
    if (eligible > 0) {
      for (let attempt = 0; drawn < this.samples && attempt < 20 * this.samples; attempt++) {
        const e = Math.floor(this.random() * N);
        if (position.has(e)) continue;
        this.base.push(row[e]);
        this.excludeMask.push(0);
        for (let f = 0; f < F; f++) this.features.push(0);
        drawn++;
      }
    }
    this.exactCount.push(exact);
    this.sampleWeight.push(drawn > 0 ? eligible / drawn : 0);
    this.slot.push(query.slot);
    this.offsets.push(this.base.length);
    this.answer.push(position.get(answer)!);
    this.baseFloor.push(size > 0 ? row[heap[0]] : -Infinity);
    this.baseCandidates.push(size);
    this.baseRank.push(1 + better + equal / 2);
  }

  build(): QuerySet {
    return {
      numRelations: this.numRelations,
      slot: Int32Array.from(this.slot),
      offsets: Int32Array.from(this.offsets),
      base: Float32Array.from(this.base),
      features: Float32Array.from(this.features),
      answer: Int32Array.from(this.answer),
      baseFloor: Float32Array.from(this.baseFloor),
      baseCandidates: Int32Array.from(this.baseCandidates),
      baseRank: Float32Array.from(this.baseRank),
      exactCount: Int32Array.from(this.exactCount),
      sampleWeight: Float32Array.from(this.sampleWeight),
      excludeMask: Uint8Array.from(this.excludeMask),
    };
  }
}

/** Pure: the queries of both sets (candidate indices shifted). */
export function concatQuerySets(a: QuerySet, b: QuerySet): QuerySet {
  const Ca = a.base.length;
  const offsets = new Int32Array(a.slot.length + b.slot.length + 1);
  offsets.set(a.offsets);
  for (let q = 1; q < b.offsets.length; q++) offsets[a.slot.length + q] = Ca + b.offsets[q];
  const cat = <T extends Int32Array | Float32Array | Uint8Array>(
    x: T,
    y: T,
    make: (n: number) => T,
  ): T => {
    const out = make(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  const i32 = (n: number) => new Int32Array(n);
  const f32 = (n: number) => new Float32Array(n);
  return {
    numRelations: a.numRelations,
    slot: cat(a.slot, b.slot, i32),
    offsets,
    base: cat(a.base, b.base, f32),
    features: cat(a.features, b.features, f32),
    answer: cat(
      a.answer,
      Int32Array.from(b.answer, (x) => x + Ca),
      i32,
    ),
    baseFloor: cat(a.baseFloor, b.baseFloor, f32),
    baseCandidates: cat(a.baseCandidates, b.baseCandidates, i32),
    baseRank: cat(a.baseRank, b.baseRank, f32),
    exactCount: cat(a.exactCount, b.exactCount, i32),
    sampleWeight: cat(a.sampleWeight, b.sampleWeight, f32),
    excludeMask: cat(a.excludeMask, b.excludeMask, (n) => new Uint8Array(n)),
  };
}
