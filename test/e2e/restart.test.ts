// Restart: `tkg run` killed with SIGKILL mid-replay and started again with the same command resumes from its
// checkpoint (ingest offsets, model checkpoint, evaluation log, what the replay already published) and ends with
// the same final quality table as an uninterrupted run with the same seed. Real broker (test/helpers/broker.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { killQuietly, startTkg, type Running } from './helpers.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';

exitAfterTests('test/e2e/restart.test.ts');

interface RunJson {
  stopped: boolean;
  resumedFromStep: number | null;
  stepsProcessed: number;
  table: {
    steps: number;
    rows: Array<{
      filter: string;
      direction: string;
      mrr: number;
      hits1: number;
      hits3: number;
      hits10: number;
      queries: number;
    }>;
  };
  ingest: { messages: number; late: number; rejected: number };
}

const STEPS = '24';
const RATE = '400'; // facts/s: ~5,200 facts take ~13 s, so the kill (at step 9; nlsm-h trains each step) lands while facts are still being published

function runArgs(stateDir: string, prefix: string): string[] {
  return [
    'run',
    '--replay-steps',
    STEPS,
    '--rate',
    RATE,
    '--state-dir',
    stateDir,
    '--topic-prefix',
    prefix,
    '--metrics-port',
    '0',
    '--query-rate',
    '10',
    '--json',
  ];
}

function parseResult(stdout: string): RunJson {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as RunJson;
}

test(
  'tkg run: SIGKILL mid-replay, restart, same final metrics as an uninterrupted run',
  { timeout: 300_000 },
  async () => {
    const brokers = (await testBrokers()).join(',');
    const dir = mkdtempSync(join(tmpdir(), 'tkg-restart-'));
    const env = { KAFKA_BROKERS: brokers, TKG_SEED: '7' };
    let running: Running | undefined;
    try {
      // Uninterrupted reference run.
      running = startTkg(runArgs(join(dir, 'clean'), uniqueTopicPrefix('clean')), env);
      const clean = await running.finished;
      assert.equal(clean.code, 0, clean.stderr.slice(-3000));
      const reference = parseResult(clean.stdout);
      assert.equal(reference.stopped, false);
      assert.equal(reference.table.steps, Number(STEPS) - 1);

      // Same run, killed mid-replay, then resumed with the same command.
      const stateDir = join(dir, 'killed');
      const prefix = uniqueTopicPrefix('killed');
      running = startTkg(runArgs(stateDir, prefix), env);
      await running.waitForOutput(/^step\s+9 \|/m);
      running.child.kill('SIGKILL');
      const killed = await running.finished;
      assert.equal(killed.signal, 'SIGKILL');
      const printedBeforeKill = killed.stderr
        .split('\n')
        .filter((l) => /^step\s+\d+ \|/.test(l)).length;
      assert.ok(printedBeforeKill < Number(STEPS), 'the kill must land before the run finished');

      running = startTkg(runArgs(stateDir, prefix), env);
      const resumed = await running.finished;
      assert.equal(resumed.code, 0, resumed.stderr.slice(-3000));
      const result = parseResult(resumed.stdout);
      assert.ok(
        result.resumedFromStep !== null && result.resumedFromStep >= 8,
        `resumed from ${result.resumedFromStep}`,
      );
      assert.ok(
        result.stepsProcessed < Number(STEPS),
        `the resumed run redid ${result.stepsProcessed} steps`,
      );
      assert.match(resumed.stderr, /resuming after step \d+/);
      const replayed = /replay: (\d+) of (\d+) facts already in/.exec(resumed.stderr);
      assert.ok(
        replayed && Number(replayed[1]) > 0 && Number(replayed[1]) < Number(replayed[2]),
        `the kill must land mid-replay: ${replayed?.[0]}`,
      );
      assert.equal(result.ingest.rejected, 0);
      assert.equal(
        result.ingest.late,
        0,
        'the replay resumed where it stopped: no fact was published twice',
      );
      // The quality table is the same, number for number.
      assert.deepEqual(result.table, reference.table);
    } finally {
      killQuietly(running);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
