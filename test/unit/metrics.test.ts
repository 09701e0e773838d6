import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../src/metrics/metrics.ts';

test('metrics: names follow the tkg_ prefix and Prometheus conventions', async () => {
  const metrics = createMetrics();
  const all = await metrics.registry.getMetricsAsJSON();
  assert.ok(all.length >= 20);
  for (const metric of all) {
    assert.match(metric.name, /^tkg_[a-z_]+$/);
    if (String(metric.type) === 'counter') assert.match(metric.name, /_total$/);
  }
  metrics.factsRejected.inc({ reason: 'bad_json' });
  assert.match(await metrics.registry.metrics(), /tkg_facts_rejected_total\{reason="bad_json"\} 1/);
});
