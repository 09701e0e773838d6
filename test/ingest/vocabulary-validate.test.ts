import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PersistentVocabulary } from '../../src/ingest/vocabulary.ts';
import {
  checkMessageSize,
  reasonOf,
  rejectionReasons,
  validateFact,
} from '../../src/ingest/validate.ts';
import { InvalidInputError } from '../../src/core/errors.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'tkg-vocab-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('vocabulary: dense ids in order of first appearance, growing while running, durable after sync', () => {
  withDir((dir) => {
    const vocabulary = new PersistentVocabulary(dir);
    assert.equal(vocabulary.entityId('alice'), 0);
    assert.equal(vocabulary.entityId('bob'), 1);
    assert.equal(vocabulary.entityId('alice'), 0);
    assert.equal(vocabulary.relationId('knows'), 0);
    vocabulary.sync();
    assert.equal(vocabulary.entityId('名前 with "quotes"\nand newline'), 2, 'any string is a name');
    vocabulary.sync();
    assert.equal(vocabulary.entityId('carol'), 3); // not synced
    vocabulary.close();
    const reopened = new PersistentVocabulary(dir);
    assert.deepEqual(reopened.sizes(), { numEntities: 3, numRelations: 1 });
    assert.equal(reopened.entityName(2), '名前 with "quotes"\nand newline');
    assert.equal(reopened.entityId('dave'), 3, 'grows from where it was');
    assert.equal(reopened.lookupEntity('carol'), undefined);
    reopened.close();
  });
});

test('vocabulary: truncateTo a checkpoint drops later names (memory and disk); a torn last line is ignored', () => {
  withDir((dir) => {
    const vocabulary = new PersistentVocabulary(dir);
    for (let i = 0; i < 100; i++) vocabulary.entityId(`e${i}`);
    vocabulary.relationId('r0');
    vocabulary.sync();
    const checkpointSizes = vocabulary.sizes();
    for (let i = 100; i < 150; i++) vocabulary.entityId(`e${i}`);
    vocabulary.relationId('r1');
    vocabulary.sync(); // written after the checkpoint, then the process "crashes"
    vocabulary.close();
    appendFileSync(join(dir, 'entities.log'), '"torn'); // a write cut short
    const restored = new PersistentVocabulary(dir);
    assert.equal(restored.numEntities, 150);
    restored.truncateTo(checkpointSizes);
    assert.deepEqual(restored.sizes(), { numEntities: 100, numRelations: 1 });
    assert.equal(
      restored.entityId('e120'),
      100,
      're-delivered names get fresh ids after the checkpoint',
    );
    restored.sync();
    restored.close();
    const lines = readFileSync(join(dir, 'entities.log'), 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 101);
    assert.equal(lines[100], '"e120"');
    const again = new PersistentVocabulary(dir);
    assert.throws(
      () => again.truncateTo({ numEntities: 500, numRelations: 1 }),
      /checkpoint expects 500/,
    );
    again.close();
  });
});

test('vocabulary: a full vocabulary rejects new names with a typed reason', () => {
  withDir((dir) => {
    const vocabulary = new PersistentVocabulary(dir, { maxEntities: 2 });
    vocabulary.entityId('a');
    vocabulary.entityId('b');
    assert.throws(
      () => vocabulary.entityId('c'),
      (e: InvalidInputError) => e.reason === 'vocabulary_full',
    );
    assert.equal(vocabulary.entityId('a'), 0);
    vocabulary.close();
  });
});

test('validateFact: accepts steps and timestamps; step wins when both are present', () => {
  assert.deepEqual(validateFact({ subject: 'a', relation: 'r', object: 'b', step: 3 }), {
    subject: 'a',
    relation: 'r',
    object: 'b',
    step: 3,
  });
  assert.deepEqual(
    validateFact({ subject: 'a', relation: 'r', object: 'b', step: null, timestamp: '2001-01-01' }),
    {
      subject: 'a',
      relation: 'r',
      object: 'b',
      timestampMs: Date.UTC(2001, 0, 1),
    },
  );
  assert.equal(
    validateFact({ subject: 'a', relation: 'r', object: 'b', timestamp: 5000 }).timestampMs,
    5000,
  );
  assert.equal(
    validateFact({ subject: 'a', relation: 'r', object: 'b', step: 7, timestamp: 'garbage' }).step,
    7,
  );
});

test('validateFact: every bad input is an InvalidInputError with a bounded reason and the field', () => {
  const base = { subject: 'a', relation: 'r', object: 'b', step: 1 };
  const cases: Array<[unknown, string, string]> = [
    [null, 'value', 'wrong_type'],
    [[1, 2], 'value', 'wrong_type'],
    ['text', 'value', 'wrong_type'],
    [{ relation: 'r', object: 'b', step: 1 }, 'subject', 'missing_field'],
    [{ ...base, subject: '' }, 'subject', 'empty_name'],
    [{ ...base, object: '   ' }, 'object', 'empty_name'],
    [{ ...base, relation: 42 }, 'relation', 'wrong_type'],
    [{ ...base, subject: 'x'.repeat(1025) }, 'subject', 'name_too_long'],
    [{ ...base, subject: 'é'.repeat(600) }, 'subject', 'name_too_long'],
    [{ ...base, step: -1 }, 'step', 'invalid_step'],
    [{ ...base, step: Number.NaN }, 'step', 'invalid_step'],
    [{ ...base, step: Infinity }, 'step', 'invalid_step'],
    [{ ...base, step: 1.5 }, 'step', 'invalid_step'],
    [{ ...base, step: 2 ** 60 }, 'step', 'invalid_step'],
    [{ ...base, step: '3' }, 'step', 'wrong_type'],
    [{ subject: 'a', relation: 'r', object: 'b' }, 'step', 'missing_field'],
    [
      { subject: 'a', relation: 'r', object: 'b', timestamp: 'next tuesday' },
      'timestamp',
      'invalid_timestamp',
    ],
    [
      { subject: 'a', relation: 'r', object: 'b', timestamp: Number.NaN },
      'timestamp',
      'invalid_timestamp',
    ],
    [{ subject: 'a', relation: 'r', object: 'b', timestamp: { at: 1 } }, 'timestamp', 'wrong_type'],
  ];
  for (const [input, field, reason] of cases) {
    assert.throws(
      () => validateFact(input),
      (e: unknown) =>
        e instanceof InvalidInputError &&
        e.field === field &&
        e.reason === reason &&
        (rejectionReasons as readonly string[]).includes(e.reason),
      JSON.stringify(input)?.slice(0, 80),
    );
  }
  assert.throws(
    () => checkMessageSize(20_000),
    (e: InvalidInputError) => e.reason === 'oversized',
  );
  checkMessageSize(100);
  assert.equal(reasonOf(new Error('boom')), 'internal_error');
});

test('codec + validateFact: JSON and Avro facts decode to the same valid fact', () => {
  const codec = SchemaCodec.load();
  const fact = { subject: 's', relation: 'r', object: 'o', step: 4, timestamp: null };
  for (const format of ['json', 'avro'] as const) {
    const bytes = codec.encodeValue('Fact', fact, format);
    const decoded = codec.decodeValue(bytes, { expect: 'Fact' });
    assert.deepEqual(validateFact(decoded.value), {
      subject: 's',
      relation: 'r',
      object: 'o',
      step: 4,
    });
  }
});
