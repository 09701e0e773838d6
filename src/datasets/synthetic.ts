// Deterministic synthetic temporal knowledge graphs in the RE-NET layout (per-step snapshots of
// (subject, relation, object) ids) for the scale benchmark and tests. Owns: the generator only.
// Each step has `factsPerStep` distinct facts: a `recurringFraction` share re-drawn uniformly from the
// facts of the last `recurrenceWindow` steps, the rest new, with subjects and objects drawn from a
// Zipf-like degree distribution (exponent `degreeExponent`; entity ranks scattered over the ids by a
// fixed permutation) and relations from a milder one. Snapshots follow the Snapshot contract (triples
// sorted by (s, r, o), no duplicates). Pure and seeded (src/core/random.ts), so the same options give
// the same snapshots. Must not import kafkajs, src/kafka, src/train or tfjs.
import type { Snapshot } from '../core/types.ts';
import { ConfigError } from '../core/errors.ts';
import { mixSeed, mulberry32 } from '../core/random.ts';

export interface SyntheticOptions {
  numEntities: number;
  numRelations?: number; // default 20
  factsPerStep: number;
  steps: number;
  recurringFraction?: number; // default 0.6
  recurrenceWindow?: number; // default 10 steps
  degreeExponent?: number; // default 1 (Zipf); 0 = uniform
  seed?: number; // default 1
  firstStep?: number; // default 0
}

/** A multiplier coprime to n, so rank -> (rank * a + b) mod n is a permutation of 0..n-1. */
function coprimeMultiplier(n: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let a = Math.floor(n * 0.6180339887) | 1;
  while (gcd(a, n) !== 1) a += 2;
  return a % n || 1;
}

/** Draws ranks 0..n-1 with P(rank) ~ (rank + 1)^-exponent (continuous inverse CDF). */
function rankSampler(n: number, exponent: number, random: () => number): () => number {
  if (exponent === 0) return () => Math.floor(random() * n);
  if (Math.abs(exponent - 1) < 1e-9) {
    const top = Math.log(n + 1);
    return () => Math.min(n - 1, Math.floor(Math.exp(random() * top)) - 1);
  }
  const e = 1 - exponent;
  const top = (n + 1) ** e - 1;
  return () => Math.min(n - 1, Math.floor((random() * top + 1) ** (1 / e)) - 1);
}

function checkOptions(options: SyntheticOptions): void {
  const R = options.numRelations ?? 20;
  for (const [name, value] of [
    ['numEntities', options.numEntities],
    ['numRelations', R],
    ['factsPerStep', options.factsPerStep],
    ['steps', options.steps],
  ] as const) {
    if (!Number.isInteger(value) || value < 1)
      throw new ConfigError(`synthetic ${name} ${value}: expected a positive integer`);
  }
  const N = options.numEntities;
  if (options.factsPerStep > (N * N * R) / 4) {
    throw new ConfigError(
      `synthetic factsPerStep ${options.factsPerStep} is too dense for ${N} entities and ${R} relations; lower it or add entities`,
    );
  }
  const recurring = options.recurringFraction ?? 0.6;
  if (!(recurring >= 0 && recurring < 1))
    throw new ConfigError(`synthetic recurringFraction ${recurring}: expected a value in [0, 1)`);
}

/** The snapshots one at a time (bounded memory: only the recurrence window is kept). */
export function* syntheticSnapshots(options: SyntheticOptions): Generator<Snapshot> {
  checkOptions(options);
  const N = options.numEntities;
  const R = options.numRelations ?? 20;
  const F = options.factsPerStep;
  const recurring = options.recurringFraction ?? 0.6;
  const windowSteps = options.recurrenceWindow ?? 10;
  const exponent = options.degreeExponent ?? 1;
  const first = options.firstStep ?? 0;
  const random = mulberry32(mixSeed(options.seed ?? 1, N ^ Math.imul(F, 31)));
  const entityRank = rankSampler(N, exponent, random);
  const relationRank = rankSampler(R, exponent / 2, random);
  const multiplier = coprimeMultiplier(N);
  const offset = Math.floor(N / 3);
  const entity = (): number => (entityRank() * multiplier + offset) % N;
  // a fact as one exact integer (s * R + r) * N + o < N^2 R <= 2^53 for the sizes we allow
  if (N * N * R > Number.MAX_SAFE_INTEGER)
    throw new ConfigError(`synthetic graph of ${N} entities and ${R} relations is too large`);
  const history: Float64Array[] = []; // the last windowSteps steps' fact keys
  for (let t = 0; t < options.steps; t++) {
    const seen = new Set<number>();
    const keys = new Float64Array(F);
    let count = 0;
    const push = (key: number): void => {
      if (seen.has(key)) return;
      seen.add(key);
      keys[count++] = key;
    };
    const pool = history.reduce((n, h) => n + h.length, 0);
    const wantRecurring = pool > 0 ? Math.round(recurring * F) : 0;
    for (let attempts = 0; count < wantRecurring && attempts < 4 * wantRecurring; attempts++) {
      let pick = Math.floor(random() * pool);
      for (const h of history) {
        if (pick < h.length) {
          push(h[pick]);
          break;
        }
        pick -= h.length;
      }
    }
    while (count < F) {
      const s = entity();
      let o = entity();
      if (o === s) o = (o + 1) % N;
      push((s * R + relationRank()) * N + o);
    }
    keys.sort();
    const triples = new Int32Array(3 * F);
    for (let i = 0; i < F; i++) {
      const key = keys[i];
      const o = key % N;
      const sr = (key - o) / N;
      triples[3 * i] = Math.floor(sr / R);
      triples[3 * i + 1] = sr % R;
      triples[3 * i + 2] = o;
    }
    history.push(keys);
    if (history.length > windowSteps) history.shift();
    yield { step: first + t, triples, numEntities: N, numRelations: R };
  }
}

/** All snapshots as an array (small graphs, tests). */
export function syntheticDataset(options: SyntheticOptions): Snapshot[] {
  return [...syntheticSnapshots(options)];
}
