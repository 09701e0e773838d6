// IngestState without Kafka: decode/validate/window, and the recovery contract (checkpoint offsets are the truth).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { IngestState } from '../../src/ingest/ingest-state.ts';
import { ConfigError } from '../../src/core/errors.ts';
import type { FactEvent } from '../../src/core/types.ts';
import {
  expectedSnapshots,
  persistedSnapshots,
  mulberry32,
  snapshotDifference,
  tempStateDir,
} from './fixtures.ts';

const codec = SchemaCodec.load();
const topic = 'unit.facts';

/** A seeded stream of facts over 3 partitions, steps in order per partition. */
function stream(
  n: number,
  seed: number,
): Array<{ partition: number; value: Buffer; fact: FactEvent }> {
  const random = mulberry32(seed);
  const out: Array<{ partition: number; value: Buffer; fact: FactEvent }> = [];
  for (let i = 0; i < n; i++) {
    const fact: FactEvent = {
      subject: `e${Math.floor(random() * 300)}`,
      relation: `r${Math.floor(random() * 4)}`,
      object: `e${Math.floor(random() * 300)}`,
      step: Math.floor(i / 500),
    };
    const format = random() < 0.5 ? 'avro' : 'json';
    out.push({
      partition: Math.floor(random() * 3),
      value: codec.encodeValue('Fact', { ...fact, timestamp: null }, format),
      fact,
    });
  }
  return out;
}

function feed(
  state: IngestState,
  messages: ReturnType<typeof stream>,
  from: Map<number, number>,
): void {
  // offsets are per partition: the k-th message of partition p has offset k
  const seen = new Map<number, number>();
  for (const { partition, value } of messages) {
    const offset = seen.get(partition) ?? 0;
    seen.set(partition, offset + 1);
    if (offset < (from.get(partition) ?? 0)) continue; // re-delivery below the checkpoint is skipped by the consumer
    state.ingest(value, partition);
    state.setNextOffset(partition, offset + 1);
  }
}

test('ingest state: outcomes for valid, duplicate, late and rejected values', () => {
  const dir = tempStateDir('state-outcomes');
  try {
    const state = new IngestState({ stateDir: dir, codec, topic });
    const fact = (s: string, step: number) =>
      codec.encodeValue(
        'Fact',
        { subject: s, relation: 'r', object: 'o', step, timestamp: null },
        'avro',
      );
    assert.equal(state.ingest(fact('a', 0), 0).kind, 'added');
    assert.equal(state.ingest(fact('a', 0), 0).kind, 'duplicate');
    assert.equal(state.ingest(fact('b', 1), 0).kind, 'added'); // closes step 0
    const late = state.ingest(fact('c', 0), 0);
    assert.equal(late.kind, 'late');
    assert.equal(late.kind === 'late' && late.info.nextStepToClose, 1);
    const rejected = state.ingest(
      Buffer.from('{"subject": 5, "relation": "r", "object": "o", "step": 1}'),
      0,
    );
    assert.deepEqual(rejected.kind === 'rejected' && [rejected.reason, rejected.field], [
      'wrong_type',
      'subject',
    ]);
    const before = state.ingest(
      Buffer.from(
        JSON.stringify({ subject: 'a', relation: 'r', object: 'o', timestamp: '2001-01-01' }),
      ),
      0,
    );
    assert.equal(before.kind === 'rejected' && before.reason, 'unmapped_timestamp');
    assert.deepEqual(
      state.pendingSnapshots().map((s) => s.step),
      [0],
    );
    state.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ingest state: a crash after snapshot files but before the checkpoint recovers to the uninterrupted result', () => {
  const messages = stream(12_000, 11);
  const expected = expectedSnapshots(messages.map((m) => m.fact));
  const cleanDir = tempStateDir('state-clean');
  const crashDir = tempStateDir('state-crash');
  try {
    const clean = new IngestState({ stateDir: cleanDir, codec, topic });
    feed(clean, messages, new Map());
    clean.window.flush();
    clean.checkpoint();
    clean.close();
    assert.equal(snapshotDifference(expected, persistedSnapshots(cleanDir)), null);

    // Crashing run: checkpoint after the first 5,000 messages, process 4,000 more, persist their closed
    // snapshots and vocabulary (as a checkpoint would), then die before the checkpoint file is replaced.
    const crashing = new IngestState({ stateDir: crashDir, codec, topic });
    feed(crashing, messages.slice(0, 5000), new Map());
    crashing.checkpoint();
    const checkpointOffsets = new Map(crashing.offsetEntries());
    const vocabularyAtCheckpoint = crashing.vocabulary.sizes();
    feed(crashing, messages.slice(5000, 9000), new Map());
    crashing.store.writeMany(crashing.pendingSnapshots());
    crashing.vocabulary.sync();
    const staleSteps = crashing.pendingSnapshots().map((s) => s.step);
    assert.ok(staleSteps.length > 0);
    crashing.close();

    const restarted = new IngestState({ stateDir: crashDir, codec, topic });
    assert.equal(restarted.restoredFromCheckpoint, true);
    assert.deepEqual(new Map(restarted.offsetEntries()), checkpointOffsets);
    assert.deepEqual(restarted.vocabulary.sizes(), vocabularyAtCheckpoint);
    for (const step of staleSteps)
      assert.equal(existsSync(restarted.store.pathOf(step)), false, `stale step ${step} removed`);
    feed(restarted, messages, checkpointOffsets); // the broker re-delivers from the checkpoint's offsets
    restarted.window.flush();
    restarted.checkpoint();
    restarted.close();
    assert.equal(snapshotDifference(expected, persistedSnapshots(crashDir)), null);
  } finally {
    rmSync(cleanDir, { recursive: true, force: true });
    rmSync(crashDir, { recursive: true, force: true });
  }
});

test('ingest state: a checkpoint keeps its step clock; a different clock or topic is refused', () => {
  const dir = tempStateDir('state-clock');
  try {
    const state = new IngestState({
      stateDir: dir,
      codec,
      topic,
      clock: { granularity: '60d', origin: 'first+200d', beforeOrigin: 'skip' },
    });
    const at = (iso: string) =>
      Buffer.from(JSON.stringify({ subject: 'a', relation: 'r', object: 'b', timestamp: iso }));
    assert.equal(state.ingest(at('1999-01-01T00:00:00Z'), 0).kind, 'skipped');
    assert.equal(state.clock.origin(), Date.UTC(1999, 0, 1) + 200 * 86_400_000);
    state.checkpoint();
    state.close();
    const resumed = new IngestState({ stateDir: dir, codec, topic });
    assert.equal(
      resumed.clock.origin(),
      Date.UTC(1999, 0, 1) + 200 * 86_400_000,
      'resolved origin restored',
    );
    const outcome = resumed.ingest(at('1999-10-01T00:00:00Z'), 0);
    assert.equal(outcome.kind === 'added' && outcome.fact.step, 1);
    resumed.close();
    assert.throws(
      () =>
        new IngestState({
          stateDir: dir,
          codec,
          topic,
          clock: { granularity: '10d', origin: 'first' },
        }),
      ConfigError,
    );
    assert.throws(
      () => new IngestState({ stateDir: dir, codec, topic: 'other.facts' }),
      ConfigError,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ingest state: a background checkpoint makes exactly its capture durable while ingest goes on', async () => {
  const messages = stream(12_000, 23);
  const expected = expectedSnapshots(messages.map((m) => m.fact));
  const dir = tempStateDir('state-background');
  try {
    const state = new IngestState({ stateDir: dir, codec, topic });
    feed(state, messages.slice(0, 5000), new Map());
    const job = state.beginCheckpoint();
    assert.ok(job.snapshots.length > 0, 'the capture holds the steps closed so far');
    assert.equal(state.hasChanges(), false, 'the capture leaves the state clean');
    const captured = { offsets: new Map(job.offsets), sizes: state.vocabulary.sizes() };
    // Ingest continues before the write: new names and offsets must not leak into this checkpoint.
    feed(state, messages.slice(0, 9000), new Map(job.offsets));
    assert.ok(state.vocabulary.numEntities >= captured.sizes.numEntities);
    await job.write();
    for (const snapshot of job.snapshots)
      assert.ok(existsSync(state.store.pathOf(snapshot.step)), `step ${snapshot.step} durable`);
    state.close(); // crash here: the later facts were never checkpointed

    const restarted = new IngestState({ stateDir: dir, codec, topic });
    assert.deepEqual(new Map(restarted.offsetEntries()), captured.offsets);
    assert.deepEqual(restarted.vocabulary.sizes(), captured.sizes);
    feed(restarted, messages, captured.offsets);
    restarted.window.flush();
    const last = restarted.beginCheckpoint();
    await last.write();
    restarted.close();
    assert.equal(snapshotDifference(expected, persistedSnapshots(dir)), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
