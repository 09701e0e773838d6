// Fitting a bundle's calibration (src/model/calibration.ts) on the stream's own recent steps. When step t closes, the
// bundle that forecast t scores t's facts (positives) and, per fact and direction, `negatives` random entities that
// are not answers of that query at t (non-facts, each weighing (N - answers) / negatives, so the samples stand for
// every candidate: an unbiased estimate of the full log-likelihood). A weighted logistic regression
// p = sigmoid(a * score + b) is fitted by Newton's method per direction on all kept samples (the pooled fit, with a
// weak prior towards a = 1, b = 0), then per (direction, relation) slot with a prior towards the pooled fit, so a
// relation with few facts keeps the pooled mapping.
// Owns: sampling and fitting. Pure (seeded); must not import serve, Kafka or tfjs.
import type { ScoringState, Snapshot } from '../core/types.ts';
import { mulberry32 } from '../core/random.ts';
import type { PlattCalibration } from '../model/calibration.ts';
import { pairLogits } from '../model/dense-scores.ts';
import type { SparseRow, TermState } from '../model/terms.ts';

/** Samples of one closed step: slot = direction * R + relation, the served score, label 1/0 and weight. */
export interface CalibrationSamples {
  step: number;
  facts: number;
  /** R of the bundle that was scored (slots are direction * numRelations + relation). */
  numRelations: number;
  slot: Int32Array;
  score: Float32Array;
  label: Uint8Array;
  weight: Float32Array;
}

export interface SampleOptions {
  /** The bundle's dense scoring state (after any base scale), forecasting snapshot.step. */
  dense: ScoringState;
  /** The bundle's term as of snapshot.step - 1 (undefined: no term). */
  terms: TermState | undefined;
  seed: number;
  /** Facts sampled per step at most (default 1,000). */
  maxFacts?: number;
  /** Non-facts per fact and direction (default 8). */
  negatives?: number;
}

function rowValue(row: SparseRow | undefined, entity: number): number {
  if (!row) return 0;
  let sum = 0;
  for (let i = 0; i < row.entities.length; i++)
    if (row.entities[i] === entity) sum += row.values[i];
  return sum;
}

/** Pure: calibration samples of `snapshot` under the bundle that forecast it. */
export function calibrationSamples(snapshot: Snapshot, options: SampleOptions): CalibrationSamples {
  const { dense, terms } = options;
  const N = dense.numEntities;
  const R = dense.numRelations;
  const negatives = options.negatives ?? 8;
  const random = mulberry32(options.seed * 1_000_003 + snapshot.step);
  const t = snapshot.triples;
  const usable: number[] = [];
  for (let i = 0; i < t.length; i += 3)
    if (t[i] < N && t[i + 1] < R && t[i + 2] < N) usable.push(i);
  const maxFacts = options.maxFacts ?? 1000;
  while (usable.length > maxFacts) usable.splice(Math.floor(random() * usable.length), 1);
  // answers per query of this step (the non-fact draws avoid them)
  const answers = new Map<string, Set<number>>();
  const answersOf = (key: string) => answers.get(key) ?? answers.set(key, new Set()).get(key)!;
  for (let i = 0; i < t.length; i += 3) {
    answersOf(`o:${t[i]}:${t[i + 1]}`).add(t[i + 2]);
    answersOf(`s:${t[i + 2]}:${t[i + 1]}`).add(t[i]);
  }
  const total = usable.length * 2 * (1 + negatives);
  const triples = new Int32Array(total * 3);
  const slot = new Int32Array(total);
  const label = new Uint8Array(total);
  const weight = new Float32Array(total);
  const termPart = new Float32Array(total);
  let n = 0;
  const push = (
    s: number,
    r: number,
    o: number,
    sl: number,
    y: number,
    w: number,
    term: number,
  ) => {
    triples[3 * n] = s;
    triples[3 * n + 1] = r;
    triples[3 * n + 2] = o;
    slot[n] = sl;
    label[n] = y;
    weight[n] = w;
    termPart[n++] = term;
  };
  for (const i of usable) {
    const [s, r, o] = [t[i], t[i + 1], t[i + 2]];
    for (const direction of ['object', 'subject'] as const) {
      const anchor = direction === 'object' ? s : o;
      const truth = direction === 'object' ? o : s;
      const taken = answersOf(`${direction === 'object' ? 'o' : 's'}:${anchor}:${r}`);
      const row = terms?.terms(direction, anchor, r);
      const sl = (direction === 'object' ? 0 : R) + r;
      const w = Math.max(0, N - taken.size) / negatives;
      push(s, r, o, sl, 1, 1, rowValue(row, truth));
      for (let j = 0; j < negatives; j++) {
        let e = Math.floor(random() * N);
        for (let tries = 0; taken.has(e) && tries < 16; tries++) e = Math.floor(random() * N);
        if (taken.has(e)) continue;
        if (direction === 'object') push(s, r, e, sl, 0, w, rowValue(row, e));
        else push(e, r, o, sl, 0, w, rowValue(row, e));
      }
    }
  }
  const logits = pairLogits(dense, triples.subarray(0, 3 * n));
  const score = new Float32Array(n);
  for (let i = 0; i < n; i++) score[i] = logits[i] + termPart[i];
  return {
    step: snapshot.step,
    facts: usable.length,
    numRelations: R,
    slot: slot.slice(0, n),
    score,
    label: label.slice(0, n),
    weight: weight.slice(0, n),
  };
}

interface Fit {
  a: number;
  b: number;
}

/**
 * Weighted logistic regression of label on score with a Gaussian prior of precision `strength` around `prior`
 * (Newton's method, step halving). Pure.
 */
export function fitPlatt(
  score: ArrayLike<number>,
  label: ArrayLike<number>,
  weight: ArrayLike<number>,
  indices: readonly number[],
  prior: Fit,
  strength: number,
): Fit {
  const loss = (a: number, b: number): number => {
    let total = 0.5 * strength * ((a - prior.a) ** 2 + (b - prior.b) ** 2);
    for (const i of indices) {
      const z = a * score[i] + b;
      // -log sigmoid(z) = softplus(-z), -log(1 - sigmoid(z)) = softplus(z)
      const x = label[i] ? -z : z;
      total += weight[i] * (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
    }
    return total;
  };
  let { a, b } = prior;
  let current = loss(a, b);
  for (let iteration = 0; iteration < 50; iteration++) {
    let ga = strength * (a - prior.a);
    let gb = strength * (b - prior.b);
    let haa = strength;
    let hab = 0;
    let hbb = strength;
    for (const i of indices) {
      const x = score[i];
      const p = 1 / (1 + Math.exp(-(a * x + b)));
      const r = weight[i] * (p - label[i]);
      const h = weight[i] * p * (1 - p);
      ga += r * x;
      gb += r;
      haa += h * x * x;
      hab += h * x;
      hbb += h;
    }
    const det = haa * hbb - hab * hab;
    if (!(det > 0)) break;
    let da = (hbb * ga - hab * gb) / det;
    let db = (haa * gb - hab * ga) / det;
    let step = 1;
    let next = loss(a - da, b - db);
    while (next > current && step > 1e-4) {
      step /= 2;
      next = loss(a - step * da, b - step * db);
    }
    if (next > current) break;
    da *= step;
    db *= step;
    a -= da;
    b -= db;
    const improvement = current - next;
    current = next;
    if (improvement < 1e-9 * Math.max(1, Math.abs(current))) break;
  }
  return { a, b };
}

/** Precision of the prior of the pooled fit (towards a = 1, b = 0) and of each slot's fit (towards the pooled fit). */
export const POOLED_PRIOR_STRENGTH = 1;
export const SLOT_PRIOR_STRENGTH = 10;

/** Pure: the calibration of `numRelations` relations from the kept samples (oldest first). */
export function fitCalibration(
  samples: readonly CalibrationSamples[],
  numRelations: number,
): PlattCalibration | undefined {
  const R = numRelations;
  const score: number[] = [];
  const label: number[] = [];
  const weight: number[] = [];
  const bySlot: number[][] = Array.from({ length: 2 * R }, () => []);
  const byDirection: number[][] = [[], []];
  let facts = 0;
  for (const part of samples) {
    facts += part.facts;
    for (let i = 0; i < part.slot.length; i++) {
      const sl = part.slot[i];
      const direction = sl >= part.numRelations ? 1 : 0;
      const relation = sl - direction * part.numRelations;
      if (relation >= R) continue; // a relation the new bundle does not have
      const n = score.length;
      score.push(part.score[i]);
      label.push(part.label[i]);
      weight.push(part.weight[i]);
      byDirection[direction].push(n);
      bySlot[direction * R + relation].push(n);
    }
  }
  if (facts === 0) return undefined;
  const globalA: [number, number] = [1, 1];
  const globalB: [number, number] = [0, 0];
  for (const d of [0, 1]) {
    if (byDirection[d].length === 0) continue;
    const fit = fitPlatt(
      score,
      label,
      weight,
      byDirection[d],
      { a: 1, b: 0 },
      POOLED_PRIOR_STRENGTH,
    );
    globalA[d] = fit.a;
    globalB[d] = fit.b;
  }
  const a = new Array<number>(2 * R);
  const b = new Array<number>(2 * R);
  for (let sl = 0; sl < 2 * R; sl++) {
    const d = sl >= R ? 1 : 0;
    const prior = { a: globalA[d], b: globalB[d] };
    const fit =
      bySlot[sl].length === 0
        ? prior
        : fitPlatt(score, label, weight, bySlot[sl], prior, SLOT_PRIOR_STRENGTH);
    a[sl] = fit.a;
    b[sl] = fit.b;
  }
  return {
    kind: 'platt',
    numRelations: R,
    a,
    b,
    globalA,
    globalB,
    fromStep: samples[0].step,
    toStep: samples[samples.length - 1].step,
    facts,
  };
}
