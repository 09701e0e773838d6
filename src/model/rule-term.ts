// The rule term's state (issue 15): an incremental index of the stream's closed steps (per anchor entity, per
// neighbour, per relation code: the last two steps, the number of steps and the decayed count of that edge), the
// relaxed (popularity) counts per code, and the rule tables of a RuleTermSpec. From them it gives a query's sparse
// candidates with their features (RULE_FEATURES), its term row (the ranker's weighted sum) and the evidence behind
// each candidate (the past facts and the rule or path that used them). Training (eval, fitting, mining) and serving
// use this one class, so both compute the same numbers.
// Owns: that state and its reads. Pure: imports only src/core and src/model; no tfjs, onnxruntime, Kafka, src/train.
import type { Direction, Snapshot } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import {
  restrictRelations,
  type Evidence,
  type EvidenceFact,
  type SparseRow,
  type TermSpec,
  type TermState,
} from './terms.ts';
import {
  FEATURE_INDEX as FI,
  RF,
  assertRuleTermSpec,
  bucketCount,
  ruleBucket,
  queryCode,
  type RuleTermSpec,
} from './rule-spec.ts';

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

/** Candidates of one query with their features [M * RF] (row m is entity entities[m]). */
export interface RuleCandidates {
  entities: Int32Array; // [M]
  features: Float32Array; // [M * RF]
}

const MAX_PATH_SUM = 20;

/** Reused buffers of candidatesAt: entity -> row via a stamp per call (no Map per query). */
class CandidateScratch {
  stamp = 0;
  stampOf = new Int32Array(1024);
  slotOf = new Int32Array(1024);
  entities = new Int32Array(256);
  features = new Float32Array(256 * RF);
  growEntities(n: number): void {
    const size = Math.max(n, 2 * this.stampOf.length);
    const stampOf = new Int32Array(size);
    stampOf.set(this.stampOf);
    const slotOf = new Int32Array(size);
    slotOf.set(this.slotOf);
    this.stampOf = stampOf;
    this.slotOf = slotOf;
  }
  growRows(): void {
    const entities = new Int32Array(2 * this.entities.length);
    entities.set(this.entities);
    const features = new Float32Array(2 * this.features.length);
    features.set(this.features);
    this.entities = entities;
    this.features = features;
  }
}

export class RuleTermState implements TermState {
  private spec: RuleTermSpec;
  private numCodes = 0;
  private buckets = 0;
  /** ruleLog[(head * C + body) * B + bucket] = -log(1 - confidence); ruleConf the confidence. */
  private ruleLog = new Float32Array(0);
  private ruleConf = new Float32Array(0);
  private ruleCodes = 0; // C of the tables
  /** head -> (body1 * C + body2) -> -log(1 - confidence). */
  private pathRules = new Map<number, Map<number, number>>();
  /** anchor -> neighbour -> edges. */
  private readonly adjacency = new Map<number, Map<number, PairEdges>>();
  /** entity -> its edges of the last pathWindow steps, oldest first (the hops of two-hop paths). */
  private readonly recent = new Map<number, RecentEdges>();
  /** code -> entity -> [decayed value, step]; totals per code. */
  private readonly relaxed = new Map<number, Map<number, [number, number]>>();
  private readonly relaxedTotal = new Map<number, [number, number]>();
  private readonly relaxedTop = new Map<
    number,
    { entities: Int32Array; shares: Float64Array; shareOf: Map<number, number> }
  >();
  /** bucketOf[lag * countSlots + min(count, maxCount)] for lags up to the last bound + 1 (longer lags: the last row). */
  private bucketTable = new Int32Array(0);
  private maxLag = 0;
  private maxCount = 0;
  /** decayPow[lag] = decay^lag for lags below its length. */
  private decayPow = new Float64Array(0);
  private readonly rowCache = new Map<number, SparseRow>();
  private lastStepValue = -Infinity;
  private readonly scratch = new CandidateScratch();
  private relationCount: number;
  /** Distinct facts observed. */
  factsObserved = 0;

  constructor(spec: RuleTermSpec) {
    this.spec = assertRuleTermSpec(spec);
    this.relationCount = spec.numRelations;
    this.useSpec(spec);
  }

  get lastStep(): number {
    return this.lastStepValue;
  }

  get numRelations(): number {
    return this.relationCount;
  }

  get currentSpec(): RuleTermSpec {
    return this.spec;
  }

  /**
   * Replaces the rules and weights (e.g. newly mined confidences). The decays must stay: they shape the state's
   * counts; a spec with other decays needs a new state.
   */
  useSpec(spec: RuleTermSpec): void {
    assertRuleTermSpec(spec);
    if (
      this.numCodes > 0 &&
      (spec.decay !== this.spec.decay || spec.relaxedDecay !== this.spec.relaxedDecay)
    )
      throw new InvalidInputError(
        'spec.decay',
        `a state counted with decay ${this.spec.decay} / ${this.spec.relaxedDecay} cannot use ${spec.decay} / ${spec.relaxedDecay}; build a new RuleTermState`,
        'invalid_argument',
      );
    this.spec = spec;
    this.relationCount = spec.numRelations;
    this.buildTables(spec);
    const C = 2 * spec.numRelations;
    const B = bucketCount(spec);
    this.ruleCodes = C;
    this.buckets = B;
    this.ruleLog = new Float32Array(C * C * B);
    this.ruleConf = new Float32Array(C * C * B);
    for (const [head, body, confidences] of spec.rules) {
      for (let b = 0; b < B; b++) {
        const at = (head * C + body) * B + b;
        this.ruleConf[at] = confidences[b];
        this.ruleLog[at] = -Math.log1p(-confidences[b]);
      }
    }
    this.pathRules = new Map();
    for (const [head, body1, body2, confidence] of spec.paths) {
      let inner = this.pathRules.get(head);
      if (inner === undefined) this.pathRules.set(head, (inner = new Map()));
      inner.set(body1 * C + body2, -Math.log1p(-confidence));
    }
    this.numCodes = Math.max(this.numCodes, C);
    this.relaxedTop.clear();
    this.rowCache.clear();
  }

  /** The confidence slot of an edge (lag, count): a table lookup (ruleBucket of the spec). */
  private bucketOf(lag: number, count: number): number {
    const l = lag > this.maxLag ? this.maxLag : lag;
    const c = count > this.maxCount ? this.maxCount : count;
    return this.bucketTable[l * (this.maxCount + 1) + c];
  }

  /** decay^lag (a table for short lags). */
  private powerOf(lag: number): number {
    return lag < this.decayPow.length ? this.decayPow[lag] : Math.pow(this.spec.decay, lag);
  }

  private buildTables(spec: RuleTermSpec): void {
    this.maxLag = spec.lagBounds[spec.lagBounds.length - 1] + 1;
    this.maxCount = (spec.countBounds[spec.countBounds.length - 1] ?? 0) + 1;
    this.bucketTable = new Int32Array((this.maxLag + 1) * (this.maxCount + 1));
    for (let l = 0; l <= this.maxLag; l++)
      for (let c = 0; c <= this.maxCount; c++)
        this.bucketTable[l * (this.maxCount + 1) + c] = ruleBucket(spec, l, c);
    this.decayPow = Float64Array.from({ length: 4096 }, (_, lag) => Math.pow(spec.decay, lag));
  }

  /** Replaces the ranker's weights only (the rule tables, e.g. mined online, stay). */
  setWeights(weights: readonly number[]): void {
    const spec = { ...this.spec, weights: [...weights] };
    assertRuleTermSpec(spec);
    this.spec = spec;
    this.rowCache.clear();
  }

  /** Online mining: sets the confidences (one per bucket) of one length-1 rule (codes outside the spec's: ignored). */
  setRuleConfidences(head: number, body: number, confidences: readonly number[]): void {
    const C = this.ruleCodes;
    const B = this.buckets;
    if (head >= C || body >= C) return;
    const base = (head * C + body) * B;
    for (let k = 0; k < B && k < confidences.length; k++) {
      this.ruleConf[base + k] = confidences[k];
      this.ruleLog[base + k] = -Math.log1p(-confidences[k]);
    }
    if (this.rowCache.size > 0) this.rowCache.clear();
  }

  /** Online mining: sets (confidence > 0) or removes (0) one path rule. */
  setPathConfidence(head: number, body1: number, body2: number, confidence: number): void {
    const C = this.ruleCodes;
    if (head >= C || body1 >= C || body2 >= C) return;
    let inner = this.pathRules.get(head);
    if (confidence <= 0) {
      inner?.delete(body1 * C + body2);
      return;
    }
    if (inner === undefined) this.pathRules.set(head, (inner = new Map()));
    inner.set(body1 * C + body2, -Math.log1p(-confidence));
    this.rowCache.clear();
  }

  /**
   * Takes another rules spec in place when the counts stay valid (same decays, relation count and path window):
   * new rules and weights. False when the state must be rebuilt (TermState.adopt).
   */
  adopt(spec: TermSpec): boolean {
    if (spec.kind !== 'rules') return false;
    const next = spec.spec;
    const now = this.spec;
    if (
      next.decay !== now.decay ||
      next.relaxedDecay !== now.relaxedDecay ||
      next.numRelations !== now.numRelations ||
      next.pathWindow !== now.pathWindow
    )
      return false;
    this.useSpec(next);
    return true;
  }

  /**
   * Adds a closed snapshot. Steps at or before the last one are ignored (TermState contract), as are facts whose
   * relation is outside the spec's (they cannot be queried with it); a fact repeated within a step counts once.
   */
  observe(closed: Snapshot): void {
    const t = closed.step;
    if (!(t > this.lastStepValue)) return;
    const snapshot = restrictRelations(closed, this.spec.numRelations);
    const triples = snapshot.triples;
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
      this.factsObserved++;
    }
    this.lastStepValue = t;
    this.relaxedTop.clear();
    this.rowCache.clear();
    this.pruneRecent(t);
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
  forEachPath(
    step: number,
    anchor: number,
    visit: (
      body1: number,
      middle: number,
      step1: number,
      body2: number,
      end: number,
      step2: number,
    ) => void,
  ): void {
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
    else {
      e[0] = e[0] * Math.pow(d, t - e[1]) + 1;
      e[1] = t;
    }
    const total = this.relaxedTotal.get(code);
    if (total === undefined) this.relaxedTotal.set(code, [1, t]);
    else {
      total[0] = total[0] * Math.pow(d, t - total[1]) + 1;
      total[1] = t;
    }
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

  private topRelaxed(code: number): {
    entities: Int32Array;
    shares: Float64Array;
    shareOf: Map<number, number>;
  } {
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

  /**
   * Candidates and features of the query (code, anchor) at `step` (> lastStep; multi-step forecasts ask for later
   * steps): every neighbour of the anchor (any code: the exact fact's recurrence and the length-1 rules), the ends of
   * two-hop paths with a path rule, and the code's top relaxed entities, each once.
   */
  candidatesAt(step: number, code: number, anchor: number): RuleCandidates {
    const spec = this.spec;
    const C = this.ruleCodes;
    const B = this.buckets;
    const known = code < C;
    const scratch = this.scratch;
    const stamp = ++scratch.stamp;
    let size = 0;
    const row = (entity: number): number => {
      if (entity >= scratch.stampOf.length) scratch.growEntities(entity + 1);
      if (scratch.stampOf[entity] === stamp) return scratch.slotOf[entity] * RF;
      if (size === scratch.entities.length) scratch.growRows();
      scratch.stampOf[entity] = stamp;
      scratch.slotOf[entity] = size;
      scratch.entities[size] = entity;
      scratch.features.fill(0, size * RF, (size + 1) * RF);
      return size++ * RF;
    };
    const neighbours = this.adjacency.get(anchor);
    if (neighbours !== undefined) {
      for (const [entity, pair] of neighbours) {
        let at = -1;
        if (entity !== anchor) {
          at = row(entity);
          scratch.features[at + FI.neighbour] = 1;
          scratch.features[at + FI.logPair] = Math.log1p(pair.edges);
        }
        for (let k = 0; k < pair.codes.length; k++) {
          const body = pair.codes[k];
          const lag = step - pair.last[k];
          const bucket = this.bucketOf(lag, pair.count[k]);
          if (body === code) {
            if (at < 0) at = row(entity);
            const rows = scratch.features;
            const strict = pair.value[k] * this.powerOf(lag);
            rows[at + FI.strict] = strict;
            rows[at + FI.logStrict] = Math.log1p(strict);
            if (known) rows[at + FI.selfRule] = this.ruleLog[(code * C + code) * B + bucket];
          } else if (known && body < C) {
            const index = (code * C + body) * B + bucket;
            const confidence = this.ruleConf[index];
            if (confidence <= 0) continue;
            if (at < 0) at = row(entity);
            const rows = scratch.features;
            rows[at + FI.ruleSum] += this.ruleLog[index];
            if (confidence > rows[at + FI.ruleMax]) rows[at + FI.ruleMax] = confidence;
          }
        }
      }
    }
    const paths = this.pathRules.get(code);
    if (paths !== undefined && spec.pathWindow > 0) this.addPaths(step, anchor, paths, row);
    const top = this.topRelaxed(code);
    for (let i = 0; i < top.entities.length; i++) row(top.entities[i]);
    const rows = scratch.features;
    for (let m = 0; m < size; m++) {
      const share = top.shareOf.get(scratch.entities[m]) ?? 0;
      rows[m * RF + FI.relaxed] = share;
      rows[m * RF + FI.logRelaxed] = Math.log1p(100 * share);
    }
    return { entities: scratch.entities.slice(0, size), features: rows.slice(0, size * RF) };
  }

  private addPaths(
    step: number,
    anchor: number,
    paths: Map<number, number>,
    row: (entity: number) => number,
  ): void {
    const C = this.ruleCodes;
    this.forEachPath(step, anchor, (body1, _middle, _step1, body2, end) => {
      if (body1 >= C || body2 >= C) return;
      const value = paths.get(body1 * C + body2);
      if (value === undefined) return;
      const at = row(end) + FI.pathSum;
      const rows = this.scratch.features;
      rows[at] = Math.min(MAX_PATH_SUM, rows[at] + value);
    });
  }

  /** The term row of (direction, anchor, relation) for step lastStep + 1 (memoised until the next observe). */
  terms(direction: Direction, anchor: number, relation: number): SparseRow | undefined {
    if (relation < 0 || relation >= this.spec.numRelations) return undefined;
    const code = queryCode(direction, relation);
    const key = anchor * 2 * Math.max(this.relationCount, relation + 1) + code;
    const cached = this.rowCache.get(key);
    if (cached !== undefined) return cached;
    const row = this.termsAt(this.lastStepValue + 1, direction, anchor, relation);
    this.rowCache.set(key, row);
    return row;
  }

  /** The term row at any step after lastStep (multi-step forecasts); not memoised. */
  termsAt(step: number, direction: Direction, anchor: number, relation: number): SparseRow {
    const { entities, features } = this.candidatesAt(step, queryCode(direction, relation), anchor);
    const w = this.spec.weights;
    const values = new Float32Array(entities.length);
    for (let m = 0; m < entities.length; m++) {
      let v = 0;
      for (let f = 0; f < RF; f++) v += w[f] * features[m * RF + f];
      values[m] = v;
    }
    return { entities, values };
  }

  /** Per candidate entity, the top `limit` evidence items (largest share of the term first) for step lastStep + 1. */
  evidence(
    direction: Direction,
    anchor: number,
    relation: number,
    entities: Int32Array,
    limit: number,
  ): Evidence[][] {
    return evidenceOf(this, this.lastStepValue + 1, direction, anchor, relation, entities, limit);
  }

  /** Internals for evidenceOf (same file family). */
  ruleTables(): {
    C: number;
    B: number;
    ruleLog: Float32Array;
    ruleConf: Float32Array;
    paths: Map<number, Map<number, number>>;
  } {
    return {
      C: this.ruleCodes,
      B: this.buckets,
      ruleLog: this.ruleLog,
      ruleConf: this.ruleConf,
      paths: this.pathRules,
    };
  }
}

/** A fact of the stream behind an edge (anchor, code, neighbour) at a step, in (subject, relation, object) order. */
export function edgeFact(
  anchor: number,
  code: number,
  neighbour: number,
  step: number,
): EvidenceFact {
  const relation = code >> 1;
  return (code & 1) === 0
    ? { subject: anchor, relation, object: neighbour, step }
    : { subject: neighbour, relation, object: anchor, step };
}

function evidenceOf(
  state: RuleTermState,
  step: number,
  direction: Direction,
  anchor: number,
  relation: number,
  entities: Int32Array,
  limit: number,
): Evidence[][] {
  const spec = state.currentSpec;
  const w = spec.weights;
  const code = queryCode(direction, relation);
  const { C, B, ruleLog, ruleConf, paths } = state.ruleTables();
  const known = code < C;
  const neighbours = state.neighbours(anchor);
  const name = (c: number) => `r${c >> 1}${c & 1 ? '^-1' : ''}`;
  const head = `${name(code)}(X, Y)`;
  return Array.from(entities, (entity) => {
    const items: Evidence[] = [];
    const pair = neighbours?.get(entity);
    if (pair !== undefined) {
      for (let k = 0; k < pair.codes.length; k++) {
        const body = pair.codes[k];
        const lag = step - pair.last[k];
        const bucket = ruleBucket(spec, lag, pair.count[k]);
        const facts = [edgeFact(anchor, body, entity, pair.last[k])];
        if (pair.previous[k] >= 0) facts.push(edgeFact(anchor, body, entity, pair.previous[k]));
        if (body === code) {
          const strict = pair.value[k] * Math.pow(spec.decay, lag);
          const weight =
            w[FI.strict] * strict +
            w[FI.logStrict] * Math.log1p(strict) +
            (known ? w[FI.selfRule] * ruleLog[(code * C + code) * B + bucket] : 0);
          items.push({
            kind: 'recurrence',
            rule: `${head} <= ${head} (seen ${pair.count[k]}x, last ${lag} steps ago)`,
            weight,
            facts,
          });
        } else if (known && body < C) {
          const index = (code * C + body) * B + bucket;
          if (ruleConf[index] <= 0) continue;
          items.push({
            kind: 'rule',
            rule: `${head} <= ${name(body)}(X, Y) at lag ${lag} (confidence ${ruleConf[index].toFixed(3)})`,
            weight: w[FI.ruleSum] * ruleLog[index],
            facts,
          });
        }
      }
    }
    const pathRules = paths.get(code);
    if (pathRules !== undefined && spec.pathWindow > 0) {
      state.forEachPath(step, anchor, (body1, middle, step1, body2, end, step2) => {
        if (end !== entity || body1 >= C || body2 >= C) return;
        const value = pathRules.get(body1 * C + body2);
        if (value === undefined) return;
        items.push({
          kind: 'path',
          rule: `${head} <= ${name(body1)}(X, Z), ${name(body2)}(Z, Y) (confidence ${(-Math.expm1(-value)).toFixed(3)})`,
          weight: w[FI.pathSum] * value,
          facts: [edgeFact(anchor, body1, middle, step1), edgeFact(middle, body2, entity, step2)],
        });
      });
    }
    items.sort((a, b) => b.weight - a.weight);
    return items.filter((item) => item.weight > 0).slice(0, limit);
  });
}
