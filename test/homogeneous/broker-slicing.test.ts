// Issue 5 item 4: homogeneous networks through the product's own path. A slice of Enron (and of UCI)
// is published to a real broker as timestamped FactEvents (ISO-8601 times, no step), the ingest
// pipeline windows them with the DySAT slicing expressed as StepClock config (origin, granularity,
// fold tail into the last step, skip events before the origin), and the closed snapshots must equal
// the offline slicing (`sliceEvents` + `linkSnapshots`) of the same events, step by step, by names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import type { FactEvent, Snapshot } from '../../src/core/types.ts';
import { dysatSlicing, enronSlicingParams, uciSlicingParams } from '../../src/datasets/slicing.ts';
import { linkSnapshots, loadDataset } from '../../src/datasets/index.ts';
import { sliceEvents, type LinkDataset, type TimedEvent } from '../../src/datasets/events.ts';
import { IngestPipeline } from '../../src/kafka/fact-consumer.ts';
import { createKafkaClient } from '../../src/kafka/client.ts';
import { topicNames } from '../../src/kafka/topics.ts';
import { createMetrics } from '../../src/metrics/metrics.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { dysatClockSpec, type StepClockSpec } from '../../src/core/step-clock.ts';
import { testBrokers, uniqueTopicPrefix } from '../helpers/broker.ts';
import {
  createFactTopics,
  namedSnapshot,
  persistedSnapshots,
  publish,
  snapshotDifference,
  tempStateDir,
  type NamedSnapshots,
} from '../ingest/fixtures.ts';

const codec = SchemaCodec.load();
const DAY = 86_400_000;

/** A shipped link dataset (data/enron, data/uci); fails loudly if the repository copy is missing. */
function loadLink(name: 'enron' | 'uci'): LinkDataset {
  const dataset = loadDataset(name);
  assert.equal(dataset.kind, 'link', `${name} is a link dataset`);
  return dataset as LinkDataset;
}

/** Every `every`-th raw event (time order), always keeping the first and the last (they fix the rule). */
function sliceOf(events: readonly TimedEvent[], every: number, offset: number): TimedEvent[] {
  return events.filter((_, i) => i === 0 || i === events.length - 1 || i % every === offset);
}

/** Offline expectation: the dataset loader's slicing of the same events, as step -> named triples. */
function offlineSnapshots(
  events: readonly TimedEvent[],
  params: { startAfterDays: number; stepDays: number; foldBeforeEndDays: number },
  relationName: string,
): { named: NamedSnapshots; dataset: LinkDataset; snapshots: Snapshot[] } {
  const rule = dysatSlicing(events[0].timeMs, events[events.length - 1].timeMs, params);
  const dataset = sliceEvents(events, rule, { name: 'slice', directory: '.', relationName });
  const snapshots = linkSnapshots(dataset);
  const named: NamedSnapshots = new Map();
  for (const s of snapshots) named.set(s.step, namedSnapshot(s, dataset.nodeNames, [relationName]));
  return { named, dataset, snapshots };
}

function asFactEvents(events: readonly TimedEvent[], relation: string): FactEvent[] {
  return events.map((e) => ({
    subject: e.source,
    relation,
    object: e.target,
    timestamp: new Date(e.timeMs).toISOString(),
  }));
}

async function ingestAll(input: {
  facts: FactEvent[];
  clock: StepClockSpec;
  partitions: number;
  label: string;
}): Promise<{
  persisted: NamedSnapshots;
  delivered: NamedSnapshots;
  stats: ReturnType<IngestPipeline['stats']>;
}> {
  const kafka = createKafkaClient({ brokers: await testBrokers() });
  const prefix = uniqueTopicPrefix(input.label);
  await createFactTopics(kafka, prefix, input.partitions);
  await publish(kafka, codec, topicNames(prefix).facts, input.facts, 'json');
  const stateDir = tempStateDir(input.label);
  try {
    const pipeline = new IngestPipeline({
      kafka,
      topicPrefix: prefix,
      stateDir,
      codec,
      clock: input.clock,
      metrics: createMetrics(),
      idleTimeoutMs: 5000,
      sessionTimeoutMs: 6000,
      partitions: input.partitions,
    });
    const deliveredSnapshots: Snapshot[] = [];
    pipeline.onSnapshot((s) => {
      deliveredSnapshots.push(s);
    });
    await pipeline.start();
    let stats;
    let delivered: NamedSnapshots;
    try {
      await pipeline.waitUntilCaughtUp({ timeoutMs: 120_000 });
      await pipeline.flush();
      assert.equal(pipeline.error, undefined, 'the pipeline is alive');
      stats = pipeline.stats();
      const vocabulary = pipeline.ingestState.vocabulary;
      delivered = new Map(
        deliveredSnapshots.map((s) => [
          s.step,
          namedSnapshot(s, vocabulary.entityNames, vocabulary.relationNames),
        ]),
      );
      // steps reach the sinks once each, in order
      assert.deepEqual(
        deliveredSnapshots.map((s) => s.step),
        [...delivered.keys()].sort((a, b) => a - b),
      );
    } finally {
      await pipeline.stop();
    }
    return { persisted: persistedSnapshots(stateDir), delivered, stats };
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test(
  'Enron slice as ISO-timestamped events through Kafka (3 partitions): window with origin / 60d / fold-after gives the offline 16 snapshots',
  { timeout: 180_000 },
  async () => {
    const enron = loadLink('enron');
    // every 3rd e-mail (~7,600 of 22,784), first and last kept so the DySAT rule is the full data's
    const events = sliceOf(enron.events, 3, 1);
    const expected = offlineSnapshots(events, enronSlicingParams, enron.relationName);
    assert.deepEqual(expected.dataset.slicing, enron.slicing, 'the slice keeps the full data rule');
    assert.equal(expected.snapshots.length, 16);
    const folded = events.filter((e) => e.timeMs > Date.parse(enron.slicing.foldAfter!)).length;
    const beforeOrigin = events.filter((e) => e.timeMs < Date.parse(enron.slicing.origin)).length;
    assert.ok(
      folded > 100 && beforeOrigin > 10,
      `the slice exercises the fold (${folded}) and the origin (${beforeOrigin})`,
    );

    // the window's own DySAT helper must state the same rule as the dataset loader
    const clock = dysatClockSpec({
      firstMs: events[0].timeMs,
      lastMs: events[events.length - 1].timeMs,
      stepDays: enronSlicingParams.stepDays,
      startOffsetDays: enronSlicingParams.startAfterDays,
      foldBeforeEndDays: enronSlicingParams.foldBeforeEndDays,
    });
    assert.deepEqual(
      { origin: clock.origin, granularity: clock.granularity, foldAfter: clock.foldAfter },
      enron.slicing,
    );

    const { persisted, delivered, stats } = await ingestAll({
      facts: asFactEvents(events, enron.relationName),
      clock,
      partitions: 3,
      label: 'homog-enron',
    });
    assert.equal(snapshotDifference(expected.named, persisted), null);
    assert.equal(snapshotDifference(expected.named, delivered), null);
    assert.equal(persisted.size, 16);
    assert.equal(
      stats.factsSkipped,
      beforeOrigin,
      'e-mails before origin = first + 200 d are skipped',
    );
    assert.equal(stats.late + stats.rejected, 0);
    assert.equal(stats.factsAdded + stats.factsDuplicate, events.length - beforeOrigin);
    assert.equal(stats.numEntities, expected.dataset.numNodes, 'same node set as offline');
    // the fold: the last step holds every e-mail after last - 200 d
    const lastStep = persisted.get(15)!;
    for (const e of events.filter((x) => x.timeMs > Date.parse(enron.slicing.foldAfter!)))
      assert.ok(lastStep.has(`${e.source}\t${enron.relationName}\t${e.target}`));
  },
);

test(
  'Enron slice with a relative origin (first+200d) on one partition: the stream resolves the origin itself, same snapshots',
  { timeout: 180_000 },
  async () => {
    const enron = loadLink('enron');
    const events = sliceOf(enron.events, 5, 2);
    const expected = offlineSnapshots(events, enronSlicingParams, enron.relationName);
    const { persisted, stats } = await ingestAll({
      facts: asFactEvents(events, enron.relationName),
      // one partition: the first event the clock sees is the first e-mail
      clock: {
        granularity: '60d',
        origin: 'first+200d',
        foldAfter: new Date(events[events.length - 1].timeMs - 200 * DAY).toISOString(),
        beforeOrigin: 'skip',
      },
      partitions: 1,
      label: 'homog-enron-rel',
    });
    assert.equal(snapshotDifference(expected.named, persisted), null);
    assert.equal(persisted.size, expected.snapshots.length);
    assert.equal(persisted.size, 16);
    assert.equal(stats.late + stats.rejected, 0);
  },
);

test(
  'UCI slice (epoch-second times sent as ISO) through Kafka: origin first + 5 d, 10d steps, tail after last - 60 d folded: the offline 13 snapshots',
  { timeout: 180_000 },
  async () => {
    const uci = loadLink('uci');
    const events = sliceOf(uci.events, 4, 3);
    const expected = offlineSnapshots(events, uciSlicingParams, uci.relationName);
    assert.deepEqual(expected.dataset.slicing, uci.slicing);
    assert.equal(expected.snapshots.length, 13);
    const { persisted, stats } = await ingestAll({
      facts: asFactEvents(events, uci.relationName),
      clock: { ...uci.slicing, beforeOrigin: 'skip' },
      partitions: 3,
      label: 'homog-uci',
    });
    assert.equal(snapshotDifference(expected.named, persisted), null);
    assert.equal(persisted.size, 13);
    assert.equal(stats.numEntities, expected.dataset.numNodes);
    assert.equal(stats.late + stats.rejected, 0);
  },
);
