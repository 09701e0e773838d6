// The README's demo command exactly as a user types it, with a short replay: `npm run demo -- --replay-steps 12`.
// No KAFKA_BROKERS: it must start the embedded broker itself (in a temp dir, on a free port), print one live line per
// closed step and the final quality table, exit 0, and stop the broker it started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localBrokerStatus, stopLocalBroker } from '../../src/kafka/local-broker.ts';
import { killQuietly, start, type Running } from './helpers.ts';

test(
  'npm run demo -- --replay-steps 12: embedded broker, live lines, quality table, exit 0',
  { timeout: 240_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tkg-demo-'));
    const brokerDir = join(dir, 'broker');
    let run: Running | undefined;
    try {
      run = start('npm', ['run', 'demo', '--', '--replay-steps', '12'], {
        KAFKA_BROKERS: undefined, // a new user has no cluster: the demo starts the embedded broker
        TKG_NO_DOCKER: '1',
        TKG_BROKER_DIR: brokerDir,
        TKG_BROKER_PORT: '0',
        TKG_STATE_DIR: join(dir, 'state'),
        TKG_METRICS_PORT: '0',
      });
      const result = await run.finished;
      assert.equal(
        result.code,
        0,
        `demo failed:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`,
      );
      assert.match(result.stderr, /starting the embedded Kafka broker/);
      const stepLines = result.stdout
        .split('\n')
        .filter((line) => /^step\s+\d+ \| facts/.test(line));
      assert.equal(stepLines.length, 12, `expected 12 step lines:\n${result.stdout}`);
      // From step 1 on every step is evaluated against its forecast: MRR is a number in (0, 100].
      const mrrs = stepLines.slice(1).map((line) => Number(/MRR raw\s+([\d.]+)/.exec(line)?.[1]));
      assert.ok(
        mrrs.every((m) => m > 0 && m <= 100),
        `MRR per step: ${mrrs.join(', ')}`,
      );
      assert.match(result.stdout, /live quality of nlsm-r over 11 evaluated steps/);
      const timeAware = /^timeAware\s+both\s+([\d.]+)/m.exec(result.stdout);
      assert.ok(timeAware && Number(timeAware[1]) > 50, `time-aware MRR row: ${timeAware?.[0]}`);
      assert.match(result.stdout, /^done in [\d.]+ s: 12 steps this run/m);
      assert.equal(
        (await localBrokerStatus(brokerDir)).running,
        false,
        'the demo must stop the broker it started',
      );
    } finally {
      killQuietly(run);
      await stopLocalBroker(brokerDir).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
