// Bench `rules`: the rule term's costs on ICEWS14 (train as history): observing and mining one closed step, and the
// term rows of the first valid step's queries (both directions), uncached and memoised, against the recurrency
// term state (src/model/term-states.ts) on the same queries in the same run (the ratio is what load does not move).
// Prints a table; the dispatcher writes bench/results/rules.json.
import { loadTkgDataset, tkgSnapshots } from '../src/datasets/index.ts';
import { RuleTermState } from '../src/model/rule-term.ts';
import { RecurrencyTermState } from '../src/model/term-states.ts';
import { RuleMiner } from '../src/train/rules/miner.ts';
import { initialRuleSpec } from '../src/train/rules/models.ts';
import { RF } from '../src/model/rule-spec.ts';

export async function run(): Promise<Record<string, unknown>> {
  const dataset = loadTkgDataset('icews14');
  const train = tkgSnapshots(dataset, ['train']);
  const target = tkgSnapshots(dataset, ['valid'])[0];
  const R = dataset.numRelations;
  // every feature weighted (the work does not depend on the values)
  const spec = {
    ...initialRuleSpec({ numRelations: R, decay: 0.99, alpha: 0.3 }),
    weights: new Array<number>(RF).fill(1),
  };
  const rules = new RuleTermState(spec);
  const miner = new RuleMiner(spec, R);
  const recurrency = new RecurrencyTermState({
    kind: 'recurrency',
    numRelations: R,
    decay: 0.99,
    strictWeight: 1,
    relaxedWeight: 0.3,
  });
  const t0 = performance.now();
  let lastReport = t0;
  train.forEach((s, i) => {
    miner.observe(s, rules, 0);
    rules.observe(s);
    miner.applyUpdates(rules);
    const now = performance.now();
    if (now - lastReport > 2000) {
      lastReport = now;
      const rate = (i + 1) / ((now - t0) / 1000);
      process.stderr.write(
        `observe step ${i + 1}/${train.length}: ${rate.toFixed(1)} steps/s, ETA ${Math.round((train.length - i - 1) / rate)}s\n`,
      );
    }
  });
  const observeSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  for (const s of train) recurrency.observe(s);
  const recurrencyObserveSeconds = (performance.now() - t1) / 1000;
  const q = target.triples;
  const queries: Array<['object' | 'subject', number, number]> = [];
  for (let i = 0; i < q.length; i += 3) {
    queries.push(['object', q[i], q[i + 1]]);
    queries.push(['subject', q[i + 2], q[i + 1]]);
  }
  const time = (f: () => void, repeat: number): number => {
    const start = performance.now();
    for (let k = 0; k < repeat; k++) f();
    return (repeat * queries.length) / ((performance.now() - start) / 1000);
  };
  let nnz = 0;
  const step = rules.lastStep + 1;
  const uncached = time(() => {
    for (const [d, a, r] of queries) nnz += rules.termsAt(step, d, a, r).entities.length;
  }, 5);
  const memoised = time(() => {
    for (const [d, a, r] of queries) rules.terms(d, a, r);
  }, 5);
  let recurrencyNnz = 0;
  const reference = time(() => {
    for (const [d, a, r] of queries)
      recurrencyNnz += recurrency.terms(d, a, r)?.entities.length ?? 0;
  }, 5);
  const result = {
    dataset: 'icews14',
    steps: train.length,
    queries: queries.length,
    observeSecondsPerStep: observeSeconds / train.length,
    recurrencyObserveSecondsPerStep: recurrencyObserveSeconds / train.length,
    termsQueriesPerSecondUncached: uncached,
    termsQueriesPerSecondMemoised: memoised,
    recurrencyQueriesPerSecond: reference,
    ratioUncachedToRecurrency: uncached / reference,
    meanTermsPerQuery: nnz / (5 * queries.length),
    recurrencyMeanTermsPerQuery: recurrencyNnz / (5 * queries.length),
  };
  const row = (name: string, value: string) =>
    process.stdout.write(`${name.padEnd(44)} ${value}\n`);
  row('observe + mine one closed step (ms)', (1000 * result.observeSecondsPerStep).toFixed(1));
  row(
    'recurrency observe one closed step (ms)',
    (1000 * result.recurrencyObserveSecondsPerStep).toFixed(1),
  );
  row('rule term rows, uncached (queries/s)', uncached.toFixed(0));
  row('rule term rows, memoised per step (queries/s)', memoised.toFixed(0));
  row('recurrency term rows, same queries (queries/s)', reference.toFixed(0));
  row('ratio rule / recurrency (uncached)', result.ratioUncachedToRecurrency.toFixed(3));
  row(
    'mean terms per query (rules / recurrency)',
    `${result.meanTermsPerQuery.toFixed(0)} / ${result.recurrencyMeanTermsPerQuery.toFixed(0)}`,
  );
  return result;
}
