// The `<prefix>.models` topic (compacted; key: model name): publishing bundles as ModelAnnouncement records and
// following every announcement from the beginning (each follower in a throw-away group of its own, so every replica
// sees every bundle). An ONNX file over the inline limit goes first in pieces to `<prefix>.models.chunks`
// (model-chunks.ts) and the announcement carries its location. Owns: the Kafka side of bundles only — encoding with
// the codec, the consumer loop, handing records over one at a time in topic order. What a bundle means and how it is
// loaded is src/model and src/serve.
import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { bundleToAnnouncement, type ModelAnnouncement, type ModelBundle } from '../model/bundle.ts';
import type { SchemaCodec, WireFormat } from '../schemas/codec.ts';
import { DEFAULT_MODEL_MESSAGE_BYTES } from '../core/limits.ts';
import { chunkTopicOf, defaultChunkBytes, publishModelChunks } from './model-chunks.ts';
import { withRetries } from './retry.ts';
import { modelsMaxMessageBytes } from './topics.ts';

export interface AnnounceOptions {
  /** ONNX files larger than this go in pieces to the chunk topic (default 16 MiB). */
  inlineGraphBytes?: number;
  /** Size of one piece (default 4 MiB). */
  chunkBytes?: number;
}

/** The announce options for the largest model record a deployment allows (TKG_MODEL_MESSAGE_BYTES). */
export function announceOptionsFor(maxMessageBytes: number): AnnounceOptions {
  return {
    inlineGraphBytes: maxMessageBytes,
    chunkBytes: Math.min(defaultChunkBytes, maxMessageBytes),
  };
}

/** Publish a bundle (key: its name) on the models topic; a large ONNX file goes to its chunk topic first. */
export async function announceBundle(
  producer: Producer,
  codec: SchemaCodec,
  topic: string,
  bundle: ModelBundle,
  format: WireFormat = 'avro',
  options: AnnounceOptions = {},
): Promise<void> {
  const announcement = bundleToAnnouncement(bundle);
  const onnx = announcement.onnx;
  const chunked =
    onnx !== null && onnx.length > (options.inlineGraphBytes ?? DEFAULT_MODEL_MESSAGE_BYTES);
  const value = {
    ...announcement,
    onnx: onnx && !chunked ? Buffer.from(onnx) : null,
    location: chunked
      ? await publishModelChunks(producer, codec, chunkTopicOf(topic), bundle, onnx, {
          format,
          chunkBytes: options.chunkBytes,
        })
      : announcement.location,
  };
  await producer.send({
    topic,
    acks: -1,
    messages: [{ key: bundle.name, value: codec.encodeValue('ModelAnnouncement', value, format) }],
  });
}

/**
 * What the trainer calls to publish each bundle: announceBundle (Avro) under the deployment's model record limit
 * (TKG_MODEL_MESSAGE_BYTES), retried while the cluster answers with retriable errors.
 */
export function bundleAnnouncer(
  producer: Producer,
  codec: SchemaCodec,
  topic: string,
  maxMessageBytes: number,
  logger?: Logger,
): (bundle: ModelBundle) => Promise<void> {
  const options = announceOptionsFor(maxMessageBytes);
  return (bundle) =>
    withRetries(
      `announcing ${bundle.name} v${bundle.version}`,
      () => announceBundle(producer, codec, topic, bundle, 'avro', options),
      { logger },
    );
}

export interface ModelTopicFollowerOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  topic: string;
  /** Each decoded announcement, in topic order, one at a time. */
  onAnnouncement: (announcement: ModelAnnouncement) => Promise<void>;
  /** A record that does not decode (counted and logged by the caller; the follower goes on). */
  onCorrupt: (error: unknown) => void;
  logger?: Logger;
}

export class ModelTopicFollower {
  private readonly options: ModelTopicFollowerOptions;
  private consumer: Consumer | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: ModelTopicFollowerOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { kafka, topic, codec } = this.options;
    this.consumer = kafka.consumer({
      groupId: `${topic}.follower.${randomUUID()}`,
      maxBytesPerPartition: modelsMaxMessageBytes,
      maxBytes: 2 * modelsMaxMessageBytes,
      sessionTimeout: 30_000,
      maxWaitTimeInMs: 200,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        let announcement: ModelAnnouncement;
        try {
          announcement = codec.decodeValue<ModelAnnouncement>(message.value, {
            expect: 'ModelAnnouncement',
          }).value;
        } catch (error) {
          this.options.onCorrupt(error);
          return;
        }
        const work = this.chain.then(() => this.options.onAnnouncement(announcement));
        this.chain = work.catch(() => undefined);
        await work;
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
    this.consumer = undefined;
    await this.chain;
  }
}
