// A scoring replica: the scorer, the bundle it serves (src/kafka/model-topic.ts -> BundleWatcher), the closed steps
// its filters, terms and live evaluation are built from (src/kafka/snapshot-topic.ts), queries (src/kafka/query-topic.ts
// -> tkg.answers), and optionally the step-driven publishers (tkg.forecasts, tkg.evaluations). Every input comes
// from Kafka, so a replica runs on any machine; every replica answers every filter mode, and two replicas on the same
// bundle and closed steps give the same answer. With shard replicas (shardServers) the replica is a front: it loads
// no ONNX file and scores through them (src/serve/remote-shard.ts). Owns: wiring those parts to topics and to each
// other.
// Must not import src/train or tfjs.
import type { Kafka, Producer } from '../kafka/client.ts';
import type { Logger } from 'pino';
import type { Snapshot } from '../core/types.ts';
import { createProducer } from '../kafka/client.ts';
import { isChunkLocation, readModelChunks } from '../kafka/model-chunks.ts';
import { ModelTopicFollower } from '../kafka/model-topic.ts';
import { QueryTopicConsumer } from '../kafka/query-topic.ts';
import { SnapshotTopicFollower, snapshotsTopicName } from '../kafka/snapshot-topic.ts';
import { topicNames } from '../kafka/topics.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { TermInputs } from '../model/term-inputs.ts';
import type { SchemaCodec, WireFormat } from '../schemas/codec.ts';
import { BundleWatcher } from './bundle-watcher.ts';
import type { ForecastRecord } from './forecasts.ts';
import type { StepEvaluation, StepMetricsRecord } from './live-eval.ts';
import type { ServingModel } from './model.ts';
import { answerQuery } from './queries.ts';
import { RemoteShardSet } from './remote-shard.ts';
import { Scorer } from './scorer.ts';
import { StepCoordinator } from './step-coordinator.ts';

export interface ServeReplicaOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  topicPrefix?: string;
  /** Bundle name (tkg.models key) to serve. */
  modelName: string;
  /** Consumer group of the scoring replicas on tkg.queries. */
  groupId?: string;
  scorerThreads?: number;
  /** Entity shards per served bundle (worker threads; src/serve/sharded-scorer.ts); default 1. */
  scorerShards?: number;
  /**
   * Shard replicas (`tkg shard`) that hold the bundles' shards, entry i the URLs of shard i's replicas: this replica
   * then reads no ONNX file and holds no row of Z; it waits until every shard holds an announced version and scores
   * through them.
   */
  shardServers?: ReadonlyArray<readonly string[]>;
  maxBatch?: number;
  maxWaitMs?: number;
  /** Publish forecasts and live evaluations when steps close (enable on ONE replica). */
  publishSteps?: boolean;
  /**
   * Read closed steps from <prefix>.snapshots (default true). `tkg run` hands them over in-process instead
   * (onStepClosed), in the same order.
   */
  followSnapshots?: boolean;
  topK?: number;
  /** Evidence items per forecast object (0 = none). */
  forecastEvidence?: number;
  windowSize?: number;
  dataset?: string;
  /** Wire format of forecasts and evaluations. */
  format?: WireFormat;
  metrics?: TkgMetrics;
  logger?: Logger;
  /** Called after each swap, before the step bookkeeping sees the bundle. */
  onModel?: (model: ServingModel) => void | Promise<void>;
}

export class ServeReplica {
  readonly scorer: Scorer;
  readonly terms = new TermInputs();
  private readonly options: ServeReplicaOptions;
  private readonly bundles: BundleWatcher;
  private readonly models: ModelTopicFollower;
  private readonly snapshots: SnapshotTopicFollower | undefined;
  private readonly queries: QueryTopicConsumer;
  private readonly coordinator: StepCoordinator;
  private producer: Producer | undefined;
  private steps: Promise<unknown> = Promise.resolve();

  constructor(options: ServeReplicaOptions) {
    this.options = options;
    const prefix = options.topicPrefix ?? 'tkg';
    const topics = topicNames(prefix);
    const { kafka, codec, metrics, logger } = options;
    const format = options.format ?? 'avro';
    this.scorer = new Scorer({
      intraOpThreads: options.scorerThreads,
      shards: options.scorerShards,
      maxBatch: options.maxBatch,
      maxWaitMs: options.maxWaitMs,
      terms: this.terms,
      metrics,
    });
    const publish = (topic: string, messages: Array<{ key: string; value: Buffer }>) =>
      this.producer!.send({ topic, messages }).then(() => undefined);
    this.coordinator = new StepCoordinator({
      scorer: this.scorer,
      topK: options.topK,
      forecastEvidence: options.forecastEvidence,
      windowSize: options.windowSize,
      dataset: options.dataset,
      metrics,
      publishForecasts: options.publishSteps
        ? (records: ForecastRecord[]) =>
            publish(
              topics.forecasts,
              records.map((r) => ({
                key: r.subject,
                value: codec.encodeValue('Forecast', r, format),
              })),
            )
        : undefined,
      publishEvaluations: options.publishSteps
        ? (records: StepMetricsRecord[]) =>
            publish(
              topics.evaluations,
              records.map((r) => ({
                key: `${r.dataset}/${r.step}`,
                value: codec.encodeValue('StepMetrics', r, format),
              })),
            )
        : undefined,
    });
    const remote =
      options.shardServers && options.shardServers.length > 0
        ? new RemoteShardSet(options.shardServers, { logger })
        : undefined;
    this.bundles = new BundleWatcher({
      scorer: this.scorer,
      modelName: options.modelName,
      topic: topics.models,
      terms: this.terms,
      metrics,
      logger,
      onModel: async (model) => {
        await options.onModel?.(model);
        await this.coordinator.onModel(model);
      },
      readLocation: (location, bundle) =>
        isChunkLocation(location)
          ? readModelChunks(kafka, codec, location, bundle, { logger })
          : undefined,
      load: remote ? (bundle) => remote.modelFor(bundle) : undefined,
    });
    this.models = new ModelTopicFollower({
      kafka,
      codec,
      topic: topics.models,
      logger,
      onAnnouncement: (announcement) => this.bundles.offer(announcement),
      onCorrupt: (error) => {
        metrics?.modelsRejected.inc({ reason: 'corrupt' });
        logger?.warn({ err: error }, `model announcement rejected: ${(error as Error).message}`);
      },
    });
    this.snapshots =
      options.followSnapshots === false
        ? undefined
        : new SnapshotTopicFollower({
            kafka,
            topic: snapshotsTopicName(prefix),
            onSnapshot: (snapshot) => this.onStepClosed(snapshot),
          });
    this.queries = new QueryTopicConsumer({
      kafka,
      codec,
      queriesTopic: topics.queries,
      answersTopic: topics.answers,
      deadLetterTopic: topics.queriesDlq,
      groupId: options.groupId ?? `${prefix}.scorers`,
      answer: (query) => answerQuery(this.scorer, query, () => this.bundles.waitingFor(), logger),
      metrics,
      logger,
    });
  }

  async start(): Promise<void> {
    this.producer = createProducer(this.options.kafka);
    await this.producer.connect();
    await this.snapshots?.start();
    await this.models.start();
    await this.queries.start();
  }

  /** A bundle serves and the query consumer joined its group. */
  get ready(): boolean {
    return this.scorer.model !== undefined && this.queries.isJoined;
  }

  /** Why no bundle serves yet (undefined when one does). */
  waitingFor(): string | undefined {
    return this.bundles.waitingFor();
  }

  /** The snapshots follower's fatal error, if any (a corrupt record or a vocabulary gap). */
  get error(): Error | undefined {
    return this.snapshots?.error;
  }

  /**
   * A closed step (in step order): the filters grow, the step is evaluated against the bundle that forecast it,
   * the next step's forecasts go out (when enabled), then the term inputs see it and a bundle waiting for it swaps in.
   */
  onStepClosed(snapshot: Snapshot): Promise<StepEvaluation | undefined> {
    const next = this.steps.then(async () => {
      const evaluation = await this.coordinator.onStepClosed(snapshot);
      this.terms.add(snapshot);
      await this.bundles.maybeSwap();
      return evaluation;
    });
    this.steps = next.catch(() => undefined);
    return next;
  }

  /** A closed step the replica's state must hold without evaluating it (rebuilding after a restart). */
  restoreStep(snapshot: Snapshot): Promise<void> {
    this.coordinator.restore(snapshot);
    this.terms.add(snapshot);
    return this.bundles.maybeSwap(); // a bundle that arrived first may have waited for this step
  }

  async stop(): Promise<void> {
    await this.queries.stop();
    await this.models.stop();
    await this.snapshots?.stop();
    await this.bundles.close();
    await this.coordinator.close();
    await this.scorer.close();
    await this.producer?.disconnect();
  }
}
