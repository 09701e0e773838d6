// `tkg serve`: run one scoring replica (tkg.models -> ONNX session; tkg.queries -> tkg.answers as one consumer group;
// optionally tkg.forecasts + tkg.evaluations as steps close; /metrics, /healthz, /readyz on TKG_METRICS_PORT).
// Wiring only: the logic is in src/serve (ServeReplica). Runs until SIGINT/SIGTERM. Exit codes: 0 ok, 1 failure, 2 usage.
import { join } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadConfig } from '../../config/config.ts';
import { resolveBrokerSource } from '../../kafka/brokers.ts';
import { createKafkaClient } from '../../kafka/client.ts';
import { ensureTopics } from '../../kafka/topics.ts';
import { createMetrics } from '../../metrics/metrics.ts';
import { MetricsServer, readinessFromChecks } from '../../metrics/server.ts';
import { SchemaCodec } from '../../schemas/codec.ts';
import { ServeReplica } from '../../serve/replica.ts';
import { SnapshotFollower } from '../../serve/snapshot-follower.ts';
import { ServingHistory } from '../../serve/history-terms.ts';
import {
  SnapshotTopicFollower,
  ensureSnapshotsTopic,
  snapshotsTopicName,
} from '../../kafka/snapshot-topic.ts';

interface ServeFlags {
  topicPrefix?: string;
  model?: string;
  group?: string;
  threads?: string;
  maxBatch?: string;
  maxWaitMs?: string;
  topK?: string;
  window?: string;
  stateDir?: string;
  publishSteps?: boolean;
  dataset?: string;
  metricsPort?: string;
  metrics?: boolean;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description(
      'run a scoring replica: load models from <prefix>.models, answer <prefix>.queries on <prefix>.answers',
    )
    .option(
      '--topic-prefix <p>',
      'topics are <p>.queries, <p>.answers, ... (TKG_TOPIC_PREFIX, default tkg)',
    )
    .option(
      '--model <name>',
      'model name (key on <prefix>.models) to serve (TKG_SERVE_MODEL_NAME, default nlsm)',
    )
    .option('--group <id>', 'consumer group of the scoring replicas (default <prefix>.scorers)')
    .option('--threads <n>', 'onnxruntime intra-op threads (TKG_SCORER_THREADS, default 1)')
    .option('--max-batch <n>', 'queries per onnxruntime run (TKG_SCORER_MAX_BATCH, default 64)')
    .option(
      '--max-wait-ms <ms>',
      'longest a query waits for its micro-batch (TKG_SCORER_MAX_WAIT_MS, default 1)',
    )
    .option(
      '--publish-steps',
      'follow closed snapshots (--state-dir): filters, <prefix>.forecasts, <prefix>.evaluations (enable on ONE replica)',
    )
    .option(
      '--state-dir <path>',
      'where `tkg ingest` writes closed snapshots, followed with --publish-steps (TKG_STATE_DIR)',
    )
    .option('--top-k <n>', 'objects per forecast (TKG_TOP_K, default 10)')
    .option(
      '--window <m>',
      'snapshots whose (subject, relation) pairs are forecast (TKG_WINDOW, default 5)',
    )
    .option('--dataset <name>', 'dataset label of the evaluation records', 'live')
    .option(
      '--metrics-port <port>',
      'port of /metrics, /healthz, /readyz (TKG_METRICS_PORT, default 9464)',
    )
    .option('--no-metrics', 'do not start the metrics HTTP server')
    .action(async (flags: ServeFlags) => {
      const config = loadConfig({
        topicPrefix: flags.topicPrefix,
        serveModelName: flags.model,
        scorerThreads: flags.threads,
        scorerMaxBatch: flags.maxBatch,
        scorerMaxWaitMs: flags.maxWaitMs,
        topK: flags.topK,
        windowSize: flags.window,
        stateDir: flags.stateDir,
        metricsPort: flags.metricsPort,
      });
      const logger = pino({ level: process.env.TKG_LOG_LEVEL ?? 'info' }, pino.destination(2));
      const brokers = await resolveBrokerSource(config, process.env, (line) => logger.info(line));
      const kafka = createKafkaClient({
        brokers: brokers.brokers,
        clientId: `${config.kafkaClientId}-serve`,
        logger,
      });
      const admin = kafka.admin();
      await admin.connect();
      await ensureTopics(admin, { prefix: config.topicPrefix, partitions: config.partitions });
      await admin.disconnect();
      const metrics = createMetrics({ defaultMetrics: true });
      // History term (src/pipeline): models such as recurrency / nlsm-h carry `history.*` parameters; the replica
      // adds the sparse term computed from closed snapshots (state dir with --publish-steps, else <prefix>.snapshots).
      const history = new ServingHistory();
      const replica = new ServeReplica({
        kafka,
        codec: SchemaCodec.load(),
        topicPrefix: config.topicPrefix,
        modelName: config.serveModelName,
        groupId: flags.group,
        scorerThreads: config.scorerThreads,
        maxBatch: config.scorerMaxBatch,
        maxWaitMs: config.scorerMaxWaitMs,
        publishSteps: flags.publishSteps ?? false,
        topK: config.topK,
        windowSize: config.windowSize,
        dataset: flags.dataset,
        metrics,
        logger,
        history,
        onModel: (_model, announcement) => history.setFromMetadata(announcement.metadata),
      });
      await replica.start();
      const follower = flags.publishSteps
        ? new SnapshotFollower({
            dir: join(config.stateDir, 'snapshots'),
            // Evaluate the step first, then let the history see it (the term must never see the answers).
            onSnapshot: async (snapshot) => {
              await replica.onStepClosed(snapshot);
              history.observe(snapshot);
            },
          })
        : undefined;
      follower?.start();
      const topicFollower = flags.publishSteps
        ? undefined
        : new SnapshotTopicFollower({
            kafka,
            topic: snapshotsTopicName(config.topicPrefix),
            onSnapshot: async (snapshot) => history.observe(snapshot),
          });
      if (topicFollower) {
        const topicAdmin = kafka.admin();
        await topicAdmin.connect();
        await ensureSnapshotsTopic(topicAdmin, config.topicPrefix).finally(() =>
          topicAdmin.disconnect(),
        );
        await topicFollower.start();
      }
      const server =
        flags.metrics === false
          ? undefined
          : new MetricsServer({
              registry: metrics.registry,
              port: config.metricsPort,
              readiness: readinessFromChecks({
                modelLoaded: () => replica.scorer.model !== undefined,
                consumerJoined: () => replica.ready,
              }),
            });
      if (server) logger.info({ url: (await server.start()).url }, 'metrics server listening');
      logger.info(
        { prefix: config.topicPrefix, model: config.serveModelName, brokers: brokers.brokers },
        'scoring replica running',
      );
      await new Promise<void>((resolve) => {
        const onSignal = (signal: string) => {
          logger.info({ signal }, 'stopping scoring replica');
          resolve();
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      await follower?.stop();
      await topicFollower?.stop();
      await server?.stop();
      await replica.stop();
      await brokers.release();
    });
}
