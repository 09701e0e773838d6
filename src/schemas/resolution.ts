// Schema resolution from a writer's schema (found in a schema registry) to one of the project's reader schemas.
// Owns: accepting a writer record of another name (a team's own com.acme.FactEvent: registries and Confluent's
// deserializers do not require names to match, only Avro's resolution rules for the fields), and, when the writer
// cannot be read, an error naming the field and the fix. Must not touch: wire framing, registries, Kafka.
import avro from 'avsc';
import { CodecError } from './codec-error.ts';

interface NamedSchema {
  type?: unknown;
  name?: string;
  namespace?: string;
  fields?: Array<{ name: string; type: unknown }>;
}

/** The writer schema with its top-level record renamed to the reader's full name (fields untouched). */
function renamedToReader(writer: object, reader: avro.types.RecordType): object {
  const schema = writer as NamedSchema;
  if (schema.type !== 'record' || typeof schema.name !== 'string') return writer;
  const { namespace: _namespace, ...rest } = schema;
  return { ...rest, name: reader.name as string };
}

/**
 * A resolver that reads `writerSchema` values as `reader` (new reader fields take their defaults, unions and
 * promotions as Avro resolves them). Throws CodecError('<field>', ..., 'schema_mismatch') naming the first reader
 * field the writer cannot provide.
 */
export function resolverFor(
  reader: avro.types.RecordType,
  writerSchema: object,
  label: string,
): avro.Resolver {
  let writer: avro.Type;
  try {
    writer = avro.Type.forSchema(renamedToReader(writerSchema, reader) as avro.Schema, {
      wrapUnions: 'auto',
    });
  } catch (error) {
    throw new CodecError(
      'schema',
      `${label} is not a valid Avro schema: ${(error as Error).message}`,
      'schema_mismatch',
    );
  }
  try {
    return reader.createResolver(writer);
  } catch (error) {
    throw fieldError(reader, writer, label, error as Error);
  }
}

function fieldError(
  reader: avro.types.RecordType,
  writer: avro.Type,
  label: string,
  cause: Error,
): CodecError {
  const short = (reader.name ?? 'record').split('.').at(-1);
  if (!(writer instanceof avro.types.RecordType))
    return new CodecError(
      'value',
      `${label} is a ${writer.typeName}, not a record: it cannot be read as ${short}`,
      'schema_mismatch',
    );
  for (const field of reader.fields) {
    const names = [field.name, ...field.aliases];
    const written = writer.fields.find((f) => names.includes(f.name));
    if (!written) {
      if (field.defaultValue() === undefined)
        return new CodecError(
          field.name,
          `${label} has no field "${field.name}" and ${short} gives it no default: add "${field.name}" to the producer's schema (${field.type.typeName})`,
          'schema_mismatch',
        );
      continue;
    }
    try {
      field.type.createResolver(written.type);
    } catch {
      return new CodecError(
        field.name,
        `${label} writes "${field.name}" as ${JSON.stringify(written.type.schema())}, which ${short} cannot read as ${JSON.stringify(field.type.schema())}`,
        'schema_mismatch',
      );
    }
  }
  return new CodecError(
    'value',
    `${label} cannot be read as ${short}: ${cause.message}`,
    'schema_mismatch',
  );
}
