// Entity sharding across processes (issue 17, item 3), as a cluster runs it: two `tkg shard` replicas (shard 0 and 1
// of 2, separate processes) and one `tkg serve` front with TKG_SHARD_SERVERS, against the real broker. A bundle
// announced in pieces on the chunk topic (so each shard replica reads the file from Kafka, not from a shared disk).
// Asserts: each shard replica holds only its range and counts its exchanges on /metrics; every answer through
// <prefix>.queries / <prefix>.answers (top-k, scores, raw / static / time-aware ranks) equals the unsharded scorer's;
// a shard replica killed (SIGKILL) makes the front answer with an error naming it (no crash, no lost query) until it
// is back, and the restarted replica serves again from what the topic holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { announceBundle, announceOptionsFor } from '../../src/kafka/model-topic.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import type { ModelBundle } from '../../src/model/bundle.ts';
import { uncalibrated } from '../../src/model/calibration.ts';
import { exportScoringModel, vocabularyHash } from '../../src/model/scoring-graph.ts';
import { encodeTermSpec, noTerm } from '../../src/model/terms.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import type { HeldShard } from '../../src/serve/shard-server.ts';
import type { AnswerRecord } from '../../src/serve/queries.ts';
import { Scorer } from '../../src/serve/scorer.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';
import { randomScoringState } from '../serve/fixtures.ts';
import { killQuietly, startTkg, type Running } from './helpers.ts';

exitAfterTests('test/e2e/shard-replicas.test.ts');

const N = 301;
const R = 5;
const K = 8;
const entities = Array.from({ length: N }, (_, i) => `e${i}`);
const relations = Array.from({ length: R }, (_, i) => `r${i}`);
const codec = SchemaCodec.load();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  ms: number,
  logs: () => string,
) {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${logs()}`);
    await sleep(200);
  }
}

test(
  'two tkg shard replicas and a tkg serve front through Kafka: unsharded answers, each replica holds its range, a killed replica is named and recovers',
  { timeout: 300_000 },
  async () => {
    const brokers = await testBrokers();
    const prefix = uniqueTopicPrefix('shards');
    const topics = topicNames(prefix);
    const kafka = createKafkaClient({ brokers, clientId: 'shard-test' });
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, { prefix, partitions: 2 });
    await admin.disconnect();
    const state = randomScoringState({ seed: 9, N, R, K, version: 7, step: 12 });
    const hash = vocabularyHash(entities, relations);
    const onnx = exportScoringModel(state, {
      vocabularyHash: hash,
      terms: encodeTermSpec(noTerm),
      calibration: JSON.stringify(uncalibrated),
    });
    const bundle: ModelBundle = {
      name: 'nlsm',
      kind: 'nlsm',
      version: 7,
      step: 12,
      trainedStep: 11,
      createdAt: new Date().toISOString(),
      vocabularyHash: hash,
      onnx,
      location: null,
      entities,
      relations,
      terms: noTerm,
      calibration: uncalibrated,
      notes: {},
    };
    const ports = [await freePort(), await freePort()];
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const env = (stage: string, extra: Record<string, string> = {}) => ({
      KAFKA_BROKERS: brokers.join(','),
      TKG_TOPIC_PREFIX: prefix,
      TKG_PARTITIONS: '2',
      TKG_METRICS_PORT: '0',
      TKG_STATE_DIR: `/tmp/${prefix}-${stage}`,
      TKG_LOG_LEVEL: 'info',
      TKG_MODEL_NAME: 'nlsm',
      ...extra,
    });
    const shardEnv = (i: number) =>
      env(`shard${i}`, {
        TKG_SHARD_INDEX: String(i),
        TKG_SHARD_COUNT: '2',
        TKG_SHARD_PORT: String(ports[i]),
        TKG_SHARD_HOST: '127.0.0.1',
      });
    const stages: Record<string, Running> = {};
    const logs = () =>
      Object.entries(stages)
        .map(([name, r]) => `--- ${name}:\n${r.stderr().slice(-2000)}`)
        .join('\n');
    const producer = createProducer(kafka);
    await producer.connect();
    const answers = new Map<string, AnswerRecord>();
    const consumer = kafka.consumer({ groupId: `${prefix}.reader`, maxWaitTimeInMs: 50 });
    const held = async (url: string): Promise<HeldShard[]> => {
      try {
        return (await (await fetch(`${url}/shards`)).json()) as HeldShard[];
      } catch {
        return [];
      }
    };
    try {
      stages.shard0 = startTkg(['shard'], shardEnv(0));
      stages.shard1 = startTkg(['shard'], shardEnv(1));
      stages.front = startTkg(['serve', '--group', `${prefix}.front`], {
        ...env('front'),
        TKG_SHARD_SERVERS: urls.join(','),
      });
      await consumer.connect();
      await consumer.subscribe({ topic: topics.answers, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const value = codec.decodeValue<AnswerRecord>(message.value).value;
          answers.set(String(value.replyId), value);
        },
      });
      // in pieces of 2 KiB on the chunk topic: the shard replicas read the file from Kafka
      await announceBundle(
        producer,
        codec,
        topics.models,
        bundle,
        'avro',
        announceOptionsFor(2048),
      );
      for (const [i, url] of urls.entries())
        await until(
          async () => (await held(url)).length > 0,
          `shard ${i} holding v7`,
          120_000,
          logs,
        );
      for (const [i, url] of urls.entries()) {
        const [h] = await held(url);
        assert.equal(h.version, 7);
        assert.deepEqual(h.metadata.shard, { index: i, map: { bounds: [0, 151, N] } });
      }

      // the expected answers: the unsharded scorer on the same file
      const reference = new Scorer();
      await reference.loadModel(onnx);
      const queries = Array.from({ length: 24 }, (_, i) => ({
        replyId: randomUUID(),
        direction: i % 2 === 0 ? ('object' as const) : ('subject' as const),
        anchor: (i * 37) % N,
        relation: i % R,
        answer: (i * 101 + 13) % N,
        k: [1, 5, 20][i % 3],
        filter: (['raw', 'static', 'timeAware'] as const)[i % 3],
      }));
      const send = (tag: string) =>
        producer.send({
          topic: topics.queries,
          messages: queries.map((q) => ({
            key: entities[q.anchor],
            value: codec.encodeValue(
              'Query',
              {
                replyId: `${q.replyId}-${tag}`,
                [q.direction === 'object' ? 'subject' : 'object']: entities[q.anchor],
                relation: relations[q.relation],
                answer: entities[q.answer],
                k: q.k,
                filter: q.filter,
              },
              'json',
            ),
          })),
        });
      const settle = async (tag: string) => {
        await until(
          () => queries.every((q) => answers.has(`${q.replyId}-${tag}`)),
          `answers ${tag}`,
          60_000,
          logs,
        );
        return queries.map((q) => answers.get(`${q.replyId}-${tag}`)!);
      };
      const check = async (tag: string) => {
        for (let round = 0; ; round++) {
          await send(`${tag}${round}`);
          const got = await settle(`${tag}${round}`);
          if (got.some((a) => !a.ok) && round < 30) {
            await sleep(500); // the front is not serving v7 yet (or a replica is still loading)
            continue;
          }
          for (const [i, q] of queries.entries()) {
            const a = got[i];
            assert.equal(a.ok, true, String(a.error));
            assert.equal(a.modelVersion, 7);
            const e = await reference.score(q);
            assert.deepEqual(
              a.results.map((r) => r.entity),
              [...e.entities].map((id) => entities[id]),
              `query ${i}: top-k`,
            );
            a.results.forEach((r, j) =>
              assert.ok(Math.abs(r.score - e.scores[j]) < 1e-6, `query ${i}: score ${j}`),
            );
            assert.equal(a.rank, e.rank, `query ${i}: rank`);
          }
          return;
        }
      };
      await check('a');
      // the shard replica counts its exchanges on /metrics
      const [, metricsUrl] = await stages.shard0.waitForOutput(
        /"url":"(http:[^"]+)","msg":"metrics server listening"/,
      );
      const scrape = await (await fetch(`${metricsUrl}/metrics`)).text();
      const scored = /tkg_shard_calls_total\{method="score",outcome="ok"\} (\d+)/.exec(scrape);
      assert.ok(scored && Number(scored[1]) > 0, 'score exchanges counted');
      assert.match(scrape, /tkg_model_version 7/);

      // a shard replica dies: queries are answered with an error naming it, nothing crashes
      stages.shard1.child.kill('SIGKILL');
      await stages.shard1.finished;
      await send('down');
      const down = await settle('down');
      assert.ok(
        down.every(
          (a) =>
            !a.ok && /shard replica http:\/\/127\.0\.0\.1:\d+ is unreachable/.test(a.error ?? ''),
        ),
        JSON.stringify(down[0]),
      );
      // ... and once it is back (it reads v7 from the topic again), the front's answers are whole again
      stages.shard1b = startTkg(['shard'], shardEnv(1));
      await until(async () => (await held(urls[1])).length > 0, 'shard 1 back', 120_000, logs);
      await check('b');
      await reference.close();
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      for (const stage of Object.values(stages)) stage.child.kill('SIGTERM');
      await Promise.race([
        Promise.all(Object.values(stages).map((s) => s.finished)),
        sleep(15_000),
      ]);
      for (const stage of Object.values(stages)) killQuietly(stage);
    }
  },
);
