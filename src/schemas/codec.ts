// Wire codec for every Kafka value of SPEC section 4. Owns: loading schemas/*.avsc with avsc, the registry of
// known writer schemas (current and older versions, by CRC-64-AVRO fingerprint or Confluent schema id),
// encoding (Avro single-object, Confluent framing, plain JSON) and decoding with format detection.
// Must not touch: Kafka clients, validation of business rules (ingest does that), files other than schemas/.
//
// Wire formats:
//   avro      0xC3 0x01 | fingerprint (8 bytes, little-endian CRC-64-AVRO of the parsing canonical form) | Avro body
//   confluent 0x00 | schema id (4 bytes, big-endian) | Avro body           (ids registered with registerConfluentId)
//   json      a UTF-8 JSON object with the record's fields (plain JSON, not Avro's JSON encoding: unions are
//             unwrapped, bytes are base64 strings, missing fields take their schema default).
import avro from 'avsc';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodecError } from './codec-error.ts';
import { fingerprintBytes, parsingCanonicalForm, schemaFingerprint64 } from './fingerprint.ts';
import { checkRecord, convertJson, describe, hexPreview, jsonText } from './json-form.ts';
import { resolverFor } from './resolution.ts';

export const schemaNames = [
  'Fact',
  'Query',
  'Answer',
  'Forecast',
  'StepMetrics',
  'ModelAnnouncement',
  'ModelChunk',
] as const;
export type SchemaName = (typeof schemaNames)[number];
export type WireFormat = 'avro' | 'json' | 'confluent';
export const schemaNamespace = 'dev.tkgstream';

/** schemas/ at the project root (this file is src/schemas/codec.ts). */
export const defaultSchemaDir = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'schemas',
);

export { CodecError, type CodecErrorReason } from './codec-error.ts';

export interface DecodedValue<T = Record<string, unknown>> {
  /** The schema the value was read as (the reader schema); null for JSON without an expected schema. */
  schema: SchemaName | null;
  value: T;
  format: WireFormat;
  /** Writer schema version label ('current' or the label an older version was registered with). */
  writerVersion: string;
}

interface WriterEntry {
  schema: SchemaName;
  version: string;
  /** Reads writer bytes into the current reader type (identity when the writer is current). */
  resolver: avro.Resolver | undefined;
  /** A registry schema the reader cannot read: decoding its values throws this (a dead letter naming the field). */
  failure?: CodecError;
}

const singleObjectMagic0 = 0xc3;
const singleObjectMagic1 = 0x01;

/**
 * The schema registry and codec of one process. Create it once (`SchemaCodec.load()`) and share it; it holds the
 * avsc types and the writer registry (which grows with registerVersion / registerConfluentId).
 */
export class SchemaCodec {
  readonly types: Readonly<Record<SchemaName, avro.types.RecordType>>;
  readonly schemas: Readonly<Record<SchemaName, object>>;
  private readonly headers: Record<SchemaName, Buffer>; // [10] magic + fingerprint
  private readonly writersByFingerprint = new Map<string, WriterEntry>(); // key: fingerprint hex (LE bytes)
  private readonly writersByConfluentId = new Map<number, WriterEntry>();
  /** Confluent schema id of each schema as registered for outputs (src/schemas/registry.ts). */
  private readonly outputIds = new Map<SchemaName, number>();
  /** The writer of the last single-object value decoded, by its fingerprint's two little-endian u32 halves. */
  private lastWriter: { low: number; high: number; entry: WriterEntry } | undefined;

  private constructor(schemas: Record<SchemaName, object>) {
    this.schemas = schemas;
    const types = {} as Record<SchemaName, avro.types.RecordType>;
    const headers = {} as Record<SchemaName, Buffer>;
    for (const name of schemaNames) {
      types[name] = avro.Type.forSchema(schemas[name] as avro.Schema, {
        wrapUnions: 'auto',
      }) as avro.types.RecordType;
      const fingerprint = fingerprintBytes(schemaFingerprint64(schemas[name]));
      headers[name] = Buffer.concat([
        Buffer.from([singleObjectMagic0, singleObjectMagic1]),
        fingerprint,
      ]);
      this.writersByFingerprint.set(fingerprint.toString('hex'), {
        schema: name,
        version: 'current',
        resolver: undefined,
      });
    }
    this.types = types;
    this.headers = headers;
  }

  /**
   * Load schemas/<Name>.avsc for every schema name, plus older versions from schemas/history/<Name>.<version>.avsc
   * (registered as writer schemas so records written with them still decode).
   */
  static load(schemaDir: string = defaultSchemaDir): SchemaCodec {
    const schemas = {} as Record<SchemaName, object>;
    for (const name of schemaNames) {
      const file = join(schemaDir, `${name}.avsc`);
      if (!existsSync(file))
        throw new CodecError(
          'schema',
          `${file} is missing: every schema in ${schemaNames.join(', ')} needs a .avsc file`,
          'unknown_format',
        );
      schemas[name] = JSON.parse(readFileSync(file, 'utf8')) as object;
    }
    const codec = new SchemaCodec(schemas);
    const historyDir = join(schemaDir, 'history');
    if (existsSync(historyDir)) {
      for (const file of readdirSync(historyDir)
        .filter((f) => f.endsWith('.avsc'))
        .sort()) {
        const [name, version] = file.replace(/\.avsc$/, '').split('.');
        if (!(schemaNames as readonly string[]).includes(name)) continue;
        codec.registerVersion(
          name as SchemaName,
          JSON.parse(readFileSync(join(historyDir, file), 'utf8')),
          version ?? file,
        );
      }
    }
    return codec;
  }

  /** The 8-byte fingerprint (little-endian CRC-64-AVRO) of the current schema. */
  fingerprint(name: SchemaName): Buffer {
    return this.headers[name].subarray(2);
  }

  /** Parsing canonical form of the current schema. */
  canonicalForm(name: SchemaName): string {
    return parsingCanonicalForm(this.schemas[name]);
  }

  /**
   * Register an older (or other) writer schema of `name`: its records decode into the current reader schema
   * through avsc's resolver (new fields take their defaults). Throws when the schemas are incompatible.
   * Returns the writer's fingerprint in hex.
   */
  registerVersion(name: SchemaName, writerSchema: object, version: string): string {
    const writer = avro.Type.forSchema(writerSchema as avro.Schema, { wrapUnions: 'auto' });
    let resolver: avro.Resolver;
    try {
      resolver = this.types[name].createResolver(writer);
    } catch (error) {
      throw new CodecError(
        'schema',
        `writer schema ${name} version ${version} cannot be read as the current ${name}: ${(error as Error).message}`,
        'schema_mismatch',
      );
    }
    const key = fingerprintBytes(schemaFingerprint64(writerSchema)).toString('hex');
    const existing = this.writersByFingerprint.get(key);
    if (existing?.version === 'current') return key; // identical to the current schema
    this.writersByFingerprint.set(key, { schema: name, version, resolver });
    this.lastWriter = undefined;
    return key;
  }

  /**
   * Map a Confluent schema-registry id to a schema: the current one, or a writer schema read through Avro schema
   * resolution (a writer record of another name is accepted). Throws CodecError naming the field the reader cannot
   * get from the writer (the id stays unknown).
   */
  registerConfluentId(
    id: number,
    name: SchemaName,
    writerSchema?: object,
    version = `confluent-${id}`,
  ): void {
    if (!writerSchema) {
      this.writersByConfluentId.set(id, { schema: name, version: 'current', resolver: undefined });
      return;
    }
    const resolver = resolverFor(this.types[name], writerSchema, `writer schema ${version}`);
    this.writersByConfluentId.set(id, { schema: name, version, resolver });
  }

  /** Values framed with Confluent schema `id` are dead letters with this error (e.g. a schema the reader cannot read). */
  registerConfluentFailure(id: number, name: SchemaName, failure: CodecError): void {
    this.writersByConfluentId.set(id, {
      schema: name,
      version: `confluent-${id}`,
      resolver: undefined,
      failure,
    });
  }

  /** The schema id of a Confluent-framed value whose id this codec does not know yet (undefined otherwise). */
  unknownConfluentId(value: Uint8Array | null | undefined): number | undefined {
    if (!value || value.length < 5 || value[0] !== 0) return undefined;
    const id = ((value[1] << 24) | (value[2] << 16) | (value[3] << 8) | value[4]) >>> 0;
    return this.writersByConfluentId.has(id) ? undefined : id;
  }

  /** Use Confluent schema `id` when encoding `name` Confluent-framed (the id its schema got in the registry). */
  setConfluentOutputId(name: SchemaName, id: number): void {
    this.outputIds.set(name, id);
    if (!this.writersByConfluentId.has(id)) this.registerConfluentId(id, name);
  }

  /** Encode `value` as `name` in the given wire format. Throws CodecError naming the bad field. */
  encodeValue(
    name: SchemaName,
    value: object,
    format: WireFormat = 'avro',
    options: { confluentId?: number } = {},
  ): Buffer {
    const type = this.types[name];
    if (format === 'json') {
      const checked = checkRecord(type, value as Record<string, unknown>);
      return Buffer.from(jsonText(type, convertJson(type, checked, 'toJson')));
    }
    let body: Buffer;
    try {
      body = type.toBuffer(value);
    } catch {
      checkRecord(type, value as Record<string, unknown>); // throws the precise field error
      throw new CodecError('value', `cannot encode as ${name}: ${describe(value)}`, 'wrong_type');
    }
    if (format === 'confluent') {
      const id = options.confluentId ?? this.outputIds.get(name);
      if (id === undefined)
        throw new CodecError(
          'confluentId',
          `Confluent framing of ${name} needs its schema id: set --schema-registry-url (--output-format confluent registers the schemas under <topic>-value)`,
          'unknown_schema_id',
        );
      const out = Buffer.allocUnsafe(5 + body.length);
      out[0] = 0;
      out.writeInt32BE(id, 1);
      body.copy(out, 5);
      return out;
    }
    const header = this.headers[name];
    const out = Buffer.allocUnsafe(header.length + body.length);
    header.copy(out, 0);
    body.copy(out, header.length);
    return out;
  }

  /**
   * Decode a Kafka value, detecting the format: Avro single-object (0xC3 0x01), Confluent (0x00), or JSON ('{').
   * `expect` names the schema the caller wants: required to read JSON as a record (defaults filled, types checked);
   * an Avro value of another schema is a schema_mismatch. Throws CodecError (never anything else) on bad input.
   */
  decodeValue<T = Record<string, unknown>>(
    bytes: Uint8Array | null | undefined,
    options: { expect?: SchemaName } = {},
  ): DecodedValue<T> {
    if (!bytes || bytes.length === 0)
      throw new CodecError('value', 'empty message (null or zero bytes)', 'empty_message');
    const buffer = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const first = buffer[0];
    if (first === singleObjectMagic0) {
      if (buffer.length < 10 || buffer[1] !== singleObjectMagic1) {
        throw new CodecError(
          'value',
          `truncated Avro single-object header (${buffer.length} bytes: ${hexPreview(buffer)})`,
          'bad_avro',
        );
      }
      // Hot path: consecutive values almost always share a writer; compare 8 bytes before a hex lookup.
      const low = buffer.readUInt32LE(2);
      const high = buffer.readUInt32LE(6);
      const cached = this.lastWriter;
      if (cached && cached.low === low && cached.high === high)
        return this.decodeAvroBody<T>(buffer, 10, cached.entry, 'avro', options.expect);
      const key = buffer.toString('hex', 2, 10);
      const writer = this.writersByFingerprint.get(key);
      if (writer) this.lastWriter = { low, high, entry: writer };
      if (!writer) {
        throw new CodecError(
          'value',
          `unknown Avro schema fingerprint ${key} (little-endian CRC-64-AVRO); known: ${[...this.writersByFingerprint.keys()].join(', ')}`,
          'unknown_fingerprint',
        );
      }
      return this.decodeAvroBody<T>(buffer, 10, writer, 'avro', options.expect);
    }
    if (first === 0) {
      if (buffer.length < 5)
        throw new CodecError(
          'value',
          `truncated Confluent header (${buffer.length} bytes)`,
          'bad_avro',
        );
      const id = buffer.readInt32BE(1);
      const writer = this.writersByConfluentId.get(id);
      if (!writer)
        throw new CodecError(
          'value',
          `unknown Confluent schema id ${id}: configure the schema registry the producer used (--schema-registry-url)`,
          'unknown_schema_id',
        );
      return this.decodeAvroBody<T>(buffer, 5, writer, 'confluent', options.expect);
    }
    let position = 0;
    while (
      position < buffer.length &&
      (buffer[position] === 0x20 ||
        buffer[position] === 0x0a ||
        buffer[position] === 0x0d ||
        buffer[position] === 0x09)
    )
      position++;
    if (
      buffer[position] === 0x7b /* { */ ||
      buffer[position] === 0x5b /* [ */ ||
      buffer[position] === 0x22 /* " */
    ) {
      return this.decodeJson<T>(buffer, options.expect);
    }
    throw new CodecError(
      'value',
      `unknown wire format (first bytes ${hexPreview(buffer)}): expected Avro single-object (c301), Confluent (00) or a JSON object`,
      'unknown_format',
    );
  }

  private decodeAvroBody<T>(
    buffer: Buffer,
    offset: number,
    writer: WriterEntry,
    format: WireFormat,
    expect: SchemaName | undefined,
  ): DecodedValue<T> {
    if (writer.failure) throw writer.failure;
    if (expect && writer.schema !== expect) {
      throw new CodecError(
        'value',
        `expected a ${expect} but the value is a ${writer.schema} (${format})`,
        'schema_mismatch',
      );
    }
    let decoded: { value: unknown; offset: number };
    try {
      decoded = this.types[writer.schema].decode(buffer, offset, writer.resolver);
    } catch (error) {
      throw new CodecError(
        'value',
        `bad Avro body for ${writer.schema} (${writer.version}): ${(error as Error).message}`,
        'bad_avro',
      );
    }
    if (decoded.offset < 0)
      throw new CodecError(
        'value',
        `truncated Avro body for ${writer.schema} (${buffer.length - offset} bytes)`,
        'bad_avro',
      );
    if (decoded.offset !== buffer.length) {
      throw new CodecError(
        'value',
        `${buffer.length - decoded.offset} trailing bytes after the ${writer.schema} Avro body`,
        'bad_avro',
      );
    }
    return {
      schema: writer.schema,
      value: decoded.value as T,
      format,
      writerVersion: writer.version,
    };
  }

  private decodeJson<T>(buffer: Buffer, expect: SchemaName | undefined): DecodedValue<T> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(buffer.toString('utf8'));
    } catch (error) {
      throw new CodecError(
        'value',
        `bad JSON (${(error as Error).message}): ${describe(buffer.toString('utf8', 0, 80))}`,
        'bad_json',
      );
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new CodecError(
        'value',
        `expected a JSON object, got ${describe(parsed)}`,
        'wrong_type',
      );
    }
    if (!expect) return { schema: null, value: parsed as T, format: 'json', writerVersion: 'json' };
    const type = this.types[expect];
    const converted = convertJson(type, parsed, 'fromJson') as Record<string, unknown>;
    return {
      schema: expect,
      value: checkRecord(type, converted) as T,
      format: 'json',
      writerVersion: 'json',
    };
  }
}
