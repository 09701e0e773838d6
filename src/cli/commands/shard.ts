// `tkg shard`: one shard replica. Follows <prefix>.models, holds shard TKG_SHARD_INDEX of TKG_SHARD_COUNT of every
// bundle announced under --model-name (default: the --model kind), and answers the fronts (`tkg serve` with
// TKG_SHARD_SERVERS) on TKG_SHARD_HOST:TKG_SHARD_PORT. /metrics, /healthz, /readyz on TKG_METRICS_PORT (ready once
// it holds a version). Wiring only: the logic is in src/serve (ShardReplica). Runs until SIGINT/SIGTERM.
// Exit codes: 0 ok, 1 failure, 2 usage.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { withRetries } from '../../kafka/retry.ts';
import { readinessFromChecks } from '../../metrics/server.ts';
import { codecFromConfig } from '../../kafka/schema-config.ts';
import { ShardReplica } from '../../serve/shard-replica.ts';
import { openStageProcess } from '../stage-process.ts';

export function register(program: Command): void {
  program
    .command('shard')
    .description(
      'run a shard replica: hold shard TKG_SHARD_INDEX of TKG_SHARD_COUNT of each bundle, score it for the fronts (tkg serve with TKG_SHARD_SERVERS)',
    )
    .option('--no-metrics', 'do not start the metrics HTTP server')
    .action(async (flags: { metrics?: boolean }) => {
      const config = loadConfig();
      if (config.shardIndex >= config.shardCount)
        throw new ConfigError(
          `TKG_SHARD_INDEX: ${config.shardIndex} is not below TKG_SHARD_COUNT ${config.shardCount}; shards are numbered 0..${config.shardCount - 1}`,
        );
      const stage = await openStageProcess('shard', config, { metrics: flags.metrics });
      const { kafka, logger, metrics } = stage;
      const modelName = config.modelName ?? config.model;
      await stage.createTopics();
      const { codec } = await codecFromConfig(config, { logger });
      const replica = new ShardReplica({
        kafka,
        codec,
        topicPrefix: config.topicPrefix,
        modelName,
        index: config.shardIndex,
        count: config.shardCount,
        intraOpThreads: config.scorerThreads,
        metrics,
        logger,
      });
      const { url } = await withRetries(
        'starting the shard replica',
        () => replica.start(config.shardPort, config.shardHost),
        { logger },
      );
      await stage.serveMetrics(readinessFromChecks({ shardHeld: () => replica.ready }));
      logger.info(
        { url, shard: config.shardIndex, of: config.shardCount, model: modelName },
        `shard replica listening on ${url}`,
      );
      await stage.untilStopped();
      await replica.stop();
      await stage.close();
    });
}
