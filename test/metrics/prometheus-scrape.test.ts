// A real Prometheus (Debian package) scrapes a MetricsServer on loopback; the series and values are read
// back through Prometheus's HTTP API. Also loads the deploy kit's recording and alert rules into that
// Prometheus, so the rule files are proven to work in a live server, not only under promtool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { MetricsServer } from '../../src/metrics/server.ts';
import { startPrometheus, type PromSample } from '../helpers/prometheus.ts';

const deployPrometheus = join(import.meta.dirname, '..', '..', 'deploy', 'prometheus');
const single = (samples: PromSample[]) => (samples.length === 1 ? samples[0].value : NaN);

test('real Prometheus scrapes /metrics: series exist with the values set, and follow updates', async (t) => {
  const metrics = createMetrics();
  metrics.factsIngested.inc(42);
  metrics.factsRejected.inc({ reason: 'bad_json' }, 2);
  metrics.mrr.set({ filter: 'timeAware', direction: 'object', model: 'nlsm-h' }, 61.5);
  metrics.mrr.set({ filter: 'raw', direction: 'object', model: 'nlsm-h' }, 40.25);
  metrics.modelVersion.set(3);
  metrics.modelStep.set(10);
  metrics.watermarkStep.set(12);
  for (const seconds of [0.0004, 0.0008, 0.002, 0.02])
    metrics.queryLatency.observe({ path: 'inprocess' }, seconds);

  const server = new MetricsServer({ registry: metrics.registry, host: '127.0.0.1', port: 0 });
  const { port } = await server.start();
  t.after(() => server.stop()); // released even when starting Prometheus fails
  const prometheus = await startPrometheus({
    targets: [`127.0.0.1:${port}`],
    scrapeIntervalSeconds: 1,
    labels: { stage: 'all' },
    ruleFiles: [join(deployPrometheus, 'recording.yml'), join(deployPrometheus, 'alerts.yml')],
  });
  try {
    await prometheus.waitFor('up{job="tkg"} == 1');
    assert.equal(single(await prometheus.query('tkg_facts_ingested_total')), 42);
    assert.equal(single(await prometheus.query('tkg_facts_rejected_total{reason="bad_json"}')), 2);
    assert.equal(
      single(
        await prometheus.query(
          'tkg_eval_mrr{filter="timeAware",direction="object",model="nlsm-h"}',
        ),
      ),
      61.5,
    );
    assert.equal(single(await prometheus.query('tkg_eval_mrr{filter="raw"}')), 40.25);
    assert.equal(single(await prometheus.query('tkg_model_version')), 3);
    assert.equal(
      single(await prometheus.query('tkg_query_duration_seconds_count{path="inprocess"}')),
      4,
    );
    assert.equal(
      single(
        await prometheus.query('tkg_query_duration_seconds_bucket{path="inprocess",le="0.001"}'),
      ),
      2,
    );
    const labels = (await prometheus.query('tkg_eval_mrr{filter="timeAware"}'))[0].metric;
    assert.equal(labels.instance, `127.0.0.1:${port}`);
    assert.equal(labels.job, 'tkg');
    assert.equal(labels.stage, 'all');

    // The next scrapes see new values.
    metrics.factsIngested.inc(8);
    metrics.modelVersion.set(4);
    await prometheus.waitFor('tkg_facts_ingested_total == 50');
    await prometheus.waitFor('tkg_model_version == 4');

    // The deploy kit's recording rules evaluate in a live server (watermark 12 - model step 10).
    const lag = await prometheus.waitFor('tkg:model_step_lag:steps');
    assert.equal(single(lag), 2);
    const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; type: string }[] }[] };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    assert.ok(loaded.some((r) => r.type === 'alerting' && r.name === 'TkgMrrDrift'));
    assert.ok(
      loaded.every((r) => r.health !== 'err'),
      JSON.stringify(loaded.filter((r) => r.health === 'err')),
    );
  } finally {
    await prometheus.stop();
  }
});
