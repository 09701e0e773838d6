// The plain JSON form of a record (what JSON producers write: unions unwrapped, bytes as base64 strings, missing
// fields take their schema default) and the value descriptions codec errors use. Owns: converting between avsc
// values and that form, and checking a JSON record against its type with an error naming the first bad field.
// Must not touch: wire framing (codec.ts), Kafka, business validation (src/ingest).
import type avro from 'avsc';
import { CodecError } from './codec-error.ts';

export function hexPreview(bytes: Uint8Array, count = 12): string {
  return Buffer.from(bytes.subarray(0, count)).toString('hex');
}

export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 60)}...` : text;
}

export function typeLabel(type: avro.Type): string {
  const name = (type as { name?: string }).name;
  return name ?? type.typeName;
}

/** Converts between avsc values and plain JSON values (bytes <-> base64), walking the type. */
export function convertJson(
  type: avro.Type,
  value: unknown,
  direction: 'toJson' | 'fromJson',
): unknown {
  if (value === null || value === undefined) return value;
  switch (type.typeName) {
    case 'bytes':
      if (direction === 'toJson') return Buffer.isBuffer(value) ? value.toString('base64') : value;
      return typeof value === 'string' ? Buffer.from(value, 'base64') : value;
    case 'record':
    case 'error': {
      if (typeof value !== 'object' || Array.isArray(value)) return value;
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      for (const field of (type as avro.types.RecordType).fields) {
        if (field.name in out)
          out[field.name] = convertJson(field.type, out[field.name], direction);
      }
      return out;
    }
    case 'array':
      return Array.isArray(value)
        ? value.map((item) =>
            convertJson((type as avro.types.ArrayType).itemsType, item, direction),
          )
        : value;
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) return value;
      const valuesType = (type as avro.types.MapType).valuesType;
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [
          k,
          convertJson(valuesType, v, direction),
        ]),
      );
    }
    case 'union:unwrapped': {
      const branches = (type as avro.types.UnwrappedUnionType).types;
      const bytesBranch = branches.find((branch) => branch.typeName === 'bytes');
      if (!bytesBranch) {
        const branch = branches.find((b) => b.typeName !== 'null' && b.isValid(value));
        return branch ? convertJson(branch, value, direction) : value;
      }
      if (direction === 'toJson' && Buffer.isBuffer(value)) return value.toString('base64');
      if (
        direction === 'fromJson' &&
        typeof value === 'string' &&
        !branches.some((b) => b.typeName === 'string')
      ) {
        return Buffer.from(value, 'base64');
      }
      return value;
    }
    default:
      return value;
  }
}

/** Fills defaults for missing fields of a JSON record and throws a typed error naming the first bad field. */
export function checkRecord(
  type: avro.types.RecordType,
  raw: Record<string, unknown>,
): Record<string, unknown> {
  const value: Record<string, unknown> = { ...raw };
  for (const field of type.fields) {
    if (value[field.name] === undefined) {
      const fallback = field.defaultValue();
      if (fallback === undefined) {
        throw new CodecError(
          field.name,
          `required field of ${type.name} is missing`,
          'missing_field',
        );
      }
      value[field.name] = fallback;
    }
  }
  let problem: { path: string[]; value: unknown; type: avro.Type } | undefined;
  const valid = type.isValid(value, {
    errorHook: (path: string[], any: unknown, badType: avro.Type) => {
      problem ??= { path, value: any, type: badType };
    },
  });
  if (!valid && problem) {
    const field = problem.path.join('.') || 'value';
    throw new CodecError(
      field,
      `expected ${typeLabel(problem.type)}, got ${describe(problem.value)}`,
      'wrong_type',
    );
  }
  return value;
}

/** A JSON number for an Avro double/float: always with a fraction or exponent, so typed readers see a float. */
function doubleText(value: number): string {
  if (!Number.isFinite(value)) return 'null';
  const text = String(value);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

/**
 * JSON text of a value in the plain JSON form (after convertJson 'toJson'), walking the type so that double and
 * float fields are written as floats (`2.0`, not `2`): the JSON answer's rank reads as the same type as the Avro one.
 */
export function jsonText(type: avro.Type, value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (type.typeName) {
    case 'double':
    case 'float':
      return typeof value === 'number' ? doubleText(value) : JSON.stringify(value);
    case 'record':
    case 'error': {
      if (typeof value !== 'object' || Array.isArray(value)) return JSON.stringify(value);
      const record = value as Record<string, unknown>;
      const known = new Map((type as avro.types.RecordType).fields.map((f) => [f.name, f.type]));
      const parts = Object.entries(record)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => {
          const fieldType = known.get(k);
          return `${JSON.stringify(k)}:${fieldType ? jsonText(fieldType, v) : JSON.stringify(v)}`;
        });
      return `{${parts.join(',')}}`;
    }
    case 'array':
      return Array.isArray(value)
        ? `[${value.map((v) => jsonText((type as avro.types.ArrayType).itemsType, v)).join(',')}]`
        : JSON.stringify(value);
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) return JSON.stringify(value);
      const valuesType = (type as avro.types.MapType).valuesType;
      return `{${Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${JSON.stringify(k)}:${jsonText(valuesType, v)}`)
        .join(',')}}`;
    }
    case 'union:unwrapped': {
      const branch = (type as avro.types.UnwrappedUnionType).types.find(
        (b) => b.typeName !== 'null' && b.isValid(value),
      );
      return branch && typeof value === 'number' ? jsonText(branch, value) : JSON.stringify(value);
    }
    default:
      return JSON.stringify(value);
  }
}
