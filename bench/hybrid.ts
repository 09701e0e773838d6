// `npm run bench -- hybrid [--json] [--threads n] [--seconds s] [--rounds n] [--top-k t]`
// nlsm-h serving cost with REAL history terms: the Scorer over all YAGO entities (N = 10,623, K = 64, R = 10; a seeded
// random ScoringState, speed does not depend on its values) with the bundle's nlsm-h term over YAGO's train + valid
// snapshots, queries = YAGO's test facts in both directions (so the term counts are YAGO's: every strict candidate
// of the query plus the top relaxed candidates of its relation), batch 64, against the plain scorer on the same
// queries. Reports queries/s of both, their ratio, and the mean / p99 terms per query. Rates: best of --rounds.
// "nlsm-h" memoises a query's terms until the next closed step (the server's steady state: queries repeat within a
// step, e.g. the per-step forecasts); "cold" has no memo: every query's terms are read from the step's term table
// (HybridHistory.termTable, built once when a step closes; its build time is reported as tableBuildMs).
import { mulberry32 } from '../src/core/random.ts';
import type { ScoringState } from '../src/core/types.ts';
import { loadTkgDataset, tkgSnapshots } from '../src/datasets/index.ts';
import { exportScoringModel } from '../src/model/scoring-graph.ts';
import { type ScoreRequest, Scorer } from '../src/serve/scorer.ts';
import { F, type HybridWeights } from '../src/model/hybrid-features.ts';
import { TermInputs } from '../src/model/term-inputs.ts';
import { encodeTermSpec, type TermSpec } from '../src/model/terms.ts';
import { scaleScoringState } from '../src/train/hybrid/export.ts';

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}

async function rate(
  once: () => Promise<unknown>,
  perCall: number,
  seconds: number,
): Promise<number> {
  await once();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await once();
    calls++;
  }
  return (calls * perCall) / ((performance.now() - t0) / 1000);
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const threads = Number(flag(args, 'threads', '1'));
  const seconds = Number(flag(args, 'seconds', '1'));
  const rounds = Number(flag(args, 'rounds', '5'));
  const relaxedTopK = Number(flag(args, 'top-k', '64'));
  const batch = 64;
  const dataset = loadTkgDataset('yago');
  const N = dataset.numEntities;
  const R = dataset.numRelations;
  const K = 64;
  const random = mulberry32(2024);
  const state: ScoringState = {
    numEntities: N,
    numRelations: R,
    K,
    z: Float32Array.from({ length: N * K }, () => 1 / (1 + Math.exp(-(random() * 6 - 3)))),
    theta: Float32Array.from({ length: R * K * 4 }, () => random() * 2 - 1),
    step: 183,
    version: 1,
  };
  const weights: HybridWeights = {
    numRelations: R,
    decay: 0.4,
    relaxedTopK,
    baseScale: Array.from({ length: R }, () => 0.5),
    history: Array.from({ length: 2 * R * F }, () => random() * 4),
  };
  const spec: TermSpec = { kind: 'hybrid', weights };
  const history = tkgSnapshots(dataset, ['train', 'valid']);
  const historyStep = history.at(-1)!.step; // 182: the bundle forecasts the first test step
  const inputs = new TermInputs();
  for (const s of history) inputs.add(s);
  const provider = inputs.stateAt(spec, historyStep)!;
  const test = tkgSnapshots(dataset, ['test'])[0];
  const requests: ScoreRequest[] = [];
  for (let i = 0; i < test.triples.length; i += 3) {
    requests.push({
      direction: 'object',
      anchor: test.triples[i],
      relation: test.triples[i + 1],
      k: 10,
    });
    requests.push({
      direction: 'subject',
      anchor: test.triples[i + 2],
      relation: test.triples[i + 1],
      k: 10,
    });
  }
  const termCounts = requests
    .map((q) => provider.terms(q.direction, q.anchor, q.relation)?.entities.length ?? 0)
    .sort((a, b) => a - b);
  const meanTerms = termCounts.reduce((a, b) => a + b, 0) / termCounts.length;
  const p99Terms = termCounts[Math.floor(0.99 * (termCounts.length - 1))];

  const plain = new Scorer({ intraOpThreads: threads, maxBatch: batch, maxWaitMs: 0 });
  await plain.loadModel(exportScoringModel(state, { vocabularyHash: 'bench' }));
  const hybrid = new Scorer({
    intraOpThreads: threads,
    maxBatch: batch,
    maxWaitMs: 0,
    terms: inputs,
  });
  const hybridBytes = exportScoringModel(scaleScoringState(state, weights.baseScale), {
    vocabularyHash: 'bench',
    modelName: 'nlsm-h',
    terms: encodeTermSpec(spec),
  });
  await hybrid.loadModel(hybridBytes);
  // cold: every query's terms computed from the history (no memo), as for a query first seen since the last step
  const coldInputs = new TermInputs({ memoSize: 0 });
  for (const s of history) coldInputs.add(s);
  const tableBuildMs = 1000 * (coldInputs.stateAt(spec, historyStep)!.prepare?.() ?? 0); // once per step close
  const cold = new Scorer({
    intraOpThreads: threads,
    maxBatch: batch,
    maxWaitMs: 0,
    terms: coldInputs,
  });
  await cold.loadModel(hybridBytes);
  let coldOffset = 0;
  let plainOffset = 0;
  let hybridOffset = 0;
  const slice = (offset: number) => {
    const start = (offset * batch) % (requests.length - batch);
    return requests.slice(start, start + batch);
  };
  const best = { plain: 0, hybrid: 0, cold: 0 };
  for (let round = 0; round < rounds; round++) {
    best.plain = Math.max(
      best.plain,
      await rate(() => plain.scoreBatch(slice(plainOffset++)), batch, seconds),
    );
    best.cold = Math.max(
      best.cold,
      await rate(() => cold.scoreBatch(slice(coldOffset++)), batch, seconds),
    );
    best.hybrid = Math.max(
      best.hybrid,
      await rate(() => hybrid.scoreBatch(slice(hybridOffset++)), batch, seconds),
    );
  }
  await plain.close();
  await hybrid.close();
  await cold.close();
  const ratio = best.hybrid / best.plain;
  process.stderr.write(
    `nlsm-h serving on YAGO (N ${N}, K ${K}, batch ${batch}, ${threads} thread(s), relaxedTopK ${relaxedTopK}):\n` +
      `  history terms per query: mean ${meanTerms.toFixed(1)}, p99 ${p99Terms}, max ${termCounts[termCounts.length - 1]} (${requests.length} test queries of step ${test.step})\n` +
      `  plain scorer  ${Math.round(best.plain).toLocaleString('en-US')} queries/s\n` +
      `  nlsm-h scorer ${Math.round(best.hybrid).toLocaleString('en-US')} queries/s (${(100 * ratio).toFixed(0)}% of plain; terms memoised per query until the next step)\n` +
      `  nlsm-h cold   ${Math.round(best.cold).toLocaleString('en-US')} queries/s (${((100 * best.cold) / best.plain).toFixed(0)}% of plain; no memo: every query's terms read from the step's term table, built in ${tableBuildMs.toFixed(0)} ms at the step close)\n`,
  );
  return {
    threads,
    batch,
    relaxedTopK,
    meanTermsPerQuery: Number(meanTerms.toFixed(2)),
    p99TermsPerQuery: p99Terms,
    plainQueriesPerSecond: Math.round(best.plain),
    hybridQueriesPerSecond: Math.round(best.hybrid),
    hybridRatioToPlain: Number(ratio.toFixed(3)),
    coldQueriesPerSecond: Math.round(best.cold),
    coldRatioToPlain: Number((best.cold / best.plain).toFixed(3)),
    tableBuildMs: Number(tableBuildMs.toFixed(1)),
  };
}
