// `npm run bench -- ingest [--json] [--dataset yago] [--format avro|json] [--partitions 3]`
// Facts/s from the facts topic into closed, durable snapshots (IngestPipeline, YAGO all splits replayed at full
// speed), and in the same run Kafka's own consumer perf tool (org.apache.kafka.tools.ConsumerPerformance, the class
// behind kafka-consumer-perf-test.sh, from deploy/kafka/lib) reading the same topic. Both rates exclude the
// consumer-group join: ours is timed from start() (group joined) to every step closed and checkpointed; Kafka's is
// its fetch.nMsg.sec (total minus rebalance time). Runs the two one after the other (2 cores: no overlap).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { datasetFactEvents, loadDataset, loadTkgDataset, tkgSnapshots } from '../src/datasets/index.ts';
import { IngestPipeline } from '../src/ingest/consumer.ts';
import { resolveBrokerSource } from '../src/kafka/brokers.ts';
import { createKafkaClient, createProducer } from '../src/kafka/client.ts';
import { brokerLibDir, ensureBrokerJars, waitForGroupCoordinator } from '../src/kafka/local-broker.ts';
import { publishFacts, type FactFormat } from '../src/kafka/publisher.ts';
import { ensureTopics, topicNames } from '../src/kafka/topics.ts';
import { SchemaCodec } from '../src/schemas/codec.ts';

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}

/** Parse ConsumerPerformance's CSV line (header from its --help / source: start.time, end.time, ...). */
function parseConsumerPerf(stdout: string): Record<string, number> {
  const lines = stdout.trim().split('\n').filter((l) => l.trim().length > 0);
  const headerIndex = lines.findIndex((l) => l.startsWith('start.time'));
  if (headerIndex < 0 || !lines[headerIndex + 1]) throw new Error(`unexpected ConsumerPerformance output:\n${stdout}`);
  const header = lines[headerIndex].split(',').map((h) => h.trim());
  const values = lines[headerIndex + 1].split(',').map((v) => v.trim());
  return Object.fromEntries(header.slice(2).map((h, i) => [h, Number(values[i + 2])]));
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const datasetName = flag(args, 'dataset', 'yago');
  const format = flag(args, 'format', 'avro') as FactFormat;
  const config = loadConfig({ partitions: flag(args, 'partitions', '3') });
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const dataset = loadDataset(datasetName);
  const facts = datasetFactEvents(dataset);
  const expected = dataset.kind === 'tkg' ? tkgSnapshots(loadTkgDataset(datasetName), ['train', 'valid', 'test']) : undefined;
  const expectedFacts = expected?.reduce((sum, s) => sum + s.triples.length / 3, 0);

  const brokers = await resolveBrokerSource(config, process.env, log);
  const kafka = createKafkaClient({ brokers: brokers.brokers, clientId: 'tkg-bench-ingest' });
  const prefix = `bench-${Date.now().toString(36)}`;
  const topics = topicNames(prefix);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, { prefix, partitions: config.partitions, roles: ['facts', 'factsDlq', 'factsLate'] });

  log(`publishing ${facts.length} ${datasetName} facts (${format}) to ${topics.facts} on ${brokers.brokers.join(',')}`);
  const producer = createProducer(kafka);
  await producer.connect();
  const published = await publishFacts(producer, SchemaCodec.load(), facts, { topic: topics.facts, format });
  await producer.disconnect();

  // 1. Our ingest: topic -> decode, validate, vocabulary, window -> closed durable snapshots.
  const stateDir = mkdtempSync(join(tmpdir(), 'tkg-bench-ingest-'));
  let snapshots = 0;
  let snapshotFacts = 0;
  const pipeline = new IngestPipeline({ kafka, topicPrefix: prefix, stateDir, createTopics: false, idleTimeoutMs: 0 });
  pipeline.onSnapshot((snapshot) => {
    snapshots += 1;
    snapshotFacts += snapshot.triples.length / 3;
  });
  await waitForGroupCoordinator(brokers.brokers[0], 30_000); // a fresh broker loads __consumer_offsets on first use
  const beforeStart = performance.now();
  await pipeline.start();
  const joined = performance.now();
  await pipeline.waitUntilCaughtUp({ timeoutMs: 600_000, pollMs: 5 });
  await pipeline.flush();
  const done = performance.now();
  const stats = pipeline.stats();
  await pipeline.stop();
  rmSync(stateDir, { recursive: true, force: true });
  const ingestSeconds = (done - joined) / 1000;
  const factsPerSecond = facts.length / ingestSeconds;

  // 2. Kafka's own consumer perf tool on the same topic, same broker.
  const classpath = ensureBrokerJars(log);
  log(`running org.apache.kafka.tools.ConsumerPerformance (${brokerLibDir}) on ${topics.facts}`);
  const perf = spawnSync(
    'java',
    [
      '-Xmx512m',
      `-Dlog4j.configuration=file:/dev/null`,
      '-cp',
      classpath,
      'org.apache.kafka.tools.ConsumerPerformance',
      '--bootstrap-server',
      brokers.brokers.join(','),
      '--topic',
      topics.facts,
      '--messages',
      String(facts.length),
      '--group',
      `${prefix}.perf`,
      '--timeout',
      '60000',
    ],
    { encoding: 'utf8' },
  );
  if (perf.status !== 0) throw new Error(`ConsumerPerformance failed (exit ${perf.status}): ${perf.stderr.slice(-2000)}`);
  const kafkaPerf = parseConsumerPerf(perf.stdout);
  const kafkaConsumerPerfPerSecond = kafkaPerf['fetch.nMsg.sec'];

  await admin.deleteTopics({ topics: [topics.facts, topics.factsDlq, topics.factsLate] }).catch(() => undefined);
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
    ingestStartupSeconds: Number(((joined - beforeStart) / 1000).toFixed(3)),
    factsPerSecondIncludingStartup: Math.round(facts.length / ((done - beforeStart) / 1000)),
    kafkaConsumerPerfIncludingRebalancePerSecond: Math.round(kafkaPerf['nMsg.sec']),
    kafkaConsumerPerfRebalanceMs: kafkaPerf['rebalance.time.ms'],
    publishFactsPerSecond: Math.round(published.factsPerSecond),
    snapshots,
    snapshotFacts,
    expectedSnapshots: expected?.length ?? null,
    expectedSnapshotFacts: expectedFacts ?? null,
    snapshotsMatchDataset: expected ? snapshots === expected.length && snapshotFacts === expectedFacts : null,
    rejected: stats.rejected,
    late: stats.late,
  };
  const rows: [string, string][] = [
    ['facts', String(result.facts)],
    ['ingest facts/s (topic -> closed snapshots)', String(result.factsPerSecond)],
    ['Kafka ConsumerPerformance msgs/s', String(result.kafkaConsumerPerfPerSecond)],
    ['ratio (ours / Kafka)', String(result.ratio)],
    ['target 100,000 facts/s met', String(result.meetsTarget)],
    ['ingest incl. group join facts/s', String(result.factsPerSecondIncludingStartup)],
    ['publish facts/s', String(result.publishFactsPerSecond)],
    ['snapshots / facts (expected)', `${snapshots} / ${snapshotFacts} (${result.expectedSnapshots} / ${result.expectedSnapshotFacts})`],
    ['rejected / late', `${result.rejected} / ${result.late}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stderr.write(`\nbench ingest (${datasetName}, ${format}, ${config.partitions} partitions, ${brokers.source} broker)\n`);
  for (const [k, v] of rows) process.stderr.write(`  ${k.padEnd(width)}  ${v}\n`);
  return result;
}
