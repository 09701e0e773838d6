// Business-rule validation of a decoded fact (after src/schemas/codec.ts has read the bytes).
// Owns: size limits, name rules, event-time rules and the bounded set of rejection reasons that
// label tkg_facts_rejected_total and the DLQ header tkg.error.reason. Must not touch Kafka, the
// vocabulary or the window. Every rejection is an InvalidInputError(field, message-with-fix, reason).
import { InvalidInputError } from '../core/errors.ts';
import { parseEventTime } from '../core/step-clock.ts';

/** Every reason a message can be rejected for (codec reasons + validation reasons + ingest reasons). */
export const rejectionReasons = [
  // src/schemas/codec.ts
  'empty_message',
  'unknown_format',
  'bad_json',
  'unknown_fingerprint',
  'unknown_schema_id',
  'bad_avro',
  'schema_mismatch',
  'missing_field',
  'wrong_type',
  // this file
  'oversized',
  'empty_name',
  'name_too_long',
  'invalid_step',
  'invalid_timestamp',
  // step clock and vocabulary
  'unmapped_timestamp',
  'before_origin',
  'vocabulary_full',
  // anything unexpected (a bug, never the input's fault): still dead-lettered, never a crash
  'internal_error',
] as const;
export type RejectionReason = (typeof rejectionReasons)[number];

const knownReasons = new Set<string>(rejectionReasons);

/** Maps any error to a bounded reason label. */
export function reasonOf(error: unknown): RejectionReason {
  const reason = (error as { reason?: unknown })?.reason;
  return typeof reason === 'string' && knownReasons.has(reason)
    ? (reason as RejectionReason)
    : 'internal_error';
}

export interface FactLimits {
  /** Largest accepted message value in bytes (default 16 KiB). */
  maxMessageBytes: number;
  /** Largest accepted name in UTF-8 bytes (default 1 KiB). */
  maxNameBytes: number;
}

export const defaultFactLimits: FactLimits = { maxMessageBytes: 16 * 1024, maxNameBytes: 1024 };

/** A fact that passed validation: names, and either an integer step or an event time in epoch ms. */
export interface ValidFact {
  subject: string;
  relation: string;
  object: string;
  step?: number;
  timestampMs?: number;
}

/** Rejects values above the size limit before any decoding work. */
export function checkMessageSize(bytes: number, limits: FactLimits = defaultFactLimits): void {
  if (bytes > limits.maxMessageBytes) {
    throw new InvalidInputError(
      'value',
      `message of ${bytes} bytes exceeds the ${limits.maxMessageBytes}-byte limit; shorten the names or raise TKG_MAX_FACT_BYTES`,
      'oversized',
    );
  }
}

function checkName(
  record: Record<string, unknown>,
  field: 'subject' | 'relation' | 'object',
  limits: FactLimits,
): string {
  const value = record[field];
  if (value === undefined || value === null) {
    throw new InvalidInputError(
      field,
      'is missing; every fact needs subject, relation and object names',
      'missing_field',
    );
  }
  if (typeof value !== 'string') {
    throw new InvalidInputError(field, `expected a string name, got ${typeof value}`, 'wrong_type');
  }
  if (value.trim().length === 0) {
    throw new InvalidInputError(field, 'is empty or blank; send a non-empty name', 'empty_name');
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes: count bytes only for names that could exceed the limit.
  if (
    value.length * 3 > limits.maxNameBytes &&
    (value.length > limits.maxNameBytes || Buffer.byteLength(value, 'utf8') > limits.maxNameBytes)
  ) {
    throw new InvalidInputError(
      field,
      `name of ${Buffer.byteLength(value, 'utf8')} bytes exceeds the ${limits.maxNameBytes}-byte limit; shorten it or raise TKG_MAX_NAME_BYTES`,
      'name_too_long',
    );
  }
  return value;
}

/**
 * Validate a decoded fact record (plain object from JSON or Avro). `step` wins over `timestamp`
 * when both are present (schemas/Fact.avsc). Throws InvalidInputError with a reason from
 * `rejectionReasons`; never anything else for bad input.
 */
export function validateFact(value: unknown, limits: FactLimits = defaultFactLimits): ValidFact {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidInputError(
      'value',
      `expected a fact object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
      'wrong_type',
    );
  }
  const record = value as Record<string, unknown>;
  const subject = checkName(record, 'subject', limits);
  const relation = checkName(record, 'relation', limits);
  const object = checkName(record, 'object', limits);
  const step = record.step;
  if (step !== undefined && step !== null) {
    if (typeof step !== 'number') {
      throw new InvalidInputError(
        'step',
        `expected an integer step, got ${typeof step}`,
        'wrong_type',
      );
    }
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new InvalidInputError(
        'step',
        `${String(step)} is not a non-negative integer step (NaN, Infinity, fractions and negatives are rejected)`,
        'invalid_step',
      );
    }
    return { subject, relation, object, step };
  }
  const timestamp = record.timestamp;
  if (timestamp === undefined || timestamp === null) {
    throw new InvalidInputError(
      'step',
      'the fact has neither step nor timestamp; send an integer step or an ISO-8601 / epoch-ms timestamp',
      'missing_field',
    );
  }
  return { subject, relation, object, timestampMs: parseEventTime(timestamp, 'timestamp') };
}
