// Integration (real broker): the publisher and `tkg publish` put every fact on the topic, keyed by subject.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import type { FactEvent } from '../../src/core/types.ts';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { keyPartitioner, publishFacts } from '../../src/kafka/publisher.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';

async function readAll(
  kafka: Kafka,
  topic: string,
  count: number,
): Promise<{ key: string; value: Buffer; partition: number }[]> {
  const consumer = kafka.consumer({ groupId: `${topic}-reader` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: { key: string; value: Buffer; partition: number }[] = [];
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages)
            out.push({ key: m.key!.toString(), value: m.value!, partition: batch.partition });
          if (out.length >= count) resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return out;
}

test(
  'publishFacts: every fact arrives once, keyed by subject, in publish order within its partition (1 and 2 lanes); --rate limits the rate',
  { timeout: 120_000 },
  async () => {
    const brokers = await testBrokers();
    const kafka = createKafkaClient({ brokers });
    const topic = `${uniqueTopicPrefix('publish')}.facts`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    await admin.disconnect();

    const facts: FactEvent[] = Array.from({ length: 2500 }, (_, i) => ({
      subject: `s${i % 97}`,
      relation: `r${i % 5}`,
      object: `o${i}`,
      step: Math.floor(i / 100),
    }));
    const codec = SchemaCodec.load();
    const producer = createProducer(kafka);
    const second = createProducer(kafka);
    await producer.connect();
    await second.connect();
    const first = await publishFacts(producer, codec, facts.slice(0, 1000), {
      topic,
      format: 'avro',
      batchSize: 100,
    });
    const twoLanes = await publishFacts([producer, second], codec, facts.slice(1000, 2000), {
      topic,
      format: 'avro',
      batchSize: 50,
      partitions: 3,
    });
    const limited = await publishFacts(producer, codec, facts.slice(2000), {
      topic,
      format: 'json',
      rate: 1000,
    });
    await producer.disconnect();
    await second.disconnect();
    assert.equal(first.sent, 1000);
    assert.equal(twoLanes.sent, 1000);
    assert.equal(limited.sent, 500);
    assert.ok(limited.seconds >= 0.4, `500 facts at 1000/s took ${limited.seconds} s`);

    const messages = await readAll(kafka, topic, facts.length);
    assert.equal(messages.length, facts.length);
    const seen = new Set<string>();
    const lastIndex = new Map<number, number>();
    const partitionOf = keyPartitioner(3);
    for (const { key, value, partition } of messages) {
      const fact = codec.decodeValue<FactEvent>(value, { expect: 'Fact' }).value;
      assert.equal(key, fact.subject);
      assert.equal(
        partition,
        partitionOf(key),
        'murmur2 key partitioning, same as the Java client',
      );
      const index = Number(fact.object.slice(1));
      assert.ok(
        index > (lastIndex.get(partition) ?? -1),
        `o${index} arrived after a later fact in partition ${partition}`,
      );
      lastIndex.set(partition, index);
      seen.add(fact.object);
    }
    assert.equal(seen.size, facts.length);
  },
);

test(
  'tkg publish: a JSONL file with --limit, --format json, --topic and --json output',
  { timeout: 120_000 },
  async () => {
    const brokers = await testBrokers();
    const dir = mkdtempSync(join(tmpdir(), 'tkg-publish-'));
    try {
      const file = join(dir, 'facts.jsonl');
      const lines = Array.from({ length: 300 }, (_, i) =>
        JSON.stringify({ subject: `a${i % 7}`, relation: 'likes', object: `b${i}`, step: i % 4 }),
      );
      writeFileSync(file, lines.join('\n') + '\n');
      const topic = `${uniqueTopicPrefix('cli')}.facts`;
      const stdout = execFileSync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(projectRoot, 'src/cli/main.ts'),
          'publish',
          '--dataset',
          file,
          '--limit',
          '250',
          '--format',
          'json',
          '--topic',
          topic,
          '--json',
        ],
        {
          env: { ...process.env, KAFKA_BROKERS: brokers.join(',') },
          encoding: 'utf8',
          cwd: projectRoot,
        },
      );
      const summary = JSON.parse(stdout);
      assert.equal(summary.facts, 250);
      assert.equal(summary.topic, topic);
      assert.equal(summary.brokerSource, 'env');
      const messages = await readAll(createKafkaClient({ brokers }), topic, 250);
      assert.equal(messages.length, 250);
      assert.deepEqual(
        JSON.parse(messages.find((m) => m.value.toString().includes('"b0"'))!.value.toString()),
        { subject: 'a0', relation: 'likes', object: 'b0', step: 0 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('tkg publish: a bad --format is a usage error (exit 2) naming the flag', () => {
  try {
    execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(projectRoot, 'src/cli/main.ts'),
        'publish',
        '--dataset',
        'yago',
        '--format',
        'xml',
      ],
      {
        encoding: 'utf8',
        cwd: projectRoot,
        stdio: 'pipe',
      },
    );
    assert.fail('expected a non-zero exit');
  } catch (error) {
    const failure = error as { status: number; stderr: string };
    assert.equal(failure.status, 2);
    assert.match(failure.stderr, /--format "xml": use json or avro/);
  }
});
