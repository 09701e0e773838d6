// The model file is self-describing (issue 14 item 3): an nlsm-h bundle trained on YAGO's first steps is announced on a
// real topic and served; Python (confluent-kafka, fastavro, onnxruntime from PyPI) reads the announcement, computes the
// term from the bundle's spec and the closed facts as the README documents, runs the graph, and reproduces every
// served answer (top-k entities and scores within 1e-4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadTkgDataset, tkgSnapshots } from '../../src/datasets/index.ts';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { announceBundle } from '../../src/kafka/model-topic.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import type { ModelBundle } from '../../src/model/bundle.ts';
import { SchemaCodec, defaultSchemaDir } from '../../src/schemas/codec.ts';
import { answerQuery, type QueryRecord } from '../../src/serve/queries.ts';
import { ServeReplica } from '../../src/serve/replica.ts';
import { createLiveModel } from '../../src/train/live/index.ts';
import { TrainerStage } from '../../src/train/stage.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { testPython } from '../helpers/python.ts';

const run = promisify(execFile);

test(
  'Python reproduces nlsm-h answers from the announced bundle alone (onnxruntime, within 1e-4)',
  { timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tkg-bundle-python-'));
    const brokers = await testBrokers();
    const prefix = uniqueTopicPrefix('bundle-py');
    const kafka = createKafkaClient({ brokers, clientId: 'bundle-python' });
    const codec = SchemaCodec.load();
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, { prefix, partitions: 1 });
    await admin.disconnect();
    const producer = createProducer(kafka);
    await producer.connect();
    const replica = new ServeReplica({
      kafka,
      codec,
      topicPrefix: prefix,
      modelName: 'nlsm-h',
      followSnapshots: false,
      maxWaitMs: 0,
    });
    try {
      const dataset = loadTkgDataset('yago');
      const steps = tkgSnapshots(dataset, ['train']).slice(0, 14);
      const vocabulary = { entityNames: dataset.entityNames, relationNames: dataset.relationNames };
      const model = await createLiveModel({
        kind: 'nlsm-h',
        dir,
        seed: 7,
        K: 8,
        windowSize: 3,
        epochsPerWindow: 2,
        selectEvery: 5,
        selectionSteps: 2,
      });
      let last: ModelBundle | undefined;
      const stage = new TrainerStage({
        model,
        modelName: 'nlsm-h',
        dir,
        announce: async (bundle) => void (last = bundle),
      });
      await replica.start();
      for (const snapshot of steps) {
        await stage.onSnapshot(snapshot, vocabulary);
        await replica.onStepClosed(snapshot);
      }
      model.dispose();
      const bundle = last!;
      assert.equal(bundle.terms.kind, 'hybrid');
      assert.notEqual(bundle.notes.form, 'recurrency (initial)', 'the weights were fitted');
      await announceBundle(producer, codec, topicNames(prefix).models, bundle);
      const deadline = Date.now() + 60_000;
      while (replica.scorer.model?.version !== bundle.version) {
        assert.ok(Date.now() < deadline, 'the replica did not load the bundle');
        await new Promise((r) => setTimeout(r, 50));
      }
      // queries on anchors with a history (the last steps' facts), both directions
      const facts = steps.at(-1)!.triples;
      const queries: QueryRecord[] = [];
      for (let i = 0; queries.length < 30 && i < facts.length; i += 3 * 7) {
        const [s, r, o] = [facts[i], facts[i + 1], facts[i + 2]];
        const relation = dataset.relationNames[r];
        queries.push(
          {
            replyId: `o${i}`,
            subject: dataset.entityNames[s],
            object: null,
            relation,
            k: 8,
            filter: 'raw',
            answer: null,
          },
          {
            replyId: `s${i}`,
            subject: null,
            object: dataset.entityNames[o],
            relation,
            k: 8,
            filter: 'raw',
            answer: null,
          },
        );
      }
      const served = await Promise.all(
        queries.map((q) => answerQuery(replica.scorer, q, () => undefined)),
      );
      for (const answer of served) {
        assert.equal(answer.ok, true, String(answer.error));
        assert.equal(answer.modelVersion, bundle.version);
        assert.equal(answer.historyStep, steps.at(-1)!.step);
      }
      const history = steps.flatMap((snapshot) => {
        const out: Array<[string, string, string, number]> = [];
        for (let i = 0; i < snapshot.triples.length; i += 3)
          out.push([
            dataset.entityNames[snapshot.triples[i]],
            dataset.relationNames[snapshot.triples[i + 1]],
            dataset.entityNames[snapshot.triples[i + 2]],
            snapshot.step,
          ]);
        return out;
      });
      const input = join(dir, 'input.json');
      writeFileSync(input, JSON.stringify({ name: 'nlsm-h', history, queries }));
      const { stdout } = await run(
        testPython(),
        [
          join(import.meta.dirname, 'python', 'reproduce_bundle.py'),
          brokers.join(','),
          topicNames(prefix).models,
          defaultSchemaDir,
          input,
        ],
        { maxBuffer: 64 * 1024 * 1024 },
      );
      const python = JSON.parse(stdout) as {
        version: number;
        historyStep: number;
        termEntries: number;
        answers: Array<Array<[string, number]>>;
      };
      assert.equal(python.version, bundle.version);
      assert.equal(python.historyStep, steps.at(-1)!.step);
      served.forEach((answer, q) => {
        const mine = answer.results;
        const theirs = python.answers[q];
        assert.equal(theirs.length, mine.length);
        mine.forEach((result, j) => {
          assert.ok(
            Math.abs(result.score - theirs[j][1]) <= 1e-4,
            `query ${q} rank ${j}: ${result.entity} ${result.score} vs ${theirs[j][0]} ${theirs[j][1]}`,
          );
          // the same entity, unless two scores tie within the tolerance
          const tie = mine.some(
            (other, k) => k !== j && Math.abs(other.score - result.score) <= 1e-4,
          );
          if (!tie) assert.equal(result.entity, theirs[j][0], `query ${q} rank ${j}`);
        });
      });
      assert.ok(python.termEntries > 10 * queries.length, `${python.termEntries} term entries`);
    } finally {
      await replica.stop();
      await producer.disconnect();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
