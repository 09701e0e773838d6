// Integration (real broker): the query client reads every answer written after its start() returns, however fast
// a replica answers, and leaves no consumer group behind when it stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKafkaClient } from '../../src/kafka/client.ts';
import { QueryClient } from '../../src/kafka/query-client.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { errorAnswer, type AnswerRecord } from '../../src/serve/queries.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';

test(
  'query client: an answer written the moment start() returns is read (no "latest" race with the group join); its group is deleted on stop',
  { timeout: 120_000 },
  async () => {
    const prefix = uniqueTopicPrefix('qc');
    const kafka = createKafkaClient({
      brokers: await testBrokers(),
      clientId: 'query-client-test',
    });
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer();
    await producer.connect();
    const codec = SchemaCodec.load();
    const topics = topicNames(prefix);
    try {
      await ensureTopics(admin, { prefix });
      const write = (answer: AnswerRecord) =>
        producer.send({
          topic: topics.answers,
          messages: [{ key: answer.replyId, value: codec.encodeValue('Answer', answer, 'avro') }],
        });
      for (let round = 0; round < 3; round++) {
        const seen: string[] = [];
        const client = new QueryClient({
          kafka,
          codec,
          queriesTopic: topics.queries,
          answersTopic: topics.answers,
          onAnswer: (replyId, answer) => seen.push(`${replyId}: ${answer?.error}`),
        });
        const replyId = client.nextReplyId();
        // an answer already on the topic before start() is not read, even under the same reply id
        await write(errorAnswer(replyId, new Error('stale'), undefined));
        try {
          await client.start();
          await client.send([
            {
              replyId,
              subject: 'e1',
              object: null,
              relation: 'r',
              k: 1,
              filter: 'raw',
              answer: null,
            },
          ]);
          // the fastest possible replica: the answer is on the topic right away, before the group has fetched
          await write(errorAnswer(replyId, new Error('answered at once'), undefined));
          const deadline = Date.now() + 30_000;
          while (seen.length === 0 && Date.now() < deadline)
            await new Promise((r) => setTimeout(r, 50));
          await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show
        } finally {
          await client.stop();
        }
        assert.deepEqual(
          seen,
          [`${replyId}: answered at once`],
          `round ${round}: read once, fresh`,
        );
      }
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
      assert.equal(
        groups.filter((g) => g.startsWith(`${topics.answers}.client.`)).length,
        0,
        'no throw-away group is left on the cluster',
      );
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
  },
);
