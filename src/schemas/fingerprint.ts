// Avro Parsing Canonical Form and the CRC-64-AVRO (Rabin) fingerprint, as the Avro specification defines them
// ("Schema Resolution" / "Parsing Canonical Form for Schemas" / "Schema Fingerprints").
// Owns: pure functions over schema JSON. Must not touch: encoding, Kafka, files.

const primitives = new Set([
  'null',
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'bytes',
  'string',
]);

type SchemaJson = string | SchemaJson[] | { [key: string]: unknown };

function fullName(name: string, namespace: string | undefined): string {
  if (name.includes('.') || !namespace) return name;
  return `${namespace}.${name}`;
}

function namespaceOf(full: string): string | undefined {
  const dot = full.lastIndexOf('.');
  return dot < 0 ? undefined : full.slice(0, dot);
}

function canonical(schema: SchemaJson, namespace: string | undefined, seen: Set<string>): string {
  if (typeof schema === 'string') {
    return JSON.stringify(primitives.has(schema) ? schema : fullName(schema, namespace));
  }
  if (Array.isArray(schema))
    return `[${schema.map((branch) => canonical(branch, namespace, seen)).join(',')}]`;
  const type = schema.type as SchemaJson;
  if (typeof type !== 'string') return canonical(type, namespace, seen); // {"type": {...}} or {"type": [...]}
  if (primitives.has(type)) return JSON.stringify(type); // [PRIMITIVES] (logicalType and other attributes are stripped)
  switch (type) {
    case 'array':
      return `{"type":"array","items":${canonical(schema.items as SchemaJson, namespace, seen)}}`;
    case 'map':
      return `{"type":"map","values":${canonical(schema.values as SchemaJson, namespace, seen)}}`;
    case 'record':
    case 'error':
    case 'enum':
    case 'fixed': {
      const full = fullName(
        String(schema.name),
        (schema.namespace as string | undefined) ?? namespace,
      );
      if (seen.has(full)) return JSON.stringify(full);
      seen.add(full);
      const inner = namespaceOf(full);
      const head = `{"name":${JSON.stringify(full)},"type":${JSON.stringify(type === 'error' ? 'record' : type)}`;
      if (type === 'enum') return `${head},"symbols":${JSON.stringify(schema.symbols)}}`;
      if (type === 'fixed') return `${head},"size":${Number(schema.size)}}`;
      const fields = (schema.fields as { name: string; type: SchemaJson }[]).map(
        (field) =>
          `{"name":${JSON.stringify(field.name)},"type":${canonical(field.type, inner, seen)}}`,
      );
      return `${head},"fields":[${fields.join(',')}]}`;
    }
    default:
      // A reference to a named type written as {"type": "dev.tkgstream.Fact"}.
      return JSON.stringify(fullName(type, namespace));
  }
}

/** The schema's Parsing Canonical Form (full names, only name/type/fields/symbols/items/values/size, no whitespace). */
export function parsingCanonicalForm(schema: unknown): string {
  return canonical(schema as SchemaJson, undefined, new Set());
}

const crc64Empty = 0xc15d213aa4d7a795n;
const mask64 = 0xffffffffffffffffn;

function buildTable(): BigUint64Array {
  const table = new BigUint64Array(256);
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (crc64Empty & -(fp & 1n) & mask64);
    table[i] = fp;
  }
  return table;
}
const crc64Table = buildTable();

/** CRC-64-AVRO of `bytes` as an unsigned 64-bit integer (Java's `long` is BigInt.asIntN(64, result)). */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = crc64Empty;
  for (const byte of bytes) fp = (fp >> 8n) ^ crc64Table[Number((fp ^ BigInt(byte)) & 0xffn)];
  return fp;
}

/** CRC-64-AVRO fingerprint of the schema's parsing canonical form (unsigned). */
export function schemaFingerprint64(schema: unknown): bigint {
  return crc64Avro(new TextEncoder().encode(parsingCanonicalForm(schema)));
}

/** The 8 bytes written after the single-object magic: the fingerprint, little-endian. */
export function fingerprintBytes(fingerprint: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64LE(fingerprint);
  return buffer;
}
