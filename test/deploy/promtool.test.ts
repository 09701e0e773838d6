// promtool checks of the deploy kit: both scrape configs, the rule files, the alert unit tests
// (alerts.test.yml), and every Grafana dashboard query parsed as PromQL. Never skipped: without
// promtool the tests fail and name test/setup/install-prometheus.sh (npm test runs it when it can).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  dashboardExpressions,
  prometheusDir,
  readDashboard,
  readRules,
  ruleFiles,
  runPromtool,
  withGrafanaVariablesResolved,
} from './deploy-files.ts';

test('promtool check config: compose and local scrape configs (with their rule files)', () => {
  for (const config of ['prometheus.yml', 'prometheus.local.yml']) {
    const { status, output } = runPromtool(['check', 'config', config]);
    assert.equal(status, 0, `promtool check config ${config} failed:\n${output}`);
    assert.match(output, /SUCCESS: 2 rule files found/);
  }
});

test('promtool check rules: recording and alert rules', () => {
  const { status, output } = runPromtool(['check', 'rules', ...ruleFiles]);
  assert.equal(status, 0, `promtool check rules failed:\n${output}`);
  const alerts = readRules('alerts.yml').filter((rule) => rule.alert);
  assert.ok(alerts.length >= 5, `expected at least 5 alerts, found ${alerts.length}`);
});

test('promtool test rules: each alert fires on a bad series and stays quiet on a healthy one', () => {
  const { status, output } = runPromtool(['test', 'rules', 'alerts.test.yml']);
  assert.equal(status, 0, `promtool test rules failed:\n${output}`);
  assert.match(output, /SUCCESS/);
});

test('promtool test rules really fails when an alert is broken (the unit tests can catch a regression)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-promtool-'));
  try {
    const alerts = readRules('alerts.yml');
    // Loosen the MRR-drift threshold: the sustained -15 drop of alerts.test.yml no longer fires.
    const broken = alerts.map((rule) =>
      rule.alert === 'TkgMrrDrift' ? { ...rule, expr: rule.expr.replace('< -10', '< -50') } : rule,
    );
    writeFileSync(
      join(dir, 'alerts.yml'),
      stringify({ groups: [{ name: 'broken', rules: broken }] }),
    );
    writeFileSync(
      join(dir, 'recording.yml'),
      stringify({ groups: [{ name: 'recording', rules: readRules('recording.yml') }] }),
    );
    copyFileSync(join(prometheusDir, 'alerts.test.yml'), join(dir, 'alerts.test.yml'));
    const { status, output } = runPromtool(['test', 'rules', 'alerts.test.yml'], dir);
    assert.notEqual(status, 0, 'promtool accepted a broken alert');
    assert.match(output, /TkgMrrDrift/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Grafana dashboard: every panel query is valid PromQL (parsed by promtool)', () => {
  const expressions = dashboardExpressions(readDashboard()).filter((e) => e.promql);
  assert.ok(
    expressions.length >= 15,
    `expected a full dashboard, found ${expressions.length} queries`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'tkg-dashboard-promql-'));
  try {
    const rules = expressions.map((e, i) => ({
      record: `dashboard_query_${i}`,
      expr: withGrafanaVariablesResolved(e.expr),
    }));
    writeFileSync(
      join(dir, 'dashboard-rules.yml'),
      stringify({ groups: [{ name: 'dashboard', rules }] }),
    );
    const { status, output } = runPromtool(['check', 'rules', 'dashboard-rules.yml'], dir);
    const hint = expressions
      .map((e, i) => `dashboard_query_${i}: ${e.where}: ${e.expr}`)
      .join('\n');
    assert.equal(status, 0, `a dashboard query is not valid PromQL:\n${output}\n${hint}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
