// Integration (real broker): YAGO through Kafka into snapshots, duplicates, and dead-lettering of malformed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import type { Kafka, Message } from 'kafkajs';
import { createKafkaClient } from '../../src/kafka/client.ts';
import { topicNames } from '../../src/kafka/topics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { IngestPipeline } from '../../src/kafka/fact-consumer.ts';
import type { FactEvent, Snapshot } from '../../src/core/types.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { sampleRecords } from '../schemas/samples.ts';
import { loadDataset } from '../../src/datasets/index.ts';
import { linkFactEvents } from '../../src/datasets/events.ts';
import type { StepClockSpec } from '../../src/core/step-clock.ts';
import {
  createFactTopics,
  expectedSnapshots,
  namedSnapshot,
  persistedSnapshots,
  publish,
  mulberry32,
  sendRaw,
  snapshotDifference,
  tempStateDir,
  yagoTrain,
} from './fixtures.ts';

const codec = SchemaCodec.load();

async function runToEnd(
  kafka: Kafka,
  prefix: string,
  stateDir: string,
  metrics = createMetrics(),
  clock?: StepClockSpec,
) {
  const pipeline = new IngestPipeline({
    clock,
    kafka,
    topicPrefix: prefix,
    stateDir,
    codec,
    metrics,
    idleTimeoutMs: 5000,
    sessionTimeoutMs: 6000,
  });
  const delivered: Snapshot[] = [];
  pipeline.onSnapshot((s) => {
    delivered.push(s);
  });
  const started = performance.now();
  await pipeline.start();
  try {
    await pipeline.waitUntilCaughtUp({ timeoutMs: 120_000 });
    const seconds = (performance.now() - started) / 1000;
    await pipeline.flush();
    assert.equal(pipeline.error, undefined, 'the pipeline is alive');
    return { pipeline, delivered, seconds, stats: pipeline.stats() };
  } finally {
    await pipeline.stop();
  }
}

test(
  "YAGO train through Kafka: closed snapshots equal the file's per-step fact sets exactly",
  { timeout: 180_000 },
  async () => {
    const kafka = createKafkaClient({ brokers: await testBrokers() });
    const prefix = uniqueTopicPrefix('ingest-yago');
    await createFactTopics(kafka, prefix);
    const facts = yagoTrain();
    assert.equal(facts.length, 161_540);
    await publish(kafka, codec, topicNames(prefix).facts, facts, 'avro');
    const stateDir = tempStateDir('ingest-yago');
    try {
      const metrics = createMetrics();
      const { pipeline, delivered, seconds, stats } = await runToEnd(
        kafka,
        prefix,
        stateDir,
        metrics,
      );
      const expected = expectedSnapshots(facts);
      assert.equal(snapshotDifference(expected, persistedSnapshots(stateDir)), null);
      // the sink saw every step once, in order, with the same content
      assert.deepEqual(
        delivered.map((s) => s.step),
        [...expected.keys()].sort((a, b) => a - b),
      );
      const vocabulary = pipeline.ingestState.vocabulary;
      for (const snapshot of delivered) {
        assert.deepEqual(
          namedSnapshot(snapshot, vocabulary.entityNames, vocabulary.relationNames),
          expected.get(snapshot.step),
        );
      }
      assert.equal(stats.messages, 161_540);
      assert.equal(stats.factsAdded, 161_540);
      assert.equal(stats.rejected + stats.late + stats.factsDuplicate, 0);
      assert.equal((await metrics.stepsClosed.get()).values[0].value, 178);
      assert.equal((await metrics.factsIngested.get()).values[0].value, 161_540);
      process.stderr.write(
        `  YAGO train: ${stats.messages} facts to caught-up in ${seconds.toFixed(2)} s (${Math.round(stats.messages / seconds)} facts/s incl. group join), ${stats.checkpoints} checkpoints\n`,
      );
      // A new, empty state directory with the same consumer group: the group's committed offsets are
      // ahead of the (absent) checkpoint; the checkpoint is the truth, so everything is read again.
      const freshDir = tempStateDir('ingest-yago-fresh');
      try {
        const again = await runToEnd(kafka, prefix, freshDir);
        assert.equal(
          again.stats.messages,
          161_540,
          'the group was rewound to the checkpoint (the start)',
        );
        assert.equal(snapshotDifference(expected, persistedSnapshots(freshDir)), null);
      } finally {
        rmSync(freshDir, { recursive: true, force: true });
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);

test(
  'every YAGO fact published twice: the same snapshots, the second copies counted as duplicates',
  { timeout: 180_000 },
  async () => {
    const kafka = createKafkaClient({ brokers: await testBrokers() });
    const prefix = uniqueTopicPrefix('ingest-twice');
    await createFactTopics(kafka, prefix);
    const facts = yagoTrain();
    const doubled: FactEvent[] = [];
    for (const fact of facts) doubled.push(fact, fact);
    await publish(kafka, codec, topicNames(prefix).facts, doubled, 'json');
    const stateDir = tempStateDir('ingest-twice');
    try {
      const metrics = createMetrics();
      const { stats } = await runToEnd(kafka, prefix, stateDir, metrics);
      assert.equal(
        snapshotDifference(expectedSnapshots(facts), persistedSnapshots(stateDir)),
        null,
      );
      // The producer is at-least-once (kafkajs retries a timed-out batch, idempotence off): under load a batch can
      // land twice, and those copies are duplicates too. Every fact is added exactly once either way.
      assert.ok(stats.messages >= 2 * 161_540, `${stats.messages} messages`);
      assert.equal(stats.factsAdded, 161_540);
      assert.equal(stats.factsDuplicate, stats.messages - 161_540);
      assert.equal(stats.late, 0);
      // Counters reach Prometheus in per-batch deltas: they must still add up exactly.
      assert.equal((await metrics.factsDuplicate.get()).values[0].value, stats.factsDuplicate);
      assert.equal((await metrics.factsIngested.get()).values[0].value, stats.messages);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);

/** Malformed message kinds and the reason each must be dead-lettered with. */
function malformedKinds(): Array<{
  kind: string;
  reason: string;
  field: string;
  make: (i: number) => Buffer | null;
}> {
  const valid = (i: number) => ({
    subject: `bad-s${i}`,
    relation: 'r',
    object: `bad-o${i}`,
    step: 0,
    timestamp: null,
  });
  const avro = (i: number) => codec.encodeValue('Fact', valid(i), 'avro');
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  return [
    {
      kind: 'bad_json',
      reason: 'bad_json',
      field: 'value',
      make: (i) => Buffer.from(`{"subject": "s${i}", "relation": `),
    },
    {
      kind: 'wrong_avro_fingerprint',
      reason: 'unknown_fingerprint',
      field: 'value',
      make: (i) => {
        const bytes = Buffer.from(avro(i));
        bytes.writeUInt32LE((0xdeadbeef + i) >>> 0, 2);
        return bytes;
      },
    },
    {
      kind: 'truncated_avro',
      reason: 'bad_avro',
      field: 'value',
      make: (i) => avro(i).subarray(0, avro(i).length - 2),
    },
    {
      kind: 'avro_of_another_schema',
      reason: 'schema_mismatch',
      field: 'value',
      make: () => codec.encodeValue('Query', queryRecord(), 'avro'),
    },
    {
      kind: 'missing_field',
      reason: 'missing_field',
      field: 'object',
      make: (i) => json({ subject: `s${i}`, relation: 'r', step: 1 }),
    },
    {
      kind: 'empty_name',
      reason: 'empty_name',
      field: 'subject',
      make: (i) => json({ ...valid(i), subject: '' }),
    },
    {
      kind: 'nan_time',
      reason: 'invalid_timestamp',
      field: 'timestamp',
      make: (i) => json({ ...valid(i), step: null, timestamp: 'NaN' }),
    },
    {
      kind: 'negative_step_json',
      reason: 'invalid_step',
      field: 'step',
      make: (i) => json({ ...valid(i), step: -1 - i }),
    },
    {
      kind: 'negative_step_avro',
      reason: 'invalid_step',
      field: 'step',
      make: (i) => codec.encodeValue('Fact', { ...valid(i), step: -5 }, 'avro'),
    },
    {
      kind: 'oversized',
      reason: 'oversized',
      field: 'value',
      make: (i) => json({ ...valid(i), subject: 'x'.repeat(20_000) }),
    },
    {
      kind: 'name_too_long',
      reason: 'name_too_long',
      field: 'relation',
      make: (i) => json({ ...valid(i), relation: 'y'.repeat(2000) }),
    },
    {
      kind: 'wrong_type',
      reason: 'wrong_type',
      field: 'subject',
      make: (i) => json({ ...valid(i), subject: i }),
    },
    {
      kind: 'fractional_step',
      reason: 'wrong_type',
      field: 'step',
      make: (i) => json({ ...valid(i), step: i + 0.5 }),
    },
    {
      kind: 'non_object_json',
      reason: 'wrong_type',
      field: 'value',
      make: (i) => (i % 2 ? json([1, 2, i]) : json(`fact ${i}`)),
    },
    {
      kind: 'unparseable_timestamp',
      reason: 'invalid_timestamp',
      field: 'timestamp',
      make: (i) => json({ ...valid(i), step: null, timestamp: `31/12/${2000 + (i % 20)}` }),
    },
    { kind: 'empty_message', reason: 'empty_message', field: 'value', make: () => null },
    {
      kind: 'unknown_format',
      reason: 'unknown_format',
      field: 'value',
      make: (i) => Buffer.from([0xff, 0xfe, i & 0xff, 0x00]),
    },
  ];
}

function queryRecord(): object {
  return sampleRecords.Query;
}

test(
  '>= 1,000 malformed messages of 17 kinds mixed into valid traffic: all dead-lettered with reason and source offset, all valid facts kept, consumer alive',
  { timeout: 180_000 },
  async () => {
    const kafka = createKafkaClient({ brokers: await testBrokers() });
    const prefix = uniqueTopicPrefix('ingest-dlq');
    const topics = topicNames(prefix);
    await createFactTopics(kafka, prefix);
    const validFacts = yagoTrain().slice(0, 30_000);
    const kinds = malformedKinds();
    const random = mulberry32(2024);
    const messages: Message[] = validFacts.map((f) => ({
      key: f.subject,
      value: codec.encodeValue('Fact', { ...f, timestamp: null }, random() < 0.5 ? 'avro' : 'json'),
    }));
    const perKind = 70;
    let id = 0;
    for (const kind of kinds) {
      for (let i = 0; i < perKind; i++) {
        const message: Message = {
          key: `bad-key-${id}`,
          value: kind.make(i),
          headers: {
            'test.id': String(id),
            'test.kind': kind.kind,
            'test.binary': Buffer.from([0, 1, 2, id & 0xff]),
          },
        };
        messages.splice(Math.floor(random() * (messages.length + 1)), 0, message);
        id++;
      }
    }
    const malformedCount = id;
    assert.ok(malformedCount >= 1000 && kinds.length >= 10);
    // one more valid fact after all the malformed ones: the consumer must still be alive to take it
    const lastFact: FactEvent = {
      subject: 'after-the-storm',
      relation: 'survives',
      object: 'everything',
      step: validFacts[validFacts.length - 1].step,
    };
    messages.push({
      key: lastFact.subject,
      value: codec.encodeValue('Fact', { ...lastFact, timestamp: null }, 'json'),
    });
    await sendRaw(kafka, topics.facts, messages);

    const stateDir = tempStateDir('ingest-dlq');
    try {
      const metrics = createMetrics();
      const { stats } = await runToEnd(kafka, prefix, stateDir, metrics);
      assert.equal(
        snapshotDifference(
          expectedSnapshots([...validFacts, lastFact]),
          persistedSnapshots(stateDir),
        ),
        null,
      );
      assert.equal(stats.rejected, malformedCount);
      assert.equal(stats.messages, messages.length);

      // Where each malformed message landed in the facts topic, and what the DLQ holds.
      const sources = await readTopic(kafka, topics.facts, messages.length);
      const dlq = await readTopic(kafka, topics.factsDlq, malformedCount);
      const sourceById = new Map(
        sources.filter((m) => m.headers['test.id']).map((m) => [m.headers['test.id'], m]),
      );
      const byKind = new Map<string, number>();
      const seen = new Set<string>();
      for (const letter of dlq) {
        const testId = letter.headers['test.id'];
        const kind = kinds.find((k) => k.kind === letter.headers['test.kind']);
        assert.ok(testId && kind, 'original headers are kept');
        assert.ok(!seen.has(testId), `dead-lettered once: ${testId}`);
        seen.add(testId);
        const source = sourceById.get(testId);
        assert.ok(source);
        assert.equal(letter.headers['tkg.error.reason'], kind.reason, kind.kind);
        assert.equal(letter.headers['tkg.error.field'], kind.field, kind.kind);
        assert.ok((letter.headers['tkg.error.message'] ?? '').length > 10);
        assert.equal(letter.headers['tkg.source.topic'], topics.facts);
        assert.equal(letter.headers['tkg.source.partition'], String(source.partition));
        assert.equal(letter.headers['tkg.source.offset'], source.offset);
        assert.equal(letter.key, `bad-key-${testId}`, 'original key');
        assert.ok(
          letter.value === null
            ? source.value === null
            : source.value !== null && letter.value.equals(source.value),
          'original bytes',
        );
        assert.deepEqual(letter.binaryHeader, source.binaryHeader, 'binary header bytes kept');
        byKind.set(kind.reason, (byKind.get(kind.reason) ?? 0) + 1);
      }
      assert.equal(seen.size, malformedCount);
      const counted = new Map(
        (await metrics.factsRejected.get()).values.map((v) => [String(v.labels.reason), v.value]),
      );
      assert.deepEqual(
        counted,
        byKind,
        'tkg_facts_rejected_total{reason} matches the dead letters',
      );
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);

interface ReadMessage {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
  binaryHeader: Buffer | undefined;
}

/** Read `count` messages of `topic` from the beginning (fresh group). */
async function readTopic(kafka: Kafka, topic: string, count: number): Promise<ReadMessage[]> {
  const consumer = kafka.consumer({
    groupId: `${topic}.reader-${Math.random().toString(36).slice(2)}`,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: ReadMessage[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`read ${out.length}/${count} of ${topic} in 60 s`)),
      60_000,
    );
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {}))
            if (v !== undefined && !Array.isArray(v)) headers[k] = v.toString();
          const binary = message.headers?.['test.binary'];
          out.push({
            partition,
            offset: message.offset,
            key: message.key?.toString() ?? null,
            value: message.value,
            headers,
            binaryHeader: Buffer.isBuffer(binary) ? binary : undefined,
          });
          if (out.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return out;
}

test(
  "Enron with ISO timestamps: the DySAT slicing as origin/granularity/fold-after gives the offline loader's 16 snapshots",
  { timeout: 120_000 },
  async () => {
    const dataset = loadDataset('enron');
    assert.equal(dataset.kind, 'link');
    if (dataset.kind !== 'link') return;
    const kafka = createKafkaClient({ brokers: await testBrokers() });
    const prefix = uniqueTopicPrefix('ingest-enron');
    await createFactTopics(kafka, prefix);
    const events = linkFactEvents(dataset, { includeBeforeOrigin: true }); // time order
    await publish(kafka, codec, topicNames(prefix).facts, events, 'json');
    const expected = new Map<number, Set<string>>();
    for (let i = 0; i < dataset.facts.length; i += 4) {
      const step = dataset.facts[i + 3];
      if (!expected.has(step)) expected.set(step, new Set());
      expected
        .get(step)
        ?.add(
          `${dataset.nodeNames[dataset.facts[i]]}\t${dataset.relationName}\t${dataset.nodeNames[dataset.facts[i + 2]]}`,
        );
    }
    const stateDir = tempStateDir('ingest-enron');
    try {
      const { stats } = await runToEnd(kafka, prefix, stateDir, createMetrics(), {
        ...dataset.slicing,
        beforeOrigin: 'skip',
      });
      const actual = persistedSnapshots(stateDir);
      assert.equal(snapshotDifference(expected, actual), null);
      assert.equal(actual.size, 16);
      assert.equal(
        stats.factsSkipped,
        events.length - dataset.facts.length / 4,
        'events before the origin are skipped',
      );
      assert.equal(stats.late + stats.rejected, 0);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  },
);
