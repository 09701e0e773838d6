import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { MetricsServer, readinessFromChecks, type Readiness } from '../../src/metrics/server.ts';
import { TkgError } from '../../src/core/errors.ts';
import { loadConfig } from '../../src/config/config.ts';

test('metrics server: /metrics serves the registry text with set values', async () => {
  const metrics = createMetrics();
  metrics.factsIngested.inc(7);
  metrics.mrr.set({ filter: 'timeAware', direction: 'object', model: 'nlsm-h' }, 61.25);
  metrics.queryLatency.observe({ path: 'kafka' }, 0.002);
  const server = new MetricsServer({ registry: metrics.registry, host: '127.0.0.1', port: 0 });
  const { port, url } = await server.start();
  try {
    assert.ok(port > 0);
    assert.equal(url, `http://127.0.0.1:${port}`);
    const response = await fetch(`${url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const body = await response.text();
    assert.match(body, /^tkg_facts_ingested_total 7$/m);
    assert.match(
      body,
      /^tkg_eval_mrr\{filter="timeAware",direction="object",model="nlsm-h"\} 61\.25$/m,
    );
    assert.match(body, /^tkg_query_duration_seconds_bucket\{le="0\.0025",path="kafka"\} 1$/m);
    // values change between scrapes
    metrics.factsIngested.inc(3);
    assert.match(await (await fetch(`${url}/metrics`)).text(), /^tkg_facts_ingested_total 10$/m);
    const head = await fetch(`${url}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  } finally {
    await server.stop();
  }
});

test('metrics server: /healthz always 200; /readyz follows the predicate (503 with a JSON reason)', async () => {
  let state: Readiness = { ready: false, reason: 'model not loaded' };
  const server = new MetricsServer({
    registry: createMetrics().registry,
    host: '127.0.0.1',
    readiness: () => state,
  });
  const { url } = await server.start();
  try {
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });

    const notReady = await fetch(`${url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.match(notReady.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await notReady.json(), { ready: false, reason: 'model not loaded' });

    state = { ready: true };
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true });
  } finally {
    await server.stop();
  }
});

test('metrics server: readinessFromChecks names the failing checks; a throwing predicate is not ready', async () => {
  let modelLoaded = false;
  let consumerJoined = false;
  const predicate = readinessFromChecks({
    modelLoaded: () => modelLoaded,
    consumerJoined: async () => consumerJoined,
  });
  assert.deepEqual(await predicate(), {
    ready: false,
    reason: 'waiting for: modelLoaded, consumerJoined',
  });
  modelLoaded = true;
  assert.deepEqual(await predicate(), { ready: false, reason: 'waiting for: consumerJoined' });
  consumerJoined = true;
  assert.deepEqual(await predicate(), { ready: true });

  const server = new MetricsServer({
    registry: createMetrics().registry,
    host: '127.0.0.1',
    readiness: () => {
      throw new Error('scorer session crashed');
    },
  });
  const { url } = await server.start();
  try {
    const response = await fetch(`${url}/readyz`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), {
      ready: false,
      reason: 'readiness check failed: scorer session crashed',
    });
  } finally {
    await server.stop();
  }
});

test('metrics server: unknown path 404, POST 405, port in use is a typed error, stop() frees the port', async () => {
  const server = new MetricsServer({ registry: createMetrics().registry, host: '127.0.0.1' });
  const { port, url } = await server.start();
  try {
    const missing = await fetch(`${url}/nope`);
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /\/nope.*\/metrics/);
    const post = await fetch(`${url}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');

    const clash = new MetricsServer({
      registry: createMetrics().registry,
      host: '127.0.0.1',
      port,
    });
    await assert.rejects(clash.start(), (error: unknown) => {
      assert.ok(error instanceof TkgError);
      assert.equal(error.reason, 'port_in_use');
      assert.match(error.message, new RegExp(`${port}.*TKG_METRICS_PORT`));
      return true;
    });
    await clash.stop(); // never started: a no-op
  } finally {
    await server.stop();
  }
  // the port is free again: a plain TCP listener can take it
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
  assert.throws(
    () => new MetricsServer({ registry: createMetrics().registry }).port,
    /before start/,
  );
  assert.throws(
    () => new MetricsServer({ registry: createMetrics().registry, port: 70000 }),
    /TKG_METRICS_PORT/,
  );
});

test('metrics server: binds where the config says (TKG_METRICS_HOST, TKG_METRICS_PORT)', async () => {
  const config = loadConfig({}, { TKG_METRICS_HOST: '127.0.0.1', TKG_METRICS_PORT: '0' });
  assert.equal(loadConfig({}, {}).metricsHost, '0.0.0.0');
  const server = new MetricsServer({
    registry: createMetrics().registry,
    host: config.metricsHost,
    port: config.metricsPort,
  });
  const { port, url } = await server.start();
  try {
    assert.equal(url, `http://127.0.0.1:${port}`);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  } finally {
    await server.stop();
  }
});
