// Shared fixtures of the ingest integration tests: YAGO facts, publishing, name-level snapshot comparison.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka, Message } from 'kafkajs';
import type { FactEvent, Snapshot } from '../../src/core/types.ts';
import { loadTkgDataset } from '../../src/datasets/index.ts';
import { tkgFactEvents } from '../../src/datasets/renet.ts';
import { createProducer } from '../../src/kafka/client.ts';
import { publishFacts } from '../../src/kafka/publisher.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import type { SchemaCodec } from '../../src/schemas/codec.ts';
import { SnapshotStore } from '../../src/window/snapshot-store.ts';
import { PersistentVocabulary } from '../../src/ingest/vocabulary.ts';
import { mulberry32 } from '../../src/core/random.ts';

let yagoTrainCache: FactEvent[] | undefined;

/** YAGO's train split (161,540 facts, steps 0..177) as named FactEvents, in file order. */
export function yagoTrain(): FactEvent[] {
  yagoTrainCache ??= tkgFactEvents(loadTkgDataset('yago'), 'train');
  return yagoTrainCache;
}

/** step -> set of "s\tr\to" name triples. */
export type NamedSnapshots = Map<number, Set<string>>;

export function expectedSnapshots(facts: readonly FactEvent[]): NamedSnapshots {
  const out: NamedSnapshots = new Map();
  for (const f of facts) {
    const step = f.step as number;
    let set = out.get(step);
    if (!set) out.set(step, (set = new Set()));
    set.add(`${f.subject}\t${f.relation}\t${f.object}`);
  }
  return out;
}

export function namedSnapshot(
  snapshot: Snapshot,
  entityNames: readonly string[],
  relationNames: readonly string[],
): Set<string> {
  const set = new Set<string>();
  const t = snapshot.triples;
  for (let i = 0; i < t.length; i += 3)
    set.add(`${entityNames[t[i]]}\t${relationNames[t[i + 1]]}\t${entityNames[t[i + 2]]}`);
  return set;
}

/** The closed snapshots persisted in a state directory, by names (the vocabulary log of that directory). */
export function persistedSnapshots(stateDir: string): NamedSnapshots {
  const vocabulary = new PersistentVocabulary(join(stateDir, 'vocabulary'));
  const store = new SnapshotStore(join(stateDir, 'snapshots'));
  const out: NamedSnapshots = new Map();
  for (const snapshot of store.readFrom())
    out.set(
      snapshot.step,
      namedSnapshot(snapshot, vocabulary.entityNames, vocabulary.relationNames),
    );
  vocabulary.close();
  return out;
}

/** First difference between two named snapshot maps, or null if equal. */
export function snapshotDifference(
  expected: NamedSnapshots,
  actual: NamedSnapshots,
): string | null {
  const steps = [...new Set([...expected.keys(), ...actual.keys()])].sort((a, b) => a - b);
  for (const step of steps) {
    const e = expected.get(step);
    const a = actual.get(step);
    if (!e) return `step ${step}: unexpected snapshot with ${a?.size} facts`;
    if (!a) return `step ${step}: missing (expected ${e.size} facts)`;
    if (e.size !== a.size) return `step ${step}: ${a.size} facts, expected ${e.size}`;
    for (const triple of e)
      if (!a.has(triple)) return `step ${step}: missing ${JSON.stringify(triple)}`;
  }
  return null;
}

export async function createFactTopics(
  kafka: Kafka,
  prefix: string,
  partitions = 3,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, { prefix, partitions, roles: ['facts', 'factsDlq', 'factsLate'] });
  } finally {
    await admin.disconnect();
  }
}

export async function publish(
  kafka: Kafka,
  codec: SchemaCodec,
  topic: string,
  facts: readonly FactEvent[],
  format: 'json' | 'avro' = 'avro',
): Promise<void> {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    // inFlight 1: concurrent sends can reorder records within a partition (measured with inFlight 8)
    await publishFacts(producer, codec, facts, { topic, format, inFlight: 1 });
  } finally {
    await producer.disconnect();
  }
}

/** Send raw messages in order (batches of `batchSize`, each acknowledged before the next). */
export async function sendRaw(
  kafka: Kafka,
  topic: string,
  messages: Message[],
  batchSize = 1000,
): Promise<void> {
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += batchSize) {
      await producer.send({ topic, acks: -1, messages: messages.slice(i, i + batchSize) });
    }
  } finally {
    await producer.disconnect();
  }
}

export function tempStateDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `tkg-${label}-`));
}

export { mulberry32 };
