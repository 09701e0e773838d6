// Integration (real broker, issue 13): valid facts are never late, in any start order and whatever the producer's
// timing. Ingest is up and idle for longer than the idle timeout before the first fact; facts come from `tkg publish`
// and from Python's confluent-kafka (librdkafka's default partitioner and murmur2_random, Avro single-object encoding
// written with fastavro, and the JSON form), in batches with gaps longer than the idle timeout; and ingest and a
// producer started at the same moment as the topics are created. Every run: 0 late facts, closed snapshots equal the
// published sets. Also: one subject's facts on several partitions is detected (log + metric).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FactEvent } from '../../src/core/types.ts';
import { datasetFactEvents, loadDataset } from '../../src/datasets/index.ts';
import { createKafkaClient } from '../../src/kafka/client.ts';
import { IngestPipeline } from '../../src/kafka/fact-consumer.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { topicNames } from '../../src/kafka/topics.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { testPython } from '../helpers/python.ts';
import { killQuietly, startTkg, type Running } from '../e2e/helpers.ts';
import {
  createFactTopics,
  expectedSnapshots,
  persistedSnapshots,
  publish,
  snapshotDifference,
  tempStateDir,
  type NamedSnapshots,
} from './fixtures.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';

exitAfterTests('test/ingest/start-order.test.ts');

const codec = SchemaCodec.load();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const yago = loadDataset('yago');
const split = (name: 'train' | 'valid' | 'test') => datasetFactEvents(yago, [name]);

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** The published sets of every step but the last (it stays open until more facts or a flush), empty steps dropped. */
function expectedClosed(facts: readonly FactEvent[]): {
  expected: NamedSnapshots;
  lastStep: number;
} {
  const expected = expectedSnapshots(facts);
  const lastStep = Math.max(...expected.keys());
  expected.delete(lastStep);
  return { expected, lastStep };
}

function nonEmpty(snapshots: NamedSnapshots): NamedSnapshots {
  return new Map([...snapshots].filter(([, set]) => set.size > 0));
}

/** Publish from Python (librdkafka) with test/ingest/python/produce_facts.py; returns facts per partition. */
function pythonProduce(options: {
  brokers: string[];
  topic: string;
  batches: FactEvent[][];
  gapSeconds: number;
  format?: 'avro' | 'json';
  partitioner?: string;
}): { sent: number; partitions: Record<string, number> } {
  const input = JSON.stringify({
    brokers: options.brokers.join(','),
    topic: options.topic,
    schema: join(projectRoot, 'schemas', 'Fact.avsc'),
    batches: options.batches.map((batch) =>
      batch.map(({ subject, relation, object, step }) => ({ subject, relation, object, step })),
    ),
    gap_seconds: options.gapSeconds,
    format: options.format ?? 'avro',
    partitioner: options.partitioner,
  });
  const out = execFileSync(
    testPython(),
    [join(projectRoot, 'test/ingest/python/produce_facts.py')],
    {
      input,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      timeout: 120_000,
    },
  );
  return JSON.parse(out.trim().split('\n').at(-1) as string);
}

/** An in-process ingest pipeline with a short idle timeout, its metrics and its warn-level log lines. */
async function startIngest(prefix: string, stateDir: string, idleTimeoutMs: number) {
  const kafka = createKafkaClient({ brokers: await testBrokers() });
  const metrics = createMetrics();
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
  const pipeline = new IngestPipeline({
    kafka,
    topicPrefix: prefix,
    stateDir,
    codec,
    metrics,
    logger,
    idleTimeoutMs,
    sessionTimeoutMs: 6000,
  });
  try {
    await pipeline.start();
  } catch (error) {
    await pipeline.stop();
    throw error;
  }
  return { kafka, pipeline, metrics, lines };
}

test(
  'ingest idle for longer than the idle timeout before the first fact; `tkg publish` batches with gaps: 0 late, snapshots = published sets',
  { timeout: 180_000 },
  async () => {
    const brokers = await testBrokers();
    const prefix = uniqueTopicPrefix('order-publish');
    await createFactTopics(createKafkaClient({ brokers }), prefix);
    const stateDir = tempStateDir('order-publish');
    const { pipeline } = await startIngest(prefix, stateDir, 1000);
    const env = { KAFKA_BROKERS: brokers.join(','), TKG_TOPIC_PREFIX: prefix };
    let child: Running | undefined;
    try {
      await sleep(2500); // every partition has been verified caught up and quiet for longer than the idle timeout
      // the measurement (586 of 20,000 late before), then two more batches after gaps of 2.5 idle timeouts
      const runs = [
        ['--split', 'train', '--limit', '20000'],
        ['--split', 'valid'],
        ['--split', 'test'],
      ];
      for (const [index, args] of runs.entries()) {
        if (index > 0) await sleep(2500);
        child = startTkg(['publish', '--dataset', 'yago', ...args, '--json'], env);
        const done = await child.finished;
        assert.equal(done.code, 0, done.stderr);
      }
      const facts = [...split('train').slice(0, 20_000), ...split('valid'), ...split('test')];
      const { expected, lastStep } = expectedClosed(facts);
      await waitFor(`watermark ${lastStep}`, () => pipeline.stats().watermark === lastStep);
      await pipeline.waitUntilCaughtUp({ timeoutMs: 60_000 });
      assertIngested(pipeline.stats(), facts, expected, nonEmpty(persistedSnapshots(stateDir)));
    } finally {
      killQuietly(child);
      await pipeline.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);

test(
  "Python confluent-kafka producers (librdkafka's default partitioner and murmur2_random, fastavro single-object Avro) with gaps: 0 late, snapshots = published sets; a subject on several partitions is detected",
  { timeout: 180_000 },
  async () => {
    const brokers = await testBrokers();
    const prefix = uniqueTopicPrefix('order-python');
    const kafka = createKafkaClient({ brokers });
    await createFactTopics(kafka, prefix);
    const topic = topicNames(prefix).facts;
    const stateDir = tempStateDir('order-python');
    const { pipeline, metrics, lines } = await startIngest(prefix, stateDir, 1000);
    try {
      await sleep(2500);
      const train = split('train');
      const byStep = (from: number, to: number) =>
        train.filter((f) => (f.step as number) >= from && (f.step as number) < to);
      const mismatches = async () =>
        (await metrics.factsPartitionMismatch.get()).values[0]?.value ?? 0;
      // 1. tkg's publisher (murmur2 on the subject, like Java's client) decides where each subject lives
      const first = byStep(0, 8);
      await publish(kafka, codec, topic, first, 'avro');
      await sleep(1500);
      // 2. librdkafka with partitioner=murmur2_random (what the README tells librdkafka users): same partitions
      const second = [byStep(8, 12), byStep(12, 16)];
      pythonProduce({
        brokers,
        topic,
        batches: second,
        gapSeconds: 1.5,
        partitioner: 'murmur2_random',
      });
      await waitFor(
        'the murmur2_random batches',
        () => pipeline.stats().messages >= first.length + second.flat().length,
      );
      assert.equal(await mismatches(), 0, 'murmur2_random puts every subject where murmur2 did');
      await sleep(1500);
      // 3. librdkafka's default partitioner (consistent_random, CRC32 of the key): some subjects move partition
      const third = [byStep(16, 20), byStep(20, 24), byStep(24, 28)];
      const result = pythonProduce({ brokers, topic, batches: third, gapSeconds: 1.5 });
      assert.equal(
        Object.keys(result.partitions).length,
        3,
        'the default partitioner used every partition',
      );
      const facts = [first, ...second, ...third].flat();
      const { expected, lastStep } = expectedClosed(facts);
      await waitFor(`watermark ${lastStep}`, () => pipeline.stats().watermark === lastStep);
      // stats() is the in-memory window: the steps it closed become durable with the next checkpoint, which
      // waitUntilCaughtUp() takes before it resolves (reading the state directory earlier races it)
      await pipeline.waitUntilCaughtUp({ timeoutMs: 60_000 });
      const stats = pipeline.stats();
      assertIngested(
        stats,
        facts,
        expected,
        persistedSnapshots(stateDir),
        JSON.stringify(stats.rejectedByReason),
      );
      assert.ok(
        (await mismatches()) > 0,
        'facts of subjects moved by consistent_random are counted',
      );
      assert.ok(
        lines.some(
          (line) => line.includes('murmur2_random') && line.includes('several partitions'),
        ),
        'a warning names the fix',
      );
    } finally {
      await pipeline.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);

/** Start `tkg ingest` (metrics on a free port) and return it with a scraper of its counters. */
function startIngestCli(prefix: string, stateDir: string, brokers: string[]) {
  const running = startTkg(
    [
      'ingest',
      '--state-dir',
      stateDir,
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
      '--json-summary',
    ],
    { KAFKA_BROKERS: brokers.join(','), TKG_TOPIC_PREFIX: prefix, TKG_LOG_LEVEL: 'info' },
  );
  const scrape = async (name: string): Promise<number | undefined> => {
    const match = running.stderr().match(/"url":"(http:\/\/[^"]+)"/);
    if (!match) return undefined;
    const text = await fetch(`${match[1].replace(/\/metrics$/, '')}/metrics`)
      .then((r) => r.text())
      .catch(() => '');
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  return { running, scrape };
}

/** Every fact counted once, none late or rejected, and the closed snapshots are exactly the published sets. */
function assertIngested(
  counts: { messages: number; late: number; rejected: number },
  facts: readonly FactEvent[],
  expected: ReturnType<typeof expectedClosed>['expected'],
  persisted: NamedSnapshots,
  rejectedDetail?: string,
): void {
  assert.equal(counts.messages, facts.length);
  assert.equal(counts.late, 0, `${counts.late} of ${facts.length} valid facts late`);
  assert.equal(counts.rejected, 0, rejectedDetail);
  assert.equal(snapshotDifference(expected, persisted), null);
}

/** Waits until `tkg ingest` closed the facts' last step, stops it and checks that it ingested them exactly. */
async function assertCliIngested(
  ingest: ReturnType<typeof startIngestCli>,
  stateDir: string,
  facts: readonly FactEvent[],
): Promise<void> {
  const { expected, lastStep } = expectedClosed(facts);
  await waitFor(
    `watermark ${lastStep}`,
    async () => (await ingest.scrape('tkg_watermark_step')) === lastStep,
    90_000,
  );
  assertIngested(
    await stopIngestCli(ingest.running),
    facts,
    expected,
    persistedSnapshots(stateDir),
  );
}

async function stopIngestCli(running: Running) {
  running.child.kill('SIGTERM');
  const done = await running.finished;
  assert.equal(done.code, 0, done.stderr.slice(-3000));
  return JSON.parse(done.stdout.trim().split('\n').at(-1) as string) as {
    messages: number;
    late: number;
    rejected: number;
  };
}

test(
  '`tkg ingest` and `tkg publish --rate 5000` started at the same moment, topics not yet created: no crash, 0 late, snapshots = published sets',
  { timeout: 180_000 },
  async () => {
    const brokers = await testBrokers();
    const prefix = uniqueTopicPrefix('order-together');
    const stateDir = tempStateDir('order-together');
    const env = { KAFKA_BROKERS: brokers.join(','), TKG_TOPIC_PREFIX: prefix };
    const ingest = startIngestCli(prefix, stateDir, brokers);
    const publisher = startTkg(
      // a live stream (about 4 s) that overlaps ingest's start-up, topic creation and first fetches
      [
        'publish',
        '--dataset',
        'yago',
        '--split',
        'train',
        '--limit',
        '20000',
        '--rate',
        '5000',
        '--json',
      ],
      env,
    );
    try {
      const published = await publisher.finished;
      assert.equal(published.code, 0, published.stderr);
      const facts = split('train').slice(0, 20_000);
      await assertCliIngested(ingest, stateDir, facts);
    } finally {
      killQuietly(publisher);
      killQuietly(ingest.running);
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);

test(
  '`tkg ingest` and a Python producer (JSON form, batches with gaps) started at the same moment, topics not yet created: 0 late, snapshots = published sets',
  { timeout: 180_000 },
  async () => {
    const brokers = await testBrokers();
    const prefix = uniqueTopicPrefix('order-python-together');
    const stateDir = tempStateDir('order-python-together');
    const ingest = startIngestCli(prefix, stateDir, brokers);
    try {
      const train = split('train');
      const batches = [0, 1, 2, 3].map((i) =>
        train.filter((f) => Math.floor((f.step as number) / 5) === i),
      );
      // librdkafka waits for the topic to appear (topic.metadata.propagation.max.ms) while ingest creates it
      pythonProduce({
        brokers,
        topic: topicNames(prefix).facts,
        batches,
        gapSeconds: 6,
        format: 'json',
      });
      const facts = batches.flat();
      await assertCliIngested(ingest, stateDir, facts);
    } finally {
      killQuietly(ingest.running);
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);
