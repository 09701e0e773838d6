// Integration (real broker): `tkg ingest` child processes killed with SIGKILL at random points, restarted,
// end with the same snapshots as a clean run (exactly-once state from at-least-once delivery).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createKafkaClient } from '../../src/kafka/client.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { topicNames } from '../../src/kafka/topics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import {
  createFactTopics,
  expectedSnapshots,
  persistedSnapshots,
  publish,
  mulberry32,
  snapshotDifference,
  tempStateDir,
  yagoTrain,
} from './fixtures.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';

exitAfterTests('test/ingest/crash-recovery.test.ts');

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startIngest(
  brokers: string[],
  prefix: string,
  stateDir: string,
  group: string,
): { child: ChildProcess; done: Promise<ChildResult> } {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'ingest',
      '--state-dir',
      stateDir,
      '--topic-prefix',
      prefix,
      '--group',
      group,
      '--until-caught-up',
      '--flush-at-end',
      '--json-summary',
      '--no-metrics',
    ],
    {
      cwd: projectRoot,
      env: {
        ...process.env,
        KAFKA_BROKERS: brokers.join(','),
        TKG_LOG_LEVEL: 'warn',
        TKG_INGEST_SESSION_TIMEOUT_MS: '6000',
        TKG_CHECKPOINT_EVERY_MESSAGES: '5000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<ChildResult>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function closedStepCount(stateDir: string): number {
  const dir = join(stateDir, 'snapshots');
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.snap')).length : 0;
}

/** Kill plan of one crash: after `steps` snapshot files exist (or at once), wait `delayMs`, then SIGKILL. */
interface KillPoint {
  steps: number;
  delayMs: number;
}

/** Runs `tkg ingest` until it exits 0, SIGKILLing it at each kill point. Returns how many kills hit a live process. */
async function runWithKills(
  brokers: string[],
  prefix: string,
  stateDir: string,
  group: string,
  kills: KillPoint[],
) {
  let killedAlive = 0;
  let lastSummary: Record<string, unknown> | undefined;
  for (const point of [...kills, null]) {
    const { child, done } = startIngest(brokers, prefix, stateDir, group);
    if (point) {
      let exited = false;
      void done.then(() => (exited = true));
      while (!exited && closedStepCount(stateDir) < point.steps) await sleep(10);
      await sleep(point.delayMs);
      if (!exited) {
        child.kill('SIGKILL');
        killedAlive += 1;
      }
      const result = await done;
      if (result.code === 0)
        return {
          killedAlive,
          summary: JSON.parse(result.stdout.trim().split('\n').pop() as string),
        };
      assert.equal(
        result.signal,
        'SIGKILL',
        `ingest died by itself: ${result.stderr.slice(-2000)}`,
      );
    } else {
      const result = await done;
      assert.equal(result.code, 0, `final ingest run failed: ${result.stderr.slice(-2000)}`);
      lastSummary = JSON.parse(result.stdout.trim().split('\n').pop() as string) as Record<
        string,
        unknown
      >;
    }
  }
  return { killedAlive, summary: lastSummary as Record<string, unknown> };
}

test(
  'SIGKILL at random points in 3 runs, restart: final snapshots identical to a clean run',
  { timeout: 300_000 },
  async () => {
    const brokers = await testBrokers();
    const kafka = createKafkaClient({ brokers });
    const prefix = uniqueTopicPrefix('ingest-crash');
    await createFactTopics(kafka, prefix);
    const facts = yagoTrain();
    await publish(kafka, SchemaCodec.load(), topicNames(prefix).facts, facts, 'avro');
    const expected = expectedSnapshots(facts);
    const random = mulberry32(77);
    const dirs: string[] = [];
    try {
      const cleanDir = tempStateDir('crash-clean');
      dirs.push(cleanDir);
      const clean = await runWithKills(brokers, prefix, cleanDir, `${prefix}.clean`, []);
      assert.equal(clean.summary.factsAdded, facts.length);
      const cleanSnapshots = persistedSnapshots(cleanDir);
      assert.equal(snapshotDifference(expected, cleanSnapshots), null, 'clean run equals the file');

      // Random kill points: by progress (closed steps) plus a random delay; run 3 also kills very early.
      const point = (maxSteps: number): KillPoint => ({
        steps: Math.floor(random() * maxSteps),
        delayMs: Math.floor(random() * 250),
      });
      const plans: KillPoint[][] = [
        [point(150)],
        [point(60), point(150)].sort((a, b) => a.steps - b.steps),
        [{ steps: 0, delayMs: 1500 + Math.floor(random() * 1500) }, point(150)],
      ];
      let totalKills = 0;
      let restored = 0;
      for (const [run, plan] of plans.entries()) {
        const stateDir = tempStateDir(`crash-run${run}`);
        dirs.push(stateDir);
        const started = performance.now();
        const { killedAlive, summary } = await runWithKills(
          brokers,
          prefix,
          stateDir,
          `${prefix}.run${run}`,
          plan,
        );
        totalKills += killedAlive;
        if (summary.restoredFromCheckpoint) restored += 1;
        const difference = snapshotDifference(cleanSnapshots, persistedSnapshots(stateDir));
        process.stderr.write(
          `  run ${run}: kill points ${JSON.stringify(plan)}, ${killedAlive} kills of a live process, final run resumed=${summary.restoredFromCheckpoint}, ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
        );
        assert.equal(difference, null, `run ${run} differs from the clean run`);
        assert.equal(summary.late, 0);
      }
      assert.ok(
        totalKills >= 3,
        `at least 3 kills hit a running ingest process (got ${totalKills})`,
      );
      assert.ok(restored >= 2, `restarts resumed from a checkpoint (got ${restored})`);
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  },
);
