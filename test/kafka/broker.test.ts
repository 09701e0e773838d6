// Integration: the local broker's lifecycle (a dedicated broker in a temp dir, separate from the shared test broker).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaClient } from '../../src/kafka/client.ts';
import {
  randomClusterId,
  isBrokerProcess,
  localBrokerStatus,
  startLocalBroker,
  stopLocalBroker,
} from '../../src/kafka/local-broker.ts';

test(
  'local broker: start on a free port, status, idempotent start, stop by pid, restart keeps topics',
  { timeout: 180_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tkg-broker-test-'));
    try {
      const state = await startLocalBroker({ dir, port: 0 });
      assert.ok(state.port > 0 && state.port !== state.controllerPort);
      assert.equal(state.bootstrap, `127.0.0.1:${state.port}`);
      assert.ok(isBrokerProcess(state.pid, dir));
      assert.equal(readFileSync(join(dir, 'broker.pid'), 'utf8').trim(), String(state.pid));
      const properties = readFileSync(join(dir, 'server.properties'), 'utf8');
      for (const line of [
        'auto.create.topics.enable=false',
        'offsets.topic.replication.factor=1',
        'message.max.bytes=67108864',
        'group.initial.rebalance.delay.ms=0',
      ]) {
        assert.ok(properties.includes(line), line);
      }

      const status = await localBrokerStatus(dir);
      assert.equal(status.running, true);
      assert.equal(status.reachable, true);
      assert.equal(
        (await startLocalBroker({ dir, port: 0 })).pid,
        state.pid,
        'a second start reuses the running broker',
      );

      const admin = createKafkaClient({ brokers: [state.bootstrap] }).admin();
      await admin.connect();
      await admin.createTopics({
        topics: [{ topic: 'kept', numPartitions: 2 }],
        waitForLeaders: true,
      });
      await admin.disconnect();

      const stopped = await stopLocalBroker(dir);
      assert.deepEqual(stopped, { stopped: true, pid: state.pid });
      assert.equal(isBrokerProcess(state.pid, dir), false);
      assert.equal((await localBrokerStatus(dir)).running, false);
      assert.deepEqual(await stopLocalBroker(dir), { stopped: false, pid: state.pid });

      const restarted = await startLocalBroker({ dir, port: 0 });
      assert.notEqual(restarted.pid, state.pid);
      assert.equal(restarted.clusterId, state.clusterId, 'storage is formatted once');
      const admin2 = createKafkaClient({ brokers: [restarted.bootstrap] }).admin();
      await admin2.connect();
      assert.ok((await admin2.listTopics()).includes('kept'));
      await admin2.disconnect();
    } finally {
      await stopLocalBroker(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('cluster ids are 22 URL-safe base64 characters and never start with "-" (kafka-storage would read an option)', () => {
  for (let i = 0; i < 5000; i++) {
    const id = randomClusterId();
    assert.match(id, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  }
});
