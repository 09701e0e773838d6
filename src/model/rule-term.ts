// The rule term's state (issue 15): the incremental index of the stream's closed steps (rule-edges.ts) and the rule
// tables of a RuleTermSpec. From them it gives a query's sparse candidates with their features (RULE_FEATURES), its
// term row (the ranker's weighted sum) and the evidence behind each candidate (rule-evidence.ts). Training (eval,
// fitting, mining) and serving use this one class, so both compute the same numbers.
// Owns: the rule tables (and their online updates), the candidates' features and the term rows. Must not touch the
// index's counts (rule-edges.ts owns them) or the evidence text (rule-evidence.ts). Pure: imports only src/core and
// src/model; no tfjs, onnxruntime, Kafka, src/train.
import type { Direction, Snapshot } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import {
  restrictRelations,
  type Evidence,
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
import { RuleEdgeIndex, type PairEdges, type PathVisitor, type RecentEdges } from './rule-edges.ts';
import { evidenceOf, type RuleTables } from './rule-evidence.ts';

/**
 * Candidates of one query with their features [M * RF] (row m is entity entities[m]), in float64: a term value is
 * fround(sum_f w_f x_f) with one rounding, as the recurrency model's fround(strict + alpha * share), so the
 * recurrency-shaped weights give its scores exactly.
 */
export interface RuleCandidates {
  entities: Int32Array; // [M]
  features: Float64Array; // [M * RF]
}

const MAX_PATH_SUM = 20;

/** Reused buffers of candidatesAt: entity -> row via a stamp per call (no Map per query). */
class CandidateScratch {
  stamp = 0;
  stampOf = new Int32Array(1024);
  slotOf = new Int32Array(1024);
  entities = new Int32Array(256);
  features = new Float64Array(256 * RF);
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
    const features = new Float64Array(2 * this.features.length);
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
  /** The counts of the closed steps (neighbours, recent edges, relaxed counts). */
  private readonly edges: RuleEdgeIndex;
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
    this.edges = new RuleEdgeIndex(this.spec);
    this.useSpec(this.spec);
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
  useSpec(value: RuleTermSpec): void {
    const spec = assertRuleTermSpec(value);
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
    this.edges.useSpec(spec);
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

  /**
   * Replaces the ranker's weights (the rule tables, e.g. mined online, stay) and, when given, how many entities of
   * largest relaxed share are candidates of every query.
   */
  setWeights(weights: readonly number[], relaxedTopK = this.spec.relaxedTopK): void {
    this.spec = assertRuleTermSpec({ ...this.spec, weights: [...weights], relaxedTopK });
    this.edges.useSpec(this.spec);
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
    const next = assertRuleTermSpec(spec.spec);
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
    this.factsObserved += this.edges.observe(restrictRelations(closed, this.spec.numRelations), t);
    this.lastStepValue = t;
    this.rowCache.clear();
  }

  /** The recent edges of an entity (read-only; within pathWindow steps of the last observed step). */
  recentEdges(entity: number): RecentEdges | undefined {
    return this.edges.recentEdges(entity);
  }

  /** Two-hop path groundings of the query (anchor) at `step` (RuleEdgeIndex.forEachPath). */
  forEachPath(step: number, anchor: number, visit: PathVisitor): void {
    this.edges.forEachPath(step, anchor, visit);
  }

  /** The neighbours of an anchor and their edges (read-only; for the miner and diagnostics). */
  neighbours(anchor: number): ReadonlyMap<number, PairEdges> | undefined {
    return this.edges.neighbours(anchor);
  }

  /** Share of code's decayed facts pointing at entity (0 if none). */
  relaxedShare(code: number, entity: number): number {
    return this.edges.relaxedShare(code, entity);
  }

  /**
   * Candidates and features of the query (code, anchor) at `step` (> lastStep; multi-step forecasts ask for later
   * steps): every neighbour of the anchor (any code: the exact fact's recurrence and the length-1 rules), the ends of
   * two-hop paths with a path rule, and the code's top relaxed entities (at most `relaxedLimit` of the spec's
   * relaxedTopK: the ranker's fitting queries keep the candidate sets they were fitted with), each once.
   */
  candidatesAt(
    step: number,
    code: number,
    anchor: number,
    relaxedLimit = Number.POSITIVE_INFINITY,
  ): RuleCandidates {
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
    const neighbours = this.edges.neighbours(anchor);
    if (neighbours !== undefined) {
      for (const [entity, pair] of neighbours) {
        let at = -1;
        if (entity !== anchor) {
          at = row(entity);
          scratch.features[at + FI.neighbour] = 1;
          scratch.features[at + FI.logPair] = Math.log1p(pair.edges);
          scratch.features[at + FI.recency] = 1 / Math.max(1, step - pair.latest);
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
    const top = this.edges.topRelaxed(code);
    for (let i = 0; i < Math.min(top.entities.length, relaxedLimit); i++) row(top.entities[i]);
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
    this.edges.forEachPath(step, anchor, (body1, _middle, _step1, body2, end) => {
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
    return evidenceOf(
      this.spec,
      this.ruleTables(),
      this.edges,
      this.lastStepValue + 1,
      direction,
      anchor,
      relation,
      entities,
      limit,
    );
  }

  /** The rule tables (read-only views; for the evidence and diagnostics). */
  ruleTables(): RuleTables {
    return {
      C: this.ruleCodes,
      B: this.buckets,
      ruleLog: this.ruleLog,
      ruleConf: this.ruleConf,
      paths: this.pathRules,
    };
  }
}
