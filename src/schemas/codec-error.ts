// The codec's typed error. Owns: the bounded set of reasons a value cannot be decoded or encoded (DLQ header
// tkg.error.reason and metric label). Must not touch anything else.
import { InvalidInputError } from '../core/errors.ts';

/** Reasons a value cannot be decoded (bounded set: used as DLQ header and metric label). */
export type CodecErrorReason =
  | 'empty_message'
  | 'unknown_format'
  | 'bad_json'
  | 'unknown_fingerprint'
  | 'unknown_schema_id'
  | 'bad_avro'
  | 'schema_mismatch'
  | 'missing_field'
  | 'wrong_type';

/** A value that cannot be decoded or encoded; `field` names the offending field ('value' for the whole message). */
export class CodecError extends InvalidInputError {
  declare readonly reason: CodecErrorReason;
  constructor(field: string, message: string, reason: CodecErrorReason) {
    super(field, message, reason);
  }
}
