// The ingest hot path (PlainFactReader + AsciiNameCache in IngestState) against the general path
// (SchemaCodec.decodeValue + validateFact + vocabulary): same facts, same ids, same rejections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { IngestState } from '../../src/ingest/ingest-state.ts';
import { NOT_UTF8, Utf8NameCache } from '../../src/ingest/name-cache.ts';
import { validateFact } from '../../src/ingest/validate.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { emptyPlainFactFields, PlainFactReader } from '../../src/schemas/fact-reader.ts';
import { mulberry32, tempStateDir, yagoTrain } from './fixtures.ts';

const codec = SchemaCodec.load();
const avro = (record: Record<string, unknown>) =>
  codec.encodeValue('Fact', { timestamp: null, step: null, ...record }, 'avro');

/** Values the reader must leave to the general path, each with why. */
function generalPathValues(): Array<[string, Buffer]> {
  const plain = avro({ subject: 'a', relation: 'r', object: 'b', step: 3 });
  const withTrailing = Buffer.concat([plain, Buffer.from([0])]);
  const oldFingerprint = Buffer.from(plain);
  oldFingerprint[5] ^= 0xff;
  return [
    [
      'timestamp instead of step',
      avro({ subject: 'a', relation: 'r', object: 'b', timestamp: '2020-01-01' }),
    ],
    [
      'step and timestamp',
      avro({ subject: 'a', relation: 'r', object: 'b', step: 1, timestamp: 5 }),
    ],
    [
      'name without an ASCII letter',
      avro({ subject: '東京', relation: 'r', object: 'b', step: 1 }),
    ],
    [
      'name of Unicode spaces',
      avro({ subject: '\u00a0\u3000', relation: 'r', object: 'b', step: 1 }),
    ],
    ['blank name', avro({ subject: '   ', relation: 'r', object: 'b', step: 1 })],
    ['empty name', avro({ subject: '', relation: 'r', object: 'b', step: 1 })],
    ['tabs only', avro({ subject: '\t\t', relation: 'r', object: 'b', step: 1 })],
    ['negative step', avro({ subject: 'a', relation: 'r', object: 'b', step: -4 })],
    ['step >= 2^48', avro({ subject: 'a', relation: 'r', object: 'b', step: 2 ** 50 })],
    ['trailing byte', withTrailing],
    ['truncated', plain.subarray(0, plain.length - 2)],
    ['other fingerprint', oldFingerprint],
    [
      'JSON',
      codec.encodeValue(
        'Fact',
        { subject: 'a', relation: 'r', object: 'b', step: 1, timestamp: null },
        'json',
      ),
    ],
  ];
}

test('plain fact reader: reads exactly what the codec decodes, and leaves every other shape to it', () => {
  const reader = new PlainFactReader(codec.fingerprint('Fact'));
  const fields = emptyPlainFactFields();
  const random = mulberry32(7);
  const facts = yagoTrain().slice(0, 5000);
  let read = 0;
  for (const fact of facts) {
    // Spaces, tabs and non-ASCII around a visible ASCII byte are plain; steps up to 2^48 - 1.
    const step = random() < 0.5 ? fact.step! : Math.floor(random() * 2 ** 48);
    const subject = random() < 0.1 ? ` ${fact.subject}\tZürich ` : fact.subject;
    const value = avro({ subject, relation: fact.relation, object: fact.object, step });
    assert.equal(reader.read(value, fields), true, `plain: ${subject} ${step}`);
    read += 1;
    const decoded = validateFact(codec.decodeValue(value, { expect: 'Fact' }).value);
    assert.equal(value.toString('utf8', fields.subjectStart, fields.subjectEnd), decoded.subject);
    assert.equal(
      value.toString('utf8', fields.relationStart, fields.relationEnd),
      decoded.relation,
    );
    assert.equal(value.toString('utf8', fields.objectStart, fields.objectEnd), decoded.object);
    assert.equal(fields.step, decoded.step);
  }
  assert.equal(read, facts.length);
  for (const [why, value] of generalPathValues())
    assert.equal(reader.read(value, fields), false, why);
});

test('utf-8 name cache: the vocabulary ids through growth; invalid UTF-8 is left to the general path', () => {
  const names: string[] = [];
  const ids = new Map<string, number>();
  const assign = (name: string) => {
    let id = ids.get(name);
    if (id === undefined) ids.set(name, (id = names.push(name) - 1));
    return id;
  };
  const cache = new Utf8NameCache(assign, 8);
  const random = mulberry32(3);
  assign('known-before'); // a name the vocabulary had before the cache saw it
  for (let i = 0; i < 30_000; i++) {
    const name =
      i === 0
        ? 'known-before'
        : `n${Math.floor(random() * 5000)}_${'ü東'.repeat(i % 3)}${'x'.repeat(i % 7)}`;
    const bytes = Buffer.from(`##${name}##`, 'utf8');
    assert.equal(cache.idOf(bytes, 2, bytes.length - 2), assign(name));
  }
  assert.equal(ids.get('known-before'), 0);
  const before = names.length;
  const invalid = Buffer.from([0x61, 0xc3, 0x28, 0x62]); // 'a', a broken 2-byte sequence, 'b'
  assert.equal(cache.idOf(invalid, 0, invalid.length), NOT_UTF8);
  assert.equal(names.length, before, 'nothing assigned for invalid UTF-8');
});

test('ingest state: plain and general values of the same facts get the same ids and outcomes', () => {
  const dirs = [tempStateDir('plain-a'), tempStateDir('plain-b')];
  try {
    // State A sees every fact as plain Avro or plain JSON (hot paths), state B as JSON with a leading
    // space (general path: the hot path wants '{' first), same order.
    const [a, b] = dirs.map(
      (stateDir) => new IngestState({ stateDir, codec, topic: 'plain.facts' }),
    );
    const facts = yagoTrain().slice(0, 20_000);
    for (const fact of facts) {
      const record = {
        subject: fact.subject,
        relation: fact.relation,
        object: fact.object,
        step: fact.step,
      };
      const json = codec.encodeValue('Fact', { ...record, timestamp: null }, 'json');
      const outA = a.ingest(fact.step! % 2 === 0 ? avro(record) : json, 0);
      const outB = b.ingest(Buffer.concat([Buffer.from(' '), json]), 0);
      assert.deepEqual(outA, outB);
    }
    a.window.flush();
    b.window.flush();
    assert.ok(a.pendingSnapshots().length > 10, 'steps closed');
    assert.deepEqual(a.pendingSnapshots(), b.pendingSnapshots());
    assert.deepEqual(a.vocabulary.entityNames, b.vocabulary.entityNames);
    assert.deepEqual(a.vocabulary.relationNames, b.vocabulary.relationNames);
    const invalidUtf8 = avro({ subject: 'ab', relation: 'r', object: 'b', step: 9 });
    invalidUtf8[11] = 0xc3; // subject 'ab' -> 0xc3 'b': a broken UTF-8 sequence, decoded as U+FFFD 'b'
    const fields = emptyPlainFactFields();
    assert.equal(new PlainFactReader(codec.fingerprint('Fact')).read(invalidUtf8, fields), true);
    const json = (text: string): [string, Buffer] => [`JSON ${text}`, Buffer.from(text)];
    const jsonCases = [
      json('{"subject":"a","relation":"r","object":"b","step":1.5}'),
      json('{"subject":"a","relation":"r","object":"b","step":-1}'),
      json('{"subject":"a","relation":"r","object":"b","step":"7"}'),
      json('{"subject":"a","relation":"r","object":"b","step":7,"extra":1}'),
      json('{"subject":"a","relation":"r","object":"b","timestamp":"2020-01-01"}'),
      json('{"subject":" ","relation":"r","object":"b","step":7}'),
      json('{"subject":"a","relation":"r","step":7}'),
      json('{"subject":"a","relation":"r","object":"b","step":7,"timestamp":null}'),
      json('{"subject":"a","relation":"r","object":"b","step":7'),
    ];
    for (const [why, value] of [
      ...generalPathValues(),
      ...jsonCases,
      ['invalid UTF-8', invalidUtf8] as [string, Buffer],
    ]) {
      const outA = a.ingest(value, 1);
      const outB = b.ingest(value, 1);
      assert.deepEqual(outA, outB, why);
    }
    a.close();
    b.close();
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
});
