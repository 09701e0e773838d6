// Cross-check: every metric name (and selector / grouping label) that the deploy kit uses exists in
// createMetrics() (src/metrics/metrics.ts), with _bucket/_sum/_count allowed only on histograms;
// every recorded series used is defined by a recording rule; every alert has a promtool unit test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../src/metrics/metrics.ts';
import {
  dashboardExpressions,
  groupingLabels,
  prometheusDir,
  readDashboard,
  readRules,
  readYaml,
  seriesReferences,
} from './deploy-files.ts';
import { join } from 'node:path';

/** Labels every scraped series carries (target labels) or that PromQL adds (le on histogram buckets). */
const TARGET_LABELS = ['job', 'instance', 'stage', 'deployment'];

interface ExportedMetric {
  type: string;
  labels: Set<string>;
}

async function exportedMetrics(): Promise<Map<string, ExportedMetric>> {
  const metrics = createMetrics({ defaultMetrics: true });
  const out = new Map<string, ExportedMetric>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const object = metrics.registry.getSingleMetric(metric.name) as unknown as {
      labelNames?: string[];
    };
    out.set(metric.name, { type: String(metric.type), labels: new Set(object?.labelNames ?? []) });
  }
  return out;
}

/** Resolve a written series name to the exported metric (stripping histogram/summary suffixes). */
function resolve(
  name: string,
  exported: Map<string, ExportedMetric>,
): { base: string; metric: ExportedMetric; isBucket: boolean } | undefined {
  const direct = exported.get(name);
  if (direct) return { base: name, metric: direct, isBucket: false };
  const match = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!match) return undefined;
  const base = exported.get(match[1]);
  if (!base || (base.type !== 'histogram' && base.type !== 'summary')) return undefined;
  if (match[2] === 'bucket' && base.type !== 'histogram') return undefined;
  return { base: match[1], metric: base, isBucket: match[2] === 'bucket' };
}

function deployExpressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const file of ['recording.yml', 'alerts.yml']) {
    for (const rule of readRules(file))
      out.push({ where: `${file} ${rule.alert ?? rule.record}`, expr: rule.expr });
  }
  for (const e of dashboardExpressions(readDashboard()))
    out.push({ where: `dashboard ${e.where}`, expr: e.expr });
  return out;
}

test('deploy kit uses only metric names and labels that createMetrics() exports', async () => {
  const exported = await exportedMetrics();
  const recorded = new Set(
    readRules('recording.yml').flatMap((rule) => (rule.record ? [rule.record] : [])),
  );
  const problems: string[] = [];
  const used = new Set<string>();
  for (const { where, expr } of deployExpressions()) {
    const refs = seriesReferences(expr);
    const labelsInScope = new Set(TARGET_LABELS);
    for (const ref of refs) {
      if (ref.name === 'up') continue;
      if (ref.name.includes(':')) {
        if (!recorded.has(ref.name))
          problems.push(
            `${where}: recorded series ${ref.name} has no recording rule in recording.yml`,
          );
        continue;
      }
      const resolved = resolve(ref.name, exported);
      if (!resolved) {
        problems.push(
          `${where}: ${ref.name} is not exported by createMetrics() (src/metrics/metrics.ts)`,
        );
        continue;
      }
      used.add(resolved.base);
      const allowed = new Set([
        ...resolved.metric.labels,
        ...TARGET_LABELS,
        ...(resolved.isBucket ? ['le'] : []),
      ]);
      for (const label of allowed) labelsInScope.add(label);
      for (const label of ref.labels) {
        if (!allowed.has(label))
          problems.push(
            `${where}: ${ref.name} has no label "${label}" (labels: ${[...resolved.metric.labels].join(', ') || 'none'})`,
          );
      }
    }
    // Grouping labels must exist on some series of the expression (recorded series keep their grouping labels).
    const readsRecorded = refs.some((ref) => ref.name.includes(':'));
    if (!readsRecorded) {
      for (const label of groupingLabels(expr)) {
        if (!labelsInScope.has(label))
          problems.push(`${where}: groups by "${label}", which no series in "${expr}" has`);
      }
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'));
  // The kit covers the spec's families (SPEC section 5): quality, ingest, lag, latency, model.
  for (const name of [
    'tkg_eval_mrr',
    'tkg_eval_mrr_drift',
    'tkg_facts_ingested_total',
    'tkg_facts_rejected_total',
    'tkg_consumer_lag_messages',
    'tkg_query_duration_seconds',
    'tkg_model_version',
    'tkg_queries_total',
    'tkg_model_step',
    'tkg_watermark_step',
  ]) {
    assert.ok(used.has(name), `${name} is not used anywhere in deploy/`);
  }
});

test('name extraction finds names, strips suffixes only for histograms, and ignores label values', async () => {
  const refs = seriesReferences(
    'histogram_quantile(0.99, sum by (le) (rate(tkg_query_duration_seconds_bucket{path="tkg_fake_total"}[$__rate_interval]))) / on() up{job=~"tkg.*"} + job:tkg_x:rate1m',
  );
  assert.deepEqual(refs, [
    { name: 'tkg_query_duration_seconds_bucket', labels: ['path'] },
    { name: 'up', labels: ['job'] },
    { name: 'job:tkg_x:rate1m', labels: [] },
  ]);
  assert.deepEqual(groupingLabels('sum by (job, reason) (x) / on() y'), ['job', 'reason']);
  const exported = await exportedMetrics();
  assert.equal(
    resolve('tkg_query_duration_seconds_bucket', exported)?.base,
    'tkg_query_duration_seconds',
  );
  assert.equal(resolve('tkg_queries_total_count', exported), undefined); // a counter has no _count
  assert.equal(resolve('tkg_no_such_metric', exported), undefined);
});

test('every alert in alerts.yml has a promtool unit test that expects it to fire', () => {
  const alerts = readRules('alerts.yml').flatMap((rule) => (rule.alert ? [rule.alert] : []));
  const tests = readYaml<{
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  }>(join(prometheusDir, 'alerts.test.yml')).tests;
  const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const alert of alerts) {
    const own = cases.filter((c) => c.alertname === alert);
    assert.ok(
      own.some((c) => c.exp_alerts.length > 0),
      `${alert}: no test case where it fires`,
    );
    assert.ok(
      own.some((c) => c.exp_alerts.length === 0),
      `${alert}: no test case where it stays quiet`,
    );
  }
  for (const rule of readRules('alerts.yml').filter((r) => r.alert)) {
    assert.ok(rule.labels?.severity, `${rule.alert}: missing severity label`);
    assert.ok(
      rule.annotations?.summary && rule.annotations.description,
      `${rule.alert}: missing summary/description`,
    );
  }
});
