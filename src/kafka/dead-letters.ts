// Dead letters (SPEC section 4): a message that cannot be used is republished unchanged (key, value, headers,
// timestamp) to a dead-letter topic, with headers naming the error and where it came from. Owns: that record shape.
// Must not decide what is bad (the caller does) or send anything (the caller batches the produce).
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';

/** Longest tkg.error.message header (the rest is cut with "...": headers are not for whole documents). */
export const MAX_HEADER_MESSAGE_CHARS = 2000;

export interface DeadLetterReason {
  /** Bounded reason (metric label), e.g. bad_json, missing_field. */
  reason: string;
  /** The offending field ('value' for the whole message). */
  field: string;
  message: string;
}

/** Pure: the dead-letter record of `message` read from topic/partition, with tkg.error.* and tkg.source.* headers. */
export function deadLetter(
  message: KafkaMessage,
  source: { topic: string; partition: number },
  extra: Record<string, string>,
): Message {
  const headers: IHeaders = { ...(message.headers ?? {}) };
  for (const [key, value] of Object.entries(extra)) headers[key] = value;
  headers['tkg.source.topic'] = source.topic;
  headers['tkg.source.partition'] = String(source.partition);
  headers['tkg.source.offset'] = message.offset;
  return { key: message.key, value: message.value, headers, timestamp: message.timestamp };
}

/** Pure: the tkg.error.* headers of a reason (message cut to MAX_HEADER_MESSAGE_CHARS). */
export function errorHeaders(error: DeadLetterReason): Record<string, string> {
  const text =
    error.message.length > MAX_HEADER_MESSAGE_CHARS
      ? `${error.message.slice(0, MAX_HEADER_MESSAGE_CHARS)}...`
      : error.message;
  return {
    'tkg.error.reason': error.reason,
    'tkg.error.field': error.field,
    'tkg.error.message': text,
  };
}
