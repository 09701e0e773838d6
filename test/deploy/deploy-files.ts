// Shared helpers of test/deploy: locate the deploy kit, read its YAML/JSON, pull PromQL expressions
// out of rule files and the Grafana dashboard, and find the metric and label names they use.
// Not a test file itself (test/run.sh only runs *.test.ts).
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const deployDir = join(repoRoot, 'deploy');
export const prometheusDir = join(deployDir, 'prometheus');
export const dashboardPath = join(deployDir, 'grafana', 'dashboard.json');
/** Rule files the Prometheus configs load (relative to deploy/prometheus). */
export const ruleFiles = ['recording.yml', 'alerts.yml'];

export function readYaml<T = unknown>(path: string): T {
  return parse(readFileSync(path, 'utf8'), { merge: true }) as T;
}

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function readRules(file: string): Rule[] {
  const doc = readYaml<{ groups: { name: string; rules: Rule[] }[] }>(join(prometheusDir, file));
  return doc.groups.flatMap((group) => group.rules);
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: { type: string; name: string; query: unknown; definition?: string }[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(dashboardPath, 'utf8')) as Dashboard;
}

/** Every PromQL expression of the dashboard: panel targets, and the metric queries of template variables. */
export function dashboardExpressions(
  dashboard: Dashboard,
): { where: string; expr: string; promql: boolean }[] {
  const out: { where: string; expr: string; promql: boolean }[] = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      out.push({
        where: `panel "${panel.title}" target ${target.refId}`,
        expr: target.expr,
        promql: true,
      });
    }
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query =
      typeof variable.query === 'string'
        ? variable.query
        : (variable.query as { query: string }).query;
    // label_values(metric, label) is Grafana syntax, not PromQL: checked for names only.
    out.push({ where: `variable $${variable.name}`, expr: query, promql: false });
  }
  return out;
}

/** Grafana variables replaced by PromQL-valid stand-ins, so promtool can parse dashboard queries. */
export function withGrafanaVariablesResolved(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h');
}

export interface SeriesReference {
  /** Metric (or recorded series) name as written, e.g. tkg_query_duration_seconds_bucket. */
  name: string;
  /** Label names in the selector's braces, e.g. ['filter', 'direction']. */
  labels: string[];
}

const KNOWN_NON_METRICS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'atan2',
]);

/**
 * The series names an expression reads (tkg_* metrics, recorded series with colons, `up`), with the label
 * names of their selectors. String literals are removed first, so label values never count as names.
 */
export function seriesReferences(expr: string): SeriesReference[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const refs: SeriesReference[] = [];
  const token = /([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\{([^}]*)\})?(\s*\()?/g;
  for (const match of noStrings.matchAll(token)) {
    const [, name, , braces, call] = match;
    const before = noStrings[match.index - 1];
    if (call || KNOWN_NON_METRICS.has(name) || (before !== undefined && /[\w$.]/.test(before)))
      continue;
    const isSeries = name.startsWith('tkg_') || name.includes(':') || name === 'up';
    if (!isSeries) continue;
    const labels = [...(braces ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
      (m) => m[1],
    );
    refs.push({ name, labels });
  }
  return refs;
}

/** Label names of `by (...)` / `without (...)` / `on (...)` / `ignoring (...)` clauses. */
export function groupingLabels(expr: string): string[] {
  const labels: string[] = [];
  for (const match of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    labels.push(
      ...match[1]
        .split(',')
        .map((label) => label.trim())
        .filter(Boolean),
    );
  }
  return labels;
}

/** The promtool binary, or a failure naming the install script (these tests must never be skipped). */
export function requirePromtool(): string {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'promtool not found on PATH; run `sudo apt-get install -y --no-install-recommends prometheus` ' +
        '(or bash test/setup/install-prometheus.sh as root; npm test does it when it can), then re-run the tests',
    );
  }
  return 'promtool';
}

/** Run promtool with arguments; returns exit status and combined output. */
export function runPromtool(
  args: string[],
  cwd = prometheusDir,
): { status: number | null; output: string } {
  const result = spawnSync(requirePromtool(), args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}
