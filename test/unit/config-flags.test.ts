import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { configSchema, envNames, loadConfig } from '../../src/config/config.ts';
import { addConfigFlags, applyConfigFlags, kebabCase } from '../../src/cli/config-flags.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { configMarkdown, configRows } from '../../src/cli/commands/config.ts';

test('kebabCase turns config keys into flag names', () => {
  assert.equal(kebabCase('trainEpochsPerWindow'), 'train-epochs-per-window');
  assert.equal(kebabCase('K'), 'k');
  assert.equal(kebabCase('sTheta'), 's-theta');
});

test('a derived flag sets its key, and beats the environment', () => {
  const command = new Command('verb').exitOverride();
  addConfigFlags(command);
  command.parse(['--k', '8', '--learning-rate', '0.03'], { from: 'user' });
  const env: NodeJS.ProcessEnv = { TKG_K: '32', TKG_SEED: '5' };
  applyConfigFlags(command, env);
  const config = loadConfig({}, env);
  assert.equal(config.K, 8);
  assert.equal(config.learningRate, 0.03);
  assert.equal(config.seed, 5); // untouched keys keep the environment's value
});

test('a verb keeps its own flag for a key and gets no duplicate', () => {
  const command = new Command('verb').exitOverride().option('--model <kind>', 'own flag');
  addConfigFlags(command);
  assert.equal(command.options.filter((o) => o.long === '--model').length, 1);
});

test('every verb that reads the configuration accepts every key as a flag', async () => {
  const program = await buildProgram();
  const leaves = (c: Command): Command[] =>
    c.commands.length === 0 ? [c] : c.commands.flatMap(leaves);
  const verbs = program.commands.flatMap(leaves);
  assert.ok(verbs.length >= 9, `verbs: ${verbs.map((v) => v.name()).join(', ')}`);
  for (const verb of verbs) {
    const longs = new Set(verb.options.map((o) => o.long));
    for (const key of Object.keys(configSchema.shape)) {
      assert.ok(
        longs.has(`--${kebabCase(key)}`) || longs.has(`--no-${kebabCase(key)}`),
        `${verb.name()} lacks --${kebabCase(key)}`,
      );
    }
  }
});

test('the reference table lists every key with its environment variable and default', () => {
  const rows = configRows(loadConfig({}, {}), {}, {});
  const table = configMarkdown(rows);
  for (const [key, env] of Object.entries(envNames)) {
    assert.match(table, new RegExp(`\\| \`--${kebabCase(key)}\` \\| \`${env}\` \\|`));
  }
  assert.match(table, /\| `--k` \| `TKG_K` \| `64` \|/);
  assert.ok(rows.every((r) => r.source === 'default'));
});
