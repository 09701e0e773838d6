// Integration (real broker, real schema registry: Apicurio Registry from deploy/registry, its Confluent-compatible
// API), issue 16: facts written by Confluent's own serializer (Python confluent-kafka AvroSerializer, schemas
// auto-registered under <topic>-value) are resolved by ingest from the registry, including an older writer schema
// under another record name, and land in the snapshots; a schema the Fact contract cannot read is a dead letter
// naming the field. Forecasts written Confluent-framed by the codec decode with confluent-kafka's AvroDeserializer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FactEvent } from '../../src/core/types.ts';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { IngestPipeline } from '../../src/kafka/fact-consumer.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { codecFromConfig } from '../../src/kafka/schema-config.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { testPython } from '../helpers/python.ts';
import { testRegistryUrl } from '../helpers/registry.ts';
import {
  createFactTopics,
  expectedSnapshots,
  persistedSnapshots,
  snapshotDifference,
  tempStateDir,
  yagoTrain,
} from '../ingest/fixtures.ts';
import { sampleRecords } from './samples.ts';

function confluentIo(input: object): Record<string, unknown> {
  const out = execFileSync(
    testPython(),
    [join(projectRoot, 'test/schemas/python/confluent_io.py')],
    {
      input: JSON.stringify(input),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      timeout: 120_000,
    },
  );
  return JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>;
}

/** An older writer schema a team might have: its own record name, no timestamp, step as int (promoted to long). */
const olderWriterSchema = {
  type: 'record',
  name: 'FactEvent',
  namespace: 'com.acme.events',
  fields: [
    { name: 'subject', type: 'string' },
    { name: 'relation', type: 'string' },
    { name: 'object', type: 'string' },
    { name: 'step', type: 'int' },
  ],
};

/** A schema the Fact contract cannot read: the subject is called `source`. */
const incompatibleSchema = {
  type: 'record',
  name: 'Edge',
  namespace: 'com.acme.graph',
  fields: [
    { name: 'source', type: 'string' },
    { name: 'relation', type: 'string' },
    { name: 'object', type: 'string' },
    { name: 'step', type: 'long' },
  ],
};

test(
  "Confluent-framed facts from confluent-kafka's AvroSerializer (current and older writer schemas in the real registry) reach the snapshots; an unreadable schema is a dead letter naming the field",
  { timeout: 240_000 },
  async () => {
    const [brokers, registryUrl] = await Promise.all([testBrokers(), testRegistryUrl()]);
    const prefix = uniqueTopicPrefix('registry-ingest');
    const kafka = createKafkaClient({ brokers });
    await createFactTopics(kafka, prefix);
    const topic = topicNames(prefix).facts;
    const facts = yagoTrain().filter((f) => (f.step as number) < 6);
    const older = facts.filter((f) => (f.step as number) < 3);
    const current = facts.filter((f) => (f.step as number) >= 3);
    const record = (f: FactEvent) => ({
      subject: f.subject,
      relation: f.relation,
      object: f.object,
      step: f.step,
    });
    const current_schema = SchemaCodec.load().schemas.Fact;
    const produced = confluentIo({
      mode: 'produce',
      brokers: brokers.join(','),
      registry: registryUrl,
      topic,
      batches: [
        { schema: olderWriterSchema, records: older.map(record) },
        {
          schema: current_schema,
          records: current.map((f) => ({ ...record(f), timestamp: null })),
        },
        {
          schema: incompatibleSchema,
          records: [{ source: 'Nobody', relation: 'r', object: 'o', step: 5 }],
        },
      ],
    }) as { sent: number; ids: number[] };
    assert.equal(produced.sent, facts.length + 1);
    assert.equal(new Set(produced.ids).size, 3, `three schema ids: ${produced.ids.join(', ')}`);

    const { codec, registry } = await codecFromConfig({
      schemaRegistryUrl: registryUrl,
      outputFormat: 'avro',
      topicPrefix: prefix,
    });
    assert.ok(registry);
    const stateDir = tempStateDir('registry-ingest');
    const metrics = createMetrics();
    const pipeline = new IngestPipeline({
      kafka,
      codec,
      registry,
      topicPrefix: prefix,
      stateDir,
      metrics,
      idleTimeoutMs: 1000,
      sessionTimeoutMs: 6000,
    });
    try {
      await pipeline.start();
      await pipeline.waitUntilCaughtUp({ timeoutMs: 60_000 });
      await pipeline.flush();
      const stats = pipeline.stats();
      assert.equal(stats.messages, facts.length + 1);
      assert.equal(stats.factsAdded, facts.length);
      assert.deepEqual(stats.rejectedByReason, { schema_mismatch: 1 });
      assert.equal(
        snapshotDifference(expectedSnapshots(facts), persistedSnapshots(stateDir)),
        null,
      );
    } finally {
      await pipeline.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
    // the dead letter names the field and the fix
    const consumer = kafka.consumer({ groupId: `${prefix}-dlq-reader` });
    await consumer.connect();
    await consumer.subscribe({ topic: topicNames(prefix).factsDlq, fromBeginning: true });
    const headers = await new Promise<Record<string, string>>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ message }) =>
            resolve(
              Object.fromEntries(
                Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
              ),
            ),
        })
        .catch(reject);
    });
    await consumer.disconnect();
    assert.equal(headers['tkg.error.reason'], 'schema_mismatch');
    assert.equal(headers['tkg.error.field'], 'subject');
    assert.match(
      headers['tkg.error.message'],
      /no field "subject".*add "subject" to the producer's schema/,
    );
  },
);

test(
  "forecasts written Confluent-framed (--output-format confluent, schema registered under <topic>-value) decode with confluent-kafka's AvroDeserializer",
  { timeout: 180_000 },
  async () => {
    const [brokers, registryUrl] = await Promise.all([testBrokers(), testRegistryUrl()]);
    const prefix = uniqueTopicPrefix('registry-forecasts');
    const kafka = createKafkaClient({ brokers });
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, { prefix, partitions: 1, roles: ['forecasts'] }).finally(() =>
      admin.disconnect(),
    );
    const { codec, outputFormat } = await codecFromConfig({
      schemaRegistryUrl: registryUrl,
      outputFormat: 'confluent',
      topicPrefix: prefix,
    });
    assert.equal(outputFormat, 'confluent');
    const forecasts = [0, 1, 2].map((i) => ({
      ...sampleRecords.Forecast,
      step: 100 + i,
      subject: `subject-${i}`,
      objects: [
        { entity: `object-${i}`, probability: 0.5 + i / 10, score: i - 1.5 },
        { entity: 'other', probability: 0.125, score: null },
      ],
    }));
    const producer = createProducer(kafka);
    await producer.connect();
    try {
      await producer.send({
        topic: topicNames(prefix).forecasts,
        messages: forecasts.map((f) => ({
          key: f.subject,
          value: codec.encodeValue('Forecast', f, outputFormat),
        })),
      });
    } finally {
      await producer.disconnect();
    }
    const read = confluentIo({
      mode: 'consume',
      brokers: brokers.join(','),
      registry: registryUrl,
      topic: topicNames(prefix).forecasts,
      count: forecasts.length,
    }) as { records: Array<Record<string, unknown>>; ids: number[] };
    // what Confluent's deserializer reads equals what the codec reads back (defaults of newer fields included)
    const ours = forecasts.map(
      (f) =>
        JSON.parse(
          JSON.stringify(codec.decodeValue(codec.encodeValue('Forecast', f, outputFormat)).value),
        ) as Record<string, unknown>,
    );
    assert.deepEqual(read.records, ours);
    assert.deepEqual(
      read.records.map((r) => [r.subject, r.step]),
      forecasts.map((f) => [f.subject, f.step]),
    );
    // the id in the frame is the one the registry holds for the Forecast schema under <prefix>.forecasts-value
    const subject = await fetch(
      `${registryUrl}/subjects/${topicNames(prefix).forecasts}-value/versions/latest`,
    );
    assert.equal(subject.status, 200);
    const latest = (await subject.json()) as { id: number };
    assert.deepEqual(new Set(read.ids), new Set([latest.id]));
  },
);
