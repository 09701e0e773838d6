import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, shardServerUrls } from '../../src/config/config.ts';

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

test('config: TKG_SHARD_SERVERS lists shards in order, replicas of one shard separated by |; a bad URL names the fix', () => {
  const config = (value: string) => loadConfig({}, { TKG_SHARD_SERVERS: value });
  assert.deepEqual(shardServerUrls(loadConfig({}, {})), []);
  assert.deepEqual(shardServerUrls(config('http://a:9480/, http://b1:9480|http://b2:9480')), [
    ['http://a:9480'],
    ['http://b1:9480', 'http://b2:9480'],
  ]);
  assert.throws(
    () => shardServerUrls(config('a:9480,http://b:9480')),
    /TKG_SHARD_SERVERS: a:9480 must be an http:\/\/ URL/,
  );
  assert.throws(
    () => shardServerUrls(config('nope')),
    /"nope" is not a URL; list each shard's replicas/,
  );
});
