// Regression test (issue 12): a failed precondition in the Prometheus helper (no prometheus binary) must leave no open
// handle behind, so the test process fails fast instead of hanging. The fixture runs the suite's resource pattern in
// a child node process with a PATH that has no prometheus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const fixture = join(import.meta.dirname, 'fixtures', 'prometheus-precondition.ts');

/** Run the fixture; resolves with its exit code and output, or `hung` after waitMs (the child is then killed). */
function runFixture(env: Record<string, string>, waitMs: number) {
  const emptyPath = mkdtempSync(join(tmpdir(), 'tkg-nopath-'));
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PATH: emptyPath, ...env };
  delete childEnv.NODE_TEST_CONTEXT; // a test runner of its own, not a sub-run of this one
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  return new Promise<{ hung: boolean; code: number | null; output: string }>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, waitMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      rmSync(emptyPath, { recursive: true, force: true });
      resolve({ hung: signal === 'SIGKILL', code, output });
    });
  });
}

test('startPrometheus without a binary fails fast, names the install command and leaves no open handle', async () => {
  const started = Date.now();
  const run = await runFixture({}, 30_000);
  assert.equal(run.hung, false, `the fixture hung:\n${run.output}`);
  assert.notEqual(run.code, 0, 'the precondition failure must fail the test');
  assert.match(run.output, /prometheus not found on PATH; run `sudo apt-get install/);
  assert.ok(Date.now() - started < 30_000);
});

test('the check notices a leak: without the cleanup the same fixture never exits', async () => {
  const run = await runFixture({ FIXTURE_LEAK: '1' }, 8_000);
  assert.equal(run.hung, true, `expected a hang, got exit ${run.code}:\n${run.output}`);
});
