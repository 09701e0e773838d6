// The scale-out path as a cluster runs it (issue 13): `tkg ingest` (3 partitions), `tkg train`, and two `tkg serve`
// replicas (one publishing forecasts and evaluations) as separate processes with separate state directories, against
// the real broker; facts from a non-JS producer (Python confluent-kafka / librdkafka, its default partitioner, JSON)
// and from `tkg publish` (Avro). Once in the README's order with realistic gaps (ingest up and idle for longer than
// its idle timeout before the first fact), once with every stage started at the same moment. Asserts: 0 late facts;
// the closed snapshots equal the published sets; forecasts and evaluations for every closed step after the first
// model, every evaluation value finite; the filter modes order the ranks as they must; both replicas (separate
// groups) give the same answer to the same queries; an undecodable query lands in <prefix>.queries.dlq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FactEvent } from '../../src/core/types.ts';
import { loadTkgDataset } from '../../src/datasets/index.ts';
import { tkgFactEvents } from '../../src/datasets/renet.ts';
import { createKafkaClient, createProducer, type Consumer } from '../../src/kafka/client.ts';
import { SnapshotTopicFollower, snapshotsTopicName } from '../../src/kafka/snapshot-topic.ts';
import { topicNames } from '../../src/kafka/topics.ts';
import { withRetries } from '../../src/kafka/retry.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { testPython } from '../helpers/python.ts';
import { killQuietly, startTkg, type Running } from './helpers.ts';
import { exitAfterTests } from '../helpers/exit-guard.ts';

exitAfterTests('test/e2e/split-deployment.test.ts');

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const codec = SchemaCodec.load();
const STEPS = 14; // YAGO steps 0..13; the Python producer sends 0..6, `tkg publish` 7..13; step 13 stays open
const IDLE_TIMEOUT_MS = 5000; // the default of --idle-timeout-ms

const facts: FactEvent[] = (() => {
  const yago = loadTkgDataset('yago');
  return tkgFactEvents(yago, 'train').filter((f) => (f.step as number) < STEPS);
})();
const key = (f: { subject: string; relation: string; object: string }) =>
  `${f.subject}|${f.relation}|${f.object}`;

interface Observed {
  snapshots: Map<number, Set<string>>;
  forecasts: Map<number, number>;
  evaluations: Array<Record<string, unknown>>;
  answers: Map<string, Array<Record<string, unknown>>>;
  deadLetters: Array<Record<string, string>>;
  late: number;
  stop: () => Promise<void>;
}

async function observe(brokers: string[], prefix: string): Promise<Observed> {
  const kafka = createKafkaClient({ brokers, clientId: 'split-test' });
  const topics = topicNames(prefix);
  const observed: Observed = {
    snapshots: new Map(),
    forecasts: new Map(),
    evaluations: [],
    answers: new Map(),
    deadLetters: [],
    late: 0,
    stop: async () => undefined,
  };
  const follower = new SnapshotTopicFollower({
    kafka,
    topic: snapshotsTopicName(prefix),
    onSnapshot: async (snapshot, vocabulary) => {
      const set = new Set<string>();
      const t = snapshot.triples;
      for (let i = 0; i < t.length; i += 3)
        set.add(
          key({
            subject: vocabulary.entityNames[t[i]],
            relation: vocabulary.relationNames[t[i + 1]],
            object: vocabulary.entityNames[t[i + 2]],
          }),
        );
      observed.snapshots.set(snapshot.step, set);
    },
  });
  const consumer: Consumer = kafka.consumer({ groupId: `${prefix}.observer`, maxWaitTimeInMs: 50 });
  await consumer.connect();
  // the topics may not exist yet when everything starts at once: retry until a stage created them
  await withRetries('subscribing the observer', () =>
    consumer.subscribe({
      topics: [
        topics.forecasts,
        topics.evaluations,
        topics.answers,
        topics.queriesDlq,
        topics.factsLate,
      ],
      fromBeginning: true,
    }),
  );
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      if (topic === topics.factsLate) {
        observed.late++;
        return;
      }
      if (topic === topics.queriesDlq) {
        observed.deadLetters.push(
          Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
        );
        return;
      }
      const value = codec.decodeValue<Record<string, unknown>>(message.value).value;
      if (topic === topics.forecasts) {
        const step = Number(value.step);
        observed.forecasts.set(step, (observed.forecasts.get(step) ?? 0) + 1);
      } else if (topic === topics.evaluations) observed.evaluations.push(value);
      else {
        const id = String(value.replyId);
        observed.answers.set(id, [...(observed.answers.get(id) ?? []), value]);
      }
    },
  });
  await withRetries('following the snapshots topic', () => follower.start());
  observed.stop = async () => {
    await follower.stop();
    await consumer.disconnect();
  };
  return observed;
}

async function until(
  predicate: () => boolean,
  what: string,
  timeoutMs: number,
  logs: () => string,
) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${logs()}`);
    await sleep(200);
  }
}

function writeJsonl(path: string, events: FactEvent[]): void {
  writeFileSync(path, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
}

async function scenario(name: string, allAtOnce: boolean): Promise<void> {
  const brokers = await testBrokers();
  const prefix = uniqueTopicPrefix(`split-${name}`);
  const dir = mkdtempSync(join(tmpdir(), `tkg-split-${name}-`));
  const env = (stage: string) => ({
    KAFKA_BROKERS: brokers.join(','),
    TKG_TOPIC_PREFIX: prefix,
    TKG_PARTITIONS: '3',
    TKG_STATE_DIR: join(dir, stage),
    TKG_METRICS_PORT: '0',
    TKG_LOG_LEVEL: 'info',
  });
  const python = join(dir, 'python-facts.jsonl');
  const published = join(dir, 'published-facts.jsonl');
  writeJsonl(
    python,
    facts.filter((f) => (f.step as number) < STEPS / 2),
  );
  writeJsonl(
    published,
    facts.filter((f) => (f.step as number) >= STEPS / 2),
  );
  const stages: Record<string, Running> = {};
  const logs = () =>
    Object.entries(stages)
      .map(([stage, r]) => `--- ${stage}:\n${r.stderr().slice(-1500)}`)
      .join('\n');
  let observed: Observed | undefined;
  const produce = async () => {
    const { stdout } = await run(testPython(), [
      join(import.meta.dirname, 'python', 'produce_facts.py'),
      brokers.join(','),
      topicNames(prefix).facts,
      python,
      '0.3',
    ]);
    assert.equal(
      JSON.parse(stdout).sent,
      facts.filter((f) => (f.step as number) < STEPS / 2).length,
    );
    if (!allAtOnce) await sleep(1000);
    const publish = startTkg(
      ['publish', '--dataset', published, '--format', 'avro', '--json'],
      env('publish'),
    );
    const done = await publish.finished;
    assert.equal(done.code, 0, done.stderr);
  };
  try {
    stages.ingest = startTkg(['ingest'], env('ingest'));
    if (!allAtOnce) await stages.ingest.waitForOutput(/metrics server listening/, 60_000);
    stages.train = startTkg(['train'], env('train'));
    stages.serveA = startTkg(
      ['serve', '--publish-steps', '--group', `${prefix}.a`],
      env('serve-a'),
    );
    stages.serveB = startTkg(['serve', '--group', `${prefix}.b`], env('serve-b'));
    let producing: Promise<void>;
    if (allAtOnce) producing = produce();
    else {
      // every stage up, and ingest idle for longer than its idle timeout before the first fact
      for (const stage of ['train', 'serveA', 'serveB'])
        await stages[stage].waitForOutput(/metrics server listening/, 60_000);
      await sleep(IDLE_TIMEOUT_MS + 2000);
      producing = produce();
    }
    observed = await observe(brokers, prefix);
    await producing;
    const closed = STEPS - 1; // steps 0..12 close (13 is the open step)
    await until(
      () => observed!.snapshots.size >= closed,
      `${closed} closed snapshots`,
      120_000,
      logs,
    );
    await until(
      () => observed!.forecasts.has(closed),
      `forecasts for step ${closed}`,
      180_000,
      logs,
    );
    await until(
      () => new Set(observed!.evaluations.map((e) => e.step)).size >= closed - 1,
      `evaluations of steps 1..${closed - 1}`,
      60_000,
      logs,
    );
    const o = observed;
    // 0 late facts; snapshots = the published sets
    assert.equal(o.late, 0, `${o.late} facts in ${prefix}.facts.late`);
    for (let step = 0; step < closed; step++) {
      const expected = new Set(facts.filter((f) => f.step === step).map(key));
      assert.deepEqual(o.snapshots.get(step), expected, `snapshot ${step}`);
    }
    // forecasts and evaluations for every closed step after the first model (it forecasts step 1)
    for (let step = 1; step <= closed; step++)
      assert.ok((o.forecasts.get(step) ?? 0) > 0, `forecasts for step ${step}`);
    const byStep = new Map<number, Array<Record<string, unknown>>>();
    for (const e of o.evaluations)
      byStep.set(Number(e.step), [...(byStep.get(Number(e.step)) ?? []), e]);
    let staticAbove = 0;
    let timeAwareAbove = 0;
    for (let step = 1; step < closed; step++) {
      const records = byStep.get(step) ?? [];
      assert.equal(records.length, 9, `9 evaluation records of step ${step}`);
      for (const r of records)
        for (const field of ['mrr', 'hits1', 'hits3', 'hits10', 'drift'])
          assert.ok(
            r[field] === null || Number.isFinite(r[field]),
            `${field} of step ${step}: ${r[field]}`,
          );
      const mrr = (filter: string) =>
        Number(records.find((r) => r.filter === filter && r.direction === 'both')!.mrr);
      assert.ok(
        mrr('timeAware') >= mrr('raw') - 1e-9 && mrr('static') >= mrr('timeAware') - 1e-9,
        `step ${step}`,
      );
      if (mrr('static') > mrr('timeAware') + 1e-9) staticAbove++;
      if (mrr('timeAware') > mrr('raw') + 1e-9) timeAwareAbove++;
    }
    assert.ok(staticAbove > 0 && timeAwareAbove > 0, 'the filters changed ranks');

    // queries: both replicas (separate groups) answer each one; filters order the ranks; answers agree
    const producer = createProducer(createKafkaClient({ brokers, clientId: 'split-queries' }));
    await producer.connect();
    try {
      const last = facts.filter((f) => f.step === closed - 1);
      const ids: string[] = [];
      const queries = [];
      for (let i = 0; queries.length < 60 && i < last.length; i++) {
        for (const filter of ['raw', 'static', 'timeAware']) {
          const replyId = `${name}-${i}-${filter}`;
          ids.push(replyId);
          queries.push({
            replyId,
            subject: last[i].subject,
            relation: last[i].relation,
            k: 5,
            filter,
            answer: last[i].object,
          });
        }
      }
      // until both replicas serve the last bundle: resend if an answer came from an older one
      for (let round = 0; ; round++) {
        const topic = topicNames(prefix).queries;
        const tagged = queries.map((q) => ({ ...q, replyId: `${q.replyId}-r${round}` }));
        await producer.send({
          topic,
          messages: tagged.map((q) => ({
            key: q.subject,
            value: codec.encodeValue('Query', q, 'avro'),
          })),
        });
        await until(
          () => tagged.every((q) => (o.answers.get(q.replyId)?.length ?? 0) >= 2),
          'answers of both replicas',
          60_000,
          logs,
        );
        const pairs = tagged.map((q) => o.answers.get(q.replyId)!);
        if (pairs.some(([a, b]) => a.modelVersion !== b.modelVersion)) {
          assert.ok(round < 20, 'the replicas never served the same bundle');
          await sleep(500);
          continue;
        }
        for (const [a, b] of pairs) {
          assert.equal(a.ok, true, String(a.error));
          assert.deepEqual(a, b, 'both replicas give the same answer');
        }
        let staticBetter = 0;
        for (let i = 0; i < pairs.length; i += 3) {
          const [raw, st, ta] = [pairs[i][0].rank, pairs[i + 1][0].rank, pairs[i + 2][0].rank].map(
            Number,
          );
          assert.ok(st <= raw && ta <= raw, `ranks raw ${raw}, static ${st}, timeAware ${ta}`);
          if (st < raw) staticBetter++;
        }
        assert.ok(staticBetter > 0, 'the static filter changed some rank');
        break;
      }
      await producer.send({
        topic: topicNames(prefix).queries,
        messages: [{ key: 'bad', value: Buffer.from('{"replyId": 1, broken') }],
      });
      await until(() => o.deadLetters.length > 0, 'the undecodable query in the DLQ', 30_000, logs);
      assert.equal(o.deadLetters[0]['tkg.error.reason'], 'bad_json');
    } finally {
      await producer.disconnect();
    }
  } finally {
    await observed?.stop();
    for (const stage of Object.values(stages)) {
      stage.child.kill('SIGTERM');
    }
    await Promise.race([Promise.all(Object.values(stages).map((s) => s.finished)), sleep(15_000)]);
    for (const stage of Object.values(stages)) killQuietly(stage);
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  'split deployment in the README order, ingest idle past its timeout first: nothing lost, every step forecast',
  { timeout: 480_000 },
  () => scenario('ordered', false),
);

test(
  'split deployment with every stage started at the same moment: nothing lost, every step forecast',
  { timeout: 480_000 },
  () => scenario('at-once', true),
);
