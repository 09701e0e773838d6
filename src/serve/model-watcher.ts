// Follows tkg.models (compacted) and swaps the scorer to every new model version of the served model name.
// Every replica reads ALL announcements (its own consumer group, from the beginning), so all replicas converge on the
// same version. Corrupt or incompatible announcements are rejected (tkg_models_rejected_total{reason}) and the old
// model keeps serving. Owns: announcement decoding, loading and the swap trigger. Must not import src/train or tfjs.
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, Producer } from '../kafka/client.ts';
import type { Logger } from 'pino';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { CodecError, type SchemaCodec, type WireFormat } from '../schemas/codec.ts';
import { ModelRejectedError, type ServingModel } from './model.ts';
import type { Scorer } from './scorer.ts';
import type { ModelAnnouncement } from '../model/bundle.ts';

export type { ModelAnnouncement };

/** Publish a model announcement (key: model name) on the models topic. */
export async function announceModel(
  producer: Producer,
  codec: SchemaCodec,
  topic: string,
  announcement: ModelAnnouncement,
  format: WireFormat = 'avro',
): Promise<void> {
  const value = {
    ...announcement,
    onnx: announcement.onnx ? Buffer.from(announcement.onnx) : null,
  };
  await producer.send({
    topic,
    messages: [
      { key: announcement.name, value: codec.encodeValue('ModelAnnouncement', value, format) },
    ],
  });
}

export interface ModelWatcherOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  scorer: Scorer;
  topic: string;
  /** Only announcements with this name (the compaction key) are served. */
  modelName: string;
  /** Consumer group; default unique per process (every replica must see every announcement). */
  groupId?: string;
  metrics?: TkgMetrics;
  logger?: Logger;
  /** Called after every successful swap (e.g. StepCoordinator.onModel). */
  onModel?: (model: ServingModel, announcement: ModelAnnouncement) => Promise<void> | void;
}

export class ModelWatcher {
  private readonly options: ModelWatcherOptions;
  private consumer: Consumer | undefined;
  private loading: Promise<unknown> = Promise.resolve();

  constructor(options: ModelWatcherOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { kafka, topic } = this.options;
    const groupId = this.options.groupId ?? `${topic}.watcher.${randomUUID()}`;
    this.consumer = kafka.consumer({
      groupId,
      maxBytesPerPartition: 64 * 1024 * 1024,
      maxBytes: 128 * 1024 * 1024,
      sessionTimeout: 30_000,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      eachMessage: async ({ message }) => {
        const work = this.loading.then(() => this.handle(message.value));
        this.loading = work.catch(() => undefined);
        await work;
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    this.consumer = undefined;
  }

  /** Decode, load and swap one announcement. Never throws: rejections are counted and logged. */
  async handle(value: Buffer | null): Promise<ServingModel | undefined> {
    const { codec, scorer, metrics, logger, modelName } = this.options;
    let announcement: ModelAnnouncement;
    try {
      announcement = codec.decodeValue<ModelAnnouncement>(value, {
        expect: 'ModelAnnouncement',
      }).value;
    } catch (error) {
      metrics?.modelsRejected.inc({ reason: 'corrupt' });
      logger?.warn({ err: error }, `model announcement rejected: ${(error as CodecError).message}`);
      return undefined;
    }
    if (announcement.name !== modelName) return undefined;
    const current = scorer.model;
    if (current && announcement.version <= current.version) {
      logger?.info(
        `model ${announcement.name} version ${announcement.version} ignored: version ${current.version} already serving`,
      );
      return undefined;
    }
    try {
      const bytes = await announcementBytes(announcement);
      const model = await scorer.prepare(bytes, {
        entities: announcement.entities,
        relations: announcement.relations,
      });
      const meta = model.metadata;
      if (
        meta.version !== announcement.version ||
        meta.step !== announcement.step ||
        meta.vocabularyHash !== announcement.vocabularyHash
      ) {
        await model.retire();
        throw new ModelRejectedError(
          `announcement says version ${announcement.version}, step ${announcement.step}, vocabulary ${announcement.vocabularyHash} ` +
            `but the ONNX metadata says version ${meta.version}, step ${meta.step}, vocabulary ${meta.vocabularyHash}`,
          'incompatible',
        );
      }
      scorer.swap(model);
      logger?.info(
        `serving model ${announcement.name} version ${meta.version} (step ${meta.step}, N=${meta.numEntities}, R=${meta.numRelations})`,
      );
      await this.options.onModel?.(model, announcement);
      return model;
    } catch (error) {
      const reason = error instanceof ModelRejectedError ? error.reason : 'corrupt';
      metrics?.modelsRejected.inc({ reason });
      logger?.warn(
        { err: error },
        `model ${announcement.name} version ${announcement.version} rejected (${reason}); version ${current?.version ?? 'none'} keeps serving`,
      );
      return undefined;
    }
  }
}

async function announcementBytes(announcement: ModelAnnouncement): Promise<Uint8Array> {
  if (announcement.onnx && announcement.onnx.length > 0) return announcement.onnx;
  if (announcement.location) {
    if (
      /^[a-z]+:\/\//i.test(announcement.location) &&
      !announcement.location.startsWith('file://')
    ) {
      throw new ModelRejectedError(
        `model location ${announcement.location}: only inline bytes, file paths and file:// URLs are supported`,
        'incompatible',
      );
    }
    try {
      return await readFile(announcement.location.replace(/^file:\/\//, ''));
    } catch (error) {
      throw new ModelRejectedError(
        `model location ${announcement.location} cannot be read: ${(error as Error).message}`,
        'corrupt',
        error,
      );
    }
  }
  throw new ModelRejectedError(
    `model announcement ${announcement.name} v${announcement.version} has neither onnx bytes nor a location`,
    'corrupt',
  );
}
