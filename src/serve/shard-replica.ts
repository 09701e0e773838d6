// A shard replica (`tkg shard`): follows <prefix>.models like a scoring replica, and for every announcement of the
// served name newer than what it holds reads the ONNX file (inline, or in pieces from the chunk topic), keeps shard
// `index` of `count` of it (src/serve/shard-server.ts) and answers the fronts (`tkg serve` with TKG_SHARD_SERVERS)
// over HTTP. It needs no closed steps: filters and terms stay in the front. Rejected bundles are counted
// (tkg_models_rejected_total) and the versions held keep serving.
// Owns: wiring the models topic to the ShardServer. Must not import src/train or tfjs.
import type { Logger } from 'pino';
import type { Kafka } from '../kafka/client.ts';
import { isChunkLocation, readModelChunks } from '../kafka/model-chunks.ts';
import { ModelTopicFollower } from '../kafka/model-topic.ts';
import { topicNames } from '../kafka/topics.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { bundleFromAnnouncement, type ModelAnnouncement } from '../model/bundle.ts';
import type { SchemaCodec } from '../schemas/codec.ts';
import { graphBytes } from './bundle-watcher.ts';
import { ModelRejectedError } from './model.ts';
import { ShardServer } from './shard-server.ts';

export interface ShardReplicaOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  topicPrefix?: string;
  modelName: string;
  index: number;
  count: number;
  intraOpThreads?: number;
  metrics?: TkgMetrics;
  logger?: Logger;
}

export class ShardReplica {
  readonly server: ShardServer;
  private readonly models: ModelTopicFollower;

  constructor(private readonly options: ShardReplicaOptions) {
    const { kafka, codec, metrics, logger } = options;
    this.server = new ShardServer({
      index: options.index,
      count: options.count,
      intraOpThreads: options.intraOpThreads,
      metrics,
      logger,
    });
    this.models = new ModelTopicFollower({
      kafka,
      codec,
      topic: topicNames(options.topicPrefix ?? 'tkg').models,
      logger,
      onAnnouncement: (announcement) => this.offer(announcement),
      onCorrupt: (error) => {
        metrics?.modelsRejected.inc({ reason: 'corrupt' });
        logger?.warn({ err: error }, `model announcement rejected: ${(error as Error).message}`);
      },
    });
  }

  /** Start answering on host:port, then follow the models topic; resolves with the URL fronts list. */
  async start(port: number, host?: string): Promise<{ url: string }> {
    const listening = await this.server.listen(port, host);
    await this.models.start();
    return listening;
  }

  /** At least one version is held. */
  get ready(): boolean {
    return this.server.list().length > 0;
  }

  async stop(): Promise<void> {
    await this.models.stop();
    await this.server.close();
  }

  private async offer(announcement: ModelAnnouncement): Promise<void> {
    const { kafka, codec, metrics, logger, modelName, index, count } = this.options;
    if (announcement.name !== modelName || announcement.version <= this.server.newest(modelName))
      return;
    try {
      const bundle = bundleFromAnnouncement(announcement);
      const started = Date.now();
      const bytes = await graphBytes(bundle, (location) =>
        isChunkLocation(location)
          ? readModelChunks(kafka, codec, location, bundle, { logger })
          : undefined,
      );
      const held = await this.server.load(bundle, bytes);
      const m = held.metadata;
      metrics?.modelVersion.set(m.version);
      metrics?.modelStep.set(m.step);
      logger?.info(
        `holding shard ${index} of ${count} of ${bundle.name} v${bundle.version} (entities ${m.shard?.map.bounds[index]}..${m.shard?.map.bounds[index + 1]} of ${m.numEntities}, step ${m.step}) after ${Date.now() - started} ms`,
      );
    } catch (error) {
      const reason = error instanceof ModelRejectedError ? error.reason : 'incompatible';
      metrics?.modelsRejected.inc({ reason });
      logger?.warn(
        { err: error },
        `model ${announcement.name} version ${announcement.version} rejected (${reason}): ${(error as Error).message}`,
      );
    }
  }
}
