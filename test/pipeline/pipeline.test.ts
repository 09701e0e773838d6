// Pure parts of src/pipeline: snapshot-topic records and vocabulary deltas, replay resume arithmetic, the quality
// table, model versions, and the serving history term against the recurrency reference model's own scores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FactEvent, Snapshot } from '../../src/core/types.ts';
import { RecurrencyForecaster, uniformRecurrencyParams } from '../../src/baselines/recurrency.ts';
import { keyPartitioner } from '../../src/kafka/publisher.ts';
import { qualityTable } from '../../src/pipeline/evaluation-log.ts';
import { TermInputs } from '../../src/model/term-inputs.ts';
import { decodeTermSpec, encodeTermSpec, type TermSpec } from '../../src/model/terms.ts';
import { remainingFacts, selectReplay } from '../../src/pipeline/replay.ts';
import {
  FollowedVocabulary,
  decodeSnapshotRecord,
  encodeSnapshotRecord,
  snapshotRecordOf,
} from '../../src/kafka/snapshot-topic.ts';
import { modelVersion } from '../../src/train/stage.ts';
import { mulberry32 } from '../../src/core/random.ts';
import type { StepMetricsRecord } from '../../src/serve/live-eval.ts';

const snapshot = (
  step: number,
  triples: number[],
  numEntities: number,
  numRelations = 2,
): Snapshot => ({ step, triples: Int32Array.from(triples), numEntities, numRelations });

test('snapshot records round-trip and rebuild the vocabulary from deltas; repeated records agree', () => {
  const vocabulary = { entityNames: ['a', 'b', 'c', 'd'], relationNames: ['r0', 'r1'] };
  const first = snapshotRecordOf(snapshot(0, [0, 0, 1], 2, 1), vocabulary, {
    numEntities: 0,
    numRelations: 0,
  });
  const second = snapshotRecordOf(snapshot(1, [2, 1, 3, 0, 0, 1], 4, 2), vocabulary, {
    numEntities: 2,
    numRelations: 1,
  });
  assert.deepEqual(second.newEntities, ['c', 'd']);
  const followed = new FollowedVocabulary();
  for (const record of [first, second, second])
    followed.apply(decodeSnapshotRecord(encodeSnapshotRecord(record)));
  assert.deepEqual(followed.entityNames, ['a', 'b', 'c', 'd']);
  assert.deepEqual(followed.relationNames, ['r0', 'r1']);
  assert.deepEqual(
    [...decodeSnapshotRecord(encodeSnapshotRecord(second)).snapshot.triples],
    [2, 1, 3, 0, 0, 1],
  );
  const conflicting = snapshotRecordOf(
    snapshot(2, [], 4, 2),
    { entityNames: ['a', 'b', 'X', 'd'], relationNames: ['r0', 'r1'] },
    { numEntities: 2, numRelations: 2 },
  );
  assert.throws(() => followed.apply(conflicting), /mixes two ingest runs/);
  const gap = snapshotRecordOf(
    snapshot(3, [], 6, 2),
    { entityNames: ['a', 'b', 'c', 'd', 'e', 'f'], relationNames: ['r0', 'r1'] },
    { numEntities: 5, numRelations: 2 },
  );
  assert.throws(() => new FollowedVocabulary().apply(gap), /records are missing/);
});

test('replay: step selection keeps order; a resumed replay skips exactly what each partition already holds', () => {
  const facts: FactEvent[] = [];
  for (let step = 0; step < 5; step++)
    for (let i = 0; i < 40; i++)
      facts.push({ subject: `s${(i * 7 + step) % 23}`, relation: 'r', object: `o${i}`, step });
  const chosen = selectReplay(facts, { fromStep: 1, replaySteps: 3 });
  assert.deepEqual([...new Set(chosen.map((f) => f.step))], [1, 2, 3]);
  const partitionOf = keyPartitioner(3);
  // Pretend the first 100 facts were published, then the process died.
  const published = new Map<number, number>();
  for (const fact of chosen.slice(0, 100))
    published.set(partitionOf(fact.subject), (published.get(partitionOf(fact.subject)) ?? 0) + 1);
  assert.deepEqual(remainingFacts(chosen, 3, published), chosen.slice(100));
  assert.deepEqual(remainingFacts(chosen, 3, new Map()), chosen);
});

test('quality table: count-weighted per direction, "both" is the mean of the directions', () => {
  const record = (
    step: number,
    direction: 'object' | 'subject',
    mrr: number,
    count: number,
  ): StepMetricsRecord => ({
    dataset: 'd',
    step,
    model: 'm',
    filter: 'raw',
    direction,
    mrr,
    hits1: mrr,
    hits3: mrr,
    hits10: mrr,
    count,
    drift: null,
  });
  const table = qualityTable([
    record(1, 'object', 50, 1),
    record(2, 'object', 80, 3),
    record(1, 'subject', 20, 2),
    record(2, 'subject', 40, 2),
  ]);
  const row = (direction: string) =>
    table.rows.find((r) => r.filter === 'raw' && r.direction === direction);
  assert.equal(row('object')?.mrr, (50 + 240) / 4);
  assert.equal(row('subject')?.mrr, 30);
  assert.equal(row('both')?.mrr, ((50 + 240) / 4 + 30) / 2);
  assert.equal(row('both')?.queries, 8);
  assert.equal(table.steps, 2);
});

test('model versions grow with the step and with the run start', () => {
  assert.ok(modelVersion(100, 6) > modelVersion(100, 5));
  assert.ok(modelVersion(101, 0) > modelVersion(100, 900_000));
  assert.ok(Number.isSafeInteger(modelVersion(Math.floor(Date.now() / 1000), 10_000)));
  assert.throws(() => modelVersion(1, 5_000_000), /versionable range/);
});

test('the recurrency term spec equals the recurrency model scores (strict + alpha * relaxed)', async () => {
  const random = mulberry32(3);
  const N = 30;
  const R = 3;
  const params = { decay: 0.6, alpha: 0.3 };
  const reference = new RecurrencyForecaster(uniformRecurrencyParams(params, R), R);
  const spec = decodeTermSpec(
    encodeTermSpec({
      kind: 'recurrency',
      numRelations: R,
      decay: params.decay,
      strictWeight: 1,
      relaxedWeight: params.alpha,
    }),
  );
  const inputs = new TermInputs();
  for (let step = 0; step < 6; step++) {
    const triples: number[] = [];
    for (let i = 0; i < 25; i++)
      triples.push(Math.floor(random() * 10), Math.floor(random() * R), Math.floor(random() * N));
    // sets sorted by (s, r, o), no duplicates
    const keys = [
      ...new Set(
        Array.from(
          { length: 25 },
          (_, i) => `${triples[3 * i]},${triples[3 * i + 1]},${triples[3 * i + 2]}`,
        ),
      ),
    ]
      .map((k) => k.split(',').map(Number))
      .sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    const s = snapshot(step, keys.flat(), N, R);
    await reference.observe(s);
    inputs.add(s);
  }
  const history = inputs.stateAt(spec, 5)!;
  for (const direction of ['object', 'subject'] as const) {
    for (let anchor = 0; anchor < 10; anchor++) {
      for (let relation = 0; relation < R; relation++) {
        const expected = await reference.score(
          6,
          direction,
          Int32Array.of(anchor),
          Int32Array.of(relation),
          N,
        );
        const dense = new Float32Array(N);
        const terms = history.terms(direction, anchor, relation);
        if (terms) terms.entities.forEach((e, i) => (dense[e] += terms.values[i]));
        for (let e = 0; e < N; e++)
          assert.ok(
            Math.abs(dense[e] - expected[e]) < 1e-5,
            `${direction} ${anchor} ${relation} ${e}: ${dense[e]} vs ${expected[e]}`,
          );
      }
    }
  }
  // A decay change rebuilds the counts from the kept snapshots; a spec without a term has no state.
  const undecayed: TermSpec = {
    kind: 'recurrency',
    numRelations: R,
    decay: 1,
    strictWeight: 1,
    relaxedWeight: 0,
  };
  const rebuilt = inputs.stateAt(undecayed, 5)!;
  assert.ok(
    rebuilt.terms('object', 0, 0) === undefined ||
      rebuilt.terms('object', 0, 0)!.values.every((v) => v >= 1),
  );
  assert.equal(inputs.stateAt({ kind: 'none' }, 5), undefined);
});
