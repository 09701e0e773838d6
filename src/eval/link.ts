// Link-forecasting protocol of SPEC section 2 (the paper's Table 2) over any LinkForecaster.
// Owns: exact AUC with ties, positives / sampled negatives per step, Micro- and Macro-AUC over
// seeds. Must not import kafkajs, src/kafka or src/train (forecasters come from a factory).
import type { LinkForecaster, Snapshot } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import { mixSeed, mulberry32 } from '../core/random.ts';

/**
 * Exact AUC = P(score(pos) > score(neg)) + P(equal) / 2 (Mann-Whitney U with averaged tie ranks).
 * NaN scores count as the lowest. Returns NaN when either class is empty. In [0, 1].
 */
export function aucWithTies(positives: ArrayLike<number>, negatives: ArrayLike<number>): number {
  const P = positives.length;
  const Q = negatives.length;
  if (P === 0 || Q === 0) return NaN;
  const n = P + Q;
  const values = new Float64Array(n);
  for (let i = 0; i < P; i++) values[i] = Number.isNaN(positives[i]) ? -Infinity : positives[i];
  for (let i = 0; i < Q; i++) values[P + i] = Number.isNaN(negatives[i]) ? -Infinity : negatives[i];
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => values[a] - values[b] || 0);
  let positiveRankSum = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]] === values[order[i]]) j++;
    const averageRank = (i + j) / 2 + 1; // 1-based
    for (let k = i; k <= j; k++) if (order[k] < P) positiveRankSum += averageRank;
    i = j + 1;
  }
  return (positiveRankSum - (P * (P + 1)) / 2) / (P * Q);
}

export interface MeanStd {
  mean: number;
  std: number;
}

/** Mean and sample standard deviation (n - 1; 0 for a single value). */
export function meanStd(values: readonly number[]): MeanStd {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0 };
  const variance = values.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1);
  return { mean, std: Math.sqrt(variance) };
}

/** Positives and sampled negatives of one forecast step. */
export interface LinkTestPairs {
  sources: Int32Array;
  targets: Int32Array;
  /** 1 for a link of the target step, 0 for a sampled non-link. */
  labels: Uint8Array;
  positives: number;
}

/**
 * Positives = distinct links i -> j (i != j) of `next` between nodes in `seen`; negatives = the same
 * number of distinct sampled pairs i -> j (i != j, both seen) that are not links of `next`.
 */
export function linkTestPairs(
  next: Snapshot,
  seen: ReadonlySet<number>,
  random: () => number,
): LinkTestPairs {
  const seenNodes = Int32Array.from(seen);
  const links = new Set<number>();
  const pos: number[] = [];
  const M = next.numEntities;
  for (let i = 0; i < next.triples.length; i += 3) {
    const s = next.triples[i];
    const o = next.triples[i + 2];
    if (s === o || !seen.has(s) || !seen.has(o)) continue;
    const key = s * M + o;
    if (links.has(key)) continue; // several relations (R > 1) may repeat a pair
    links.add(key);
    pos.push(s, o);
  }
  const P = pos.length / 2;
  const S = seenNodes.length;
  const maxNegatives = S * (S - 1) - links.size;
  const Q = Math.min(P, maxNegatives);
  const negatives = new Set<number>();
  const neg: number[] = [];
  while (neg.length / 2 < Q) {
    const s = seenNodes[Math.floor(random() * S)];
    const o = seenNodes[Math.floor(random() * S)];
    const key = s * M + o;
    if (s === o || links.has(key) || negatives.has(key)) continue;
    negatives.add(key);
    neg.push(s, o);
  }
  const n = P + Q;
  const sources = new Int32Array(n);
  const targets = new Int32Array(n);
  const labels = new Uint8Array(n);
  for (let k = 0; k < P; k++) {
    sources[k] = pos[2 * k];
    targets[k] = pos[2 * k + 1];
    labels[k] = 1;
  }
  for (let k = 0; k < Q; k++) {
    sources[P + k] = neg[2 * k];
    targets[P + k] = neg[2 * k + 1];
  }
  return { sources, targets, labels, positives: P };
}

export interface LinkStepResult {
  step: number; // the forecast step t + 1
  positives: number;
  auc: number; // percent
}

export interface LinkSeedResult {
  seed: number;
  microAuc: number; // percent
  macroAuc: number; // percent
  steps: LinkStepResult[];
}

export interface LinkEvaluation {
  microAuc: MeanStd; // percent, over seeds
  macroAuc: MeanStd;
  /** Mean over seeds of each step's AUC (percent). */
  perStepAuc: Array<{ step: number; auc: MeanStd }>;
  seeds: LinkSeedResult[];
  seconds: number;
}

export interface LinkProgress {
  seed: number;
  seedIndex: number;
  seeds: number;
  step: number;
  done: number; // forecast steps done over all seeds
  total: number;
  elapsedSeconds: number;
  etaSeconds: number;
}

/**
 * The paper's single-step link forecasting: for each seed a fresh forecaster; for each t, observe
 * snapshot t, forecast t + 1 (positives between nodes seen in snapshots <= t, as many sampled
 * negatives, seeded by (seed, step)). Micro-AUC pools all steps' pairs; Macro-AUC averages per-step AUCs.
 */
export async function runLinkProtocol(input: {
  createForecaster: (seed: number) => Promise<LinkForecaster>;
  snapshots: readonly Snapshot[];
  seeds: readonly number[];
  onProgress?: (progress: LinkProgress) => void;
}): Promise<LinkEvaluation> {
  const { snapshots, seeds } = input;
  if (snapshots.length < 2) {
    throw new InvalidInputError(
      'snapshots',
      `need at least 2 steps to forecast, got ${snapshots.length}`,
      'invalid_argument',
    );
  }
  const t0 = performance.now();
  const total = seeds.length * (snapshots.length - 1);
  let done = 0;
  const results: LinkSeedResult[] = [];
  for (let si = 0; si < seeds.length; si++) {
    const seed = seeds[si];
    const forecaster = await input.createForecaster(seed);
    const seen = new Set<number>();
    const steps: LinkStepResult[] = [];
    const pooledPositive: number[] = [];
    const pooledNegative: number[] = [];
    for (let t = 0; t + 1 < snapshots.length; t++) {
      const current = snapshots[t];
      await forecaster.observe(current);
      for (let i = 0; i < current.triples.length; i += 3) {
        seen.add(current.triples[i]);
        seen.add(current.triples[i + 2]);
      }
      const next = snapshots[t + 1];
      const pairs = linkTestPairs(next, seen, mulberry32(mixSeed(seed, next.step)));
      if (pairs.positives > 0) {
        const probability = await forecaster.linkProbability(
          next.step,
          pairs.sources,
          pairs.targets,
        );
        const positives = probability.subarray(0, pairs.positives);
        const negatives = probability.subarray(pairs.positives);
        steps.push({
          step: next.step,
          positives: pairs.positives,
          auc: 100 * aucWithTies(positives, negatives),
        });
        for (const v of positives) pooledPositive.push(v);
        for (const v of negatives) pooledNegative.push(v);
      }
      done++;
      const elapsed = (performance.now() - t0) / 1000;
      input.onProgress?.({
        seed,
        seedIndex: si,
        seeds: seeds.length,
        step: next.step,
        done,
        total,
        elapsedSeconds: elapsed,
        etaSeconds: ((total - done) * elapsed) / done,
      });
    }
    (forecaster as { dispose?: () => void }).dispose?.();
    results.push({
      seed,
      microAuc: 100 * aucWithTies(pooledPositive, pooledNegative),
      macroAuc: meanStd(steps.map((s) => s.auc)).mean,
      steps,
    });
  }
  const stepNumbers = [...new Set(results.flatMap((r) => r.steps.map((s) => s.step)))].sort(
    (a, b) => a - b,
  );
  return {
    microAuc: meanStd(results.map((r) => r.microAuc)),
    macroAuc: meanStd(results.map((r) => r.macroAuc)),
    perStepAuc: stepNumbers.map((step) => ({
      step,
      auc: meanStd(
        results.flatMap((r) => r.steps.filter((s) => s.step === step).map((s) => s.auc)),
      ),
    })),
    seeds: results,
    seconds: (performance.now() - t0) / 1000,
  };
}
