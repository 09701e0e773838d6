// `npm run bench -- ingest [--json] [--dataset yago] [--format avro|json] [--partitions 3] [--runs 3] [--warmup 1]
//   [--fetch-bytes 1048576]`
// Facts/s from the facts topic into closed, durable snapshots (IngestPipeline, YAGO all splits replayed at full
// speed), and in the same run two references reading the same topic: Kafka's own consumer perf tool
// (org.apache.kafka.tools.ConsumerPerformance, the class behind kafka-consumer-perf-test.sh, from deploy/kafka/lib)
// and a bare kafkajs consumer (same fetch settings as ingest, does nothing per message: the ceiling of any
// kafkajs-based ingest). All rates exclude the consumer-group join: ours and the bare consumer are timed from
// consumer.run() returned (group joined) to the last message (ours: every step closed and checkpointed);
// Kafka's is its fetch.nMsg.sec (total minus rebalance time). The three run one after the other (2 cores: no
// overlap), --runs times with the order rotated, and the medians are reported with the machine's load averages
// (os.loadavg) before and after each run, so a reader can judge the noise of a shared machine.
import { spawnSync } from 'node:child_process';
import type { Kafka } from 'kafkajs';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import {
  datasetFactEvents,
  loadDataset,
  loadTkgDataset,
  tkgSnapshots,
} from '../src/datasets/index.ts';
import {
  DEFAULT_MAX_BYTES_PER_PARTITION,
  IngestPipeline,
  ingestConsumerConfig,
} from '../src/kafka/fact-consumer.ts';
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
  /** CPU seconds of this process (main thread and libuv pool) from group joined to flushed. */
  cpuSeconds: number;
  startupSeconds: number;
  snapshots: number;
  snapshotFacts: number;
  stats: ReturnType<IngestPipeline['stats']>;
}

/** One ingest of the whole topic by a fresh pipeline (own group, own state dir); timed from group joined to flushed. */
async function ingestOnce(
  kafka: Kafka,
  prefix: string,
  facts: number,
  maxBytesPerPartition: number,
): Promise<IngestRun> {
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
    maxBytesPerPartition,
  });
  pipeline.onSnapshot((snapshot) => {
    snapshots += 1;
    snapshotFacts += snapshot.triples.length / 3;
  });
  try {
    const beforeStart = performance.now();
    await pipeline.start();
    const joined = performance.now();
    const cpuAtJoin = process.cpuUsage();
    await pipeline.waitUntilCaughtUp({ timeoutMs: 600_000, pollMs: 5 });
    await pipeline.flush();
    const done = performance.now();
    const cpu = process.cpuUsage(cpuAtJoin);
    const stats = pipeline.stats();
    return {
      factsPerSecond: facts / ((done - joined) / 1000),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
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

/**
 * A kafkajs consumer with ingest's settings that only counts messages (one resolveOffset per batch): what
 * kafkajs itself costs. Timed like ingest, from run() returned (group joined) to the last message.
 */
async function bareKafkajsOnce(
  kafka: Kafka,
  topic: string,
  messages: number,
  group: string,
  maxBytesPerPartition: number,
): Promise<{ perSecond: number; cpuSeconds: number }> {
  const consumer = kafka.consumer(ingestConsumerConfig(group, { maxBytesPerPartition }));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let seen = 0;
    let allSeen!: () => void;
    const finished = new Promise<void>((resolve) => (allSeen = resolve));
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset }) => {
        const count = batch.messages.length;
        if (count === 0) return;
        seen += count;
        resolveOffset(batch.messages[count - 1].offset);
        if (seen >= messages) allSeen();
      },
    });
    const joined = performance.now();
    const cpuAtJoin = process.cpuUsage();
    const timeout = setTimeout(() => allSeen(), 600_000);
    await finished;
    clearTimeout(timeout);
    const cpu = process.cpuUsage(cpuAtJoin);
    if (seen < messages)
      throw new Error(`bare kafkajs consumer saw ${seen} of ${messages} messages in 600 s`);
    return {
      perSecond: messages / ((performance.now() - joined) / 1000),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  } finally {
    await consumer.disconnect();
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

  const runs = Math.max(1, Number(flag(args, 'runs', '3')));
  const fetchBytes = Number(flag(args, 'fetch-bytes', String(DEFAULT_MAX_BYTES_PER_PARTITION)));
  await waitForGroupCoordinator(brokers.brokers[0], 30_000); // a fresh broker loads __consumer_offsets on first use
  const classpath = ensureBrokerJars(log);
  const ours: IngestRun[] = [];
  const theirs: Record<string, number>[] = [];
  const bare: Array<{ perSecond: number; cpuSeconds: number }> = [];
  const load: Array<{ before: number[]; after: number[] }> = [];
  const round = (values: number[]) => values.map((v) => Number(v.toFixed(2)));
  // Warm-up (untimed): one ingest and one bare pass, so the timed runs measure a warm process (a JIT-cold
  // first pass is ~1.5x slower; Kafka's tool starts a fresh JVM per run either way).
  const warmups = Math.max(0, Number(flag(args, 'warmup', '1')));
  for (let w = 0; w < warmups; w++) {
    await ingestOnce(kafka, prefix, facts.length, fetchBytes);
    await bareKafkajsOnce(kafka, topics.facts, facts.length, `${prefix}.warm${w}`, fetchBytes);
  }
  const loadBefore = round(loadavg());
  for (let r = 0; r < runs; r++) {
    // Rotate the order so no side always runs on a warmer page cache / JIT or a quieter machine.
    const steps: Array<() => Promise<void>> = [
      async () => {
        ours.push(await ingestOnce(kafka, prefix, facts.length, fetchBytes));
      },
      async () => {
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
      },
      async () => {
        bare.push(
          await bareKafkajsOnce(
            kafka,
            topics.facts,
            facts.length,
            `${prefix}.bare${r}`,
            fetchBytes,
          ),
        );
      },
    ];
    const before = round(loadavg());
    for (let k = 0; k < steps.length; k++) await steps[(k + r) % steps.length]();
    load.push({ before, after: round(loadavg()) });
    log(
      `run ${r + 1}/${runs}: ingest ${Math.round(ours[r].factsPerSecond)} facts/s, Kafka ${Math.round(theirs[r]['fetch.nMsg.sec'])}, kafkajs bare ${Math.round(bare[r].perSecond)} msgs/s (load ${before[0]} -> ${load[r].after[0]})`,
    );
  }
  const median = (values: number[]) =>
    [...values].sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)];
  const factsPerSecond = median(ours.map((o) => o.factsPerSecond));
  const kafkaConsumerPerfPerSecond = median(theirs.map((t) => t['fetch.nMsg.sec']));
  const kafkajsBareConsumerPerSecond = median(bare.map((b) => b.perSecond));
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
    kafkajsBareConsumerPerSecond: Math.round(kafkajsBareConsumerPerSecond),
    ratio: Number((factsPerSecond / kafkaConsumerPerfPerSecond).toFixed(3)),
    ratioToKafkajsBare: Number((factsPerSecond / kafkajsBareConsumerPerSecond).toFixed(3)),
    kafkajsBareToKafkaRatio: Number(
      (kafkajsBareConsumerPerSecond / kafkaConsumerPerfPerSecond).toFixed(3),
    ),
    targetFactsPerSecond: 100_000,
    meetsTarget: factsPerSecond >= 100_000,
    ingestSeconds: Number(ingestSeconds.toFixed(3)),
    runs,
    factsPerSecondRuns: ours.map((o) => Math.round(o.factsPerSecond)),
    kafkaConsumerPerfPerSecondRuns: theirs.map((t) => Math.round(t['fetch.nMsg.sec'])),
    kafkajsBareConsumerPerSecondRuns: bare.map((b) => Math.round(b.perSecond)),
    ingestCpuSecondsRuns: ours.map((o) => Number(o.cpuSeconds.toFixed(3))),
    kafkajsBareCpuSecondsRuns: bare.map((b) => Number(b.cpuSeconds.toFixed(3))),
    ingestCpuMicrosecondsPerFact: Number(
      ((median(ours.map((o) => o.cpuSeconds)) / facts.length) * 1e6).toFixed(2),
    ),
    kafkajsBareCpuMicrosecondsPerMessage: Number(
      ((median(bare.map((b) => b.cpuSeconds)) / facts.length) * 1e6).toFixed(2),
    ),
    fetchBytesPerPartition: fetchBytes,
    warmupRuns: warmups,
    cpus: cpus().length,
    loadAverage: { before: loadBefore, after: round(loadavg()), runs: load },
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
    [
      `kafkajs bare consumer msgs/s, median of ${runs}`,
      `${result.kafkajsBareConsumerPerSecond}  [${result.kafkajsBareConsumerPerSecondRuns.join(', ')}]`,
    ],
    ['ratio (ours / Kafka)', String(result.ratio)],
    ['ratio (ours / kafkajs bare)', String(result.ratioToKafkajsBare)],
    ['ratio (kafkajs bare / Kafka)', String(result.kafkajsBareToKafkaRatio)],
    [
      'CPU us per fact: ingest / kafkajs bare',
      `${result.ingestCpuMicrosecondsPerFact} / ${result.kafkajsBareCpuMicrosecondsPerMessage}`,
    ],
    [
      'load average 1/5/15 min, before -> after',
      `${loadBefore.join(' ')} -> ${result.loadAverage.after.join(' ')} (${result.cpus} CPUs)`,
    ],
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
