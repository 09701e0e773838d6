// `npm run bench -- ingest [--json] [--dataset yago] [--format avro|json] [--partitions 3] [--runs 1]`
// Facts/s from the facts topic into closed, durable snapshots (IngestPipeline, YAGO all splits replayed at full
// speed), and in the same run Kafka's own consumer perf tool (org.apache.kafka.tools.ConsumerPerformance, the class
// behind kafka-consumer-perf-test.sh, from deploy/kafka/lib) reading the same topic. Both rates exclude the
// consumer-group join: ours is timed from start() (group joined) to every step closed and checkpointed; Kafka's is
// its fetch.nMsg.sec (total minus rebalance time). Runs the two one after the other (2 cores: no overlap), --runs
// times alternating which goes first, and reports the medians (the machine is shared: single runs are noisy).
import { spawnSync } from 'node:child_process';
import type { Kafka } from 'kafkajs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import {
  datasetFactEvents,
  loadDataset,
  loadTkgDataset,
  tkgSnapshots,
} from '../src/datasets/index.ts';
import { IngestPipeline } from '../src/ingest/consumer.ts';
import { resolveBrokerSource } from '../src/kafka/brokers.ts';
import { createKafkaClient, createProducer } from '../src/kafka/client.ts';
import {
  brokerLibDir,
  ensureBrokerJars,
  waitForGroupCoordinator,
} from '../src/kafka/local-broker.ts';
import { publishFacts, type FactFormat } from '../src/kafka/publisher.ts';
import { ensureTopics, topicNames } from '../src/kafka/topics.ts';
import { SchemaCodec } from '../src/schemas/codec.ts';

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}

/** Parse ConsumerPerformance's CSV line (header from its --help / source: start.time, end.time, ...). */
function parseConsumerPerf(stdout: string): Record<string, number> {
  const lines = stdout
    .trim()
    .split('\n')
    .filter((l) => l.trim().length > 0);
  const headerIndex = lines.findIndex((l) => l.startsWith('start.time'));
  if (headerIndex < 0 || !lines[headerIndex + 1])
    throw new Error(`unexpected ConsumerPerformance output:\n${stdout}`);
  const header = lines[headerIndex].split(',').map((h) => h.trim());
  const values = lines[headerIndex + 1].split(',').map((v) => v.trim());
  return Object.fromEntries(header.slice(2).map((h, i) => [h, Number(values[i + 2])]));
}

interface IngestRun {
  factsPerSecond: number;
  startupSeconds: number;
  snapshots: number;
  snapshotFacts: number;
  stats: ReturnType<IngestPipeline['stats']>;
}

/** One ingest of the whole topic by a fresh pipeline (own group, own state dir); timed from group joined to flushed. */
async function ingestOnce(kafka: Kafka, prefix: string, facts: number): Promise<IngestRun> {
  const stateDir = mkdtempSync(join(tmpdir(), 'tkg-bench-ingest-'));
  let snapshots = 0;
  let snapshotFacts = 0;
  const pipeline = new IngestPipeline({
    kafka,
    topicPrefix: prefix,
    groupId: `${prefix}.ingest.${Date.now()}`,
    stateDir,
    createTopics: false,
    idleTimeoutMs: 0,
  });
  pipeline.onSnapshot((snapshot) => {
    snapshots += 1;
    snapshotFacts += snapshot.triples.length / 3;
  });
  try {
    const beforeStart = performance.now();
    await pipeline.start();
    const joined = performance.now();
    await pipeline.waitUntilCaughtUp({ timeoutMs: 600_000, pollMs: 5 });
    await pipeline.flush();
    const done = performance.now();
    const stats = pipeline.stats();
    return {
      factsPerSecond: facts / ((done - joined) / 1000),
      startupSeconds: (joined - beforeStart) / 1000,
      snapshots,
      snapshotFacts,
      stats,
    };
  } finally {
    await pipeline.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Kafka's own consumer perf tool (class behind kafka-consumer-perf-test.sh) on the same topic. */
function consumerPerformance(
  classpath: string,
  brokers: string[],
  topic: string,
  messages: number,
  group: string,
  log: (line: string) => void,
): Record<string, number> {
  log(`running org.apache.kafka.tools.ConsumerPerformance (${brokerLibDir}) on ${topic}`);
  const perf = spawnSync(
    'java',
    [
      '-Xmx512m',
      '-Dlog4j.configuration=file:/dev/null',
      '-cp',
      classpath,
      'org.apache.kafka.tools.ConsumerPerformance',
      '--bootstrap-server',
      brokers.join(','),
      '--topic',
      topic,
      '--messages',
      String(messages),
      '--group',
      group,
      '--timeout',
      '60000',
    ],
    { encoding: 'utf8' },
  );
  if (perf.status !== 0)
    throw new Error(
      `ConsumerPerformance failed (exit ${perf.status}): ${perf.stderr.slice(-2000)}`,
    );
  return parseConsumerPerf(perf.stdout);
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const datasetName = flag(args, 'dataset', 'yago');
  const format = flag(args, 'format', 'avro') as FactFormat;
  const config = loadConfig({ partitions: flag(args, 'partitions', '3') });
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const dataset = loadDataset(datasetName);
  const facts = datasetFactEvents(dataset);
  const expected =
    dataset.kind === 'tkg'
      ? tkgSnapshots(loadTkgDataset(datasetName), ['train', 'valid', 'test'])
      : undefined;
  const expectedFacts = expected?.reduce((sum, s) => sum + s.triples.length / 3, 0);

  const brokers = await resolveBrokerSource(config, process.env, log);
  const kafka = createKafkaClient({ brokers: brokers.brokers, clientId: 'tkg-bench-ingest' });
  const prefix = `bench-${Date.now().toString(36)}`;
  const topics = topicNames(prefix);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, {
    prefix,
    partitions: config.partitions,
    roles: ['facts', 'factsDlq', 'factsLate'],
  });

  log(
    `publishing ${facts.length} ${datasetName} facts (${format}) to ${topics.facts} on ${brokers.brokers.join(',')}`,
  );
  const producer = createProducer(kafka);
  await producer.connect();
  const published = await publishFacts(producer, SchemaCodec.load(), facts, {
    topic: topics.facts,
    format,
  });
  await producer.disconnect();

  const runs = Math.max(1, Number(flag(args, 'runs', '1')));
  await waitForGroupCoordinator(brokers.brokers[0], 30_000); // a fresh broker loads __consumer_offsets on first use
  const classpath = ensureBrokerJars(log);
  const ours: IngestRun[] = [];
  const theirs: Record<string, number>[] = [];
  for (let r = 0; r < runs; r++) {
    // Alternate the order so neither side always runs on a warmer page cache / JIT.
    if (r % 2 === 0) {
      ours.push(await ingestOnce(kafka, prefix, facts.length));
      theirs.push(
        consumerPerformance(
          classpath,
          brokers.brokers,
          topics.facts,
          facts.length,
          `${prefix}.perf${r}`,
          log,
        ),
      );
    } else {
      theirs.push(
        consumerPerformance(
          classpath,
          brokers.brokers,
          topics.facts,
          facts.length,
          `${prefix}.perf${r}`,
          log,
        ),
      );
      ours.push(await ingestOnce(kafka, prefix, facts.length));
    }
  }
  const median = (values: number[]) =>
    [...values].sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)];
  const factsPerSecond = median(ours.map((o) => o.factsPerSecond));
  const kafkaConsumerPerfPerSecond = median(theirs.map((t) => t['fetch.nMsg.sec']));
  const last = ours[ours.length - 1];
  const { snapshots, snapshotFacts, stats } = last;
  const kafkaPerf = theirs[theirs.length - 1];
  const ingestSeconds = facts.length / factsPerSecond;

  await admin
    .deleteTopics({ topics: [topics.facts, topics.factsDlq, topics.factsLate] })
    .catch(() => undefined);
  await admin.disconnect();
  await brokers.release();

  const result = {
    dataset: datasetName,
    format,
    partitions: config.partitions,
    facts: facts.length,
    brokers: brokers.brokers,
    brokerSource: brokers.source,
    factsPerSecond: Math.round(factsPerSecond),
    kafkaConsumerPerfPerSecond: Math.round(kafkaConsumerPerfPerSecond),
    ratio: Number((factsPerSecond / kafkaConsumerPerfPerSecond).toFixed(3)),
    targetFactsPerSecond: 100_000,
    meetsTarget: factsPerSecond >= 100_000,
    ingestSeconds: Number(ingestSeconds.toFixed(3)),
    runs,
    factsPerSecondRuns: ours.map((o) => Math.round(o.factsPerSecond)),
    kafkaConsumerPerfPerSecondRuns: theirs.map((t) => Math.round(t['fetch.nMsg.sec'])),
    ingestStartupSeconds: Number(last.startupSeconds.toFixed(3)),
    factsPerSecondIncludingStartup: Math.round(
      facts.length / (facts.length / last.factsPerSecond + last.startupSeconds),
    ),
    kafkaConsumerPerfIncludingRebalancePerSecond: Math.round(kafkaPerf['nMsg.sec']),
    kafkaConsumerPerfRebalanceMs: kafkaPerf['rebalance.time.ms'],
    publishFactsPerSecond: Math.round(published.factsPerSecond),
    snapshots,
    snapshotFacts,
    expectedSnapshots: expected?.length ?? null,
    expectedSnapshotFacts: expectedFacts ?? null,
    snapshotsMatchDataset: expected
      ? ours.every((o) => o.snapshots === expected.length && o.snapshotFacts === expectedFacts)
      : null,
    rejected: stats.rejected,
    late: stats.late,
  };
  const rows: [string, string][] = [
    ['facts', String(result.facts)],
    [
      `ingest facts/s (topic -> closed snapshots), median of ${runs}`,
      `${result.factsPerSecond}  [${result.factsPerSecondRuns.join(', ')}]`,
    ],
    [
      `Kafka ConsumerPerformance msgs/s, median of ${runs}`,
      `${result.kafkaConsumerPerfPerSecond}  [${result.kafkaConsumerPerfPerSecondRuns.join(', ')}]`,
    ],
    ['ratio (ours / Kafka)', String(result.ratio)],
    ['target 100,000 facts/s met', String(result.meetsTarget)],
    ['ingest incl. group join facts/s', String(result.factsPerSecondIncludingStartup)],
    ['publish facts/s', String(result.publishFactsPerSecond)],
    [
      'snapshots / facts (expected)',
      `${snapshots} / ${snapshotFacts} (${result.expectedSnapshots} / ${result.expectedSnapshotFacts})`,
    ],
    ['rejected / late', `${result.rejected} / ${result.late}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stderr.write(
    `\nbench ingest (${datasetName}, ${format}, ${config.partitions} partitions, ${brokers.source} broker)\n`,
  );
  for (const [k, v] of rows) process.stderr.write(`  ${k.padEnd(width)}  ${v}\n`);
  return result;
}
