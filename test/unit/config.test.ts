import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/config.ts';

test('config: spec defaults, environment overrides, flags override environment', () => {
  const defaults = loadConfig({}, {});
  assert.equal(defaults.K, 64);
  assert.equal(defaults.windowSize, 5);
  // paper 0.01; 0.05 selected on YAGO valid for 16 Adam steps per window (src/config/config.ts)
  assert.equal(defaults.learningRate, 0.05);
  assert.equal(loadConfig({}, { TKG_K: '32' }).K, 32);
  assert.equal(loadConfig({ K: 16 }, { TKG_K: '32' }).K, 16);
});

test('config: a bad value names the key, the variable and the value', () => {
  assert.throws(() => loadConfig({}, { TKG_K: 'many' }), /K \(TKG_K\).*"many"/);
});
