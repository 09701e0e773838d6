// A scoring replica: scorer + model watcher (tkg.models) + query service (tkg.queries -> tkg.answers), and optionally
// the step-driven publishers (tkg.forecasts, tkg.evaluations) fed with closed snapshots.
// Owns: wiring those parts to topics and to each other. Must not import src/train or tfjs.
import type { Kafka, Producer } from '../kafka/client.ts';
import type { Logger } from 'pino';
import type { Snapshot } from '../core/types.ts';
import { createProducer } from '../kafka/client.ts';
import { topicNames } from '../kafka/topics.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import type { SchemaCodec, WireFormat } from '../schemas/codec.ts';
import type { ForecastRecord } from './forecasts.ts';
import type { StepEvaluation, StepMetricsRecord } from './live-eval.ts';
import { ModelWatcher, type ModelAnnouncement } from './model-watcher.ts';
import type { ServingModel } from './model.ts';
import { QueryService } from './query-service.ts';
import { Scorer, type HistoryTermProvider } from './scorer.ts';
import { StepCoordinator } from './step-coordinator.ts';

export interface ServeReplicaOptions {
  kafka: Kafka;
  codec: SchemaCodec;
  topicPrefix?: string;
  /** Model name (tkg.models key) to serve. */
  modelName?: string;
  /** Consumer group of the scoring replicas on tkg.queries. */
  groupId?: string;
  scorerThreads?: number;
  maxBatch?: number;
  maxWaitMs?: number;
  /** Publish forecasts and live evaluations when steps close (enable on ONE replica). */
  publishSteps?: boolean;
  topK?: number;
  windowSize?: number;
  dataset?: string;
  /** Wire format of forecasts and evaluations. */
  format?: WireFormat;
  history?: HistoryTermProvider;
  metrics?: TkgMetrics;
  logger?: Logger;
  /** Called after each swap, before the step bookkeeping sees the model (e.g. to switch the history term's parameters). */
  onModel?: (model: ServingModel, announcement: ModelAnnouncement) => void | Promise<void>;
}

export class ServeReplica {
  readonly scorer: Scorer;
  private readonly options: ServeReplicaOptions;
  private readonly watcher: ModelWatcher;
  private readonly queries: QueryService;
  private readonly coordinator: StepCoordinator;
  private producer: Producer | undefined;

  constructor(options: ServeReplicaOptions) {
    this.options = options;
    const topics = topicNames(options.topicPrefix ?? 'tkg');
    const { kafka, codec, metrics, logger } = options;
    const format = options.format ?? 'avro';
    this.scorer = new Scorer({
      intraOpThreads: options.scorerThreads,
      maxBatch: options.maxBatch,
      maxWaitMs: options.maxWaitMs,
      history: options.history,
      metrics,
    });
    const publish = (topic: string, messages: Array<{ key: string; value: Buffer }>) =>
      this.producer!.send({ topic, messages }).then(() => undefined);
    this.coordinator = new StepCoordinator({
      scorer: this.scorer,
      topK: options.topK,
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
    this.watcher = new ModelWatcher({
      kafka,
      codec,
      scorer: this.scorer,
      topic: topics.models,
      modelName: options.modelName ?? 'nlsm',
      metrics,
      logger,
      onModel: async (model, announcement) => {
        await options.onModel?.(model, announcement);
        await this.coordinator.onModel(model);
      },
    });
    this.queries = new QueryService({
      kafka,
      codec,
      scorer: this.scorer,
      queriesTopic: topics.queries,
      answersTopic: topics.answers,
      groupId: options.groupId ?? `${options.topicPrefix ?? 'tkg'}.scorers`,
      metrics,
      logger,
    });
  }

  async start(): Promise<void> {
    this.producer = createProducer(this.options.kafka);
    await this.producer.connect();
    await this.watcher.start();
    await this.queries.start();
  }

  /** Model loaded and query consumer joined. */
  get ready(): boolean {
    return this.scorer.model !== undefined && this.queries.isJoined;
  }

  /** A step closed: grow the filters, evaluate it live, publish the next step's forecasts (when enabled). */
  onStepClosed(snapshot: Snapshot): Promise<StepEvaluation | undefined> {
    return this.coordinator.onStepClosed(snapshot);
  }

  async stop(): Promise<void> {
    await this.queries.stop();
    await this.watcher.stop();
    await this.coordinator.close();
    await this.scorer.close();
    await this.producer?.disconnect();
  }
}
