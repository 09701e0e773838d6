// Integration (real broker): every schema's record survives produce -> Kafka -> consume in Avro and in JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import {
  SchemaCodec,
  schemaNames,
  type SchemaName,
  type WireFormat,
} from '../../src/schemas/codec.ts';
import { sampleRecords, toPlain } from '../schemas/samples.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';

test(
  'round trip: each schema in Avro single-object and JSON through a real topic',
  { timeout: 120_000 },
  async () => {
    const codec = SchemaCodec.load();
    const kafka = createKafkaClient({ brokers: await testBrokers() });
    const topic = `${uniqueTopicPrefix('roundtrip')}.records`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();

    const formats: WireFormat[] = ['avro', 'json'];
    const sent = schemaNames.flatMap((name) =>
      formats.map((format) => ({ name, format, key: `${name}/${format}` })),
    );
    const producer = createProducer(kafka);
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: sent.map(({ name, format, key }) => ({
        key,
        value: codec.encodeValue(name, sampleRecords[name], format),
        headers: { schema: name, format },
      })),
    });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `${topic}-reader` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = new Map<string, { value: unknown; format: string; schema: string | null }>();
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ message }) => {
            const key = message.key!.toString();
            const expect = message.headers!.schema!.toString() as SchemaName;
            const decoded = codec.decodeValue(message.value, { expect });
            received.set(key, {
              value: toPlain(decoded.value),
              format: decoded.format,
              schema: decoded.schema,
            });
            if (received.size === sent.length) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();

    for (const { name, format, key } of sent) {
      const got = received.get(key);
      assert.ok(got, key);
      assert.equal(got.schema, name);
      assert.equal(got.format, format);
      assert.deepEqual(got.value, sampleRecords[name], key);
    }
  },
);
