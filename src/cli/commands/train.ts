// `tkg train`: the train stage as its own process. Follows closed snapshots on `<prefix>.snapshots` (what `tkg ingest`
// publishes, so it runs on any machine of the cluster and in any start order), trains the --model on each closed step,
// checkpoints, builds the next step's bundle and announces it on `<prefix>.models` under --model-name (default: the
// model kind, what `tkg serve` serves by default); /metrics on TKG_METRICS_PORT. Run ONE trainer per model name.
// Wiring only: the logic is in src/train (TrainerStage, live models) and src/kafka. Exit: 0 ok, 1 failure, 2 usage.
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import type { NamedVocabulary, Snapshot } from '../../core/types.ts';
import { ConfigError } from '../../core/errors.ts';
import { createProducer } from '../../kafka/client.ts';
import { bundleAnnouncer } from '../../kafka/model-topic.ts';
import { withRetries } from '../../kafka/retry.ts';
import { SnapshotTopicFollower, snapshotsTopicName } from '../../kafka/snapshot-topic.ts';
import { topicNames } from '../../kafka/topics.ts';
import { readinessFromChecks } from '../../metrics/server.ts';
import { SchemaCodec } from '../../schemas/codec.ts';
import { createLiveModel, liveEpochsPerWindow } from '../../train/live/index.ts';
import { TrainerStage, type TrainedStep } from '../../train/stage.ts';
import { openStageProcess } from '../stage-process.ts';

interface TrainFlags {
  epochs?: string;
  metrics?: boolean;
  untilStep?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('train')
    .description(
      'train on closed snapshots as they arrive, announce each bundle on <prefix>.models',
    )
    .option(
      '--epochs <n>',
      'NLSM Adam steps per window update (default: 4 for nlsm-h and nlsm-r, as in tkg run; else TKG_TRAIN_EPOCHS)',
    )
    .option('--until-step <n>', 'exit after training on this step (a bounded run, e.g. in tests)')
    .option('--no-metrics', 'do not serve /metrics')
    .option('--json', 'one JSON line per trained step on stdout')
    .action(async (flags: TrainFlags) => {
      const config = loadConfig();
      const untilStep = flags.untilStep === undefined ? undefined : Number(flags.untilStep);
      if (untilStep !== undefined && !Number.isInteger(untilStep))
        throw new ConfigError(
          `--until-step ${JSON.stringify(flags.untilStep)}: expected an integer`,
        );
      const epochs = flags.epochs === undefined ? undefined : Number(flags.epochs);
      if (epochs !== undefined && !(Number.isInteger(epochs) && epochs >= 1))
        throw new ConfigError(`--epochs ${JSON.stringify(flags.epochs)}: expected an integer >= 1`);
      const stage = await openStageProcess('train', config, { metrics: flags.metrics });
      const { kafka, logger, metrics } = stage;
      const topics = topicNames(config.topicPrefix);
      await stage.createTopics({ roles: ['models', 'modelChunks'], snapshots: true });
      const snapshotsTopic = snapshotsTopicName(config.topicPrefix);

      const codec = SchemaCodec.load();
      const producer = createProducer(kafka);
      await withRetries('connecting the producer', () => producer.connect(), { logger });
      const trainDir = join(config.stateDir, 'train');
      const model = await createLiveModel({
        kind: config.model,
        dir: trainDir,
        seed: config.seed,
        K: config.K,
        windowSize: config.windowSize,
        learningRate: config.learningRate,
        epochsPerWindow: epochs ?? liveEpochsPerWindow(config.model),
        selectEvery: config.recurrencySelectEvery,
        onProgress: (line) => logger.info(line),
        onNanRestore: () => metrics.trainNanRestores.inc(),
      });
      const modelName = config.modelName ?? config.model;
      const trainer = new TrainerStage({
        model,
        modelName,
        dir: trainDir,
        metrics,
        setModelGauges: true,
        seed: config.seed,
        announce: bundleAnnouncer(producer, codec, topics.models, config.modelMessageBytes, logger),
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
          calibration: trained.bundle.calibration.kind,
        };
        if (flags.json) process.stdout.write(`${JSON.stringify(line)}\n`);
        else logger.info(line, 'bundle announced');
      };

      let failure: unknown;
      // Covered steps (<= the checkpoint) rebuild the model's in-memory history, newer ones are trained on.
      const covered: Snapshot[] = [];
      let resumed = !Number.isFinite(trainer.lastStep);
      const handle = async (snapshot: Snapshot, vocabulary: NamedVocabulary) => {
        try {
          if (untilStep !== undefined && snapshot.step > untilStep) return; // bounded run: done already
          if (snapshot.step <= trainer.lastStep) {
            covered.push(snapshot);
            return;
          }
          if (!resumed) {
            resumed = true;
            report(await trainer.resume(covered, vocabulary));
            covered.length = 0;
          }
          report(await trainer.onSnapshot(snapshot, vocabulary));
          if (untilStep !== undefined && snapshot.step >= untilStep) stage.stop();
        } catch (error) {
          failure = error;
          stage.stop();
        }
      };
      const follower = new SnapshotTopicFollower({
        kafka,
        topic: snapshotsTopic,
        onSnapshot: handle,
      });
      await withRetries('following the snapshots topic', () => follower.start(), { logger });
      logger.info(
        {
          topic: snapshotsTopic,
          model: config.model,
          name: modelName,
          resumeAfter: Number.isFinite(trainer.lastStep) ? trainer.lastStep : null,
        },
        'trainer following snapshots',
      );
      await stage.serveMetrics(
        readinessFromChecks({ following: () => failure === undefined && !follower.error }),
      );
      await stage.untilStopped();
      await follower.stop();
      await producer.disconnect();
      model.dispose();
      await stage.close();
      if (failure ?? follower.error) throw failure ?? follower.error;
    });
}
