// ONNX files too large for an inline announcement on `<prefix>.models` travel in pieces on `<prefix>.models.chunks`
// (compacted; key: `<name>/<index>`; value: ModelChunk, schemas/ModelChunk.avsc). The trainer writes every piece
// (acks = all) before the announcement, whose `location` then says where the first piece is:
//   kafka:<chunk topic>?partition=P&offset=O&chunks=C&bytes=B&sha256=H
// A replica reads from offset O until the C pieces of the announced name and version are in (or the partition's
// log end as it was when the read began is passed: then a piece is missing), puts each at its byte offset, and
// checks the file's SHA-256. Owns: cutting, the location format, and that read. Must not touch: what the file means
// (src/model) or when a bundle is served (src/serve/bundle-watcher.ts).
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ConfigError, TkgError } from '../core/errors.ts';
import type { SchemaCodec, WireFormat } from '../schemas/codec.ts';
import type { Kafka, Producer } from './client.ts';
import { withRetries } from './retry.ts';
import { modelsMaxMessageBytes } from './topics.ts';

/** Size of one piece (far below the chunk topic's max.message.bytes, and below most brokers' default fetch sizes). */
export const defaultChunkBytes = 4 * 1024 * 1024;

/** Where a chunked ONNX file is (the announcement's `location`). */
export interface ChunkLocation {
  topic: string;
  partition: number;
  /** Offset of the first piece (the read may start earlier: pieces are matched by name and version). */
  offset: number;
  chunks: number;
  bytes: number;
  sha256: string;
}

/** The chunk topic of a models topic (topicNames: `<prefix>.models` -> `<prefix>.models.chunks`). */
export function chunkTopicOf(modelsTopic: string): string {
  return `${modelsTopic}.chunks`;
}

export function formatChunkLocation(location: ChunkLocation): string {
  const { topic, partition, offset, chunks, bytes, sha256 } = location;
  return `kafka:${topic}?partition=${partition}&offset=${offset}&chunks=${chunks}&bytes=${bytes}&sha256=${sha256}`;
}

/** True for locations this module reads (`kafka:` URLs). */
export function isChunkLocation(location: string): boolean {
  return location.startsWith('kafka:');
}

/** Parse a `kafka:` location; a malformed one throws naming the part that is wrong. */
export function parseChunkLocation(location: string): ChunkLocation {
  const url = new URL(location);
  const topic = decodeURIComponent(url.pathname);
  const integer = (key: string, min: number): number => {
    const text = url.searchParams.get(key);
    const value = Number(text);
    if (text === null || !Number.isSafeInteger(value) || value < min)
      throw new TkgError(
        `model location ${location}: ${key}=${text ?? '(missing)'} is not an integer >= ${min}; write ${formatChunkLocation({ topic: '<topic>', partition: 0, offset: 0, chunks: 1, bytes: 1, sha256: '<hex>' })}`,
        { reason: 'corrupt' },
      );
    return value;
  };
  const sha256 = url.searchParams.get('sha256') ?? '';
  if (url.protocol !== 'kafka:' || topic === '' || !/^[0-9a-f]{64}$/.test(sha256))
    throw new TkgError(
      `model location ${location}: needs a topic and sha256=<64 lowercase hex digits>`,
      { reason: 'corrupt' },
    );
  return {
    topic,
    partition: integer('partition', 0),
    offset: integer('offset', 0),
    chunks: integer('chunks', 1),
    bytes: integer('bytes', 1),
    sha256,
  };
}

export interface PublishChunksOptions {
  format?: WireFormat;
  chunkBytes?: number;
}

/**
 * Write `onnx` as pieces of bundle (name, version) to `topic`, one send (acks = all) per piece, and return the
 * location for its announcement.
 */
export async function publishModelChunks(
  producer: Producer,
  codec: SchemaCodec,
  topic: string,
  bundle: { name: string; version: number },
  onnx: Uint8Array,
  options: PublishChunksOptions = {},
): Promise<string> {
  const chunkBytes = options.chunkBytes ?? defaultChunkBytes;
  if (!(chunkBytes > 0 && chunkBytes <= modelsMaxMessageBytes - 64 * 1024))
    throw new ConfigError(
      `chunk size ${chunkBytes}: use 1 to ${modelsMaxMessageBytes - 64 * 1024} bytes`,
    );
  const sha256 = createHash('sha256').update(onnx).digest('hex');
  const count = Math.max(1, Math.ceil(onnx.length / chunkBytes));
  let first: { partition: number; offset: number } | undefined;
  for (let index = 0; index < count; index++) {
    const offset = index * chunkBytes;
    const piece = onnx.subarray(offset, Math.min(onnx.length, offset + chunkBytes));
    const value = codec.encodeValue(
      'ModelChunk',
      {
        name: bundle.name,
        version: bundle.version,
        index,
        count,
        offset,
        totalBytes: onnx.length,
        sha256,
        bytes: Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength),
      },
      options.format ?? 'avro',
    );
    const sent = await producer.send({
      topic,
      acks: -1,
      messages: [{ key: `${bundle.name}/${index}`, value }],
    });
    if (!first) {
      const meta = (sent as { partition?: number; baseOffset?: string }[] | undefined)?.[0];
      // A client that does not say where the record went: the reader then starts at the partition's beginning.
      first = { partition: meta?.partition ?? 0, offset: Number(meta?.baseOffset ?? 0) || 0 };
    }
  }
  return formatChunkLocation({
    topic,
    partition: first!.partition,
    offset: first!.offset,
    chunks: count,
    bytes: onnx.length,
    sha256,
  });
}

interface ModelChunkRecord {
  name: string;
  version: number;
  index: number;
  count: number;
  offset: number;
  totalBytes: number;
  sha256: string;
  bytes: Uint8Array;
}

export interface ReadChunksOptions {
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
  logger?: Logger;
}

/**
 * Read the ONNX file of bundle (name, version) from its chunk location. Throws a TkgError (reason `corrupt`) naming
 * what is wrong when a piece is missing or does not fit, or the file's SHA-256 differs. A retriable broker error
 * (a leader moving, a connection lost) starts the whole read again, with backoff, until the timeout.
 */
export async function readModelChunks(
  kafka: Kafka,
  codec: SchemaCodec,
  locationText: string,
  bundle: { name: string; version: number },
  options: ReadChunksOptions = {},
): Promise<Uint8Array> {
  const location = parseChunkLocation(locationText);
  return withRetries(
    `reading model ${bundle.name} v${bundle.version} from ${location.topic}`,
    () => readOnce(kafka, codec, location, bundle, options),
    { logger: options.logger, deadlineMs: options.timeoutMs ?? 600_000 },
  );
}

async function readOnce(
  kafka: Kafka,
  codec: SchemaCodec,
  location: ChunkLocation,
  bundle: { name: string; version: number },
  options: ReadChunksOptions,
): Promise<Uint8Array> {
  const { topic, partition } = location;
  const what = `model ${bundle.name} v${bundle.version} (${location.chunks} pieces on ${topic})`;
  const fail = (message: string) => new TkgError(`${what}: ${message}`, { reason: 'corrupt' });
  const admin = kafka.admin();
  await admin.connect();
  let end: { low: number; high: number };
  try {
    const offsets = await withRetries(`${topic} offsets`, () => admin.fetchTopicOffsets(topic), {
      logger: options.logger,
    });
    const p = offsets.find((o) => o.partition === partition);
    if (!p) throw fail(`the topic has no partition ${partition}`);
    end = { low: Number(p.low), high: Number(p.high) };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  if (location.offset >= end.high)
    throw fail(`the first piece (offset ${location.offset}) is past the log end ${end.high}`);

  const file = new Uint8Array(location.bytes);
  const seen = new Uint8Array(location.chunks);
  let have = 0;
  const started = Date.now();
  const consumer = kafka.consumer({
    groupId: `${topic}.reader.${randomUUID()}`,
    maxBytesPerPartition: modelsMaxMessageBytes,
    maxBytes: 2 * modelsMaxMessageBytes,
    maxWaitTimeInMs: 200,
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            fail(`${have} of ${location.chunks} pieces read in ${options.timeoutMs ?? 600_000} ms`),
          ),
        options.timeoutMs ?? 600_000,
      );
      const finish = (error?: Error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition: from, message }) => {
            if (from !== partition || have === location.chunks) return;
            const at = Number(message.offset);
            if (at >= location.offset) {
              const chunk = decodeChunk(codec, message.value);
              if (chunk && chunk.name === bundle.name && chunk.version === bundle.version) {
                const problem = misfit(chunk, location);
                if (problem) return finish(fail(problem));
                if (!seen[chunk.index]) {
                  seen[chunk.index] = 1;
                  have++;
                  file.set(chunk.bytes, chunk.offset);
                }
                if (have === location.chunks) return finish();
              }
            }
            if (at >= end.high - 1)
              finish(
                fail(
                  `pieces ${missing(seen).join(', ')} are not on the topic up to its log end ${end.high} (a newer version's pieces replace an older one's after ${topic}'s min.compaction.lag.ms)`,
                ),
              );
          },
        })
        .catch(finish);
      // Start at the first piece rather than the partition's beginning (after run(), as kafkajs wants it).
      consumer.seek({
        topic,
        partition,
        offset: String(Math.max(location.offset, end.low)),
      });
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  const digest = createHash('sha256').update(file).digest('hex');
  if (digest !== location.sha256)
    throw fail(`the pieces' SHA-256 is ${digest}, the announcement says ${location.sha256}`);
  options.logger?.info(
    `${what}: ${location.bytes} bytes read in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return file;
}

function decodeChunk(codec: SchemaCodec, value: Buffer | null): ModelChunkRecord | undefined {
  try {
    return codec.decodeValue<ModelChunkRecord>(value, { expect: 'ModelChunk' }).value;
  } catch {
    // Not a piece this reader understands (another writer's record): the pieces it needs are matched by name.
    return undefined;
  }
}

/** Why a piece of the announced bundle does not fit its location, or undefined. */
function misfit(chunk: ModelChunkRecord, location: ChunkLocation): string | undefined {
  if (chunk.count !== location.chunks || chunk.totalBytes !== location.bytes)
    return `piece ${chunk.index} belongs to a file of ${chunk.count} pieces and ${chunk.totalBytes} bytes, the announcement says ${location.chunks} and ${location.bytes}`;
  if (chunk.sha256 !== location.sha256)
    return `piece ${chunk.index} names SHA-256 ${chunk.sha256}, the announcement ${location.sha256}`;
  if (
    chunk.index < 0 ||
    chunk.index >= chunk.count ||
    chunk.offset < 0 ||
    chunk.offset + chunk.bytes.length > chunk.totalBytes
  )
    return `piece ${chunk.index} (bytes ${chunk.offset}..${chunk.offset + chunk.bytes.length}) does not fit a file of ${chunk.totalBytes} bytes`;
  return undefined;
}

function missing(seen: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < seen.length && out.length < 10; i++) if (!seen[i]) out.push(i);
  return out;
}
