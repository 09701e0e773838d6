// A real Prometheus for tests (Debian's `prometheus` binary; `npm test` installs it when it can, test/setup).
// startPrometheus() writes a scrape config into a temp dir, starts Prometheus on a free loopback port with
// its TSDB in that temp dir, waits until /-/ready answers, and returns a small HTTP API client.
// Used by test/metrics/prometheus-scrape.test.ts and by the end-to-end `tkg run` test. No mocks.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';

export interface StartPrometheusOptions {
  /** host:port targets serving /metrics, e.g. ['127.0.0.1:9464']. */
  targets: string[];
  /** Scrape (and rule evaluation) interval. Default 1. */
  scrapeIntervalSeconds?: number;
  /** Job label of the targets. Default 'tkg'. */
  jobName?: string;
  /**
   * Extra target labels. The deploy rules read the model step from `stage=~"serve|all"`, so a test of a
   * whole `tkg run` process passes { stage: 'all' } as deploy/prometheus/prometheus.local.yml does.
   */
  labels?: Record<string, string>;
  /** Rule files (absolute paths) copied next to the config and loaded, e.g. deploy/prometheus/recording.yml. */
  ruleFiles?: string[];
  /** How long to wait for /-/ready. Default 30 s. */
  readyTimeoutMs?: number;
}

/** One element of an instant-vector result. */
export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface RunningPrometheus {
  /** Base URL, e.g. http://127.0.0.1:40123. */
  url: string;
  /** Instant query through /api/v1/query; throws on a PromQL error or a non-vector result. */
  query(promql: string): Promise<PromSample[]>;
  /** Poll `query` until `accept` returns true (default: at least one sample); throws after timeoutMs with the last result. */
  waitFor(
    promql: string,
    accept?: (samples: PromSample[]) => boolean,
    timeoutMs?: number,
  ): Promise<PromSample[]>;
  /** Stop Prometheus (SIGTERM, then SIGKILL after 5 s) and delete its temp dir. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The prometheus binary, or an error naming the install script. */
export function requirePrometheusBinary(): string {
  const probe = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'prometheus not found on PATH; run `sudo apt-get install -y --no-install-recommends prometheus` (npm test does it when it can)',
    );
  }
  return 'prometheus';
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Start Prometheus. On any failure (no binary, not ready) nothing it started is left: no child, no temp dir.
 * Callers that start other resources first release them on failure too (register `t.after` before calling this).
 */
export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const binary = requirePrometheusBinary();
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const dir = mkdtempSync(join(tmpdir(), 'tkg-prometheus-'));
  const ruleFiles = (options.ruleFiles ?? []).map((file) => {
    copyFileSync(file, join(dir, basename(file)));
    return basename(file);
  });
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    ...(ruleFiles.length > 0 ? { rule_files: ruleFiles } : {}),
    scrape_configs: [
      {
        job_name: options.jobName ?? 'tkg',
        static_configs: [
          { targets: options.targets, ...(options.labels ? { labels: options.labels } : {}) },
        ],
      },
    ],
  };
  const configPath = join(dir, 'prometheus.yml');
  writeFileSync(configPath, stringify(config));

  // The port can be taken between freePort() and Prometheus binding it: retry a few times.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(
      binary,
      [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    try {
      await waitReady(url, child, () => stderr, options.readyTimeoutMs ?? 30_000);
      return client(url, child, dir);
    } catch (error) {
      lastError = error;
      await terminate(child);
      if (!/address already in use/i.test(stderr)) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

async function waitReady(
  url: string,
  child: ChildProcess,
  stderr: () => string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `prometheus exited (${child.exitCode ?? child.signalCode}) before ready:\n${stderr()}`,
      );
    }
    try {
      const response = await fetch(`${url}/-/ready`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`prometheus at ${url} not ready after ${timeoutMs} ms:\n${stderr()}`);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function client(url: string, child: ChildProcess, dir: string): RunningPrometheus {
  let stopped = false;
  const query = async (promql: string): Promise<PromSample[]> => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as {
      status: string;
      error?: string;
      data?: {
        resultType: string;
        result: { metric: Record<string, string>; value: [number, string] }[];
      };
    };
    if (body.status !== 'success' || !body.data)
      throw new Error(`query ${promql} failed: ${body.error ?? response.status}`);
    if (body.data.resultType !== 'vector')
      throw new Error(`query ${promql} returned a ${body.data.resultType}, not a vector`);
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  return {
    url,
    query,
    async waitFor(promql, accept = (samples) => samples.length > 0, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: PromSample[] = [];
      while (Date.now() < deadline) {
        last = await query(promql);
        if (accept(last)) return last;
        await sleep(200);
      }
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${promql}; last result: ${JSON.stringify(last)}`,
      );
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
