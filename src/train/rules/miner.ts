// Mining the rule term's temporal rules online (issue 15): as each step closes, and BEFORE the term state learns it,
// every query of the step (object and subject direction, grouped by (code, anchor) with all of the step's answers)
// is matched against the state: each neighbour of the anchor with a body edge b last seen `lag` steps ago is a
// candidate of the rule "head <= b at lag"; the rule's confidence is the share of its candidates that were answers
// (hits / (candidates + prior)): TLogic's confidence, per lag bucket (recency-weighted by construction). Two-hop
// paths anchor -b1-> y -b2-> candidate (both hops within the path window) are counted the same way per (b1, b2).
// Counts only grow step by step (never recomputed); memory is bounded by (2R)^2 lag buckets plus the path keys seen.
// Owns: the counts and their conversion to a RuleTermSpec's rule lists. Pure; imports src/core and src/model only.
import type { Snapshot } from '../../core/types.ts';
import { bucketCount, ruleBucket, type RuleTermSpec } from '../../model/rule-spec.ts';
import type { RuleTermState } from '../../model/rule-term.ts';

export interface RuleMinerOptions {
  /** Pseudo-candidates in the confidence's denominator (shrinks rules seen rarely towards 0). */
  prior?: number;
  /** A rule needs this many candidates (in some lag bucket) to be kept. */
  minSupport?: number;
  /** Rules below this confidence (in every bucket) are dropped. */
  minConfidence?: number;
}

/** Queries of one snapshot grouped by (code, anchor): code = 2r (object queries) / 2r + 1 (subject queries). */
export function stepQueries(
  snapshot: Snapshot,
): Map<number, { code: number; anchor: number; answers: Set<number> }> {
  const queries = new Map<number, { code: number; anchor: number; answers: Set<number> }>();
  const R2 = 2 * Math.max(1, snapshot.numRelations);
  const t = snapshot.triples;
  const add = (code: number, anchor: number, answer: number) => {
    const key = anchor * R2 + code;
    let q = queries.get(key);
    if (q === undefined) queries.set(key, (q = { code, anchor, answers: new Set() }));
    q.answers.add(answer);
  };
  for (let i = 0; i < t.length; i += 3) {
    add(2 * t[i + 1], t[i], t[i + 2]);
    add(2 * t[i + 1] + 1, t[i + 2], t[i]);
  }
  return queries;
}

export class RuleMiner {
  private codes: number;
  private readonly buckets: number;
  private candidates: Float32Array;
  private hits: Float32Array;
  /** ((head * C + b1) * C + b2) -> [candidates, hits]. */
  private readonly pathCounts = new Map<number, [number, number]>();
  private readonly options: Required<RuleMinerOptions>;
  /** Cells / path keys changed since the last applyUpdates(). */
  private readonly dirty = new Set<number>();
  private readonly dirtyPaths = new Set<number>();
  stepsMined = 0;

  constructor(
    private readonly bounds: Pick<RuleTermSpec, 'lagBounds' | 'countBounds'>,
    numRelations: number,
    options: RuleMinerOptions = {},
  ) {
    this.codes = 2 * numRelations;
    this.buckets = bucketCount(bounds);
    this.candidates = new Float32Array(this.codes * this.codes * this.buckets);
    this.hits = new Float32Array(this.codes * this.codes * this.buckets);
    this.options = {
      prior: options.prior ?? 5,
      minSupport: options.minSupport ?? 5,
      minConfidence: options.minConfidence ?? 1e-3,
    };
  }

  private grow(numRelations: number): void {
    const C = 2 * numRelations;
    if (C <= this.codes) return;
    const B = this.buckets;
    const old = this.codes;
    const move = (from: Float32Array) => {
      const to = new Float32Array(C * C * B);
      for (let h = 0; h < old; h++)
        for (let b = 0; b < old; b++)
          to.set(from.subarray((h * old + b) * B, (h * old + b + 1) * B), (h * C + b) * B);
      return to;
    };
    this.candidates = move(this.candidates);
    this.hits = move(this.hits);
    const paths = [...this.pathCounts];
    this.pathCounts.clear();
    for (const [key, v] of paths) {
      const b2 = key % old;
      const b1 = Math.floor(key / old) % old;
      const h = Math.floor(key / old / old);
      this.pathCounts.set((h * C + b1) * C + b2, v);
    }
    this.codes = C;
  }

  /**
   * Counts the rules' candidates and hits of one closed snapshot against `state`, which must not have observed it
   * yet. `pathWindow` as in the spec (0: no paths).
   */
  observe(snapshot: Snapshot, state: RuleTermState, pathWindow: number): void {
    this.grow(Math.max(snapshot.numRelations, state.numRelations));
    const C = this.codes;
    const B = this.buckets;
    const step = snapshot.step;
    for (const { code, anchor, answers } of stepQueries(snapshot).values()) {
      const neighbours = state.neighbours(anchor);
      if (neighbours === undefined) continue;
      const rowBase = code * C;
      for (const [entity, pair] of neighbours) {
        const hit = answers.has(entity) ? 1 : 0;
        for (let k = 0; k < pair.codes.length; k++) {
          const at =
            (rowBase + pair.codes[k]) * B +
            ruleBucket(this.bounds, step - pair.last[k], pair.count[k]);
          this.candidates[at]++;
          this.hits[at] += hit;
          this.dirty.add(rowBase + pair.codes[k]);
        }
      }
      if (pathWindow <= 0) continue;
      const seen = new Set<number>();
      const prefix = code * C;
      state.forEachPath(step, anchor, (body1, _middle, _step1, body2, end) => {
        const key = (prefix + body1) * C + body2;
        // one candidate per (path rule, candidate entity) and query
        const unique = key * 1_000_003 + end;
        if (seen.has(unique)) return;
        seen.add(unique);
        let counts = this.pathCounts.get(key);
        if (counts === undefined) this.pathCounts.set(key, (counts = [0, 0]));
        counts[0]++;
        if (answers.has(end)) counts[1]++;
        this.dirtyPaths.add(key);
      });
    }
    this.stepsMined++;
  }

  /** Confidence of n candidates with `hits` hits shrunk towards `towards` (0 below minSupport / minConfidence). */
  private confidence(n: number, hits: number, towards = 0, support = n): number {
    const { prior, minSupport, minConfidence } = this.options;
    if (support < minSupport) return 0;
    const c = Math.fround((hits + prior * towards) / (n + prior));
    return c >= minConfidence ? c : 0;
  }

  /**
   * The confidences of one rule (head, body), per bucket: each bucket's hit rate shrunk towards the rule's overall
   * rate (itself shrunk towards 0), so a bucket seen rarely inherits the rule's confidence.
   */
  private ruleConfidences(h: number, b: number): number[] {
    const B = this.buckets;
    const base = (h * this.codes + b) * B;
    let n = 0;
    let hits = 0;
    for (let k = 0; k < B; k++) {
      n += this.candidates[base + k];
      hits += this.hits[base + k];
    }
    const overall = this.confidence(n, hits);
    const out = new Array<number>(B);
    for (let k = 0; k < B; k++)
      out[k] =
        overall > 0
          ? this.confidence(this.candidates[base + k], this.hits[base + k], overall, n)
          : 0;
    return out;
  }

  /** Pushes the confidences the last observe() changed into the state (its tables then equal those of rules()). */
  applyUpdates(state: RuleTermState): void {
    const C = this.codes;
    for (const cell of this.dirty) {
      const b = cell % C;
      const h = (cell - b) / C;
      state.setRuleConfidences(h, b, this.ruleConfidences(h, b));
    }
    for (const key of this.dirtyPaths) {
      const [n, hits] = this.pathCounts.get(key)!;
      const b2 = key % C;
      const b1 = Math.floor(key / C) % C;
      const h = Math.floor(key / C / C);
      state.setPathConfidence(h, b1, b2, this.confidence(n, hits));
    }
    this.dirty.clear();
    this.dirtyPaths.clear();
  }

  /** The mined rules as spec lists (codes of the spec's relation count; longer code ranges are cut). */
  rules(numRelations: number): Pick<RuleTermSpec, 'rules' | 'paths'> {
    this.grow(numRelations);
    const C = this.codes;
    const CS = 2 * numRelations;
    const rules: RuleTermSpec['rules'] = [];
    for (let h = 0; h < CS; h++) {
      for (let b = 0; b < CS; b++) {
        const confidences = this.ruleConfidences(h, b);
        if (confidences.some((c) => c > 0)) rules.push([h, b, confidences]);
      }
    }
    const paths: RuleTermSpec['paths'] = [];
    for (const key of [...this.pathCounts.keys()].sort((a, b) => a - b)) {
      const [n, hits] = this.pathCounts.get(key)!;
      const confidence = this.confidence(n, hits);
      if (confidence <= 0) continue;
      const b2 = key % C;
      const b1 = Math.floor(key / C) % C;
      const h = Math.floor(key / C / C);
      if (h >= CS || b1 >= CS || b2 >= CS) continue;
      paths.push([h, b1, b2, confidence]);
    }
    return { rules, paths };
  }
}
