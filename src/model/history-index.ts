// Incremental history of a TKG for recurrency-style scores. Owns: exponentially decayed counts of
// (s, r, o) ["strict": keyed by (anchor, relation) per direction] and of (., r, o) / (s, r, .)
// ["relaxed": per relation], updated one closed snapshot at a time, and their sparse emission for a
// batch of queries as (row, entity, value) triples. Used by the recurrency baseline, the nlsm-h
// model (sparse addition to NLSM logits) and the ONNX server (sparse input). Must not import
// kafkajs, src/kafka, src/train, src/serve or tfjs.
import type { Direction, Snapshot } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';

/** A decayed count as of `step`: value(t) = value * decay^(t - step). */
interface DecayedCount {
  value: number;
  step: number;
}

export interface HistoryIndexOptions {
  numRelations: number; // R
  /** lambda in (0, 1] of the strict term: an occurrence at t_i weighs lambda^(t - t_i) at step t. */
  decay: number;
  /** lambda of the relaxed term (default: the same as `decay`). */
  relaxedDecay?: number;
}

/**
 * Normalised, decayed frequency of each candidate under one relation and direction
 * (object direction: share of (., r, o) facts going to o; subject: share of (s, r, .) from s).
 * Entities sorted by value, descending. Independent of the query step (both numerator and
 * denominator decay alike).
 */
export interface RelaxedDistribution {
  entities: Int32Array; // [M] sorted by value desc
  values: Float64Array; // [M] desc, sum 1
  valueOf: Map<number, number>; // entity -> value
}

/**
 * Sparse history terms of B queries, CSR layout plus explicit row ids:
 * the nnz-th term is (rows[nnz], entities[nnz]) with strict[nnz] and relaxed[nnz] values;
 * terms of row b are rowOffsets[b] .. rowOffsets[b + 1]. Absent entities have 0 in both.
 */
export interface SparseHistoryTerms {
  rowOffsets: Int32Array; // [B + 1]
  rows: Int32Array; // [nnz]
  entities: Int32Array; // [nnz]
  strict: Float32Array; // [nnz] decayed occurrences of the exact fact before the query step
  relaxed: Float32Array; // [nnz] normalised relaxed frequency
}

const emptyEntries: ReadonlyMap<number, DecayedCount> = new Map();

export class HistoryIndex {
  readonly numRelations: number;
  readonly decay: number;
  readonly relaxedDecay: number;
  /** Last observed step (-Infinity before the first snapshot). */
  lastStep = -Infinity;
  /** Distinct facts observed (a fact seen at k steps counts k times). */
  factsObserved = 0;

  private readonly strict: Record<Direction, Map<number, Map<number, DecayedCount>>> = {
    object: new Map(),
    subject: new Map(),
  };
  private readonly relaxed: Record<Direction, Map<number, Map<number, DecayedCount>>> = {
    object: new Map(),
    subject: new Map(),
  };
  private readonly relaxedTotal: Record<Direction, Map<number, DecayedCount>> = {
    object: new Map(),
    subject: new Map(),
  };
  private readonly relaxedCache: Record<Direction, Map<number, RelaxedDistribution>> = {
    object: new Map(),
    subject: new Map(),
  };

  constructor(options: HistoryIndexOptions) {
    for (const [name, value] of [
      ['decay', options.decay],
      ['relaxedDecay', options.relaxedDecay ?? options.decay],
    ] as const) {
      if (!(value > 0 && value <= 1)) {
        throw new InvalidInputError(name, `must be in (0, 1], got ${value}`, 'invalid_argument');
      }
    }
    if (!Number.isInteger(options.numRelations) || options.numRelations < 1) {
      throw new InvalidInputError(
        'numRelations',
        `must be a positive integer, got ${options.numRelations}`,
        'invalid_argument',
      );
    }
    this.numRelations = options.numRelations;
    this.decay = options.decay;
    this.relaxedDecay = options.relaxedDecay ?? options.decay;
  }

  private key(anchor: number, relation: number): number {
    return anchor * this.numRelations + relation;
  }

  private static entry<K>(map: Map<K, DecayedCount>, key: K, step: number): DecayedCount {
    let e = map.get(key);
    if (e === undefined) map.set(key, (e = { value: 0, step }));
    return e;
  }

  private static inner(
    map: Map<number, Map<number, DecayedCount>>,
    key: number,
  ): Map<number, DecayedCount> {
    let m = map.get(key);
    if (m === undefined) map.set(key, (m = new Map()));
    return m;
  }

  private static bump(e: DecayedCount, step: number, decay: number): void {
    e.value = e.value * Math.pow(decay, step - e.step) + 1;
    e.step = step;
  }

  /** Adds a closed snapshot. Steps must not go backwards; a fact repeated within a step counts once. */
  observe(snapshot: Snapshot): void {
    const t = snapshot.step;
    if (t < this.lastStep) {
      throw new InvalidInputError(
        'snapshot.step',
        `${t} is before the last observed step ${this.lastStep}; observe snapshots in step order`,
        'out_of_order',
      );
    }
    const triples = snapshot.triples;
    for (let i = 0; i < triples.length; i += 3) {
      const s = triples[i];
      const r = triples[i + 1];
      const o = triples[i + 2];
      if (r < 0 || r >= this.numRelations) {
        throw new InvalidInputError(
          'relation',
          `id ${r} outside [0, ${this.numRelations}) in step ${t}`,
          'invalid_argument',
        );
      }
      const forward = HistoryIndex.entry(
        HistoryIndex.inner(this.strict.object, this.key(s, r)),
        o,
        t,
      );
      if (forward.step === t && forward.value > 0) continue; // duplicate within this step: sets, not multisets
      HistoryIndex.bump(forward, t, this.decay);
      HistoryIndex.bump(
        HistoryIndex.entry(HistoryIndex.inner(this.strict.subject, this.key(o, r)), s, t),
        t,
        this.decay,
      );
      HistoryIndex.bump(
        HistoryIndex.entry(HistoryIndex.inner(this.relaxed.object, r), o, t),
        t,
        this.relaxedDecay,
      );
      HistoryIndex.bump(HistoryIndex.entry(this.relaxedTotal.object, r, t), t, this.relaxedDecay);
      HistoryIndex.bump(
        HistoryIndex.entry(HistoryIndex.inner(this.relaxed.subject, r), s, t),
        t,
        this.relaxedDecay,
      );
      HistoryIndex.bump(HistoryIndex.entry(this.relaxedTotal.subject, r, t), t, this.relaxedDecay);
      this.factsObserved++;
    }
    this.lastStep = Math.max(this.lastStep, t);
    this.relaxedCache.object.clear();
    this.relaxedCache.subject.clear();
  }

  /**
   * Calls visit(entity, strictValue) for every candidate with a past occurrence of the exact fact:
   * object direction (anchor, relation, entity); subject direction (entity, relation, anchor).
   * strictValue = sum over past steps t_i of decay^(step - t_i).
   */
  forEachStrict(
    step: number,
    direction: Direction,
    anchor: number,
    relation: number,
    visit: (entity: number, value: number) => void,
  ): void {
    const entries = this.strict[direction].get(this.key(anchor, relation)) ?? emptyEntries;
    for (const [entity, e] of entries) visit(entity, e.value * Math.pow(this.decay, step - e.step));
  }

  /** The last step at which the exact fact occurred (undefined: never). */
  strictLastStep(
    direction: Direction,
    anchor: number,
    relation: number,
    entity: number,
  ): number | undefined {
    return this.strict[direction].get(this.key(anchor, relation))?.get(entity)?.step;
  }

  /** Number of candidates with a strict (exact-fact) history for this query. */
  strictCount(direction: Direction, anchor: number, relation: number): number {
    return this.strict[direction].get(this.key(anchor, relation))?.size ?? 0;
  }

  /** The strict value of one candidate (0 if never seen). */
  strictValue(
    step: number,
    direction: Direction,
    anchor: number,
    relation: number,
    entity: number,
  ): number {
    const e = this.strict[direction].get(this.key(anchor, relation))?.get(entity);
    return e === undefined ? 0 : e.value * Math.pow(this.decay, step - e.step);
  }

  /** The relaxed distribution of a relation in a direction (cached until the next observe). */
  relaxedDistribution(direction: Direction, relation: number): RelaxedDistribution {
    const cached = this.relaxedCache[direction].get(relation);
    if (cached !== undefined) return cached;
    const entries = this.relaxed[direction].get(relation) ?? emptyEntries;
    const total = this.relaxedTotal[direction].get(relation);
    const pairs: Array<[number, number]> = [];
    if (total !== undefined && total.value > 0) {
      for (const [entity, e] of entries) {
        pairs.push([
          entity,
          (e.value * Math.pow(this.relaxedDecay, total.step - e.step)) / total.value,
        ]);
      }
    }
    pairs.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const dist: RelaxedDistribution = {
      entities: Int32Array.from(pairs, (p) => p[0]),
      values: Float64Array.from(pairs, (p) => p[1]),
      valueOf: new Map(pairs),
    };
    this.relaxedCache[direction].set(relation, dist);
    return dist;
  }

  /**
   * Sparse history terms of a batch of queries at `step` (rows = queries in order). With
   * `relaxed: false` only candidates with a strict history are emitted (relaxed values still filled
   * for them), which keeps nnz small; the full relaxed row of a relation is relaxedDistribution().
   */
  historyTerms(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    options: { relaxed?: boolean } = {},
  ): SparseHistoryTerms {
    const includeRelaxed = options.relaxed ?? true;
    const B = anchors.length;
    const rowOffsets = new Int32Array(B + 1);
    const rows: number[] = [];
    const entities: number[] = [];
    const strict: number[] = [];
    const relaxed: number[] = [];
    for (let b = 0; b < B; b++) {
      const dist = this.relaxedDistribution(direction, relations[b]);
      const seen = new Set<number>();
      this.forEachStrict(step, direction, anchors[b], relations[b], (entity, value) => {
        seen.add(entity);
        rows.push(b);
        entities.push(entity);
        strict.push(value);
        relaxed.push(dist.valueOf.get(entity) ?? 0);
      });
      if (includeRelaxed) {
        for (let i = 0; i < dist.entities.length; i++) {
          const entity = dist.entities[i];
          if (seen.has(entity)) continue;
          rows.push(b);
          entities.push(entity);
          strict.push(0);
          relaxed.push(dist.values[i]);
        }
      }
      rowOffsets[b + 1] = rows.length;
    }
    return {
      rowOffsets,
      rows: Int32Array.from(rows),
      entities: Int32Array.from(entities),
      strict: Float32Array.from(strict),
      relaxed: Float32Array.from(relaxed),
    };
  }
}
