// The rule term's incremental index of the stream's closed steps (issue 15): per anchor entity, per neighbour, per
// relation code the last two steps, the number of steps and the decayed count of that edge; per entity its edges of
// the last pathWindow steps (the hops of two-hop paths); per code the relaxed (popularity) decayed counts and their
// top entities. RuleTermState (rule-term.ts) owns one and reads it to build a query's candidates and evidence.
// Owns: those counts, their updates and their reads. Must not touch the rule tables, the ranker's weights or the
// candidates' features (rule-term.ts), nor the evidence text (rule-evidence.ts). Pure: imports only src/core and
// src/model; no tfjs, onnxruntime, Kafka, src/train.
import type { Snapshot } from '../core/types.ts';
import type { RuleTermSpec } from './rule-spec.ts';

/** The edges between one anchor and one neighbour, one entry per relation code seen between them. */
export interface PairEdges {
  codes: number[];
  /** Last step the edge was seen, and the one before it (-1: none). */
  last: number[];
  previous: number[];
  /** Decayed count (decay per step) as of `last`. */
  value: number[];
  /** Distinct steps with the edge. */
  count: number[];
  /** max(last): the pair's most recent step. */
  latest: number;
  /** sum(count): (code, step) edges between the pair. */
  edges: number;
}

/** Edges of an entity in the last pathWindow steps, oldest first (parallel arrays). */
export interface RecentEdges {
  codes: number[];
  neighbours: number[];
  steps: number[];
}

/** The code's relaxed entities with the largest shares (entities / shares) and the share of every entity seen. */
export interface RelaxedTop {
  entities: Int32Array;
  shares: Float64Array;
  shareOf: Map<number, number>;
}

/** The parts of a spec that shape the index (fixed for a state except the path and relaxed limits). */
export type EdgeIndexSpec = Pick<
  RuleTermSpec,
  'decay' | 'relaxedDecay' | 'pathWindow' | 'pathFanout' | 'relaxedTopK'
>;

/** Visits one two-hop path grounding anchor -body1-> middle (at step1) -body2-> end (at step2). */
export type PathVisitor = (
  body1: number,
  middle: number,
  step1: number,
  body2: number,
  end: number,
  step2: number,
) => void;

export class RuleEdgeIndex {
  /** anchor -> neighbour -> edges. */
  private readonly adjacency = new Map<number, Map<number, PairEdges>>();
  /** entity -> its edges of the last pathWindow steps, oldest first (the hops of two-hop paths). */
  private readonly recent = new Map<number, RecentEdges>();
  /** code -> entity -> [decayed value, step]; totals per code. */
  private readonly relaxed = new Map<number, Map<number, [number, number]>>();
  private readonly relaxedTotal = new Map<number, [number, number]>();
  private readonly relaxedTop = new Map<number, RelaxedTop>();

  constructor(private spec: EdgeIndexSpec) {}

  /** The limits of a new spec (the decays must stay: RuleTermState.useSpec checks them). */
  useSpec(spec: EdgeIndexSpec): void {
    this.spec = spec;
    this.relaxedTop.clear();
  }

  /**
   * Adds the facts of closed step t (relations already restricted to the spec's); a fact repeated within the step
   * counts once. Returns the number of distinct facts added.
   */
  observe(snapshot: Snapshot, t: number): number {
    const triples = snapshot.triples;
    let added = 0;
    for (let i = 0; i < triples.length; i += 3) {
      const s = triples[i];
      const r = triples[i + 1];
      const o = triples[i + 2];
      if (!this.addEdge(s, 2 * r, o, t)) continue; // duplicate within the step
      this.addEdge(o, 2 * r + 1, s, t);
      if (this.spec.pathWindow > 0) {
        this.addRecent(s, 2 * r, o, t);
        this.addRecent(o, 2 * r + 1, s, t);
      }
      this.bumpRelaxed(2 * r, o, t);
      this.bumpRelaxed(2 * r + 1, s, t);
      added++;
    }
    this.relaxedTop.clear();
    this.pruneRecent(t);
    return added;
  }

  private addRecent(entity: number, code: number, neighbour: number, t: number): void {
    let edges = this.recent.get(entity);
    if (edges === undefined)
      this.recent.set(entity, (edges = { codes: [], neighbours: [], steps: [] }));
    edges.codes.push(code);
    edges.neighbours.push(neighbour);
    edges.steps.push(t);
  }

  /** Drops recent edges that no query after step t can use (older than t + 1 - pathWindow). */
  private pruneRecent(t: number): void {
    const oldest = t + 1 - this.spec.pathWindow;
    for (const [entity, edges] of this.recent) {
      let k = 0;
      while (k < edges.steps.length && edges.steps[k] < oldest) k++;
      if (k === edges.steps.length) this.recent.delete(entity);
      else if (k > 0) {
        edges.codes.splice(0, k);
        edges.neighbours.splice(0, k);
        edges.steps.splice(0, k);
      }
    }
  }

  /** The recent edges of an entity (read-only; within pathWindow steps of the last observed step). */
  recentEdges(entity: number): RecentEdges | undefined {
    return this.recent.get(entity);
  }

  /**
   * Two-hop path groundings of the query (anchor) at `step`: visit(body1, middle, step1, body2, end, step2) for every
   * recent first hop anchor -body1-> middle (at most pathFanout distinct middles, most recent first) and recent
   * second hop middle -body2-> end (end != anchor), both within pathWindow steps of `step`.
   */
  forEachPath(step: number, anchor: number, visit: PathVisitor): void {
    const first = this.recent.get(anchor);
    if (first === undefined) return;
    const oldest = step - this.spec.pathWindow;
    const middles = new Set<number>();
    for (let i = first.steps.length - 1; i >= 0; i--) {
      if (first.steps[i] < oldest) break;
      const middle = first.neighbours[i];
      if (middle === anchor) continue;
      if (!middles.has(middle)) {
        if (middles.size >= this.spec.pathFanout) continue;
        middles.add(middle);
      }
      const second = this.recent.get(middle);
      if (second === undefined) continue;
      for (let k = second.steps.length - 1; k >= 0; k--) {
        if (second.steps[k] < oldest) break;
        const end = second.neighbours[k];
        if (end === anchor) continue;
        visit(first.codes[i], middle, first.steps[i], second.codes[k], end, second.steps[k]);
      }
    }
  }

  private addEdge(anchor: number, code: number, neighbour: number, t: number): boolean {
    let neighbours = this.adjacency.get(anchor);
    if (neighbours === undefined) this.adjacency.set(anchor, (neighbours = new Map()));
    let pair = neighbours.get(neighbour);
    if (pair === undefined) {
      pair = { codes: [], last: [], previous: [], value: [], count: [], latest: t, edges: 0 };
      neighbours.set(neighbour, pair);
    }
    pair.latest = t;
    const k = pair.codes.indexOf(code);
    if (k < 0 || pair.last[k] !== t) pair.edges++;
    if (k < 0) {
      pair.codes.push(code);
      pair.last.push(t);
      pair.previous.push(-1);
      pair.value.push(1);
      pair.count.push(1);
      return true;
    }
    if (pair.last[k] === t) return false;
    pair.value[k] = pair.value[k] * Math.pow(this.spec.decay, t - pair.last[k]) + 1;
    pair.previous[k] = pair.last[k];
    pair.last[k] = t;
    pair.count[k]++;
    return true;
  }

  private bumpRelaxed(code: number, entity: number, t: number): void {
    const d = this.spec.relaxedDecay;
    let counts = this.relaxed.get(code);
    if (counts === undefined) this.relaxed.set(code, (counts = new Map()));
    const e = counts.get(entity);
    if (e === undefined) counts.set(entity, [1, t]);
    else decayAndCount(e, d, t);
    const total = this.relaxedTotal.get(code);
    if (total === undefined) this.relaxedTotal.set(code, [1, t]);
    else decayAndCount(total, d, t);
  }

  /** The neighbours of an anchor and their edges (read-only; for the miner and diagnostics). */
  neighbours(anchor: number): ReadonlyMap<number, PairEdges> | undefined {
    return this.adjacency.get(anchor);
  }

  /** Share of code's decayed facts pointing at entity (0 if none). */
  relaxedShare(code: number, entity: number): number {
    const total = this.relaxedTotal.get(code);
    const e = this.relaxed.get(code)?.get(entity);
    if (total === undefined || e === undefined) return 0;
    return (e[0] * Math.pow(this.spec.relaxedDecay, total[1] - e[1])) / total[0];
  }

  /** The code's top relaxedTopK entities by share (ties: lower id first), memoised until the next observe. */
  topRelaxed(code: number): RelaxedTop {
    const cached = this.relaxedTop.get(code);
    if (cached !== undefined) return cached;
    const counts = this.relaxed.get(code);
    const pairs: Array<[number, number]> = [];
    if (counts !== undefined)
      for (const entity of counts.keys()) pairs.push([entity, this.relaxedShare(code, entity)]);
    const shareOf = new Map(pairs);
    pairs.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const top = pairs.slice(0, this.spec.relaxedTopK);
    const entry = {
      entities: Int32Array.from(top, (p) => p[0]),
      shares: Float64Array.from(top, (p) => p[1]),
      shareOf,
    };
    this.relaxedTop.set(code, entry);
    return entry;
  }
}

/** A decayed count [value, step] seen again at step t: value * decay^(t - step) + 1. */
function decayAndCount(entry: [number, number], decay: number, t: number): void {
  entry[0] = entry[0] * Math.pow(decay, t - entry[1]) + 1;
  entry[1] = t;
}
