// `tkg train`: the train stage as its own process. Follows closed snapshots — from `<prefix>.snapshots` (what
// `tkg ingest` publishes, so it works on any machine of the cluster; default) or from an ingest state directory
// (`--source state`, same machine) — trains the model on each closed step, checkpoints, exports the next step's
// ONNX scorer and announces it on `<prefix>.models`; /metrics on TKG_METRICS_PORT. Run ONE trainer per model name.
// Wiring only: the logic is in src/pipeline (TrainerStage, live models, snapshot topic). Exit: 0 ok, 1 failure, 2 usage.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadConfig } from '../../config/config.ts';
import type { Snapshot } from '../../core/types.ts';
import { ConfigError } from '../../core/errors.ts';
import { resolveBrokerSource } from '../../kafka/brokers.ts';
import { createKafkaClient, createProducer } from '../../kafka/client.ts';
import { ensureTopics, topicNames } from '../../kafka/topics.ts';
import { createMetrics } from '../../metrics/metrics.ts';
import { MetricsServer, readinessFromChecks } from '../../metrics/server.ts';
import { createLiveModel } from '../../train/live-models.ts';
import {
  ensureSnapshotsTopic,
  SnapshotTopicFollower,
  type NamedVocabulary,
} from '../../kafka/snapshot-topic.ts';
import { TrainerStage, type TrainedStep } from '../../train/stage.ts';
import { SchemaCodec } from '../../schemas/codec.ts';
import { announceModel } from '../../serve/model-watcher.ts';
import { SnapshotFollower } from '../../serve/snapshot-follower.ts';
import { SnapshotStore } from '../../window/snapshot-store.ts';

interface TrainFlags {
  model?: string;
  name?: string;
  source: string;
  ingestStateDir?: string;
  stateDir?: string;
  topicPrefix?: string;
  epochs?: string;
  metricsPort?: string;
  metrics?: boolean;
  untilStep?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('train')
    .description(
      'train on closed snapshots as they arrive, export ONNX and announce each model on <prefix>.models',
    )
    .option('--model <kind>', 'recurrency, nlsm or bas (TKG_MODEL, default recurrency)')
    .option(
      '--name <name>',
      'announcement key on <prefix>.models, what `tkg serve --model` serves (default: the model kind)',
    )
    .option(
      '--source <source>',
      'topic: follow <prefix>.snapshots (any machine); state: follow --ingest-state-dir/snapshots (same machine)',
      'topic',
    )
    .option(
      '--ingest-state-dir <path>',
      'with --source state: the state directory of `tkg ingest` (default TKG_STATE_DIR)',
    )
    .option(
      '--state-dir <path>',
      'trainer checkpoints go to <path>/train (TKG_STATE_DIR, default .tkg/state)',
    )
    .option(
      '--topic-prefix <p>',
      'topics are <p>.snapshots, <p>.models (TKG_TOPIC_PREFIX, default tkg)',
    )
    .option('--epochs <n>', "nlsm/bas: epochs per window update (default: the trainer's)")
    .option('--until-step <n>', 'exit after training on this step (a bounded run, e.g. in tests)')
    .option('--metrics-port <port>', '/metrics, /healthz, /readyz (TKG_METRICS_PORT, default 9464)')
    .option('--no-metrics', 'do not serve /metrics')
    .option('--json', 'one JSON line per trained step on stdout')
    .action(async (flags: TrainFlags) => {
      const config = loadConfig({
        model: flags.model,
        stateDir: flags.stateDir,
        topicPrefix: flags.topicPrefix,
        metricsPort: flags.metricsPort,
      });
      if (flags.source !== 'topic' && flags.source !== 'state')
        throw new ConfigError(`--source ${JSON.stringify(flags.source)}: use topic or state`);
      const untilStep = flags.untilStep === undefined ? undefined : Number(flags.untilStep);
      if (untilStep !== undefined && !Number.isInteger(untilStep))
        throw new ConfigError(
          `--until-step ${JSON.stringify(flags.untilStep)}: expected an integer`,
        );
      const epochs = flags.epochs === undefined ? undefined : Number(flags.epochs);
      if (epochs !== undefined && !(Number.isInteger(epochs) && epochs >= 1))
        throw new ConfigError(`--epochs ${JSON.stringify(flags.epochs)}: expected an integer >= 1`);
      const logger = pino({ level: process.env.TKG_LOG_LEVEL ?? 'info' }, pino.destination(2));
      const brokers = await resolveBrokerSource(config, process.env, (line) => logger.info(line));
      const kafka = createKafkaClient({
        brokers: brokers.brokers,
        clientId: `${config.kafkaClientId}-train`,
        logger,
      });
      const topics = topicNames(config.topicPrefix);
      const admin = kafka.admin();
      await admin.connect();
      await ensureTopics(admin, {
        prefix: config.topicPrefix,
        partitions: config.partitions,
        roles: ['models'],
      });
      const snapshotsTopic = await ensureSnapshotsTopic(admin, config.topicPrefix);
      await admin.disconnect();

      const metrics = createMetrics({ defaultMetrics: true });
      const codec = SchemaCodec.load();
      const producer = createProducer(kafka);
      await producer.connect();
      const trainDir = join(config.stateDir, 'train');
      const model = await createLiveModel({
        kind: config.model,
        dir: trainDir,
        seed: config.seed,
        K: config.K,
        windowSize: config.windowSize,
        learningRate: config.learningRate,
        epochsPerWindow: epochs,
        selectEvery: config.recurrencySelectEvery,
        onProgress: (line) => logger.info(line),
        onNanRestore: () => metrics.trainNanRestores.inc(),
      });
      const stage = new TrainerStage({
        model,
        modelName: flags.name ?? config.model,
        dir: trainDir,
        metrics,
        setModelGauges: true,
        announce: (announcement) => announceModel(producer, codec, topics.models, announcement),
      });
      const report = (trained: TrainedStep | undefined) => {
        if (!trained) return;
        const line = {
          step: trained.step,
          forecastStep: trained.forecastStep,
          version: trained.version,
          trainSeconds: trained.trainSeconds,
          loss: trained.loss ?? null,
          elbo: trained.elbo ?? null,
          onnxBytes: trained.onnxBytes,
        };
        if (flags.json) process.stdout.write(`${JSON.stringify(line)}\n`);
        else logger.info(line, 'model announced');
      };

      let finished!: () => void;
      const done = new Promise<void>((resolve) => (finished = resolve));
      let failure: unknown;
      // Covered steps (<= the checkpoint) rebuild the model's in-memory history, newer ones are trained on.
      const covered: Snapshot[] = [];
      let resumed = !Number.isFinite(stage.lastStep);
      const handle = async (snapshot: Snapshot, vocabulary: NamedVocabulary) => {
        try {
          if (untilStep !== undefined && snapshot.step > untilStep) return; // bounded run: done already
          if (snapshot.step <= stage.lastStep) {
            covered.push(snapshot);
            return;
          }
          if (!resumed) {
            resumed = true;
            report(await stage.resume(covered, vocabulary));
            covered.length = 0;
          }
          report(await stage.onSnapshot(snapshot, vocabulary));
          if (untilStep !== undefined && snapshot.step >= untilStep) finished();
        } catch (error) {
          failure = error;
          finished();
        }
      };

      let stopFollowing: () => Promise<void>;
      if (flags.source === 'topic') {
        const follower = new SnapshotTopicFollower({
          kafka,
          topic: snapshotsTopic,
          onSnapshot: handle,
        });
        await follower.start();
        stopFollowing = () => follower.stop();
        logger.info(
          {
            topic: snapshotsTopic,
            model: config.model,
            resumeAfter: Number.isFinite(stage.lastStep) ? stage.lastStep : null,
          },
          'trainer following snapshots',
        );
      } else {
        const ingestDir = flags.ingestStateDir ?? config.stateDir;
        const store = new SnapshotStore(join(ingestDir, 'snapshots'));
        const vocabularyDir = join(ingestDir, 'vocabulary');
        const follower = new SnapshotFollower({
          dir: store.dir,
          // The ingest process appends to the vocabulary logs; re-read them for each step (names only grow).
          onSnapshot: async (snapshot) =>
            handle(snapshot, await readVocabulary(vocabularyDir, snapshot)),
        });
        follower.start();
        stopFollowing = () => follower.stop();
        logger.info(
          { dir: store.dir, model: config.model },
          'trainer following the ingest state directory',
        );
      }
      const server =
        flags.metrics === false
          ? undefined
          : new MetricsServer({
              registry: metrics.registry,
              port: config.metricsPort,
              host: config.metricsHost,
              readiness: readinessFromChecks({ following: () => failure === undefined }),
            });
      if (server) logger.info({ url: (await server.start()).url }, 'metrics server listening');
      const onSignal = (signal: string) => {
        logger.info({ signal }, 'stopping trainer');
        finished();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      await done;
      await stopFollowing();
      await server?.stop();
      await producer.disconnect();
      model.dispose();
      await brokers.release();
      if (failure) throw failure;
    });
}

/** Names of one append-only vocabulary log (complete lines only; never writes: the ingest process owns it). */
function readNameLog(path: string): string[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const names: string[] = [];
  let start = 0;
  for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
    names.push(JSON.parse(text.slice(start, end)) as string);
    start = end + 1;
  }
  return names;
}

/**
 * The ingest stage's vocabulary, read without touching its files, once it covers `snapshot` (ingest writes a
 * step's snapshot file just before it syncs the names, so a fresh snapshot may briefly be ahead).
 */
async function readVocabulary(
  dir: string,
  snapshot: Snapshot,
  timeoutMs = 10_000,
): Promise<NamedVocabulary> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const vocabulary = {
      entityNames: readNameLog(join(dir, 'entities.log')),
      relationNames: readNameLog(join(dir, 'relations.log')),
    };
    if (
      vocabulary.entityNames.length >= snapshot.numEntities &&
      vocabulary.relationNames.length >= snapshot.numRelations
    )
      return vocabulary;
    if (Date.now() > deadline) {
      throw new ConfigError(
        `${dir} has ${vocabulary.entityNames.length} entities / ${vocabulary.relationNames.length} relations but step ${snapshot.step} uses ${snapshot.numEntities} / ${snapshot.numRelations}: is --ingest-state-dir the state directory of the tkg ingest that wrote the snapshots?`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
