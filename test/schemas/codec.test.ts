import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { CodecError, SchemaCodec, defaultSchemaDir, schemaNames } from '../../src/schemas/codec.ts';
import {
  crc64Avro,
  parsingCanonicalForm,
  schemaFingerprint64,
} from '../../src/schemas/fingerprint.ts';
import { sampleRecords, toPlain } from './samples.ts';

const codec = SchemaCodec.load();

test('fingerprint: CRC-64-AVRO of canonical forms matches the Avro specification test vectors', () => {
  // Vectors from Apache Avro's share/test/data/schema-tests.txt (Java long values).
  const vectors: [unknown, bigint][] = [
    ['null', 7195948357588979594n],
    ['int', 8247732601305521295n],
    ['string', -8142146995180207161n],
    [['int', 'boolean'], 5392556393470105090n],
    [{ name: 'x.y.foo', type: 'record', fields: [] }, 5916914534497305771n],
    [
      {
        name: 'foo',
        type: 'record',
        fields: [
          { name: 'f1', type: 'boolean' },
          { name: 'f2', type: 'int' },
        ],
      },
      -4860222112080293046n,
    ],
    [{ name: 'x.y.z.foo', type: 'enum', symbols: ['A1', 'A2'] }, -4448647247586288245n],
    [{ type: 'map', values: 'string' }, -8732877298790414990n],
    [
      {
        name: 'PigValue',
        type: 'record',
        fields: [{ name: 'value', type: ['null', 'int', 'long', 'PigValue'] }],
      },
      -1759257747318642341n,
    ],
  ];
  for (const [schema, expected] of vectors) {
    assert.equal(
      BigInt.asIntN(64, schemaFingerprint64(schema)),
      expected,
      parsingCanonicalForm(schema),
    );
  }
  assert.equal(crc64Avro(new Uint8Array()), 0xc15d213aa4d7a795n); // empty input = the initial value
});

test('canonical form: strips docs/defaults, uses full names, and agrees with avsc for every project schema', () => {
  for (const name of schemaNames) {
    const canonical = codec.canonicalForm(name);
    assert.ok(canonical.startsWith(`{"name":"dev.tkgstream.${name}","type":"record"`), canonical);
    assert.ok(
      !canonical.includes('"doc"') &&
        !canonical.includes('"default"') &&
        !/\s/.test(canonical.replace(/"[^"]*"/g, '')),
    );
    assert.equal(JSON.stringify(codec.types[name].schema()), canonical);
  }
});

test('schemas: namespace dev.tkgstream and a doc on every record and field', () => {
  const walk = (schema: unknown, where: string): void => {
    if (Array.isArray(schema)) return schema.forEach((s, i) => walk(s, `${where}[${i}]`));
    if (typeof schema !== 'object' || schema === null) return;
    const s = schema as Record<string, unknown>;
    if (s.type === 'record' || s.type === 'enum')
      assert.ok(typeof s.doc === 'string' && s.doc.length > 0, `${where}: doc`);
    if (s.type === 'record') {
      for (const field of s.fields as Record<string, unknown>[]) {
        assert.ok(
          typeof field.doc === 'string' && field.doc.length > 0,
          `${where}.${String(field.name)}: doc`,
        );
        walk(field.type, `${where}.${String(field.name)}`);
      }
    }
    if (s.items) walk(s.items, `${where}.items`);
    if (s.values) walk(s.values, `${where}.values`);
  };
  for (const name of schemaNames) {
    const schema = JSON.parse(readFileSync(join(defaultSchemaDir, `${name}.avsc`), 'utf8'));
    assert.equal(schema.namespace, 'dev.tkgstream', name);
    walk(schema, name);
  }
});

test('codec: every schema round-trips through Avro single-object, Confluent framing and JSON', () => {
  for (const name of schemaNames) {
    const record = sampleRecords[name];
    const avroBytes = codec.encodeValue(name, record, 'avro');
    assert.deepEqual([...avroBytes.subarray(0, 2)], [0xc3, 0x01]);
    assert.deepEqual(avroBytes.subarray(2, 10), codec.fingerprint(name));
    const fromAvro = codec.decodeValue(avroBytes, { expect: name });
    assert.equal(fromAvro.schema, name);
    assert.equal(fromAvro.format, 'avro');
    assert.deepEqual(toPlain(fromAvro.value), record);

    const fromJson = codec.decodeValue(codec.encodeValue(name, record, 'json'), { expect: name });
    assert.equal(fromJson.format, 'json');
    assert.deepEqual(fromJson.value, record);

    codec.registerConfluentId(100 + schemaNames.indexOf(name), name);
    const confluent = codec.encodeValue(name, record, 'confluent', {
      confluentId: 100 + schemaNames.indexOf(name),
    });
    assert.equal(confluent[0], 0);
    assert.deepEqual(toPlain(codec.decodeValue(confluent).value), record);
  }
});

test('codec: JSON facts take schema defaults for missing optional fields', () => {
  const decoded = codec.decodeValue(
    Buffer.from(' {"subject":"a","relation":"r","object":"b","timestamp":"2020-01-01T00:00:00Z"}'),
    { expect: 'Fact' },
  );
  assert.deepEqual(decoded.value, {
    subject: 'a',
    relation: 'r',
    object: 'b',
    step: null,
    timestamp: '2020-01-01T00:00:00Z',
  });
  const query = codec.decodeValue(Buffer.from('{"replyId":"q1","subject":"a","relation":"r"}'), {
    expect: 'Query',
  });
  assert.equal(query.value.k, 10);
  assert.equal(query.value.filter, 'raw');
});

test('codec: bad input gives a typed error that names the reason and the field', () => {
  const fact = codec.encodeValue('Fact', sampleRecords.Fact);
  const wrongFingerprint = Buffer.from(fact);
  wrongFingerprint[5] ^= 0xff;
  const cases: [Uint8Array | null, string, string?][] = [
    [null, 'empty_message'],
    [Buffer.alloc(0), 'empty_message'],
    [Buffer.from('{"subject":"a",'), 'bad_json'],
    [Buffer.from('hello'), 'unknown_format'],
    [wrongFingerprint, 'unknown_fingerprint'],
    [fact.subarray(0, fact.length - 2), 'bad_avro'],
    [Buffer.concat([fact, Buffer.from([0])]), 'bad_avro'],
    [Buffer.from([0xc3, 0x01, 1, 2]), 'bad_avro'],
    [Buffer.from([0, 0, 0, 0x30, 0x39, 1]), 'unknown_schema_id'],
    [Buffer.from('{"subject":"a","relation":"r"}'), 'missing_field', 'object'],
    [Buffer.from('{"subject":"a","relation":"r","object":7}'), 'wrong_type', 'object'],
    [Buffer.from('{"subject":"a","relation":"r","object":"b","step":1.5}'), 'wrong_type', 'step'],
    [Buffer.from('[1,2]'), 'wrong_type'],
    [codec.encodeValue('Query', sampleRecords.Query), 'schema_mismatch'],
  ];
  for (const [bytes, reason, field] of cases) {
    assert.throws(
      () => codec.decodeValue(bytes, { expect: 'Fact' }),
      (error: unknown) => {
        assert.ok(error instanceof CodecError, `${reason}: ${String(error)}`);
        assert.equal(error.reason, reason, error.message);
        if (field) assert.equal(error.field, field);
        return true;
      },
    );
  }
  assert.throws(
    () => codec.encodeValue('Fact', { subject: 'a', relation: 'r', object: 3 }),
    /object: expected string/,
  );
});

test('schema evolution: a record written with an older schema decodes with the new one (added field takes its default)', () => {
  // The "old" Query: before `answer`, `k` and `evidence` existed. Written by an old producer with the old fingerprint.
  const current = JSON.parse(readFileSync(join(defaultSchemaDir, 'Query.avsc'), 'utf8'));
  const added = ['answer', 'k', 'evidence'];
  const old = {
    ...current,
    fields: current.fields.filter((f: { name: string }) => !added.includes(f.name)),
  };
  const body = avro.Type.forSchema(old).toBuffer({
    replyId: 'r1',
    subject: 'a',
    relation: 'r',
    object: null,
    filter: 'static',
  });
  const oldFingerprint = Buffer.alloc(8);
  oldFingerprint.writeBigUInt64LE(schemaFingerprint64(old));
  const oldBytes = Buffer.concat([Buffer.from([0xc3, 0x01]), oldFingerprint, body]);

  const fresh = SchemaCodec.load();
  assert.throws(
    () => fresh.decodeValue(oldBytes),
    (e: unknown) => e instanceof CodecError && e.reason === 'unknown_fingerprint',
  );
  fresh.registerVersion('Query', old, 'v0');
  const decoded = fresh.decodeValue(oldBytes, { expect: 'Query' });
  assert.equal(decoded.writerVersion, 'v0');
  assert.deepEqual(toPlain(decoded.value), {
    replyId: 'r1',
    subject: 'a',
    relation: 'r',
    object: null,
    k: 10,
    filter: 'static',
    answer: null,
    evidence: 0,
  });
});

test('JSON answers write doubles as floats (rank 2 -> 2.0), so JSON and Avro readers see one type (issue 13 item 6)', () => {
  const codec = SchemaCodec.load();
  const answer = {
    ...sampleRecords.Answer,
    rank: 2,
    results: [{ entity: 'USA', score: 3, probability: 1, evidence: [] }],
  };
  const text = codec.encodeValue('Answer', answer, 'json').toString('utf8');
  assert.match(text, /"rank":2\.0\b/);
  assert.match(text, /"score":3\.0\b/);
  assert.match(text, /"modelVersion":7[,}]/, 'longs stay integers');
  assert.deepEqual(
    toPlain(codec.decodeValue(Buffer.from(text), { expect: 'Answer' }).value),
    toPlain(codec.decodeValue(codec.encodeValue('Answer', answer, 'avro')).value),
  );
});
