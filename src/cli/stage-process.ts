// What every long-running stage verb (`tkg serve`, `tkg shard`, `tkg train`, `tkg ingest`) sets up the same way: a
// pino logger on stderr, the brokers (KAFKA_BROKERS or the local broker), a Kafka client, its topics, fresh
// metrics, the /metrics /healthz /readyz server, and a wait for SIGINT / SIGTERM. Owns: that wiring only.
import { pino, type Logger } from 'pino';
import type { TkgConfig } from '../config/config.ts';
import { resolveBrokerSource, type ResolvedBrokers } from '../kafka/brokers.ts';
import { createKafkaClient, type Kafka } from '../kafka/client.ts';
import { createMetrics, type TkgMetrics } from '../metrics/metrics.ts';
import { MetricsServer, type ReadinessPredicate } from '../metrics/server.ts';
import { withRetries } from '../kafka/retry.ts';
import { ensureSnapshotsTopic } from '../kafka/snapshot-topic.ts';
import { ensureTopics, type TopicRole } from '../kafka/topics.ts';

export interface StageProcess {
  logger: Logger;
  brokers: ResolvedBrokers;
  kafka: Kafka;
  metrics: TkgMetrics;
  /**
   * Create the stage's topics (every role, or `roles`) and, with `snapshots`, <prefix>.snapshots, retrying while the
   * cluster answers with retriable errors.
   */
  createTopics(options?: { roles?: TopicRole[]; snapshots?: boolean }): Promise<void>;
  /** Start /metrics (unless disabled) with this readiness; logs its URL. */
  serveMetrics(readiness: ReadinessPredicate): Promise<void>;
  /** Resolves on SIGINT / SIGTERM, or when `stop()` is called. */
  untilStopped(): Promise<void>;
  stop(): void;
  /** Stop the metrics server and release the brokers. */
  close(): Promise<void>;
}

export async function openStageProcess(
  stage: string,
  config: TkgConfig,
  options: { metrics?: boolean } = {},
): Promise<StageProcess> {
  const logger = pino({ level: process.env.TKG_LOG_LEVEL ?? 'info' }, pino.destination(2));
  const brokers = await resolveBrokerSource(config, process.env, (line) => logger.info(line));
  const kafka = createKafkaClient({
    brokers: brokers.brokers,
    clientId: `${config.kafkaClientId}-${stage}`,
    logger,
  });
  const metrics = createMetrics({ defaultMetrics: true });
  let server: MetricsServer | undefined;
  let stopped!: () => void;
  const stopping = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = (signal: string) => {
    logger.info({ signal }, `stopping ${stage}`);
    stopped();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    logger,
    brokers,
    kafka,
    metrics,
    async createTopics({ roles, snapshots } = {}) {
      const admin = kafka.admin();
      return withRetries(
        'creating topics',
        async () => {
          await admin.connect();
          await ensureTopics(admin, {
            prefix: config.topicPrefix,
            partitions: config.partitions,
            roles,
          });
          if (snapshots) await ensureSnapshotsTopic(admin, config.topicPrefix);
        },
        { logger },
      ).finally(() => admin.disconnect());
    },
    async serveMetrics(readiness) {
      if (options.metrics === false) return;
      server = new MetricsServer({
        registry: metrics.registry,
        port: config.metricsPort,
        host: config.metricsHost,
        readiness,
      });
      logger.info({ url: (await server.start()).url }, 'metrics server listening');
    },
    untilStopped: () => stopping,
    stop: () => stopped(),
    async close() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await server?.stop();
      await brokers.release();
    },
  };
}
