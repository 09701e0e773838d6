// Integration (real broker): the serving group's start position. A fresh group answers the queries sent while its
// first replica was starting (the last 30 s), never older ones; a restarted group resumes from its commits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { QueryTopicConsumer } from '../../src/kafka/query-topic.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { errorAnswer, type QueryRecord } from '../../src/serve/queries.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test(
  'serving group: a fresh group answers queries sent up to 30 s before it started (not older); a restart resumes from its commits',
  { timeout: 120_000 },
  async () => {
    const prefix = uniqueTopicPrefix('qt');
    const kafka = createKafkaClient({ brokers: await testBrokers(), clientId: 'query-topic-test' });
    const codec = SchemaCodec.load();
    const topics = topicNames(prefix);
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, { prefix, partitions: 3 });
    await admin.disconnect();
    const producer = createProducer(kafka);
    await producer.connect();
    const answered: string[] = [];
    const consumer = () =>
      new QueryTopicConsumer({
        kafka,
        codec,
        queriesTopic: topics.queries,
        answersTopic: topics.answers,
        deadLetterTopic: topics.queriesDlq,
        groupId: `${prefix}.scorers`,
        answer: async (query) => {
          answered.push(query.replyId);
          return errorAnswer(query.replyId, new Error('no bundle in this test'), undefined);
        },
      });
    const ask = (replyIds: string[], timestamp?: number) =>
      producer.send({
        topic: topics.queries,
        messages: replyIds.map((replyId, i) => {
          const query: QueryRecord = {
            replyId,
            subject: `e${i}`,
            object: null,
            relation: 'r',
            k: 1,
            filter: 'raw',
            answer: null,
          };
          return {
            key: `e${i}`, // spread over the partitions
            value: codec.encodeValue('Query', query, 'avro'),
            timestamp: timestamp === undefined ? undefined : String(timestamp),
          };
        }),
      });
    const until = async (what: () => boolean, label: string) => {
      const deadline = Date.now() + 60_000;
      while (!what()) {
        assert.ok(Date.now() < deadline, `${label}; answered: ${answered.join(', ')}`);
        await sleep(50);
      }
    };
    const names = (tag: string) => Array.from({ length: 6 }, (_, i) => `${tag}-${i}`);
    let serving = consumer();
    try {
      await ask(names('stale'), Date.now() - 120_000); // older than any client waits
      await ask(names('early')); // sent before the first replica started
      await serving.start();
      await ask(names('right-after')); // sent while the group is still joining
      const wanted = [...names('early'), ...names('right-after')];
      await until(() => wanted.every((id) => answered.includes(id)), 'early queries answered');
      await sleep(1000);
      assert.equal(answered.filter((id) => id.startsWith('stale')).length, 0, 'stale queries');
      assert.equal(answered.length, wanted.length, 'each query answered once');
      await serving.stop();
      await ask(names('while-down'));
      serving = consumer();
      await serving.start();
      await until(() => names('while-down').every((id) => answered.includes(id)), 'resumed');
      await sleep(1000);
      assert.equal(answered.length, wanted.length + 6, 'nothing answered twice after the restart');
    } finally {
      await serving.stop();
      await producer.disconnect();
    }
  },
);
