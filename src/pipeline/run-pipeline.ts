// `tkg run` in-process: replay a dataset into <prefix>.facts -> IngestPipeline (validate, vocabulary, event-time
// window, durable snapshots) -> per closed step, in order: live evaluation of the step against the model that
// forecast it (ServeReplica over ONNX) -> history term update -> model update (TrainerStage) -> ONNX export ->
// announcement on <prefix>.models -> the replica swaps to it. A trickle of real queries runs on <prefix>.queries.
// Owns: the orchestration only — the order of those calls, the run manifest and evaluation log in
// `<state>/run/`, and resuming all of it after a crash. Every stage's logic lives in its own folder.
//
// Determinism (the restart test relies on it): one facts partition (the CLI's default for `tkg run`) gives
// the same entity ids and the same snapshots on every run; each step is evaluated only after the model for it
// is loaded; the model's checkpoint is the commit point of a step (its evaluation is logged before it, and a
// resumed run drops logged evaluations after it).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka, Producer } from '../kafka/client.ts';
import type { Logger } from 'pino';
import type { TkgConfig } from '../config/config.ts';
import type { Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import { datasetFactEvents, loadDataset } from '../datasets/index.ts';
import { IngestPipeline, ingestOptionsFromConfig } from '../kafka/fact-consumer.ts';
import type { BrokerSource } from '../kafka/brokers.ts';
import { createProducer } from '../kafka/client.ts';
import { topicNames, type TopicNames } from '../kafka/topics.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { codecFromConfig } from '../kafka/schema-config.ts';
import { bundleAnnouncer } from '../kafka/model-topic.ts';
import { ServeReplica } from '../serve/replica.ts';
import { LiveEvaluator, type StepMetricsRecord } from '../serve/live-eval.ts';
import { Scorer } from '../serve/scorer.ts';
import { EvaluationLog, qualityTable, type QualityTable } from './evaluation-log.ts';
import { factOffsets, openRunManifest } from './run-manifest.ts';
import { createLiveModel, liveEpochsPerWindow, type LiveModelKind } from '../train/live/index.ts';
import { QueryTrickle, factQuery, type TrickleStats } from './query-trickle.ts';
import { remainingFacts, replayFacts, selectReplay } from './replay.ts';
import { TrainerStage } from '../train/stage.ts';

export interface RunPipelineOptions {
  config: TkgConfig;
  kafka: Kafka;
  brokerSource: BrokerSource;
  /** Dataset name or path (src/datasets). */
  dataset: string;
  model: LiveModelKind;
  /** Facts per second into <prefix>.facts (0 = as fast as possible). */
  rate: number;
  fromStep?: number;
  replaySteps?: number;
  /** Publish at most this many facts. */
  limit?: number;
  /** Demo queries per second on <prefix>.queries (0 = none). */
  queryRate: number;
  epochsPerWindow?: number;
  /** Recurrency: re-select its parameters every this many steps. */
  selectEvery?: number;
  metrics: TkgMetrics;
  logger: Logger;
  /** One call per processed step (the CLI prints the live line). */
  onStep?: (line: StepLine) => void;
  /** Human-readable progress lines (broker, topics, resume, selection). */
  onLog?: (line: string) => void;
  /** Longest wait for the replica to load an announced model (ms). */
  modelLoadTimeoutMs?: number;
}

export interface StepLine {
  step: number;
  facts: number;
  entities: number;
  /** Live evaluation of this step against its forecast (undefined: no model forecast it yet). */
  mrr?: { raw: number; static: number; timeAware: number; queries: number };
  /** nlsm-h / nlsm-r: its live MRR minus plain NLSM's on the same queries (both directions; tkg_eval_mrr_gain). */
  gain?: { raw: number; static: number; timeAware: number };
  loss?: number;
  elbo?: number;
  trainSeconds: number;
  modelVersion: number;
  queriesPerSecond: number;
  roundTripP50Ms: number | null;
  lag: number;
  notes?: Record<string, number>;
}

export interface RunResult {
  table: QualityTable;
  stopped: boolean;
  resumedFromStep: number | null;
  stepsProcessed: number;
  factsToReplay: number;
  factsPublishedThisRun: number;
  seconds: number;
  queries: TrickleStats;
  ingest: { messages: number; stepsClosed: number; late: number; rejected: number };
}

/** Pure: MRR of `served` minus MRR of `plain` for every (filter, direction) both evaluated (count > 0). */
export function stepGains(
  served: readonly StepMetricsRecord[],
  plain: readonly StepMetricsRecord[],
): Array<{ filter: string; direction: string; gain: number }> {
  const out: Array<{ filter: string; direction: string; gain: number }> = [];
  for (const s of served) {
    const p = plain.find((x) => x.filter === s.filter && x.direction === s.direction);
    if (p && s.count > 0 && p.count === s.count)
      out.push({ filter: s.filter, direction: s.direction, gain: s.mrr - p.mrr });
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RunPipeline {
  private readonly options: RunPipelineOptions;
  private readonly topics: TopicNames;
  private stopping = false;
  private wake: (() => void) | undefined;

  constructor(options: RunPipelineOptions) {
    this.options = options;
    this.topics = topicNames(options.config.topicPrefix);
  }

  /** Ask the run to stop after the step in progress (state stays resumable). */
  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  private log(line: string): void {
    this.options.onLog?.(line);
    this.options.logger.info(line);
  }

  /** Sleep until a snapshot closes, stop() is called, or `ms` passes. */
  private waitForWork(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  async run(): Promise<RunResult> {
    const started = performance.now();
    const { config, kafka, metrics, logger } = this.options;
    const runDir = join(config.stateDir, 'run');
    mkdirSync(runDir, { recursive: true });
    const { codec, outputFormat } = await codecFromConfig(config, { logger });

    // 1. What to replay.
    const dataset = loadDataset(this.options.dataset);
    let facts = selectReplay(datasetFactEvents(dataset), {
      fromStep: this.options.fromStep,
      replaySteps: this.options.replaySteps,
    });
    if (this.options.limit !== undefined) facts = facts.slice(0, this.options.limit);

    // 2. Topics and the run manifest (fresh run: the facts topic must hold only this run's records).
    const admin = kafka.admin();
    await admin.connect();
    const producers: Producer[] = [];
    let ingest: IngestPipeline | undefined;
    let replica: ServeReplica | undefined;
    let trickle: QueryTrickle | undefined;
    let model: Awaited<ReturnType<typeof createLiveModel>> | undefined;
    let replay: Promise<number> | undefined;
    try {
      const manifest = await openRunManifest({
        admin,
        runDir,
        factCount: facts.length,
        config,
        brokerSource: this.options.brokerSource,
        wanted: {
          dataset: this.options.dataset,
          model: this.options.model,
          fromStep: this.options.fromStep ?? null,
          replaySteps: this.options.replaySteps ?? null,
          limit: this.options.limit ?? null,
          topicPrefix: config.topicPrefix,
        },
        log: (line) => this.log(line),
      });
      const partitions = manifest.partitions;

      // 3. Stages.
      ingest = new IngestPipeline({
        kafka,
        ...ingestOptionsFromConfig(config),
        partitions,
        metrics,
        logger,
      });
      ingest.onSnapshot(() => this.wake?.());
      replica = new ServeReplica({
        kafka,
        codec,
        format: outputFormat,
        topicPrefix: config.topicPrefix,
        modelName: this.options.model,
        scorerThreads: config.scorerThreads,
        scorerShards: config.scorerShards,
        maxBatch: config.scorerMaxBatch,
        maxWaitMs: config.scorerMaxWaitMs,
        publishSteps: true,
        topK: config.topK,
        forecastEvidence: config.forecastEvidence,
        windowSize: config.windowSize,
        dataset: this.options.dataset,
        followSnapshots: false, // handed over in-process, in step order, by the loop below
        metrics,
        logger,
      });
      // nlsm-h / nlsm-r: plain NLSM on the same queries (the served graph without its term: beta_r > 0 scales a query's
      // logits uniformly, so the ranks are NLSM's own) for tkg_eval_mrr_gain
      const plainEvaluator =
        this.options.model === 'nlsm-h' || this.options.model === 'nlsm-r'
          ? new LiveEvaluator({
              scorer: new Scorer({
                filters: replica.scorer.filters,
                intraOpThreads: config.scorerThreads,
                maxBatch: config.scorerMaxBatch,
                maxWaitMs: 0,
                denseOnly: true,
              }),
              dataset: this.options.dataset,
            })
          : undefined;
      const announcer = createProducer(kafka);
      await announcer.connect();
      producers.push(announcer);
      const trainDir = join(config.stateDir, 'train');
      model = await createLiveModel({
        kind: this.options.model,
        dir: trainDir,
        seed: config.seed,
        K: config.K,
        windowSize: config.windowSize,
        learningRate: config.learningRate,
        epochsPerWindow: this.options.epochsPerWindow ?? liveEpochsPerWindow(this.options.model),
        selectEvery: this.options.selectEvery,
        onProgress: (line) => this.log(line),
        onNanRestore: () => metrics.trainNanRestores.inc(),
      });
      const trainer = new TrainerStage({
        model,
        modelName: this.options.model,
        dir: trainDir,
        metrics,
        seed: config.seed,
        announce: bundleAnnouncer(
          announcer,
          codec,
          this.topics.models,
          config.modelMessageBytes,
          logger,
        ),
      });

      await ingest.start();
      const state = ingest.ingestState;
      await replica.start();

      // 4. Resume: everything up to the model's checkpoint is done; rebuild the serving state from snapshots.
      const evaluations = new EvaluationLog(join(runDir, 'evaluations.jsonl'));
      const resumedFrom = Number.isFinite(trainer.lastStep) ? trainer.lastStep : null;
      evaluations.truncateAfter(resumedFrom ?? Number.NEGATIVE_INFINITY);
      let expectedVersion: number | undefined;
      if (resumedFrom !== null) {
        const covered = [...state.store.readFrom()].filter((s) => s.step <= resumedFrom);
        for (const snapshot of covered) await replica.restoreStep(snapshot);
        const reannounced = await trainer.resume(covered, state.vocabulary);
        expectedVersion = reannounced?.version;
        this.log(
          `resuming after step ${resumedFrom} (${evaluations.steps().length} steps already evaluated)`,
        );
      }
      let lastSnapshot: Snapshot | undefined;
      trickle = new QueryTrickle({
        kafka,
        codec,
        queriesTopic: this.topics.queries,
        answersTopic: this.topics.answers,
        rate: this.options.queryRate,
        seed: config.seed,
        nextQuery: (random) =>
          lastSnapshot && replica?.scorer.model
            ? factQuery(
                lastSnapshot.triples,
                state.vocabulary.entityNames,
                state.vocabulary.relationNames,
                random,
                config.topK,
              )
            : undefined,
      });
      await trickle.start();

      // 5. Replay what the facts topic does not hold yet (a resumed run skips what was published before).
      const offsets = await factOffsets(admin, this.topics.facts);
      const published = new Map<number, number>();
      for (const [partition, { high }] of offsets)
        published.set(partition, high - (manifest.startOffsets[String(partition)] ?? 0));
      const toPublish = remainingFacts(facts, partitions, published);
      if (toPublish.length < facts.length)
        this.log(
          `replay: ${facts.length - toPublish.length} of ${facts.length} facts already in ${this.topics.facts}`,
        );
      const replayProducer = createProducer(kafka);
      await replayProducer.connect();
      producers.push(replayProducer);
      let replayDone = false;
      replay = replayFacts(toPublish, {
        producer: replayProducer,
        codec,
        topic: this.topics.facts,
        rate: this.options.rate,
        isStopped: () => this.stopping,
      }).then((sent) => {
        replayDone = true;
        this.wake?.();
        return sent;
      });
      replay.catch(() => undefined);

      // 6. The step loop.
      let lastProcessed = resumedFrom ?? Number.NEGATIVE_INFINITY;
      let stepsProcessed = 0;
      let flushed = false;
      const modelTimeout = this.options.modelLoadTimeoutMs ?? 120_000;
      for (;;) {
        if (this.stopping) break;
        if (ingest.error) throw ingest.error;
        const next = state.store.steps().find((s) => s > lastProcessed);
        if (next === undefined) {
          if (replayDone && !flushed) {
            await replay; // surfaces a publishing failure
            await ingest.waitUntilCaughtUp();
            await ingest.flush();
            flushed = true;
            continue;
          }
          if (flushed) break;
          await this.waitForWork(500);
          continue;
        }
        const snapshot = state.store.read(next);
        if (!snapshot) continue;
        // The step's forecast must be loaded before the step is evaluated (never skip silently).
        if (expectedVersion !== undefined)
          await this.waitForModel(replica, expectedVersion, modelTimeout);
        if (this.stopping) break;
        const forecaster = replica.scorer.model;
        const comparePlain =
          plainEvaluator !== undefined &&
          forecaster !== undefined &&
          forecaster.metadata.step === snapshot.step &&
          !forecaster.isReleased;
        if (comparePlain) forecaster.hold();
        let gain: StepLine['gain'];
        let evaluation: Awaited<ReturnType<ServeReplica['onStepClosed']>>;
        try {
          evaluation = await replica.onStepClosed(snapshot);
          if (evaluation && comparePlain) {
            const plain = await plainEvaluator.evaluate(snapshot, forecaster);
            gain = this.recordGains(evaluation.records, plain.records);
          }
        } finally {
          if (comparePlain) await forecaster.unhold();
        }
        if (evaluation) evaluations.append(evaluation.records);
        const trained = await trainer.onSnapshot(snapshot, state.vocabulary);
        if (trained) expectedVersion = trained.version;
        lastProcessed = snapshot.step;
        lastSnapshot = snapshot;
        stepsProcessed++;
        const both = (filter: string) =>
          evaluation?.records.find((r) => r.filter === filter && r.direction === 'both');
        const queries = trickle.stats();
        this.options.onStep?.({
          step: snapshot.step,
          facts: snapshot.triples.length / 3,
          entities: snapshot.numEntities,
          mrr: evaluation
            ? {
                raw: both('raw')?.mrr ?? 0,
                static: both('static')?.mrr ?? 0,
                timeAware: both('timeAware')?.mrr ?? 0,
                queries: both('raw')?.count ?? 0,
              }
            : undefined,
          gain,
          loss: trained?.loss,
          elbo: trained?.elbo,
          trainSeconds: trained?.trainSeconds ?? 0,
          modelVersion: trained?.version ?? 0,
          queriesPerSecond: queries.answersPerSecond,
          roundTripP50Ms: queries.roundTripP50Ms,
          lag: ingest.stats().lag,
          notes: trained?.notes,
        });
      }
      const stopped = this.stopping;
      const ingestStats = ingest.stats();
      return {
        table: qualityTable(evaluations.all),
        stopped,
        resumedFromStep: resumedFrom,
        stepsProcessed,
        factsToReplay: facts.length,
        factsPublishedThisRun: stopped ? -1 : await replay,
        seconds: (performance.now() - started) / 1000,
        queries: trickle.stats(),
        ingest: {
          messages: ingestStats.messages,
          stepsClosed: ingestStats.stepsClosed,
          late: ingestStats.late,
          rejected: ingestStats.rejected,
        },
      };
    } finally {
      this.stopping = true;
      await replay?.catch(() => undefined);
      await trickle?.stop();
      await ingest?.stop();
      await replica
        ?.stop()
        .catch((error: unknown) => logger.warn({ err: error }, 'replica stop failed'));
      model?.dispose();
      for (const producer of producers) await producer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** tkg_eval_mrr_gain per filter / direction: served (nlsm-h / nlsm-r) minus plain NLSM MRR; the both-direction gains. */
  private recordGains(
    served: readonly StepMetricsRecord[],
    plain: readonly StepMetricsRecord[],
  ): StepLine['gain'] {
    const gains = stepGains(served, plain);
    for (const g of gains)
      this.options.metrics.mrrGain.set(
        { filter: g.filter, direction: g.direction, model: this.options.model },
        g.gain,
      );
    const both = (filter: string) =>
      gains.find((g) => g.filter === filter && g.direction === 'both')?.gain ?? 0;
    return { raw: both('raw'), static: both('static'), timeAware: both('timeAware') };
  }

  private async waitForModel(
    replica: ServeReplica,
    version: number,
    timeoutMs: number,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((replica.scorer.model?.version ?? -1) < version) {
      if (this.stopping) return;
      if (Date.now() > deadline) {
        throw new TkgError(
          `the scoring replica did not load model version ${version} within ${timeoutMs} ms (serving ${replica.scorer.model?.version ?? 'none'}); check ${this.topics.models} and tkg_models_rejected_total`,
          { reason: 'timeout', retriable: true },
        );
      }
      await sleep(20);
    }
  }
}
