// The README is the product page: its reference tables must stay true to the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../src/config/config.ts';
import { configMarkdown, configRows } from '../../src/cli/commands/config.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { projectRoot } from '../../src/datasets/files.ts';

const readme = readFileSync(`${projectRoot}/README.md`, 'utf8');

function section(name: string): string {
  const begin = readme.indexOf(`<!-- ${name}:begin -->`);
  const end = readme.indexOf(`<!-- ${name}:end -->`);
  assert.ok(begin >= 0 && end > begin, `README lacks the ${name} markers`);
  return readme.slice(begin + `<!-- ${name}:begin -->`.length, end).trim();
}

test('README configuration table equals `tkg config --markdown` (every key, env var, default)', () => {
  const expected = configMarkdown(configRows(loadConfig({}, {}), {}, {}));
  assert.equal(section('config'), expected, 'regenerate with: npx tkg config --markdown');
});

test('README names every exported Prometheus metric', async () => {
  const { registry } = createMetrics();
  const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
  assert.ok(names.length >= 20);
  const missing = names.filter((name) => !readme.includes(`\`${name}`));
  assert.deepEqual(missing, [], `README metrics table lacks: ${missing.join(', ')}`);
});

test('README quick start has exactly the two commands CI runs, and CI exports nothing', () => {
  const start = readme.indexOf('## Quick start');
  const block = readme.slice(start).split('```')[1];
  const commands = block
    .split('\n')
    .slice(1)
    .map((line) => line.replace(/\s*#.*$/, '').trim())
    .filter(Boolean);
  assert.deepEqual(commands, ['npm ci && npm run demo', 'npm test']);
  const ci = readFileSync(`${projectRoot}/.ci/run`, 'utf8');
  // .ci/run runs these two commands after checking this block holds them; it sets no environment of its own.
  assert.match(ci, /\/\^## Quick start\//);
  assert.match(ci, /bash -c "\$main_cmd"[\s\S]*bash -c "\$test_cmd"/);
  assert.doesNotMatch(ci, /^\s*export\s/m);
});
