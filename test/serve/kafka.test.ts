// Integration (real broker): query/answer round trip, error answers for invalid queries under their replyId, undecodable
// queries in <prefix>.queries.dlq, corrupt bundle rejected while the old one serves, hot swap of bundles of every term
// kind (none, recurrency, nlsm-h) under 2 continuous clients with steps closing meanwhile (0 failed or mixed answers,
// each reproduced offline from the bundle and history step it names; once with one session per bundle, once with each
// bundle served as 2 entity shards), two replicas in one group splitting the load and surviving one being killed,
// forecasts and evaluations published when steps close.
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
import { announceBundle, announceOptionsFor } from '../../src/kafka/model-topic.ts';
import type { ModelBundle } from '../../src/model/bundle.ts';
import { uncalibrated } from '../../src/model/calibration.ts';
import { F } from '../../src/model/hybrid-features.ts';
import { createTermState } from '../../src/model/term-states.ts';
import { encodeTermSpec, noTerm, type TermSpec } from '../../src/model/terms.ts';
import type { AnswerRecord } from '../../src/serve/queries.ts';
import { ServeReplica } from '../../src/serve/replica.ts';
import { bruteForceRow, randomScoringState, mulberry32 } from './fixtures.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { startTkg } from '../e2e/helpers.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';

exitAfterTests('test/serve/kafka.test.ts');

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

/** The term of each version's bundle: plain, recurrency, nlsm-h, nlsm-h with other weights. */
const specs = new Map<number, TermSpec>([
  [1, noTerm],
  [2, { kind: 'recurrency', numRelations: R, decay: 0.7, strictWeight: 3, relaxedWeight: 1.5 }],
  [3, { kind: 'hybrid', weights: hybridWeights(3) }],
  [4, { kind: 'hybrid', weights: hybridWeights(4) }],
]);

function hybridWeights(seed: number) {
  const random = mulberry32(seed);
  return {
    numRelations: R,
    decay: 0.6,
    relaxedTopK: 5,
    baseScale: [1, 1, 1],
    history: Array.from({ length: 2 * R * F }, () => random() * 4 - 1),
  };
}

function bundle(version: number, onnx?: Uint8Array): ModelBundle {
  const state = states.get(version)!;
  const terms = specs.get(version)!;
  return {
    name: 'nlsm',
    kind: 'nlsm',
    version,
    step: state.step,
    trainedStep: state.step - 1,
    createdAt: new Date().toISOString(),
    vocabularyHash: hash,
    onnx:
      onnx ??
      exportScoringModel(state, {
        vocabularyHash: hash,
        terms: encodeTermSpec(terms),
        calibration: JSON.stringify(uncalibrated),
      }),
    location: null,
    entities,
    relations,
    terms,
    calibration: uncalibrated,
    notes: { K: String(K) },
  };
}

/** Closed steps 0..13 with facts that repeat (so the terms are non-trivial). */
const closedSteps: Snapshot[] = (() => {
  const random = mulberry32(77);
  const out: Snapshot[] = [];
  const base: number[] = [];
  for (let i = 0; i < 40; i++)
    base.push(Math.floor(random() * N), Math.floor(random() * R), Math.floor(random() * N));
  for (let step = 0; step <= 13; step++) {
    const seen = new Set<string>();
    const triples: number[][] = [];
    for (let i = 0; i < 40; i++) {
      const fact =
        random() < 0.6
          ? base.slice(3 * i, 3 * i + 3)
          : [Math.floor(random() * N), Math.floor(random() * R), Math.floor(random() * N)];
      const key = fact.join(',');
      if (seen.has(key)) continue;
      seen.add(key);
      triples.push(fact);
    }
    triples.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    out.push({ step, triples: Int32Array.from(triples.flat()), numEntities: N, numRelations: R });
  }
  return out;
})();

/** Offline reproduction of one answer's scores: the named version's graph plus its term as of historyStep. */
function expectedRow(answer: AnswerRecord, anchor: number, relation: number, direction: 0 | 1) {
  const row = bruteForceRow(states.get(answer.modelVersion)!, anchor, relation, direction);
  const spec = specs.get(answer.modelVersion)!;
  if (spec.kind === 'none') {
    assert.equal(answer.historyStep, -1);
    return row;
  }
  assert.equal(answer.historyStep, states.get(answer.modelVersion)!.step - 1);
  const state = createTermState(spec)!;
  for (const s of closedSteps) if (s.step <= answer.historyStep) state.observe(s);
  const terms = state.terms(direction === 0 ? 'object' : 'subject', anchor, relation);
  terms?.entities.forEach((e, i) => (row[e] += terms.values[i]));
  return row;
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
  deadLetters: Array<{ key: string; headers: Record<string, string> }>;
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
  const deadLetters: Harness['deadLetters'] = [];
  const forecasts: Array<Record<string, unknown>> = [];
  const evaluations: Array<Record<string, unknown>> = [];
  const consumer = kafka.consumer({ groupId: `${prefix}.test-reader`, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({
    topics: [topics.answers, topics.forecasts, topics.evaluations, topics.queriesDlq],
    fromBeginning: true,
  });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      if (topic === topics.queriesDlq) {
        const headers = Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
        );
        deadLetters.push({ key: message.key?.toString() ?? '', headers });
        return;
      }
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
    deadLetters,
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

function replica(
  h: Harness,
  metrics = createMetrics(),
  publishSteps = false,
  scorerShards = 1,
): ServeReplica {
  return new ServeReplica({
    kafka: h.kafka,
    codec,
    topicPrefix: h.prefix,
    modelName: 'nlsm',
    scorerShards,
    followSnapshots: false, // the tests hand closed steps over with onStepClosed
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
  const row = expectedRow(answer, anchor, relation, direction);
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
      await announceBundle(h.producer, codec, topicNames(h.prefix).models, bundle(1));
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
      await until(() => h.answers.size >= 7, '7 answers');
      await until(() => h.deadLetters.length >= 1, 'the undecodable query in the queries DLQ');
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
      assert.equal(h.answers.has(bad.badJson), false, 'an undecodable query is not answered');
      assert.equal(h.deadLetters[0].key, bad.badJson);
      assert.equal(h.deadLetters[0].headers['tkg.error.reason'], 'bad_json');
      assert.equal(h.deadLetters[0].headers['tkg.source.topic'], topicNames(h.prefix).queries);
      for (const key of [bad.unknownEntity, bad.unknownRelation, bad.both, bad.badK])
        assert.equal(h.answers.get(key)!.ok, false);

      // corrupt announcement (version 2, garbage bytes): rejected and counted; version 1 keeps serving
      const garbage = Uint8Array.from(exportScoringModel(states.get(2)!, { vocabularyHash: hash }));
      garbage.fill(7, 40, 4000);
      await announceBundle(h.producer, codec, topicNames(h.prefix).models, bundle(2, garbage));
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
      assert.match(metricsText, /tkg_queries_rejected_total\{reason="bad_json"\} 1/);
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

for (const shards of [1, 2])
  test(
    `hot swap of every bundle kind while 2 clients query and steps close${shards > 1 ? `, each bundle served as ${shards} entity shards (worker threads)` : ''}: 0 failed or mixed answers, each reproduced offline`,
    { timeout: 120_000 },
    async () => {
      const h = await harness();
      const server = replica(h, createMetrics(), false, shards);
      try {
        await server.start();
        const modelsTopic = topicNames(h.prefix).models;
        for (const s of closedSteps.slice(0, 11)) await server.onStepClosed(s); // steps 0..10
        await announceBundle(h.producer, codec, modelsTopic, bundle(1));
        await until(() => server.ready, 'ready');
        const sent = new Map<string, { anchor: number; relation: number; direction: 0 | 1 }>();
        let stop = false;
        const client = async (seed: number) => {
          for (let i = 0; !stop; i++) {
            // anchors with a history half of the time, so the terms matter
            const fact = closedSteps[10].triples;
            const f = 3 * (i % (fact.length / 3));
            const direction = ((i + seed) % 2) as 0 | 1;
            const anchor = i % 2 === 0 ? fact[f + (direction === 0 ? 0 : 2)] : (i * 7 + seed) % N;
            const relation = i % 2 === 0 ? fact[f + 1] : i % R;
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
          await sleep(300);
          // the bundle arrives before the closed step its term needs: it waits, the old one keeps serving
          await announceBundle(h.producer, codec, modelsTopic, bundle(version));
          await sleep(300);
          assert.equal(server.scorer.model?.version, version - 1, 'swapped before its term inputs');
          assert.match(server.waitingFor() ?? 'serving', /serving/);
          await server.onStepClosed(closedSteps[9 + version]); // steps 11, 12, 13
          await until(() => server.scorer.model?.version === version, `version ${version} serving`);
        }
        await sleep(300);
        stop = true;
        await Promise.all(clients);
        await until(
          () => h.answers.size >= sent.size,
          `${sent.size} answers (missing e.g. ${[...sent.keys()].filter((k) => !h.answers.has(k)).slice(0, 5)})`,
          60_000,
        );
        const versions = new Map<number, number>();
        for (const [replyId, q] of sent) {
          const answer = h.answers.get(replyId)!;
          assert.equal(answer.ok, true, `${replyId}: ${answer.error}`);
          versions.set(answer.modelVersion, (versions.get(answer.modelVersion) ?? 0) + 1);
          checkScores(answer, q.anchor, q.relation, q.direction);
        }
        assert.ok(sent.size > 100, `only ${sent.size} queries sent`);
        assert.deepEqual(
          [...versions.keys()].sort(),
          [1, 2, 3, 4],
          `answers came from versions ${[...versions.keys()]}`,
        );
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
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--topic-prefix',
        h.prefix,
        '--model',
        'nlsm',
        '--no-metrics',
      ],
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
      await announceBundle(h.producer, codec, topicNames(h.prefix).models, bundle(1));
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

test(
  '`tkg query` asks through the topics and prints the ranked answer with its evidence (past facts before the step)',
  { timeout: 120_000 },
  async () => {
    const h = await harness();
    const server = replica(h);
    try {
      await server.start();
      for (const s of closedSteps.slice(0, 12)) await server.onStepClosed(s); // steps 0..11: v2's term needs 11
      await announceBundle(h.producer, codec, topicNames(h.prefix).models, bundle(2));
      await until(() => server.scorer.model?.version === 2, 'the recurrency bundle serving');
      const fact = closedSteps[11].triples;
      const [s, r] = [fact[0], fact[1]];
      const query = startTkg(
        ['query', '--subject', `e${s}`, '--relation', relations[r], '--top-k', '5', '--json'],
        { KAFKA_BROKERS: (await testBrokers()).join(','), TKG_TOPIC_PREFIX: h.prefix },
      );
      const done = await query.finished;
      assert.equal(done.code, 0, done.stderr);
      const answer = JSON.parse(done.stdout) as AnswerRecord;
      assert.equal(answer.ok, true);
      assert.equal(answer.modelVersion, 2);
      assert.equal(answer.historyStep, 11);
      const withEvidence = answer.results.filter((x) => x.evidence.length > 0);
      assert.ok(withEvidence.length > 0, 'the recurring objects carry evidence');
      for (const result of withEvidence) {
        for (const fact of result.evidence[0].facts) {
          assert.ok(fact.step <= answer.historyStep, 'evidence is from before the ranked step');
          const t = closedSteps[fact.step].triples;
          const ids = [fact.subject, fact.relation, fact.object].map((name, i) =>
            i === 1 ? relations.indexOf(name) : Number(name.slice(1)),
          );
          let found = false;
          for (let i = 0; i < t.length; i += 3)
            if (t[i] === ids[0] && t[i + 1] === ids[1] && t[i + 2] === ids[2]) found = true;
          assert.ok(found, `${JSON.stringify(fact)} is a fact of step ${fact.step}`);
        }
      }
      // the human-readable form names the question and the rule
      const text = startTkg(['query', '--subject', `e${s}`, '--relation', relations[r]], {
        KAFKA_BROKERS: (await testBrokers()).join(','),
        TKG_TOPIC_PREFIX: h.prefix,
      });
      const printed = await text.finished;
      assert.equal(printed.code, 0, printed.stderr);
      assert.match(printed.stdout, new RegExp(`\\(e${s}, ${relations[r]}, \\?\\)`));
      assert.match(printed.stdout, /recurrence: the same fact/);
    } finally {
      await server.stop();
      await h.close();
    }
  },
);

test(
  'a bundle over the inline limit travels in pieces on the chunk topic and serves; a piece that does not match is rejected while the old one serves',
  { timeout: 120_000 },
  async () => {
    const h = await harness();
    const metrics = createMetrics();
    const server = replica(h, metrics);
    const topics = topicNames(h.prefix);
    const small = announceOptionsFor(700); // inline up to 700 bytes, pieces of 700
    try {
      await server.start();
      for (const s of closedSteps.slice(0, 13)) await server.onStepClosed(s); // v3's term needs 12
      const one = bundle(1);
      assert.ok(one.onnx!.length > 3 * small.chunkBytes!, 'the graph makes several pieces');
      await announceBundle(h.producer, codec, topics.models, one, 'avro', small);
      await until(() => server.scorer.model?.version === 1, 'version 1 served from its pieces');
      // what went over the wire: an announcement without inline bytes, naming its pieces' location
      const announced = await readAll(h.kafka, topics.models, 1);
      assert.equal(announced[0].onnx, null);
      assert.match(
        String(announced[0].location),
        new RegExp(`^kafka:${topics.modelChunks}\\?partition=0&offset=0&chunks=\\d+`),
      );
      const pieces = Math.ceil(one.onnx!.length / small.chunkBytes!);
      assert.equal((await readAll(h.kafka, topics.modelChunks, pieces)).length, pieces);
      const asked = randomUUID();
      await h.send([{ replyId: asked, subject: 'e3', relation: 'knows', k: 5 }]);
      await until(() => h.answers.has(asked), 'an answer from the chunked bundle');
      checkScores(h.answers.get(asked)!, 3, 1, 0);

      // version 2's pieces are written, but its announcement names another file's digest: rejected, 1 serves
      const two = bundle(2);
      const { publishModelChunks } = await import('../../src/kafka/model-chunks.ts');
      const location = await publishModelChunks(
        h.producer,
        codec,
        topics.modelChunks,
        two,
        two.onnx!,
        small,
      );
      const tampered = location.replace(/sha256=[0-9a-f]+/, `sha256=${'0'.repeat(64)}`);
      await announceBundle(h.producer, codec, topics.models, {
        ...two,
        onnx: null,
        location: tampered,
      });
      let text = '';
      await until(
        () => (
          void metrics.registry.metrics().then((t) => (text = t)),
          /tkg_models_rejected_total\{reason="corrupt"\} 1/.test(text)
        ),
        'version 2 rejected',
      );
      assert.equal(server.scorer.model?.version, 1);
      // version 3, chunked and whole, replaces it
      await announceBundle(h.producer, codec, topics.models, bundle(3), 'avro', small);
      await until(() => server.scorer.model?.version === 3, 'version 3 served from its pieces');
    } finally {
      await server.stop();
      await h.close();
    }
  },
);

/** The first `count` records of a one-partition topic, decoded. */
async function readAll(
  kafka: Kafka,
  topic: string,
  count: number,
): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  const consumer = kafka.consumer({ groupId: `${topic}.check.${randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      out.push(codec.decodeValue<Record<string, unknown>>(message.value).value);
    },
  });
  try {
    await until(() => out.length >= count, `${count} records on ${topic}`);
  } finally {
    await consumer.disconnect();
  }
  return out;
}
