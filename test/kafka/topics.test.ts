// Integration (real broker): topics are created once with the right partitions and configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { createKafkaClient } from '../../src/kafka/client.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';

const { ConfigResourceTypes } = kafkajs;

test(
  'topics: ensureTopics creates every role once, models and model chunks compacted with 64 MiB messages',
  { timeout: 120_000 },
  async () => {
    const prefix = uniqueTopicPrefix('topics');
    const admin = createKafkaClient({ brokers: await testBrokers() }).admin();
    await admin.connect();
    try {
      const names = topicNames(prefix);
      const first = await ensureTopics(admin, { prefix, partitions: 3 });
      assert.deepEqual(first.created.sort(), Object.values(names).sort());
      const second = await ensureTopics(admin, { prefix, partitions: 3 });
      assert.deepEqual(second.created, []);
      assert.equal(second.existing.length, Object.keys(names).length);
      assert.deepEqual(second.updated, []);

      const metadata = await admin.fetchTopicMetadata({
        topics: [names.facts, names.models, names.modelChunks, names.queries],
      });
      const partitions = Object.fromEntries(
        metadata.topics.map((t) => [t.name, t.partitions.length]),
      );
      assert.equal(partitions[names.facts], 3);
      assert.equal(partitions[names.queries], 3);
      assert.equal(partitions[names.models], 1);
      assert.equal(partitions[names.modelChunks], 1);

      const configs = await admin.describeConfigs({
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: names.models,
            configNames: ['cleanup.policy', 'max.message.bytes'],
          },
          {
            type: ConfigResourceTypes.TOPIC,
            name: names.modelChunks,
            configNames: ['cleanup.policy', 'max.message.bytes', 'min.compaction.lag.ms'],
          },
          {
            type: ConfigResourceTypes.TOPIC,
            name: names.facts,
            configNames: ['cleanup.policy', 'retention.ms'],
          },
        ],
        includeSynonyms: false,
      });
      const byTopic = Object.fromEntries(
        configs.resources.map((r) => [
          r.resourceName,
          Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue])),
        ]),
      );
      assert.equal(byTopic[names.models]['cleanup.policy'], 'compact');
      assert.equal(byTopic[names.models]['max.message.bytes'], String(64 * 1024 * 1024));
      assert.equal(byTopic[names.modelChunks]['cleanup.policy'], 'compact');
      assert.equal(byTopic[names.modelChunks]['max.message.bytes'], String(64 * 1024 * 1024));
      assert.equal(byTopic[names.modelChunks]['min.compaction.lag.ms'], '3600000');
      assert.equal(byTopic[names.facts]['cleanup.policy'], 'delete');
      assert.equal(byTopic[names.facts]['retention.ms'], '-1');
    } finally {
      await admin.disconnect();
    }
  },
);

test(
  'topics: an existing models or model chunks topic without compaction (e.g. auto-created) gets its configs fixed',
  { timeout: 120_000 },
  async () => {
    const prefix = uniqueTopicPrefix('topics-fix');
    const admin = createKafkaClient({ brokers: await testBrokers() }).admin();
    await admin.connect();
    try {
      const names = topicNames(prefix);
      await admin.createTopics({
        topics: [names.models, names.modelChunks].map((topic) => ({
          topic,
          numPartitions: 1,
          configEntries: [{ name: 'cleanup.policy', value: 'delete' }],
        })),
        waitForLeaders: true,
      });
      const result = await ensureTopics(admin, { prefix, roles: ['models', 'modelChunks'] });
      assert.deepEqual(result.updated.sort(), [names.models, names.modelChunks].sort());
      const configs = await admin.describeConfigs({
        resources: [names.models, names.modelChunks].map((name) => ({
          type: ConfigResourceTypes.TOPIC,
          name,
          configNames: ['cleanup.policy', 'max.message.bytes'],
        })),
        includeSynonyms: false,
      });
      for (const resource of configs.resources) {
        const entries = Object.fromEntries(
          resource.configEntries.map((e) => [e.configName, e.configValue]),
        );
        assert.equal(entries['cleanup.policy'], 'compact', resource.resourceName);
        assert.equal(entries['max.message.bytes'], String(64 * 1024 * 1024));
      }
    } finally {
      await admin.disconnect();
    }
  },
);
