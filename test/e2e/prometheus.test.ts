// A short `tkg run` replay scraped by a real Prometheus on loopback (test/helpers/prometheus.ts): query the HTTP
// API and check the MRR, ingest and latency series exist with plausible values. Real broker, real Prometheus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { freePort, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.ts';
import { killQuietly, startTkg, type Running } from './helpers.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';

exitAfterTests('test/e2e/prometheus.test.ts');

test(
  'tkg run scraped by Prometheus: tkg_eval_mrr, tkg_facts_ingested_total, tkg_query_duration_seconds_bucket',
  { timeout: 240_000 },
  async () => {
    const brokers = (await testBrokers()).join(',');
    const dir = mkdtempSync(join(tmpdir(), 'tkg-prom-'));
    const port = await freePort();
    let prometheus: RunningPrometheus | undefined;
    let run: Running | undefined;
    try {
      prometheus = await startPrometheus({
        targets: [`127.0.0.1:${port}`],
        labels: { stage: 'all' },
      });
      // ~40 steps at 1,500 facts/s: about 8 s of replay, long enough for several 1 s scrapes while it runs.
      run = startTkg(
        [
          'run',
          '--replay-steps',
          '40',
          '--rate',
          '1500',
          '--query-rate',
          '30',
          '--state-dir',
          join(dir, 'state'),
          '--topic-prefix',
          uniqueTopicPrefix('prom'),
          '--metrics-port',
          String(port),
        ],
        { KAFKA_BROKERS: brokers, TKG_METRICS_HOST: '127.0.0.1' },
      );
      await run.waitForOutput(/^step\s+3 \|/m);

      // Both filters from one query (one scrape): raw ranks count other true answers, so raw <= time-aware.
      const mrr = await prometheus.waitFor(
        'tkg_eval_mrr{direction="both",filter=~"raw|timeAware"}',
        (s) => s.length === 2,
      );
      const byFilter = Object.fromEntries(mrr.map((s) => [s.metric.filter, s]));
      assert.equal(byFilter.timeAware.metric.model, 'nlsm-r');
      assert.equal(byFilter.timeAware.metric.stage, 'all');
      assert.ok(
        byFilter.timeAware.value > 10 && byFilter.timeAware.value <= 100,
        `time-aware MRR ${byFilter.timeAware.value}`,
      );
      assert.ok(
        byFilter.raw.value > 0 && byFilter.raw.value <= byFilter.timeAware.value + 1e-9,
        `raw MRR ${byFilter.raw.value} vs time-aware ${byFilter.timeAware.value}`,
      );

      const ingested = await prometheus.waitFor(
        'tkg_facts_ingested_total',
        (s) => s.length > 0 && s[0].value >= 1000,
      );
      assert.ok(ingested[0].value <= 201_089, `ingested ${ingested[0].value}`);
      const closed = await prometheus.waitFor(
        'tkg_steps_closed_total',
        (s) => s.length > 0 && s[0].value >= 3,
      );
      assert.ok(closed[0].value <= 40);

      // Demo queries travel through Kafka: the latency histogram of the kafka path has observations, in seconds.
      const count = await prometheus.waitFor(
        'sum(tkg_query_duration_seconds_bucket{le="+Inf"})',
        (s) => s.length > 0 && s[0].value > 0,
        60_000,
      );
      assert.ok(count[0].value > 0);
      const p99 = await prometheus.query(
        'histogram_quantile(0.99, sum by (le) (tkg_query_duration_seconds_bucket))',
      );
      assert.ok(
        p99.length === 1 && p99[0].value > 0 && p99[0].value < 5,
        `query p99 ${JSON.stringify(p99)} s`,
      );

      const version = await prometheus.waitFor(
        'tkg_model_version',
        (s) => s.length > 0 && s[0].value > 0,
      );
      assert.ok(Number.isSafeInteger(version[0].value));

      const result = await run.finished;
      assert.equal(result.code, 0, result.stderr.slice(-3000));
    } finally {
      killQuietly(run);
      await prometheus?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
