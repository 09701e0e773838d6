// Broker choice: KAFKA_BROKERS first, a Docker engine next (probed over its socket), else the local broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/core/errors.ts';
import {
  dockerEngineAnswers,
  parseBrokerList,
  resolveBrokerSource,
} from '../../src/kafka/brokers.ts';
import { testBrokerDir, testBrokers } from '../helpers/broker.ts';

test('parseBrokerList: host:port lists, with a typed error naming a bad entry', () => {
  assert.deepEqual(parseBrokerList('127.0.0.1:9092, kafka-1:19092'), [
    '127.0.0.1:9092',
    'kafka-1:19092',
  ]);
  assert.throws(
    () => parseBrokerList('localhost'),
    (e: unknown) => e instanceof ConfigError && /"localhost" is not host:port/.test(e.message),
  );
  assert.throws(() => parseBrokerList(' , '), ConfigError);
});

test('resolveBrokerSource: KAFKA_BROKERS wins and starts nothing', async () => {
  const resolved = await resolveBrokerSource(
    { kafkaBrokers: '10.0.0.1:9092', brokerDir: '/nonexistent', brokerPort: 1 },
    {},
  );
  assert.deepEqual(resolved, {
    brokers: ['10.0.0.1:9092'],
    source: 'env',
    release: resolved.release,
  });
});

test('dockerEngineAnswers: true only when the socket answers GET /_ping with 200', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-docker-'));
  const socketPath = join(dir, 'docker.sock');
  const server = createServer((req, res) => {
    res.statusCode = req.url === '/_ping' ? 200 : 404;
    res.end('OK');
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  try {
    assert.equal(await dockerEngineAnswers({ DOCKER_HOST: `unix://${socketPath}` }), true);
    assert.equal(
      await dockerEngineAnswers({ DOCKER_HOST: `unix://${join(dir, 'missing.sock')}` }),
      false,
    );
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'resolveBrokerSource: without KAFKA_BROKERS or Docker it reuses the running local broker',
  { timeout: 120_000 },
  async (t) => {
    if (process.env.KAFKA_BROKERS)
      return t.skip('KAFKA_BROKERS is set: the shared local test broker is not used');
    const [bootstrap] = await testBrokers();
    const resolved = await resolveBrokerSource(
      { kafkaBrokers: undefined, brokerDir: testBrokerDir, brokerPort: 0 },
      { TKG_NO_DOCKER: '1' },
    );
    assert.equal(resolved.source, 'local');
    assert.deepEqual(resolved.brokers, [bootstrap]);
  },
);
