// `npm run bench -- ingest [--json] [--dataset yago] [--format avro|json] [--partitions 3] [--runs 3] [--warmup 1]
//   [--fetch-bytes 1048576] [--copies 5] [--clients kafkajs,confluent]`
// Facts/s from the facts topic into closed, durable snapshots (IngestPipeline; YAGO all splits, --copies times in a
// row with the steps of each copy after the previous one, so the topic is large enough that JVM start-up is a small
// share of Kafka's tool's time), with every Kafka client adapter (kafkajs; Confluent's librdkafka client when its
// native binding is built: npm run kafka:confluent), and in the same run the references reading the same topic:
// Kafka's own consumer perf tool (org.apache.kafka.tools.ConsumerPerformance, the class behind
// kafka-consumer-perf-test.sh, from deploy/kafka/lib; one untimed warm-up pass, its JVM start-up share reported) and a
// bare consumer per client (same fetch settings as ingest, does nothing per message: the ceiling of any ingest on that
// client). All rates exclude the consumer-group join: ours and the bare consumer are timed from
// consumer.run() returned (group joined) to the last message (ours: every step closed and checkpointed);
// Kafka's is its fetch.nMsg.sec (total minus rebalance time). The three run one after the other (2 cores: no
// overlap), --runs times with the order rotated, and the medians are reported with the machine's load averages
// (os.loadavg) before and after each run, so a reader can judge the noise of a shared machine.
import { spawnSync } from 'node:child_process';
import type { Kafka } from '../src/kafka/client.ts';
import type { FactEvent } from '../src/core/types.ts';
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
import { createKafkaClient, createProducer, type KafkaClientKind } from '../src/kafka/client.ts';
import { confluentClientAvailable } from '../src/kafka/confluent-client.ts';
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
 * A consumer (of the given client) with ingest's settings that only counts messages (one resolveOffset per batch):
 * what the client itself costs. Timed like ingest, from run() returned (group joined) to the last message.
 */
async function bareOnce(
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
      throw new Error(`bare consumer saw ${seen} of ${messages} messages in 600 s`);
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
  const started = performance.now();
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
  const parsed = parseConsumerPerf(perf.stdout);
  parsed['wall.time.ms'] = performance.now() - started;
  return parsed;
}

/** `facts` `copies` times in a row, each copy's steps after the previous copy's last step (a longer valid stream). */
function repeatedStream(facts: readonly FactEvent[], copies: number): FactEvent[] {
  if (copies <= 1) return [...facts];
  const span = facts.reduce((max, f) => Math.max(max, f.step ?? 0), 0) + 1;
  const out: FactEvent[] = [];
  for (let c = 0; c < copies; c++)
    for (const f of facts) out.push(f.step === undefined ? f : { ...f, step: f.step + c * span });
  return out;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const datasetName = flag(args, 'dataset', 'yago');
  const format = flag(args, 'format', 'avro') as FactFormat;
  const config = loadConfig({ partitions: flag(args, 'partitions', '3') });
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const dataset = loadDataset(datasetName);
  const copies = Math.max(1, Number(flag(args, 'copies', '5')));
  const facts = repeatedStream(datasetFactEvents(dataset), copies);
  const expected =
    dataset.kind === 'tkg'
      ? tkgSnapshots(loadTkgDataset(datasetName), ['train', 'valid', 'test'])
      : undefined;
  const expectedFacts =
    expected && expected.reduce((sum, s) => sum + s.triples.length / 3, 0) * copies;
  const expectedSnapshotCount = expected ? expected.length * copies : undefined;
  const wanted = flag(args, 'clients', 'kafkajs,confluent').split(',') as KafkaClientKind[];
  const clients = wanted.filter((c) => c === 'kafkajs' || confluentClientAvailable());
  if (clients.length < wanted.length)
    log('the confluent client is not built here (npm run kafka:confluent): measuring kafkajs only');

  const brokers = await resolveBrokerSource(config, process.env, log);
  const kafka = createKafkaClient({
    brokers: brokers.brokers,
    clientId: 'tkg-bench-ingest',
    client: 'kafkajs',
  });
  const clientOf = new Map<KafkaClientKind, Kafka>(
    clients.map((client) => [
      client,
      client === 'kafkajs'
        ? kafka
        : createKafkaClient({ brokers: brokers.brokers, clientId: 'tkg-bench-ingest', client }),
    ]),
  );
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
  const ours = new Map<KafkaClientKind, IngestRun[]>(clients.map((c) => [c, []]));
  const bare = new Map<KafkaClientKind, Array<{ perSecond: number; cpuSeconds: number }>>(
    clients.map((c) => [c, []]),
  );
  const theirs: Record<string, number>[] = [];
  const load: Array<{ before: number[]; after: number[] }> = [];
  const round = (values: number[]) => values.map((v) => Number(v.toFixed(2)));
  // Warm-up (untimed): one ingest and one bare pass per client and one ConsumerPerformance pass, so the timed runs
  // measure warm processes (a JIT-cold first pass is ~1.5x slower).
  const warmups = Math.max(0, Number(flag(args, 'warmup', '1')));
  for (let w = 0; w < warmups; w++) {
    for (const [client, clientKafka] of clientOf) {
      log(`warm-up ${w + 1}: ${client}`);
      await ingestOnce(clientKafka, prefix, facts.length, fetchBytes);
      await bareOnce(
        clientKafka,
        topics.facts,
        facts.length,
        `${prefix}.warm${w}.${client}`,
        fetchBytes,
      );
    }
    consumerPerformance(
      classpath,
      brokers.brokers,
      topics.facts,
      facts.length,
      `${prefix}.perfwarm${w}`,
      log,
    );
  }
  const loadBefore = round(loadavg());
  for (let r = 0; r < runs; r++) {
    // Rotate the order so no side always runs on a warmer page cache / JIT or a quieter machine.
    const steps: Array<() => Promise<void>> = [
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
    ];
    for (const [client, clientKafka] of clientOf) {
      steps.push(async () => {
        (ours.get(client) as IngestRun[]).push(
          await ingestOnce(clientKafka, prefix, facts.length, fetchBytes),
        );
      });
      steps.push(async () => {
        bare
          .get(client)
          ?.push(
            await bareOnce(
              clientKafka,
              topics.facts,
              facts.length,
              `${prefix}.bare${r}.${client}`,
              fetchBytes,
            ),
          );
      });
    }
    const before = round(loadavg());
    for (let k = 0; k < steps.length; k++) await steps[(k + r) % steps.length]();
    load.push({ before, after: round(loadavg()) });
    log(
      `run ${r + 1}/${runs}: Kafka ${Math.round(theirs[r]['fetch.nMsg.sec'])} msgs/s; ${clients
        .map(
          (c) =>
            `${c}: ingest ${Math.round((ours.get(c) as IngestRun[])[r].factsPerSecond)} facts/s, bare ${Math.round(bare.get(c)?.[r].perSecond ?? 0)} msgs/s`,
        )
        .join('; ')} (load ${before[0]} -> ${load[r].after[0]})`,
    );
  }
  const median = (values: number[]) =>
    [...values].sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)];
  const kafkaConsumerPerfPerSecond = median(theirs.map((t) => t['fetch.nMsg.sec']));
  const kafkaPerf = theirs[theirs.length - 1];
  const jvmShares = theirs.map((t) => 1 - t['fetch.time.ms'] / t['wall.time.ms']);

  await admin
    .deleteTopics({ topics: [topics.facts, topics.factsDlq, topics.factsLate] })
    .catch(() => undefined);
  await admin.disconnect();
  await brokers.release();

  const perClient = Object.fromEntries(
    clients.map((client) => {
      const runsOf = ours.get(client) as IngestRun[];
      const bareOf = bare.get(client) ?? [];
      const factsPerSecond = median(runsOf.map((o) => o.factsPerSecond));
      const barePerSecond = median(bareOf.map((b) => b.perSecond));
      const cpuPerFact = (median(runsOf.map((o) => o.cpuSeconds)) / facts.length) * 1e6;
      const bareCpuPerMessage = (median(bareOf.map((b) => b.cpuSeconds)) / facts.length) * 1e6;
      const last = runsOf[runsOf.length - 1];
      return [
        client,
        {
          factsPerSecond: Math.round(factsPerSecond),
          bareConsumerPerSecond: Math.round(barePerSecond),
          ratio: Number((factsPerSecond / kafkaConsumerPerfPerSecond).toFixed(3)),
          ratioToBare: Number((factsPerSecond / barePerSecond).toFixed(3)),
          bareToKafkaRatio: Number((barePerSecond / kafkaConsumerPerfPerSecond).toFixed(3)),
          cpuMicrosecondsPerFact: Number(cpuPerFact.toFixed(2)),
          bareCpuMicrosecondsPerMessage: Number(bareCpuPerMessage.toFixed(2)),
          cpuRatioToBare: Number((cpuPerFact / bareCpuPerMessage).toFixed(3)),
          factsPerSecondRuns: runsOf.map((o) => Math.round(o.factsPerSecond)),
          bareConsumerPerSecondRuns: bareOf.map((b) => Math.round(b.perSecond)),
          ingestCpuSecondsRuns: runsOf.map((o) => Number(o.cpuSeconds.toFixed(3))),
          bareCpuSecondsRuns: bareOf.map((b) => Number(b.cpuSeconds.toFixed(3))),
          ingestStartupSeconds: Number(last.startupSeconds.toFixed(3)),
          snapshotsMatchDataset: expected
            ? runsOf.every(
                (o) => o.snapshots === expectedSnapshotCount && o.snapshotFacts === expectedFacts,
              )
            : null,
          rejected: last.stats.rejected,
          late: last.stats.late,
        },
      ];
    }),
  ) as unknown as Record<
    KafkaClientKind,
    Record<string, unknown> & { factsPerSecond: number; ratio: number }
  >;
  const fastest = clients.reduce((best, c) =>
    perClient[c].factsPerSecond > perClient[best].factsPerSecond ? c : best,
  );
  const kafkajsResult = perClient.kafkajs;
  const result = {
    dataset: datasetName,
    copies,
    format,
    partitions: config.partitions,
    facts: facts.length,
    brokers: brokers.brokers,
    brokerSource: brokers.source,
    clients,
    fastestClient: fastest,
    // kafkajs figures at the top level (the format earlier runs wrote)
    factsPerSecond: kafkajsResult?.factsPerSecond,
    kafkaConsumerPerfPerSecond: Math.round(kafkaConsumerPerfPerSecond),
    ratio: kafkajsResult?.ratio,
    perClient,
    kafkaConsumerPerfPerSecondRuns: theirs.map((t) => Math.round(t['fetch.nMsg.sec'])),
    kafkaConsumerPerfJvmStartupShareRuns: jvmShares.map((v) => Number(v.toFixed(3))),
    kafkaConsumerPerfIncludingRebalancePerSecond: Math.round(kafkaPerf['nMsg.sec']),
    kafkaConsumerPerfRebalanceMs: kafkaPerf['rebalance.time.ms'],
    targetFactsPerSecond: 100_000,
    runs,
    fetchBytesPerPartition: fetchBytes,
    warmupRuns: warmups,
    cpus: cpus().length,
    loadAverage: { before: loadBefore, after: round(loadavg()), runs: load },
    publishFactsPerSecond: Math.round(published.factsPerSecond),
    expectedSnapshots: expectedSnapshotCount ?? null,
    expectedSnapshotFacts: expectedFacts ?? null,
  };
  const rows: [string, string][] = [
    ['facts', `${result.facts} (${datasetName} x ${copies})`],
    [
      `Kafka ConsumerPerformance msgs/s, median of ${runs}`,
      `${result.kafkaConsumerPerfPerSecond}  [${result.kafkaConsumerPerfPerSecondRuns.join(', ')}]`,
    ],
    [
      'ConsumerPerformance JVM start-up share of its wall time',
      result.kafkaConsumerPerfJvmStartupShareRuns.join(', '),
    ],
  ];
  for (const client of clients) {
    const c = perClient[client] as Record<string, number | number[]>;
    rows.push(
      [
        `${client}: ingest facts/s (topic -> closed snapshots)`,
        `${c.factsPerSecond}  [${(c.factsPerSecondRuns as number[]).join(', ')}]`,
      ],
      [
        `${client}: bare consumer msgs/s`,
        `${c.bareConsumerPerSecond}  [${(c.bareConsumerPerSecondRuns as number[]).join(', ')}]`,
      ],
      [`${client}: ratio ingest / Kafka (target >= 1.0)`, String(c.ratio)],
      [`${client}: ratio ingest / bare, bare / Kafka`, `${c.ratioToBare}, ${c.bareToKafkaRatio}`],
      [
        `${client}: CPU us per fact ingest / bare (target <= 1.2x)`,
        `${c.cpuMicrosecondsPerFact} / ${c.bareCpuMicrosecondsPerMessage} = ${c.cpuRatioToBare}x`,
      ],
      [
        `${client}: snapshots match, rejected / late`,
        `${c.snapshotsMatchDataset}, ${c.rejected} / ${c.late}`,
      ],
    );
  }
  rows.push(
    ['fastest client', fastest],
    [
      'load average 1/5/15 min, before -> after',
      `${loadBefore.join(' ')} -> ${result.loadAverage.after.join(' ')} (${result.cpus} CPUs)`,
    ],
    ['publish facts/s', String(result.publishFactsPerSecond)],
  );
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stderr.write(
    `\nbench ingest (${datasetName}, ${format}, ${config.partitions} partitions, ${brokers.source} broker)\n`,
  );
  for (const [k, v] of rows) process.stderr.write(`  ${k.padEnd(width)}  ${v}\n`);
  return result;
}
