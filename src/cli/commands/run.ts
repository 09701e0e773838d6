// `tkg run` (and `npm run demo`): the whole product in one process on the embedded broker (or KAFKA_BROKERS):
// replay a dataset into <prefix>.facts, ingest, window, train, export, serve, evaluate live; one line per closed
// step and a final quality table; /metrics on TKG_METRICS_PORT. State stays in --state-dir: running the same
// command again resumes (a finished run just prints its table). Wiring only: the logic is in src/pipeline.
// Exit codes: 0 ok (also after Ctrl-C: the run is resumable), 1 failure, 2 usage / configuration.
import { rmSync } from 'node:fs';
import type { Command } from 'commander';
import { pino } from 'pino';
import { envNames, loadConfig } from '../../config/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { resolveBrokerSource } from '../../kafka/brokers.ts';
import { createKafkaClient } from '../../kafka/client.ts';
import { localBrokerStatus, stopLocalBroker } from '../../kafka/local-broker.ts';
import { createMetrics } from '../../metrics/metrics.ts';
import { MetricsServer, readinessFromChecks } from '../../metrics/server.ts';
import { formatQualityTable } from '../../pipeline/evaluation-log.ts';
import { RunPipeline, type StepLine } from '../../pipeline/run-pipeline.ts';
import { liveModelKinds } from '../../train/live/index.ts';

interface RunFlags {
  dataset?: string;
  model?: string;
  rate?: string;
  replaySteps?: string;
  fromStep?: string;
  limit?: string;
  queryRate?: string;
  stateDir?: string;
  topicPrefix?: string;
  partitions?: string;
  metricsPort?: string;
  metrics?: boolean;
  epochs?: string;
  fresh?: boolean;
  keepBroker?: boolean;
  json?: boolean;
  quiet?: boolean;
}

const fixed = (value: number | undefined, digits: number, width: number) =>
  (value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits)).padStart(width);

/** Pure: the live line of one step. */
export function formatStepLine(line: StepLine): string {
  const mrr = line.mrr
    ? `MRR raw ${fixed(line.mrr.raw, 2, 6)} ta ${fixed(line.mrr.timeAware, 2, 6)}` +
      (line.gain
        ? ` (vs nlsm ${line.gain.timeAware >= 0 ? '+' : ''}${line.gain.timeAware.toFixed(2)})`
        : '')
    : 'MRR raw      - ta      -';
  const rt = line.roundTripP50Ms === null ? '' : ` rt ${line.roundTripP50Ms.toFixed(0)} ms`;
  return (
    `step ${String(line.step).padStart(5)} | facts ${String(line.facts).padStart(6)} | entities ${String(line.entities).padStart(6)} | loss ${fixed(line.loss, 4, 9)} | ${mrr} | ` +
    `${fixed(line.queriesPerSecond, 1, 5)} q/s${rt} | lag ${String(line.lag).padStart(6)} | train ${line.trainSeconds.toFixed(2)} s`
  );
}

function integerFlag(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected an integer >= ${min}`);
  return number;
}

export function register(program: Command): void {
  program
    .command('run')
    .description(
      'the whole pipeline in one process: replay a dataset -> ingest -> train -> ONNX -> serve, live MRR per step (npm run demo)',
    )
    .option(
      '--dataset <name|path>',
      'dataset to replay: yago (shipped), wiki, enron, uci, a RE-NET dir or a fact file (TKG_DATASET, default yago)',
    )
    .option('--model <kind>', `${liveModelKinds.join(', ')} (TKG_MODEL, default nlsm-r)`)
    .option(
      '--rate <facts/s>',
      'replay speed into <prefix>.facts; 0 = as fast as possible (TKG_REPLAY_RATE, default 0)',
    )
    .option(
      '--replay-steps <n>',
      'replay only n steps, e.g. 12 for a quick look (TKG_REPLAY_STEPS, default all)',
    )
    .option(
      '--from-step <n>',
      "start n steps after the dataset's first step (TKG_REPLAY_FROM_STEP, default 0)",
    )
    .option('--limit <n>', 'replay at most n facts')
    .option(
      '--query-rate <q/s>',
      'demo queries per second on <prefix>.queries; 0 = none (TKG_QUERY_RATE, default 20)',
    )
    .option(
      '--epochs <n>',
      "nlsm/bas/nlsm-h/nlsm-r: epochs per window update (default: the trainer's; nlsm-h and nlsm-r in tkg run: 4)",
    )
    .option(
      '--state-dir <path>',
      'ingest, model and run state; the same command resumes from it (TKG_STATE_DIR, default .tkg/state)',
    )
    .option('--fresh', 'delete --state-dir first and start over')
    .option(
      '--topic-prefix <p>',
      'topics are <p>.facts, <p>.models, ... (TKG_TOPIC_PREFIX, default tkg)',
    )
    .option(
      '--partitions <n>',
      'partitions of created topics; tkg run defaults to 1 so a replay is deterministic (TKG_PARTITIONS)',
    )
    .option(
      '--metrics-port <port>',
      '/metrics, /healthz, /readyz; 0 = any free port (TKG_METRICS_PORT, default 9464)',
    )
    .option('--no-metrics', 'do not serve /metrics')
    .option(
      '--keep-broker',
      'leave the embedded broker running at the end (when tkg run started it)',
    )
    .option(
      '--json',
      'print the final result (quality table, counts, seconds) as JSON on stdout; live lines go to stderr',
    )
    .option('--quiet', 'no per-step lines')
    .action(async (flags: RunFlags) => {
      const env = process.env;
      const config = loadConfig({
        replayDataset: flags.dataset,
        model: flags.model,
        replayRate: flags.rate,
        replaySteps: flags.replaySteps,
        replayFromStep: flags.fromStep,
        queryRate: flags.queryRate,
        stateDir: flags.stateDir,
        topicPrefix: flags.topicPrefix,
        // One partition unless asked otherwise: entity ids and step closes are then the same on every run.
        partitions: flags.partitions ?? (env[envNames.partitions] ? undefined : 1),
        metricsPort: flags.metricsPort,
      });
      const limit = integerFlag('--limit', flags.limit, 1);
      const epochs = integerFlag('--epochs', flags.epochs, 1);
      const out = (line: string) =>
        (flags.json ? process.stderr : process.stdout).write(`${line}\n`);
      const note = (line: string) => process.stderr.write(`${line}\n`);
      const logger = pino({ level: env.TKG_LOG_LEVEL ?? 'warn' }, pino.destination(2));
      if (flags.fresh) rmSync(config.stateDir, { recursive: true, force: true });

      const wasRunning = config.kafkaBrokers
        ? true
        : (await localBrokerStatus(config.brokerDir)).running;
      if (!config.kafkaBrokers && !wasRunning)
        note(
          `no KAFKA_BROKERS: starting the embedded Kafka broker in ${config.brokerDir} (first start formats its storage)`,
        );
      const brokers = await resolveBrokerSource(config, env, note);
      const startedBroker = brokers.source === 'local' && !wasRunning;
      note(
        `brokers ${brokers.brokers.join(',')} (${brokers.source}${startedBroker ? ', started by tkg run' : ''}); state in ${config.stateDir}`,
      );
      const metrics = createMetrics({ defaultMetrics: true });
      const kafka = createKafkaClient({
        brokers: brokers.brokers,
        clientId: `${config.kafkaClientId}-run`,
        logger,
      });
      const pipeline = new RunPipeline({
        config,
        kafka,
        brokerSource: brokers.source,
        dataset: config.replayDataset,
        model: config.model,
        rate: config.replayRate,
        fromStep: config.replayFromStep === 0 ? undefined : config.replayFromStep,
        replaySteps: config.replaySteps,
        limit,
        queryRate: config.queryRate,
        epochsPerWindow: epochs,
        selectEvery: config.recurrencySelectEvery,
        modelLoadTimeoutMs: config.modelLoadTimeoutMs,
        metrics,
        logger,
        onLog: note,
        onStep: flags.quiet ? undefined : (line) => out(formatStepLine(line)),
      });
      let ready = false;
      const server =
        flags.metrics === false
          ? undefined
          : new MetricsServer({
              registry: metrics.registry,
              port: config.metricsPort,
              host: config.metricsHost,
              readiness: readinessFromChecks({ pipelineRunning: () => ready }),
            });
      let signals = 0;
      const onSignal = (signal: string) => {
        signals++;
        if (signals > 1) {
          note(`${signal} again: exiting now (state is resumable)`);
          process.exit(130);
        }
        note(`${signal}: stopping after the current step (run the same command again to resume)`);
        pipeline.stop();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        if (server) note(`metrics on ${(await server.start()).url}/metrics`);
        ready = true;
        note(
          `replaying ${config.replayDataset} with model ${config.model}${config.replaySteps ? `, ${config.replaySteps} steps` : ''}${config.replayRate > 0 ? ` at ${config.replayRate} facts/s` : ''}`,
        );
        const result = await pipeline.run();
        if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else {
          out('');
          out(formatQualityTable(result.table));
          out('');
          out(
            `${result.stopped ? 'stopped' : 'done'} in ${result.seconds.toFixed(1)} s: ${result.stepsProcessed} steps this run` +
              (result.resumedFromStep === null
                ? ''
                : ` (resumed after step ${result.resumedFromStep})`) +
              `, ${result.ingest.messages} facts ingested, ${result.queries.answered} demo queries answered; state kept in ${config.stateDir}`,
          );
        }
      } finally {
        ready = false;
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await server?.stop();
        await brokers.release();
        if (startedBroker && !flags.keepBroker) {
          note('stopping the embedded broker (its data stays in ' + config.brokerDir + ')');
          await stopLocalBroker(config.brokerDir);
        }
      }
    });
}
