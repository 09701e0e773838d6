// The test command (`npm test [-- <dir-or-file> ...]`): makes its own prerequisites ready (test/setup), runs every
// test/**/*.test.ts with node's test runner (one file per process, one file at a time, a per-test timeout), and
// leaves nothing running: the shared test broker it started is stopped at the end (unless KAFKA_BROKERS was given
// or the broker already ran before), and any other broker or child a test left behind is stopped and reported as a
// failure. Exit code: the runner's (1 if a test failed or something was left running), 2 for a missing prerequisite.
// Owns: set-up, the run and the global teardown. Must not hold test logic.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { localBrokerStatus, projectRoot, stopLocalBroker } from '../src/kafka/local-broker.ts';
import { testBrokerDir } from './helpers/broker.ts';
import { localRegistryStatus, stopLocalRegistry } from '../src/kafka/local-registry.ts';
import { testRegistryDir } from './helpers/registry.ts';
import {
  PrerequisiteError,
  ensureKafka,
  ensurePrometheus,
  ensurePython,
} from './setup/prerequisites.ts';

/** Longest one test may run unless it sets its own `timeout` (node --test-timeout). */
const TEST_TIMEOUT_MS = 600_000;

function testFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (path: string) => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path)) walk(join(path, entry));
    } else if (path.endsWith('.test.ts')) out.push(path);
  };
  for (const path of paths) walk(resolve(path));
  return out.map((file) => relative(process.cwd(), file)).sort();
}

/** Pids of processes whose command line mentions this project (brokers, Prometheus, tkg children). */
function projectProcesses(): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid || pid === process.ppid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(projectRoot) || cmdline.includes('tkg-prometheus-'))
        found.set(pid, cmdline.slice(0, 200));
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return found;
}

async function main(): Promise<number> {
  const files = testFiles(process.argv.length > 2 ? process.argv.slice(2) : ['test']);
  let python: string;
  try {
    ensureKafka();
    ensurePrometheus();
    python = ensurePython();
  } catch (error) {
    if (!(error instanceof PrerequisiteError)) throw error;
    process.stderr.write(`npm test: ${error.message}\n`);
    return 2;
  }
  const useLocalBroker = !process.env.KAFKA_BROKERS;
  const brokerRanBefore = useLocalBroker && (await localBrokerStatus(testBrokerDir)).running;
  const registryRanBefore = (await localRegistryStatus(testRegistryDir)).running;
  const before = projectProcesses();

  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-concurrency=1',
      `--test-timeout=${TEST_TIMEOUT_MS}`,
      '--test-reporter=spec',
      ...files,
    ],
    { stdio: 'inherit', env: { ...process.env, TKG_TEST_PYTHON: python } },
  );
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((done) =>
    child.once('exit', (status, signal) => done(status ?? (signal ? 1 : 0))),
  );

  // Global teardown.
  let leftover = false;
  if (useLocalBroker && !brokerRanBefore) await stopLocalBroker(testBrokerDir);
  // The shared test schema registry (test/helpers/registry.ts) when a test started it.
  if (!process.env.TKG_SCHEMA_REGISTRY_URL && !registryRanBefore)
    await stopLocalRegistry(testRegistryDir);
  for (const [pid, cmdline] of projectProcesses()) {
    if (before.has(pid) || pid === child.pid) continue;
    leftover = true;
    process.stderr.write(`npm test: a test left pid ${pid} running (${cmdline}); stopping it\n`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return leftover ? Math.max(code, 1) : code;
}

process.exitCode = await main();
