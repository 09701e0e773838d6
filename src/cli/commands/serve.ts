// `tkg serve`: one scoring replica. Every input comes from Kafka — bundles from <prefix>.models, closed steps from
// <prefix>.snapshots (filters, terms, live evaluation), queries from <prefix>.queries — so a replica runs on any
// machine and in any start order. It serves the bundles announced under --model-name (default: the --model kind,
// what `tkg train --model` announces). With --publish-steps (ONE replica) it also publishes <prefix>.forecasts and
// <prefix>.evaluations as steps close. /metrics, /healthz, /readyz on TKG_METRICS_PORT. Wiring only: the logic is in
// src/serve (ServeReplica). With TKG_SHARD_SERVERS the replica is a front: the shard replicas (`tkg shard`) hold the
// bundles' rows and score them, this process holds the filters and terms and merges. Runs until SIGINT/SIGTERM.
// Exit codes: 0 ok, 1 failure, 2 usage.
import type { Command } from 'commander';
import { loadConfig, shardServerUrls } from '../../config/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { withRetries } from '../../kafka/retry.ts';
import { readinessFromChecks } from '../../metrics/server.ts';
import { codecFromConfig } from '../../kafka/schema-config.ts';
import { ServeReplica } from '../../serve/replica.ts';
import { openStageProcess } from '../stage-process.ts';

interface ServeFlags {
  group?: string;
  publishSteps?: boolean;
  dataset: string;
  metrics?: boolean;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description(
      'run a scoring replica: serve the bundles of <prefix>.models, answer <prefix>.queries on <prefix>.answers',
    )
    .option('--group <id>', 'consumer group of the scoring replicas (default <prefix>.scorers)')
    .option(
      '--publish-steps',
      'also publish <prefix>.forecasts and <prefix>.evaluations as steps close (enable on ONE replica)',
    )
    .option('--dataset <name>', 'dataset label of the evaluation records', 'live')
    .option('--no-metrics', 'do not start the metrics HTTP server')
    .action(async (flags: ServeFlags) => {
      const config = loadConfig();
      const shardServers = shardServerUrls(config);
      if (shardServers.length > 0 && config.scorerShards > 1)
        throw new ConfigError(
          'TKG_SCORER_SHARDS and TKG_SHARD_SERVERS: the shards are either worker threads of this replica or shard replicas, not both; unset one',
        );
      const stage = await openStageProcess('serve', config, { metrics: flags.metrics });
      const { kafka, logger, metrics } = stage;
      const modelName = config.modelName ?? config.model;
      await stage.createTopics({ snapshots: true });
      // forecasts and evaluations in TKG_OUTPUT_FORMAT (confluent: registered in the schema registry)
      const { codec, outputFormat } = await codecFromConfig(config, { logger });
      const replica = new ServeReplica({
        kafka,
        codec,
        format: outputFormat,
        topicPrefix: config.topicPrefix,
        modelName,
        groupId: flags.group,
        scorerThreads: config.scorerThreads,
        scorerShards: config.scorerShards,
        shardServers,
        maxBatch: config.scorerMaxBatch,
        maxWaitMs: config.scorerMaxWaitMs,
        publishSteps: flags.publishSteps ?? false,
        topK: config.topK,
        forecastEvidence: config.forecastEvidence,
        windowSize: config.windowSize,
        dataset: flags.dataset,
        metrics,
        logger,
      });
      await withRetries('starting the replica', () => replica.start(), { logger });
      await stage.serveMetrics(
        readinessFromChecks({
          bundleServing: () => replica.scorer.model !== undefined,
          queryConsumerJoined: () => replica.ready,
          snapshotsReadable: () => replica.error === undefined,
        }),
      );
      logger.info(
        { prefix: config.topicPrefix, model: modelName, brokers: stage.brokers.brokers },
        `scoring replica running; ${replica.waitingFor() ?? 'serving'}`,
      );
      await stage.untilStopped();
      await replica.stop();
      await stage.close();
    });
}
