// Integration (real broker): query/answer round trip, error answers for malformed queries, corrupt model rejected
// while the old one serves, hot swap under 2 continuous clients (0 failed or mixed-version answers), two replicas in
// one group splitting the load and surviving one being stopped, forecasts and evaluations published when steps close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import type { Snapshot } from '../../src/core/types.ts';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { MetricsServer } from '../../src/metrics/server.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { exportScoringModel, vocabularyHash } from '../../src/model/scoring-graph.ts';
import { type ModelAnnouncement, announceModel } from '../../src/serve/model-watcher.ts';
import type { AnswerRecord } from '../../src/serve/query-service.ts';
import { ServeReplica } from '../../src/serve/replica.ts';
import { bruteForceRow, randomScoringState } from './fixtures.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';

const N = 50;
const R = 3;
const K = 8;
const entities = Array.from({ length: N }, (_, i) => `e${i}`);
const relations = ['likes', 'knows', 'visits'];
const hash = vocabularyHash(entities, relations);
const codec = SchemaCodec.load();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const states = new Map(
  [1, 2, 3, 4].map((version) => [
    version,
    randomScoringState({ seed: 50 + version, N, R, K, version, step: 10 + version }),
  ]),
);

function announcement(version: number, onnx?: Uint8Array): ModelAnnouncement {
  const state = states.get(version)!;
  return {
    name: 'nlsm',
    version,
    step: state.step,
    createdAt: new Date().toISOString(),
    vocabularyHash: hash,
    onnx: onnx ?? exportScoringModel(state, { vocabularyHash: hash }),
    location: null,
    entities,
    relations,
    metadata: { K: String(K) },
  };
}

async function until(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Harness {
  kafka: Kafka;
  producer: Producer;
  answers: Map<string, AnswerRecord>;
  forecasts: Array<Record<string, unknown>>;
  evaluations: Array<Record<string, unknown>>;
  consumer: Consumer;
  prefix: string;
  send: (
    queries: Array<Record<string, unknown> | Buffer>,
    format?: 'json' | 'avro',
  ) => Promise<void>;
  close: () => Promise<void>;
}

async function harness(): Promise<Harness> {
  const kafka = createKafkaClient({ brokers: await testBrokers(), clientId: 'serve-test' });
  const prefix = uniqueTopicPrefix('serve');
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, { prefix, partitions: 3 });
  await admin.disconnect();
  const topics = topicNames(prefix);
  const producer = createProducer(kafka);
  await producer.connect();
  const answers = new Map<string, AnswerRecord>();
  const forecasts: Array<Record<string, unknown>> = [];
  const evaluations: Array<Record<string, unknown>> = [];
  const consumer = kafka.consumer({ groupId: `${prefix}.test-reader`, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({
    topics: [topics.answers, topics.forecasts, topics.evaluations],
    fromBeginning: true,
  });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      const value = codec.decodeValue<Record<string, unknown>>(message.value).value;
      if (topic === topics.answers)
        answers.set(String(value.replyId), value as unknown as AnswerRecord);
      else if (topic === topics.forecasts) forecasts.push(value);
      else evaluations.push(value);
    },
  });
  const send = async (
    queries: Array<Record<string, unknown> | Buffer>,
    format: 'json' | 'avro' = 'json',
  ) => {
    await producer.send({
      topic: topics.queries,
      messages: queries.map((q, i) => ({
        key: Buffer.isBuffer(q) ? `raw-${i}` : String(q.subject ?? q.object ?? i),
        value: Buffer.isBuffer(q) ? q : codec.encodeValue('Query', q, format),
      })),
    });
  };
  return {
    kafka,
    producer,
    answers,
    forecasts,
    evaluations,
    consumer,
    prefix,
    send,
    close: async () => {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

function replica(h: Harness, metrics = createMetrics(), publishSteps = false): ServeReplica {
  return new ServeReplica({
    kafka: h.kafka,
    codec,
    topicPrefix: h.prefix,
    metrics,
    maxWaitMs: 1,
    publishSteps,
    topK: 3,
    windowSize: 2,
    format: 'json',
  });
}

function checkScores(
  answer: AnswerRecord,
  anchor: number,
  relation: number,
  direction: 0 | 1,
): void {
  const state = states.get(answer.modelVersion)!;
  assert.equal(answer.step, state.step);
  const row = bruteForceRow(state, anchor, relation, direction);
  const best = [...row].sort((a, b) => b - a);
  answer.results.forEach((r, j) => {
    assert.ok(
      Math.abs(r.score - row[Number(r.entity.slice(1))]) <= 1e-4,
      `reply ${answer.replyId}: score of ${r.entity} vs version ${answer.modelVersion}`,
    );
    assert.ok(Math.abs(r.score - best[j]) <= 1e-4, `reply ${answer.replyId}: rank ${j}`);
  });
}

test(
  'round trip, error answers, corrupt model rejected while the old one serves, forecasts on step close',
  { timeout: 120_000 },
  async () => {
    const h = await harness();
    const metrics = createMetrics();
    const server = replica(h, metrics, true);
    try {
      await server.start();
      await announceModel(h.producer, codec, topicNames(h.prefix).models, announcement(1));
      await until(() => server.ready, 'model 1 loaded and consumer joined');
      const id = () => randomUUID();
      const ok1 = id();
      const ok2 = id();
      const bad = {
        unknownEntity: id(),
        unknownRelation: id(),
        both: id(),
        badK: id(),
        badJson: 'not-json-key',
      };
      await h.send([
        { replyId: ok1, subject: 'e3', relation: 'knows', k: 5, answer: 'e7' },
        { replyId: ok2, object: 'e9', relation: 'visits', k: 500, filter: 'static' },
        { replyId: bad.unknownEntity, subject: 'nobody', relation: 'knows' },
        { replyId: bad.unknownRelation, subject: 'e1', relation: 'hates' },
        { replyId: bad.both, subject: 'e1', object: 'e2', relation: 'knows' },
        { replyId: bad.badK, subject: 'e1', relation: 'knows', k: 0 },
      ]);
      await h.producer.send({
        topic: topicNames(h.prefix).queries,
        messages: [{ key: bad.badJson, value: Buffer.from('{"replyId": 12, oops') }],
      });
      await h.send([{ replyId: id(), subject: 'e4', relation: 'likes', k: 2 }], 'avro');
      await until(() => h.answers.size >= 8, '8 answers');
      const a1 = h.answers.get(ok1)!;
      assert.equal(a1.ok, true);
      assert.equal(a1.modelVersion, 1);
      assert.equal(a1.results.length, 5);
      checkScores(a1, 3, 1, 0);
      const row = bruteForceRow(states.get(1)!, 3, 1, 0);
      assert.equal(
        a1.rank,
        1 + Array.from(row).filter((s) => s > row[7]).length,
        'rank of the supplied answer',
      );
      const a2 = h.answers.get(ok2)!;
      assert.equal(a2.results.length, N, 'k clamped to N');
      checkScores(a2, 9, 2, 1);
      assert.match(
        h.answers.get(bad.unknownEntity)!.error ?? '',
        /subject: unknown entity "nobody"/,
      );
      assert.match(
        h.answers.get(bad.unknownRelation)!.error ?? '',
        /relation: unknown relation "hates"/,
      );
      assert.match(h.answers.get(bad.both)!.error ?? '', /set exactly one/);
      assert.match(h.answers.get(bad.badK)!.error ?? '', /k: must be a positive integer/);
      assert.match(h.answers.get(bad.badJson)!.error ?? '', /bad JSON/);
      for (const key of Object.values(bad)) assert.equal(h.answers.get(key)!.ok, false);

      // corrupt announcement (version 2, garbage bytes): rejected and counted; version 1 keeps serving
      const garbage = Uint8Array.from(exportScoringModel(states.get(2)!, { vocabularyHash: hash }));
      garbage.fill(7, 40, 4000);
      await announceModel(h.producer, codec, topicNames(h.prefix).models, announcement(2, garbage));
      let metricsText = '';
      const deadline = Date.now() + 30_000;
      while (
        !/tkg_models_rejected_total\{reason="corrupt"\} 1/.test(metricsText) &&
        Date.now() < deadline
      ) {
        metricsText = await metrics.registry.metrics();
        await sleep(50);
      }
      assert.match(metricsText, /tkg_models_rejected_total\{reason="corrupt"\} 1/);
      const after = id();
      await h.send([{ replyId: after, subject: 'e5', relation: 'likes', k: 3 }]);
      await until(() => h.answers.has(after), 'answer after the corrupt model');
      assert.equal(h.answers.get(after)!.modelVersion, 1);
      assert.match(metricsText, /tkg_queries_total\{outcome="error"\} [1-9]/);
      assert.match(metricsText, /tkg_model_version 1/);
      // the HTTP endpoint exposes the serving series with sane values, and /readyz is 200 with a model loaded
      const http = new MetricsServer({
        registry: metrics.registry,
        port: 0,
        host: '127.0.0.1',
        readiness: () => (server.ready ? { ready: true } : { ready: false, reason: 'no model' }),
      });
      const { url } = await http.start();
      try {
        const body = await (await fetch(`${url}/metrics`)).text();
        const okCount = Number(/tkg_queries_total\{outcome="ok"\} (\d+)/.exec(body)?.[1]);
        assert.ok(okCount >= 3, `ok queries ${okCount}`);
        const latencyCount = Number(
          /tkg_query_duration_seconds_count\{path="kafka"\} (\d+)/.exec(body)?.[1],
        );
        assert.ok(latencyCount >= okCount, `latency observations ${latencyCount}`);
        const latencySum = Number(
          /tkg_query_duration_seconds_sum\{path="kafka"\} ([\d.e-]+)/.exec(body)?.[1],
        );
        assert.ok(
          latencySum > 0 && latencySum / latencyCount < 5,
          `mean latency ${latencySum / latencyCount} s`,
        );
        assert.match(body, /tkg_model_step 11/);
        assert.equal((await fetch(`${url}/readyz`)).status, 200);
      } finally {
        await http.stop();
      }

      // steps close: step 10 closes while model 1 forecasts 11 -> forecasts for step 11 on tkg.forecasts
      const snapshot = (step: number, triples: number[]): Snapshot => ({
        step,
        triples: Int32Array.from(triples),
        numEntities: N,
        numRelations: R,
      });
      await server.onStepClosed(snapshot(10, [1, 0, 2, 1, 2, 3, 4, 1, 5]));
      await until(() => h.forecasts.length >= 3, '3 forecasts');
      assert.deepEqual(h.forecasts.map((f) => `${f.subject}/${f.relation}`).sort(), [
        'e1/likes',
        'e1/visits',
        'e4/knows',
      ]);
      for (const f of h.forecasts) {
        assert.equal(f.step, 11);
        const objects = f.objects as Array<{ probability: number }>;
        assert.equal(objects.length, 3);
        assert.ok(objects.every((o) => o.probability > 0 && o.probability < 1));
      }
      // step 11 closes: evaluated against model 1 (which forecast it) -> 9 StepMetrics records
      await server.onStepClosed(snapshot(11, [1, 0, 2, 6, 1, 7]));
      await until(() => h.evaluations.length >= 9, '9 evaluation records');
      assert.ok(
        h.evaluations.every((e) => e.step === 11 && e.model === 'nlsm' && e.count !== undefined),
      );
    } finally {
      await server.stop();
      await h.close();
    }
  },
);

test(
  'hot swap while 2 clients send queries continuously: 0 failed or mixed-version answers',
  { timeout: 120_000 },
  async () => {
    const h = await harness();
    const server = replica(h);
    try {
      await server.start();
      const modelsTopic = topicNames(h.prefix).models;
      await announceModel(h.producer, codec, modelsTopic, announcement(1));
      await until(() => server.ready, 'ready');
      const sent = new Map<string, { anchor: number; relation: number; direction: 0 | 1 }>();
      let stop = false;
      const client = async (seed: number) => {
        for (let i = 0; !stop; i++) {
          const anchor = (i * 7 + seed) % N;
          const relation = i % R;
          const direction = ((i + seed) % 2) as 0 | 1;
          const replyId = `c${seed}-${i}`;
          sent.set(replyId, { anchor, relation, direction });
          const query =
            direction === 0
              ? { replyId, subject: `e${anchor}`, relation: relations[relation], k: 3 }
              : { replyId, object: `e${anchor}`, relation: relations[relation], k: 3 };
          await h.send([query]);
          await sleep(2);
        }
      };
      const clients = [client(1), client(2)];
      for (const version of [2, 3, 4]) {
        await sleep(400);
        await announceModel(h.producer, codec, modelsTopic, announcement(version));
        await until(() => server.scorer.model?.version === version, `version ${version} serving`);
      }
      await sleep(400);
      stop = true;
      await Promise.all(clients);
      await until(() => h.answers.size >= sent.size, `${sent.size} answers`, 60_000);
      const versions = new Map<number, number>();
      for (const [replyId, q] of sent) {
        const answer = h.answers.get(replyId)!;
        assert.equal(answer.ok, true, `${replyId}: ${answer.error}`);
        versions.set(answer.modelVersion, (versions.get(answer.modelVersion) ?? 0) + 1);
        checkScores(answer, q.anchor, q.relation, q.direction);
      }
      assert.ok(sent.size > 100, `only ${sent.size} queries sent`);
      assert.ok(versions.size >= 3, `answers came from versions ${[...versions.keys()]}`);
    } finally {
      await server.stop();
      await h.close();
    }
  },
);

test(
  'two replicas in one group split the load and survive one being killed (SIGKILL)',
  { timeout: 180_000 },
  async () => {
    const h = await harness();
    const metricsA = createMetrics();
    const a = replica(h, metricsA);
    // replica B is a real `tkg serve` process, killed without a chance to leave the group
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--topic-prefix', h.prefix, '--no-metrics'],
      {
        env: {
          ...process.env,
          KAFKA_BROKERS: (await testBrokers()).join(','),
          TKG_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let childLog = '';
    child.stderr.on('data', (chunk: Buffer) => (childLog += chunk.toString()));
    try {
      await a.start();
      await announceModel(h.producer, codec, topicNames(h.prefix).models, announcement(1));
      await until(() => a.ready, 'replica A ready', 60_000);
      const count = async () =>
        Number(
          /tkg_queries_total\{outcome="ok"\} (\d+)/.exec(await metricsA.registry.metrics())?.[1] ??
            0,
        );
      const batch = (tag: string, n: number) =>
        Array.from({ length: n }, (_, i) => ({
          replyId: `${tag}-${i}`,
          subject: `e${i % N}`,
          relation: relations[i % R],
          k: 2,
        }));
      const answered = (tag: string) =>
        [...h.answers.keys()].filter((k) => k.startsWith(tag)).length;
      // wait until the child joined: queries spread over 3 partitions get answered and A did not answer all of them
      let round = 0;
      for (;;) {
        const before = await count();
        await h.send(batch(`split${round}`, 60));
        await until(() => answered(`split${round}`) === 60, `60 answers (round ${round})`, 90_000);
        const byA = (await count()) - before;
        if (byA < 60) {
          assert.ok(byA > 0, 'replica A answered none: the group did not split');
          break;
        }
        assert.ok(++round < 40, `replica B never took a partition; its log:\n${childLog}`);
        await sleep(500);
      }
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      await h.send(batch('after', 60));
      await until(() => answered('after') === 60, '60 answers after the kill', 120_000);
      assert.ok(
        [...h.answers.entries()].filter(([k]) => k.startsWith('after')).every(([, v]) => v.ok),
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await a.stop();
      await h.close();
    }
  },
);
