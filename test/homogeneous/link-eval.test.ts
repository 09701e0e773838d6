// The link-evaluation plumbing of issue 5: merging per-seed reports of parallel workers, seed lists,
// trainer overrides, and `tkg eval --jobs 2` giving exactly the sequential report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mergeLinkReports, type LinkEvalReport } from '../../src/eval/evaluate.ts';
import { meanStd } from '../../src/eval/link.ts';
import { dealSeeds, parseSeedList, trainerOverrides } from '../../src/cli/link-workers.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';

function report(seeds: Array<{ seed: number; steps: number[] }>): LinkEvalReport {
  const perSeed = seeds.map(({ seed, steps }) => ({
    seed,
    microAuc: 50 + seed,
    macroAuc: steps.reduce((a, b) => a + b, 0) / steps.length,
    steps: steps.map((auc, i) => ({ step: i + 1, positives: 10, auc })),
  }));
  return {
    kind: 'link',
    dataset: 'toy',
    protocol: 'single-step',
    model: 'm',
    numNodes: 5,
    numSteps: 3,
    microAuc: meanStd(perSeed.map((s) => s.microAuc)),
    macroAuc: meanStd(perSeed.map((s) => s.macroAuc)),
    perStepAuc: [],
    perSeed,
    modelInfo: seeds.map((s) => ({ seed: s.seed })),
    notes: ['n'],
    seconds: 99,
  };
}

test('mergeLinkReports: mean and sample std over all seeds, per-step means, seeds sorted', () => {
  const a = report([
    { seed: 3, steps: [60, 70] },
    { seed: 1, steps: [80, 90] },
  ]);
  const b = report([{ seed: 2, steps: [70, 100] }]);
  const merged = mergeLinkReports([a, b], 12.5);
  assert.deepEqual(
    merged.perSeed.map((s) => s.seed),
    [1, 2, 3],
  );
  // micro per seed = 51, 52, 53: mean 52, sample std 1
  assert.equal(merged.microAuc.mean, 52);
  assert.equal(merged.microAuc.std, 1);
  // macro per seed = 85, 85, 65
  assert.ok(Math.abs(merged.macroAuc.mean - 235 / 3) < 1e-12);
  assert.deepEqual(
    merged.perStepAuc.map((s) => [s.step, s.auc.mean]),
    [
      [1, 70],
      [2, 260 / 3],
    ],
  );
  assert.equal(merged.seconds, 12.5);
  assert.equal(merged.modelInfo.length, 3);
  assert.throws(() => mergeLinkReports([a, a], 1), /seed 1 appears twice/);
  assert.throws(() => mergeLinkReports([], 1), ConfigError);
  assert.throws(() => mergeLinkReports([a, { ...b, dataset: 'other' }], 1), /does not match/);
});

test('seed lists, dealing seeds to workers, trainer overrides from flags', () => {
  assert.deepEqual(parseSeedList('3, 1,7'), [3, 1, 7]);
  for (const bad of ['', '1,,2', '1,1', '-1', '1.5', 'x'])
    assert.throws(() => parseSeedList(bad), ConfigError, bad);
  assert.deepEqual(dealSeeds([1, 2, 3, 4, 5], 2), [
    [1, 3, 5],
    [2, 4],
  ]);
  assert.deepEqual(dealSeeds([1], 3), [[1]]);
  assert.deepEqual(trainerOverrides({ dataset: 'x' }), {});
  assert.deepEqual(
    trainerOverrides({
      dataset: 'x',
      epochs: '40',
      window: '3',
      learningRate: '0.02',
      negatives: '8',
    }),
    { epochsPerWindow: 40, windowSize: 3, learningRate: 0.02, negativesPerPositive: 8 },
  );
  assert.throws(() => trainerOverrides({ dataset: 'x', epochs: '2.5' }), /--epochs/);
  assert.throws(() => trainerOverrides({ dataset: 'x', learningRate: '0' }), /--learning-rate/);
});

test(
  'tkg eval --jobs 2 on Enron (recurrency, 3 seeds) prints the same AUCs as one process',
  { timeout: 120_000 },
  () => {
    const tkg = (extra: string[]) =>
      spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(projectRoot, 'src/cli/main.ts'),
          'eval',
          '--dataset',
          'enron',
          '--model',
          'recurrency',
          '--seeds',
          '3',
          '--json',
          '--quiet',
          ...extra,
        ],
        { cwd: projectRoot, encoding: 'utf8' },
      );
    const one = tkg([]);
    assert.equal(one.status, 0, one.stderr);
    const two = tkg(['--jobs', '2']);
    assert.equal(two.status, 0, two.stderr);
    const a = JSON.parse(one.stdout) as LinkEvalReport;
    const b = JSON.parse(two.stdout) as LinkEvalReport;
    assert.deepEqual(b.microAuc, a.microAuc);
    assert.deepEqual(b.macroAuc, a.macroAuc);
    assert.deepEqual(b.perSeed, a.perSeed);
    assert.deepEqual(b.perStepAuc, a.perStepAuc);
    assert.ok(b.notes.some((n) => n.includes('2 parallel worker processes')));
    assert.equal(a.numNodes, 143);
    assert.equal(a.numSteps, 16);
  },
);

test(
  'tkg eval --model nlsm on Enron trains with the link profile; flags override it (2 epochs, 1 seed)',
  { timeout: 180_000 },
  async () => {
    const { linkTrainingProfile } = await import('../../src/eval/evaluate.ts');
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(projectRoot, 'src/cli/main.ts'),
        'eval',
        '--dataset',
        'enron',
        '--model',
        'nlsm',
        '--seed-list',
        '7',
        '--epochs',
        '2',
        '--json',
        '--quiet',
      ],
      { cwd: projectRoot, encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as LinkEvalReport;
    assert.deepEqual(
      report.perSeed.map((s) => s.seed),
      [7],
    );
    assert.equal(report.perSeed[0].steps.length, 15, 'forecasts steps 1..15');
    const info = report.modelInfo[0] as Record<string, unknown>;
    assert.equal(info.epochsPerWindow, 2, '--epochs overrides the profile');
    for (const key of ['windowSize', 'learningRate', 'negativesPerPositive', 'initScale'] as const)
      assert.equal(info[key], linkTrainingProfile[key], key);
    for (const s of report.perSeed[0].steps) assert.ok(s.auc >= 0 && s.auc <= 100);
  },
);
