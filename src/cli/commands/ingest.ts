// `tkg ingest`: run the ingest stage as its own process (<prefix>.facts -> validated, windowed snapshots in
// --state-dir; dead letters to <prefix>.facts.dlq, late facts to <prefix>.facts.late; /metrics on TKG_METRICS_PORT).
// Wiring only: the logic is in src/ingest (IngestPipeline). Runs until SIGINT/SIGTERM, or with --until-caught-up
// until it has read everything that was in the topic when it started. Exit codes: 0 ok, 1 failure, 2 usage.
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadConfig } from '../../config/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { resolveBrokerSource } from '../../kafka/brokers.ts';
import type { Producer } from '../../kafka/client.ts';
import { createKafkaClient, createProducer } from '../../kafka/client.ts';
import { withRetries } from '../../kafka/retry.ts';
import { codecFromConfig } from '../../kafka/schema-config.ts';
import { createMetrics } from '../../metrics/metrics.ts';
import { MetricsServer, readinessFromChecks } from '../../metrics/server.ts';
import { IngestPipeline, ingestOptionsFromConfig } from '../../kafka/fact-consumer.ts';
import {
  SnapshotPublisher,
  ensureSnapshotsTopic,
  previousSizesFromStore,
} from '../../kafka/snapshot-topic.ts';

interface IngestFlags {
  stateDir?: string;
  granularity?: string;
  origin?: string;
  foldAfter?: string;
  beforeOrigin?: string;
  allowedLateness?: string;
  idleTimeoutMs?: string;
  group?: string;
  topicPrefix?: string;
  checkpointEvery?: string;
  checkpointIntervalMs?: string;
  untilCaughtUp?: boolean;
  flushAtEnd?: boolean;
  metrics?: boolean;
  jsonSummary?: boolean;
  publishSnapshots?: boolean;
}

export function register(program: Command): void {
  program
    .command('ingest')
    .description(
      'consume <prefix>.facts into per-step snapshots (event time, watermarks, checkpoints, dead letters)',
    )
    .option(
      '--state-dir <path>',
      'checkpoint, vocabulary and closed snapshots (TKG_STATE_DIR, default .tkg/state)',
    )
    .option(
      '--granularity <g>',
      'step length for timestamped facts: 1y, 3mo, 60d, 10d, 6h, ... (TKG_GRANULARITY)',
    )
    .option(
      '--origin <time>',
      'start of step 0: ISO-8601, epoch ms, or first[+offset] e.g. first+200d (TKG_ORIGIN)',
    )
    .option(
      '--fold-after <time>',
      'events after this time go into the step containing it (TKG_FOLD_AFTER)',
    )
    .option(
      '--before-origin <mode>',
      'events before the origin: reject (dead letter) or skip (TKG_BEFORE_ORIGIN)',
    )
    .option(
      '--allowed-lateness <steps>',
      'steps a fact may lag its partition and still count (TKG_ALLOWED_LATENESS, default 0)',
    )
    .option(
      '--idle-timeout-ms <ms>',
      'a caught-up partition quiet this long stops holding the watermark; 0 = never (TKG_IDLE_TIMEOUT_MS)',
    )
    .option('--group <id>', 'consumer group (TKG_INGEST_GROUP, default <prefix>.ingest)')
    .option(
      '--topic-prefix <prefix>',
      'topics are <prefix>.facts, <prefix>.facts.dlq, <prefix>.facts.late (TKG_TOPIC_PREFIX)',
    )
    .option(
      '--checkpoint-every <n>',
      'checkpoint after n messages (TKG_CHECKPOINT_EVERY_MESSAGES, default 20000)',
    )
    .option(
      '--checkpoint-interval-ms <ms>',
      'checkpoint after this long with changes (TKG_CHECKPOINT_INTERVAL_MS, default 1000)',
    )
    .option(
      '--until-caught-up',
      'exit once everything in the topic at start has been read (a replay)',
    )
    .option(
      '--flush-at-end',
      'with --until-caught-up: close every open step before exiting (end of stream)',
    )
    .option('--no-metrics', 'do not serve /metrics (TKG_METRICS_PORT otherwise)')
    .option('--json-summary', 'print a JSON summary (counts, watermark, offsets) on exit')
    .option(
      '--no-publish-snapshots',
      'do not publish closed snapshots (with vocabulary deltas) to <prefix>.snapshots for `tkg train` on other machines',
    )
    .action(async (flags: IngestFlags) => {
      const config = loadConfig({
        stateDir: flags.stateDir,
        granularity: flags.granularity,
        origin: flags.origin,
        foldAfter: flags.foldAfter,
        beforeOrigin: flags.beforeOrigin,
        allowedLateness: flags.allowedLateness,
        idleTimeoutMs: flags.idleTimeoutMs,
        ingestGroup: flags.group,
        topicPrefix: flags.topicPrefix,
        checkpointEveryMessages: flags.checkpointEvery,
        checkpointIntervalMs: flags.checkpointIntervalMs,
      });
      if (flags.flushAtEnd && !flags.untilCaughtUp)
        throw new ConfigError(
          '--flush-at-end needs --until-caught-up (a stream that runs forever has no end to flush at)',
        );
      const logger = pino({ level: process.env.TKG_LOG_LEVEL ?? 'info' }, pino.destination(2));
      const brokers = await resolveBrokerSource(config, process.env, (line) => logger.info(line));
      const metrics = createMetrics({ defaultMetrics: true });
      // Producers' Confluent-framed facts: their schema ids are resolved from TKG_SCHEMA_REGISTRY_URL.
      const { codec, registry } = await codecFromConfig(config, { logger });
      if (registry) logger.info({ url: registry.url }, 'schema registry configured');
      const pipeline = new IngestPipeline({
        codec,
        registry,
        kafka: createKafkaClient({
          brokers: brokers.brokers,
          clientId: `${config.kafkaClientId}-ingest`,
          logger,
        }),
        ...ingestOptionsFromConfig(config),
        metrics,
        logger,
      });
      // Closed snapshots + vocabulary deltas to <prefix>.snapshots (src/pipeline), so `tkg train` can run anywhere.
      let snapshotPublisher: SnapshotPublisher | undefined;
      let snapshotProducer: Producer | undefined;
      if (flags.publishSnapshots !== false) {
        const kafka = createKafkaClient({
          brokers: brokers.brokers,
          clientId: `${config.kafkaClientId}-ingest-snapshots`,
          logger,
        });
        // Any stage may start first or together with the others: transient broker errors are retried.
        const retry = { logger };
        const admin = kafka.admin();
        await withRetries('connect the snapshots admin client', () => admin.connect(), retry);
        const topic = await withRetries(
          'create the snapshots topic',
          () => ensureSnapshotsTopic(admin, config.topicPrefix),
          retry,
        ).finally(() => admin.disconnect());
        const producer = createProducer(kafka);
        snapshotProducer = producer;
        await withRetries('connect the snapshots producer', () => producer.connect(), retry);
        snapshotPublisher = new SnapshotPublisher({
          producer: snapshotProducer,
          topic,
          previousSizesOf: (step) => previousSizesFromStore(pipeline.ingestState.store, step),
        });
        pipeline.onSnapshot((snapshot) =>
          snapshotPublisher?.publish(snapshot, pipeline.ingestState.vocabulary),
        );
      }
      pipeline.onSnapshot((snapshot) => {
        logger.info(
          {
            step: snapshot.step,
            facts: snapshot.triples.length / 3,
            entities: snapshot.numEntities,
          },
          'step closed',
        );
      });
      let started = false;
      const server =
        flags.metrics === false
          ? undefined
          : new MetricsServer({
              registry: metrics.registry,
              port: config.metricsPort,
              readiness: readinessFromChecks({ consumerStarted: () => started && !pipeline.error }),
            });
      if (server) {
        const { url } = await server.start();
        logger.info({ url }, 'metrics server listening');
      }
      let stopping: Promise<void> | undefined;
      const stop = () => (stopping ??= pipeline.stop());
      const onSignal = (signal: string) => {
        logger.info({ signal }, 'stopping ingest');
        void stop();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await pipeline.start();
        started = true;
        logger.info(
          {
            topic: pipeline.topics.facts,
            group: pipeline.groupId,
            stateDir: config.stateDir,
            resumed: pipeline.stats().restoredFromCheckpoint,
          },
          'ingest running',
        );
        if (flags.untilCaughtUp) {
          await pipeline.waitUntilCaughtUp();
          if (flags.flushAtEnd) await pipeline.flush();
          await stop();
        } else {
          await new Promise<void>((resolve) => {
            const poll = setInterval(() => {
              if (stopping || pipeline.error) {
                clearInterval(poll);
                resolve();
              }
            }, 200);
          });
          await stop();
        }
      } finally {
        await stop();
        await snapshotProducer?.disconnect().catch(() => undefined);
        await server?.stop();
        await brokers.release();
      }
      if (pipeline.error) throw pipeline.error;
      const summary = pipeline.stats();
      if (flags.jsonSummary) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else {
        process.stdout.write(
          `ingested ${summary.messages} messages: ${summary.factsAdded} new facts, ${summary.factsDuplicate} duplicates, ${summary.rejected} dead-lettered, ${summary.late} late; ${summary.stepsClosed} steps closed, watermark ${summary.watermark}\n`,
        );
      }
    });
}
