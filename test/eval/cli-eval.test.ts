import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tkg = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });

/** A RE-NET directory where facts recur: (i, 0, i + 1) at every step, plus noise facts. */
function recurringDataset(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-eval-cli-'));
  const lines = (from: number, to: number): string => {
    const out: string[] = [];
    for (let t = from; t < to; t++) {
      for (let i = 0; i < 8; i++) out.push(`${i}\t0\t${i + 1}\t${t}`);
      out.push(`${(t * 7) % 10}\t1\t${(t * 3) % 10}\t${t}`);
    }
    return out.join('\n');
  };
  writeFileSync(join(dir, 'train.txt'), lines(0, 12));
  writeFileSync(join(dir, 'valid.txt'), lines(12, 15));
  writeFileSync(join(dir, 'test.txt'), lines(15, 18));
  return dir;
}

test('tkg eval --model recurrency --json on a RE-NET directory: keys and a strong score on recurring facts', () => {
  const dir = recurringDataset();
  const run = tkg([
    'eval',
    '--dataset',
    dir,
    '--model',
    'recurrency',
    '--protocol',
    'single-step',
    '--json',
    '--quiet',
  ]);
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  for (const mode of ['raw', 'static', 'timeAware']) {
    assert.deepEqual(Object.keys(report[mode]).sort(), ['hits1', 'hits10', 'hits3', 'mrr']);
    assert.deepEqual(Object.keys(report.perDirection.object[mode]).sort(), [
      'hits1',
      'hits10',
      'hits3',
      'mrr',
    ]);
  }
  assert.equal(report.protocol, 'single-step');
  assert.equal(report.model, 'recurrency');
  assert.deepEqual(report.testSteps, [15, 17]);
  assert.ok(report.timeAware.mrr > 80, `MRR ${report.timeAware.mrr}`);
  assert.ok(report.seconds > 0);
});

test('tkg eval usage errors exit 2 with the offending value', () => {
  const dir = recurringDataset();
  const badModel = tkg(['eval', '--dataset', dir, '--model', 'magic']);
  assert.equal(badModel.status, 2);
  assert.match(badModel.stderr, /--model magic/);
  const missing = tkg(['eval', '--dataset', join(dir, 'nope'), '--model', 'recurrency']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /does not exist/);
  const badProtocol = tkg([
    'eval',
    '--dataset',
    dir,
    '--model',
    'recurrency',
    '--protocol',
    'sideways',
  ]);
  assert.equal(badProtocol.status, 2);
});
