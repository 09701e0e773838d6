// The model file is self-describing (issue 14 item 3): a bundle trained live on a dataset's first steps is announced on
// a real topic and served; Python (confluent-kafka, fastavro, onnxruntime from PyPI) reads the announcement, computes
// the term from the bundle's spec and the closed facts as the README documents, runs the graph, and reproduces every
// served answer (top-k entities and scores within 1e-4). Covered: nlsm-h (the hybrid kind) and recurrency on YAGO,
// nlsm-r (the default; the rules kind) on YAGO and on ICEWS14, (recurrency with its ONNX file in pieces on the
// chunk topic, as large bundles travel), where the fitted rules carry weight, and the rules kind
// with its two-hop paths turned on (the live models mine none; the project's miner mines them over the same steps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Snapshot } from '../../src/core/types.ts';
import { loadTkgDataset, tkgSnapshots, type TkgDataset } from '../../src/datasets/index.ts';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { announceBundle, type AnnounceOptions } from '../../src/kafka/model-topic.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import type { ModelBundle } from '../../src/model/bundle.ts';
import { encodeCalibration } from '../../src/model/calibration.ts';
import { FEATURE_INDEX, type RuleTermSpec } from '../../src/model/rule-spec.ts';
import { RuleTermState } from '../../src/model/rule-term.ts';
import { exportScoringModel } from '../../src/model/scoring-graph.ts';
import { encodeTermSpec, type TermSpec } from '../../src/model/terms.ts';
import { SchemaCodec, defaultSchemaDir } from '../../src/schemas/codec.ts';
import { answerQuery, type QueryRecord } from '../../src/serve/queries.ts';
import { ServeReplica } from '../../src/serve/replica.ts';
import { createLiveModel, type LiveModel, type LiveModelKind } from '../../src/train/live/index.ts';
import { RuleMiner } from '../../src/train/rules/miner.ts';
import { TrainerStage } from '../../src/train/stage.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import { testPython } from '../helpers/python.ts';

const run = promisify(execFile);

/** What reproduce_bundle.py prints. */
interface PythonAnswers {
  version: number;
  historyStep: number;
  termEntries: number;
  /** rules kind: per feature, the term entries where it is non-zero. */
  featureEntries: Record<string, number>;
  answers: Array<Array<[string, number]>>;
}

interface Trained {
  dataset: TkgDataset;
  steps: Snapshot[];
  model: LiveModel;
  bundle: ModelBundle;
}

/** Trains a live model of `kind` (small K, few epochs) on the first `stepCount` train steps; the last bundle. */
async function trainLive(
  kind: LiveModelKind,
  datasetName: string,
  stepCount: number,
  dir: string,
): Promise<Trained> {
  const dataset = loadTkgDataset(datasetName);
  const steps = tkgSnapshots(dataset, ['train']).slice(0, stepCount);
  const vocabulary = { entityNames: dataset.entityNames, relationNames: dataset.relationNames };
  const model = await createLiveModel({
    kind,
    dir: join(dir, 'model'),
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
    modelName: kind,
    dir: join(dir, 'stage'),
    announce: async (bundle) => void (last = bundle),
  });
  try {
    for (const snapshot of steps) await stage.onSnapshot(snapshot, vocabulary);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { dataset, steps, model, bundle: last! };
}

/**
 * Announces `bundle` on a fresh topic, serves it from a replica that saw `steps` close, asks queries on anchors with
 * a history (the last step's facts, both directions), has Python reproduce them from the announcement alone and
 * asserts every answer matches. Returns what Python reported.
 */
async function assertPythonReproduces(
  bundle: ModelBundle,
  dataset: TkgDataset,
  steps: readonly Snapshot[],
  dir: string,
  announce: AnnounceOptions = {},
): Promise<PythonAnswers> {
  const brokers = await testBrokers();
  const prefix = uniqueTopicPrefix('bundle-py');
  const kafka = createKafkaClient({ brokers, clientId: 'bundle-python' });
  const codec = SchemaCodec.load();
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, { prefix, partitions: 1 });
  } finally {
    await admin.disconnect();
  }
  const producer = createProducer(kafka);
  const replica = new ServeReplica({
    kafka,
    codec,
    topicPrefix: prefix,
    modelName: bundle.name,
    followSnapshots: false,
    maxWaitMs: 0,
  });
  try {
    await producer.connect();
    await replica.start();
    for (const snapshot of steps) await replica.onStepClosed(snapshot);
    await announceBundle(producer, codec, topicNames(prefix).models, bundle, 'avro', announce);
    const deadline = Date.now() + 60_000;
    while (replica.scorer.model?.version !== bundle.version) {
      assert.ok(Date.now() < deadline, 'the replica did not load the bundle');
      await new Promise((r) => setTimeout(r, 50));
    }
    const facts = steps.at(-1)!.triples;
    const queries: QueryRecord[] = [];
    for (let i = 0; queries.length < 30 && i < facts.length; i += 3 * 7) {
      const [s, r, o] = [facts[i], facts[i + 1], facts[i + 2]];
      const relation = dataset.relationNames[r];
      const query = { relation, k: 8, filter: 'raw', answer: null } as const;
      queries.push(
        { ...query, replyId: `o${i}`, subject: dataset.entityNames[s], object: null },
        { ...query, replyId: `s${i}`, subject: null, object: dataset.entityNames[o] },
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
    const input = join(dir, `input-${bundle.version}.json`);
    writeFileSync(input, JSON.stringify({ name: bundle.name, history, queries }));
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
    const python = JSON.parse(stdout) as PythonAnswers;
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
    return python;
  } finally {
    await replica.stop();
    await producer.disconnect();
  }
}

/** Trains `kind` on `datasetName`'s first steps, checks the bundle (`check`), then reproduces it in Python. */
async function reproduceLive(
  kind: LiveModelKind,
  datasetName: string,
  stepCount: number,
  check: (trained: Trained, dir: string) => Promise<void> | void,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-bundle-python-'));
  let trained: Trained | undefined;
  try {
    trained = await trainLive(kind, datasetName, stepCount, dir);
    await check(trained, dir);
  } finally {
    trained?.model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ruleSpecOf = (terms: TermSpec): RuleTermSpec => {
  assert.equal(terms.kind, 'rules');
  return (terms as Extract<TermSpec, { kind: 'rules' }>).spec;
};

const ruleWeights = (spec: RuleTermSpec) =>
  (['selfRule', 'ruleSum', 'ruleMax', 'pathSum'] as const).map(
    (f) => spec.weights[FEATURE_INDEX[f]],
  );

/**
 * The trained bundle with two-hop paths turned on (window 3, fan-out 8): path rules mined by the project's miner over
 * the same steps and a pathSum weight of 0.5 (the fitted one when non-zero), re-exported as the next version.
 */
function withPaths({ model, bundle, steps }: Trained): ModelBundle {
  const fitted = ruleSpecOf(bundle.terms);
  const pathWindow = 3;
  const mining: RuleTermSpec = { ...fitted, pathWindow, pathFanout: 8, paths: [] };
  const state = new RuleTermState(mining);
  const miner = new RuleMiner(mining, mining.numRelations);
  for (const snapshot of steps) {
    miner.observe(snapshot, state, pathWindow);
    state.observe(snapshot);
  }
  const weights = [...fitted.weights];
  if (weights[FEATURE_INDEX.pathSum] === 0) weights[FEATURE_INDEX.pathSum] = 0.5;
  const terms: TermSpec = {
    kind: 'rules',
    spec: { ...mining, weights, paths: miner.rules(mining.numRelations).paths },
  };
  const version = bundle.version + 1;
  const parts = model.scoringParts(
    bundle.step,
    version,
    bundle.entities.length,
    bundle.relations.length,
  );
  const onnx = exportScoringModel(parts.dense, {
    vocabularyHash: bundle.vocabularyHash,
    modelName: bundle.kind,
    terms: encodeTermSpec(terms),
    calibration: encodeCalibration(bundle.calibration),
  });
  return { ...bundle, version, onnx, terms };
}

test(
  'Python reproduces nlsm-h answers from the announced bundle alone (onnxruntime, within 1e-4)',
  { timeout: 300_000 },
  () =>
    reproduceLive('nlsm-h', 'yago', 14, async ({ bundle, dataset, steps }, dir) => {
      assert.equal(bundle.terms.kind, 'hybrid');
      assert.notEqual(bundle.notes.form, 'recurrency (initial)', 'the weights were fitted');
      await assertPythonReproduces(bundle, dataset, steps, dir);
    }),
);

test(
  'Python reproduces recurrency answers from the announced bundle alone, its ONNX file sent in pieces on the chunk topic',
  { timeout: 300_000 },
  () =>
    reproduceLive('recurrency', 'yago', 14, async ({ bundle, dataset, steps }, dir) => {
      assert.equal(bundle.terms.kind, 'recurrency');
      const chunkBytes = 16 * 1024;
      assert.ok(bundle.onnx!.length > 4 * chunkBytes, `${bundle.onnx!.length} bytes: few pieces`);
      await assertPythonReproduces(bundle, dataset, steps, dir, {
        inlineGraphBytes: 0,
        chunkBytes,
      });
    }),
);

test(
  'Python reproduces nlsm-r (the default model: the rules kind) answers on YAGO from the bundle alone',
  { timeout: 300_000 },
  () =>
    reproduceLive('nlsm-r', 'yago', 16, async ({ bundle, dataset, steps }, dir) => {
      const spec = ruleSpecOf(bundle.terms);
      assert.notEqual(bundle.notes.form, 'recurrency (initial)', 'the ranker was fitted');
      assert.ok(spec.rules.length > 0, 'rules were mined');
      const python = await assertPythonReproduces(bundle, dataset, steps, dir);
      assert.ok(python.featureEntries.strict > 0 && python.featureEntries.relaxed > 0);
    }),
);

test(
  'Python reproduces nlsm-r answers on ICEWS14, where the mined rules (and two-hop paths) carry weight',
  { timeout: 300_000 },
  () =>
    reproduceLive('nlsm-r', 'icews14', 16, async (trained, dir) => {
      const { bundle, dataset, steps } = trained;
      const spec = ruleSpecOf(bundle.terms);
      assert.notEqual(bundle.notes.form, 'recurrency (initial)', 'the ranker was fitted');
      assert.ok(
        spec.rules.some(
          ([head, body, confidences]) => head !== body && confidences.some((c) => c > 0),
        ),
        'length-1 rules other than recurrence were mined',
      );
      assert.ok(
        ruleWeights(spec).some((w) => w !== 0),
        `the fitted ranker weighs the rules (selfRule, ruleSum, ruleMax, pathSum: ${ruleWeights(spec)})`,
      );
      const python = await assertPythonReproduces(bundle, dataset, steps, dir);
      assert.ok(
        python.featureEntries.ruleSum > 0 && python.featureEntries.selfRule > 0,
        `rule features in the reproduced terms: ${JSON.stringify(python.featureEntries)}`,
      );
      const paths = withPaths(trained);
      assert.ok(ruleSpecOf(paths.terms).paths.length > 0, 'path rules were mined');
      const withPathsPython = await assertPythonReproduces(paths, dataset, steps, dir);
      assert.ok(
        withPathsPython.featureEntries.pathSum > 0,
        `path features in the reproduced terms: ${JSON.stringify(withPathsPython.featureEntries)}`,
      );
    }),
);
