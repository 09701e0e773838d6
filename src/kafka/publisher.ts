// Fact publisher: FactEvents -> tkg.facts (key: subject), batched, pipelined, optionally rate-limited.
// Owns: encoding facts as Kafka messages and the send loop. Must not touch: dataset parsing (src/datasets),
// topic creation (topics.ts), broker choice (brokers.ts), progress rendering (the CLI does that).
import type { Message, Producer } from 'kafkajs';
import type { FactEvent } from '../core/types.ts';
import { ConfigError } from '../core/errors.ts';
import type { SchemaCodec } from '../schemas/codec.ts';

export type FactFormat = 'json' | 'avro';

export interface PublishOptions {
  topic: string;
  format?: FactFormat;
  /** Facts per second (0 or undefined = as fast as possible). */
  rate?: number;
  /**
   * Messages per producer.send (default 1000; smaller when rate-limited so the rate is smooth). kafkajs 2.2 groups a
   * send's messages by partition with an O(n^2) array copy, so batches far above ~2000 get slower, not faster.
   */
  batchSize?: number;
  /** Concurrent sends in flight (default 8; kafkajs still sends one produce request per broker at a time, in order). */
  inFlight?: number;
  /** -1 = all in-sync replicas (default), 1 = leader, 0 = none. */
  acks?: -1 | 0 | 1;
  /** Called after every acknowledged batch with the total sent so far. */
  onProgress?: (sent: number) => void;
}

export interface PublishResult {
  sent: number;
  seconds: number;
  factsPerSecond: number;
  bytes: number;
}

/** The Fact record of a FactEvent (absent time fields become null). */
export function factRecord(fact: FactEvent): { subject: string; relation: string; object: string; step: number | null; timestamp: string | number | null } {
  return { subject: fact.subject, relation: fact.relation, object: fact.object, step: fact.step ?? null, timestamp: fact.timestamp ?? null };
}

/** Encode one fact as a Kafka message keyed by subject, in plain JSON or Avro single-object encoding. */
export function factMessage(fact: FactEvent, format: FactFormat, codec: SchemaCodec): Message {
  const value = format === 'avro' ? codec.encodeValue('Fact', factRecord(fact), 'avro') : Buffer.from(JSON.stringify(fact));
  return { key: fact.subject, value };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Publish `facts` in order of batches (facts of one subject keep their relative order: same key, same partition,
 * batches are acknowledged before the window moves past them). Resolves when every batch is acknowledged.
 */
export async function publishFacts(producer: Producer, codec: SchemaCodec, facts: readonly FactEvent[], options: PublishOptions): Promise<PublishResult> {
  const format = options.format ?? 'json';
  if (format !== 'json' && format !== 'avro') throw new ConfigError(`--format ${String(format)}: use json or avro`);
  const rate = options.rate ?? 0;
  if (!(rate >= 0) || !Number.isFinite(rate)) throw new ConfigError(`--rate ${rate}: use a positive number of facts per second (0 = unlimited)`);
  const batchSize = options.batchSize ?? (rate > 0 ? Math.max(1, Math.min(1000, Math.floor(rate / 20))) : 1000);
  const inFlightLimit = rate > 0 ? 1 : (options.inFlight ?? 8);
  const acks = options.acks ?? -1;

  const started = performance.now();
  let sent = 0;
  let bytes = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  for (let offset = 0; offset < facts.length; offset += batchSize) {
    if (failure) break;
    const end = Math.min(facts.length, offset + batchSize);
    const messages: Message[] = new Array(end - offset);
    for (let i = offset; i < end; i++) {
      const message = factMessage(facts[i], format, codec);
      bytes += (message.value as Buffer).length;
      messages[i - offset] = message;
    }
    if (rate > 0) {
      const due = started + (offset / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const send: Promise<void> = producer
      .send({ topic: options.topic, acks, messages })
      .then(() => {
        sent += messages.length;
        options.onProgress?.(sent);
      })
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(send));
    inFlight.add(send);
    if (inFlight.size >= inFlightLimit) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  const seconds = (performance.now() - started) / 1000;
  return { sent, seconds, factsPerSecond: seconds > 0 ? sent / seconds : 0, bytes };
}
