// The Kafka ingest consumer: a consumer group on `<prefix>.facts` -> IngestState (decode, validate, vocabulary, window)
// -> durable snapshots -> sinks. Owns: the stage's lifecycle (start with retried start-up steps, stop), the consume
// loop, fresh log-end reads for the window's idleness (log-end-poller.ts), schema ids resolved before decoding, and
// seeking to the checkpoint's offsets. Its helpers own the rest: options (ingest-options.ts), counters
// (ingest-counts.ts), dead-letter and late sends (ingest-outbox.ts), checkpoints and commits
// (ingest-checkpoints.ts), start positions (ingest-positions.ts). Must not import src/serve, src/train or tfjs.
// Run ONE ingest process per facts topic: the watermark is a minimum over all partitions, so one process must
// see every partition (the group gives offset storage and fail-over, not parallelism).
import type { Admin, Consumer, KafkaMessage, Kafka, Producer } from './client.ts';
import { pino, type Logger } from 'pino';
import type { Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { createKafkaClient, createProducer } from './client.ts';
import { ensureTopics, topicNames, type TopicNames } from './topics.ts';
import { LogEndPoller, type LogEnd } from './log-end-poller.ts';
import { withRetries } from './retry.ts';
import { SchemaCodec } from '../schemas/codec.ts';
import { IngestState, type CheckpointJob } from '../ingest/ingest-state.ts';
import { errorHeaders } from './dead-letters.ts';
import { IngestCounts } from './ingest-counts.ts';
import {
  ingestConsumerConfig,
  type IngestPipelineOptions,
  type IngestStats,
} from './ingest-options.ts';
import { FactOutbox } from './ingest-outbox.ts';
import { IngestCheckpoints } from './ingest-checkpoints.ts';
import { rewindGroupIfAhead, startPositions, waitForPositions } from './ingest-positions.ts';
import { waitForSchemaId } from './schema-config.ts';

export {
  DEFAULT_MAX_BYTES_PER_PARTITION,
  ingestConsumerConfig,
  ingestOptionsFromConfig,
} from './ingest-options.ts';
export type { IngestPipelineOptions, IngestStats } from './ingest-options.ts';

type SnapshotSink = (snapshot: Snapshot) => void | Promise<void>;

/** Messages between checks of liveness / seeks / the checkpoint clock inside a batch. */
const CHECK_EVERY = 256;
/** Messages between heartbeats inside a batch (kafkajs sends one only when its interval passed). */
const HEARTBEAT_EVERY = 2048;

/** The ingest stage as an object: `await start()`, snapshots arrive at `onSnapshot` sinks, `await stop()`. */
export class IngestPipeline {
  readonly topics: TopicNames;
  readonly groupId: string;
  private readonly options: IngestPipelineOptions;
  private readonly logger: Logger;
  private readonly metrics: TkgMetrics | undefined;
  private kafka: Kafka | undefined;
  private state: IngestState | undefined;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private readonly sinks = new Set<SnapshotSink>();
  private lane: Promise<unknown> = Promise.resolve();
  private poller: LogEndPoller | undefined;
  /** Partitions the group assigned to this process (undefined before the first join: all of them). */
  private assigned: Set<number> | undefined;
  private readonly now: () => number;
  private checkpoints: IngestCheckpoints | undefined;
  private readonly highWatermarks = new Map<number, number>();
  private running = false;
  private failure: Error | undefined;
  private readonly counts = new IngestCounts();
  private readonly outbox = new FactOutbox();
  constructor(options: IngestPipelineOptions) {
    this.options = options;
    this.topics = topicNames(options.topicPrefix ?? 'tkg');
    this.groupId = options.groupId ?? `${options.topicPrefix ?? 'tkg'}.ingest`;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
  }

  /** Add a sink for closed snapshots: called in step order, after the snapshot is durable. */
  onSnapshot(sink: SnapshotSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /** The durable state (vocabulary, window, snapshot store); available after start(). */
  get ingestState(): IngestState {
    if (!this.state)
      throw new TkgError('IngestPipeline.ingestState read before start()', {
        reason: 'not_started',
      });
    return this.state;
  }

  /** A fatal error (disk, broker gone for good), if the pipeline stopped because of one. */
  get error(): Error | undefined {
    return this.failure;
  }

  async start(): Promise<void> {
    const options = this.options;
    const codec = options.codec ?? options.registry?.codec ?? SchemaCodec.load();
    const state = new IngestState({
      stateDir: options.stateDir,
      codec,
      topic: this.topics.facts,
      clock: options.clock,
      allowedLateness: options.allowedLateness,
      idleTimeoutMs: options.idleTimeoutMs,
      limits: options.limits,
      emitEmptySteps: options.emitEmptySteps,
      now: options.now,
    });
    this.state = state;
    this.checkpoints = new IngestCheckpoints({
      state,
      everyMessages: options.checkpointEveryMessages ?? 20_000,
      intervalMs: options.checkpointIntervalMs ?? 1000,
      beforeCapture: async () => {
        this.publishCountMetrics();
        await this.flushOutbox();
      },
      commit: (offsets) => this.commit(offsets),
      onDurable: (job, seconds) => this.onDurable(job, seconds),
      deliver: (snapshot) => this.deliver(snapshot),
      fail: (error) => this.fail(error),
      failure: () => this.failure,
    });
    const checkpoints = this.checkpoints;
    this.kafka =
      options.kafka ?? createKafkaClient({ brokers: options.brokers ?? [], logger: this.logger });
    // Any stage may start first or together with the others (SPEC section 8): every start-up request retries
    // transient broker errors (leaders being elected right after topic creation, coordinators moving) with a log line.
    const retry = { logger: this.logger };
    const admin = this.kafka.admin();
    this.admin = admin;
    await withRetries('connect the ingest admin client', () => admin.connect(), retry);
    if (options.createTopics ?? true) {
      await ensureTopics(admin, {
        prefix: options.topicPrefix ?? 'tkg',
        partitions: options.partitions ?? 3,
        roles: ['facts', 'factsDlq', 'factsLate'],
        logger: this.logger,
      });
    }
    // Where to start each partition: the checkpoint's offset, else the log start. The checkpoint is the truth.
    const issuedAt = this.now();
    const topicOffsets = await withRetries(
      `read the offsets of ${this.topics.facts}`,
      () => admin.fetchTopicOffsets(this.topics.facts),
      retry,
    );
    startPositions(state, topicOffsets, this.logger);
    this.applyLogEnd(
      issuedAt,
      topicOffsets.map(({ partition, high, low }) => ({
        partition,
        high: Number(high),
        low: Number(low),
      })),
    );
    await withRetries(
      'check the ingest group offsets',
      () =>
        rewindGroupIfAhead(admin, {
          groupId: this.groupId,
          topic: this.topics.facts,
          state,
          logger: this.logger,
          sessionTimeoutMs: this.options.sessionTimeoutMs ?? 10_000,
        }),
      retry,
    );

    const producer = createProducer(this.kafka, { idempotent: false });
    this.producer = producer;
    await withRetries('connect the dead-letter producer', () => producer.connect(), retry);
    if (options.replayPersistedFrom !== undefined) {
      for (const snapshot of state.store.readFrom(options.replayPersistedFrom))
        await this.deliver(snapshot);
    }
    const consumer = this.kafka.consumer(
      ingestConsumerConfig(this.groupId, {
        sessionTimeoutMs: options.sessionTimeoutMs,
        maxBytesPerPartition: options.maxBytesPerPartition,
      }),
    );
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const assigned = payload.memberAssignment[this.topics.facts] ?? [];
      this.assigned = new Set(assigned);
      for (const partition of assigned) state.window.addPartition(partition);
      // A partition another member reads keeps holding the watermark (it is never idle here): closing steps
      // without its facts would publish incomplete snapshots. One ingest process per facts topic.
      const elsewhere = state.window
        .partitionStatus()
        .map(({ partition }) => partition)
        .filter((partition) => !this.assigned?.has(partition));
      for (const partition of elsewhere) state.window.markUnread(partition);
      this.logger.info({ groupId: this.groupId, assigned }, 'joined the ingest group');
      if (elsewhere.length > 0)
        this.logger.warn(
          { groupId: this.groupId, elsewhere },
          'another member of the ingest group reads some partitions: steps stay open until this process reads every partition (run one tkg ingest per facts topic)',
        );
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      this.logger.error(
        { err: payload.error, restart: payload.restart },
        'ingest consumer crashed',
      );
      if (!payload.restart) this.fail(payload.error);
    });
    await withRetries('connect the ingest consumer', () => consumer.connect(), retry);
    await withRetries(
      `subscribe to ${this.topics.facts}`,
      () => consumer.subscribe({ topic: this.topics.facts, fromBeginning: true }),
      retry,
    );
    this.running = true;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const registry = this.options.registry;
        await this.exclusive(async () => {
          const partition = batch.partition;
          const messages = batch.messages;
          let next = state.nextOffset(partition) ?? 0;
          let lastSeen: string | undefined;
          for (let i = 0; i < messages.length; i++) {
            // Per-message work is the hot path: liveness, seeks (kafkajs's isStale builds a JSON key per
            // call), heartbeats and the clock-based checkpoint are checked every CHECK_EVERY messages.
            if (i % CHECK_EVERY === 0) {
              if (!isRunning() || isStale() || !this.running) break;
              if (i > 0) {
                if (i % HEARTBEAT_EVERY === 0) await heartbeat();
                if (checkpoints.due(false)) await checkpoints.inBackground();
              }
            }
            const message = messages[i];
            const offset = Number(message.offset);
            if (offset >= next) {
              if (registry) {
                const id = codec.unknownConfluentId(message.value);
                if (id !== undefined)
                  await waitForSchemaId(registry, id, 'Fact', {
                    running: () => this.running,
                    heartbeat,
                    logger: this.logger,
                  });
              }
              this.handleMessage(partition, message);
              next = offset + 1;
              state.setNextOffset(partition, next);
              if (checkpoints.noteMessage()) await checkpoints.inBackground();
            }
            lastSeen = message.offset;
            if (this.outbox.full()) await this.flushOutbox();
          }
          // One resolve per batch (kafkajs parses the offset into a Long on every call).
          if (lastSeen !== undefined) resolveOffset(lastSeen);
          this.publishCountMetrics();
          // The fetch's high watermark can only say "unread records remain"; idleness needs a fresh log-end read.
          const high = Number(batch.highWatermark);
          this.highWatermarks.set(partition, high);
          if ((state.nextOffset(partition) ?? 0) < high) state.window.markUnread(partition);
          this.updateLag();
          const state_ = this.state as IngestState;
          this.counts.reportPartitionMismatches(state_.subjectPartitions, {
            topic: this.topics.facts,
            names: state_.vocabulary.entityNames,
            metrics: this.metrics,
            logger: this.logger,
          });
          // Steps closed by this batch are captured at its end (one checkpoint per batch) and become durable
          // (then reach the sinks) while the next batch is processed.
          if (checkpoints.due(true)) await checkpoints.inBackground();
        });
      },
    });
    for (const [partition, offset] of state.offsetEntries()) {
      consumer.seek({ topic: this.topics.facts, partition, offset: String(offset) });
    }
    // Fresh log-end reads a few times per idle timeout (the window's idleness rule), the window's tick, and the
    // clock-based checkpoint, all in the lane (never interleaved with a batch).
    const idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.poller = new LogEndPoller({
      admin,
      topic: this.topics.facts,
      intervalMs:
        idleTimeoutMs > 0 ? Math.max(50, Math.min(1000, Math.floor(idleTimeoutMs / 4))) : 1000,
      now: this.now,
      logger: this.logger,
      onLogEnd: (issuedAtMs, ends) =>
        this.exclusive(() => {
          if (this.running) this.applyLogEnd(issuedAtMs, ends);
        }),
      onInterval: () =>
        this.exclusive(async () => {
          if (!this.running) return;
          state.window.tick();
          if (checkpoints.dueByClock()) await checkpoints.inBackground();
        }).catch((error: unknown) => this.fail(error)),
    });
    this.poller.start();
  }

  /**
   * A log-end read issued at `issuedAtMs`: partitions this process reads whose position reached it are caught up
   * (the window decides whether they are idle), the others have unread records. Call inside the lane (or before the
   * consumer runs).
   */
  private applyLogEnd(issuedAtMs: number, ends: LogEnd[]): void {
    const state = this.state as IngestState;
    for (const { partition, high } of ends) {
      this.highWatermarks.set(partition, high);
      const ours = this.assigned === undefined || this.assigned.has(partition);
      if (ours && (state.nextOffset(partition) ?? 0) >= high)
        state.window.markCaughtUp(partition, issuedAtMs);
      else state.window.markUnread(partition);
    }
    this.updateLag();
  }

  /**
   * Resolve once every partition's position reached the log end offsets of the moment of the call
   * (and that state is checkpointed). Rejects after `timeoutMs`.
   */
  async waitUntilCaughtUp(options: { timeoutMs?: number; pollMs?: number } = {}): Promise<void> {
    const admin = this.admin;
    const state = this.state;
    if (!admin || !state)
      throw new TkgError('waitUntilCaughtUp() before start()', { reason: 'not_started' });
    const offsets = await withRetries(
      `read the log-end offsets of ${this.topics.facts}`,
      () => admin.fetchTopicOffsets(this.topics.facts),
      { logger: this.logger },
    );
    await waitForPositions(state, offsets, {
      timeoutMs: options.timeoutMs ?? 600_000,
      pollMs: options.pollMs ?? 50,
      failure: () => this.failure,
    });
    await this.exclusive(() => (this.checkpoints as IngestCheckpoints).now());
  }

  /** End of stream: close every open step (later facts for them are late), make it durable, deliver it. */
  async flush(): Promise<void> {
    const state = this.ingestState;
    await this.exclusive(async () => {
      state.window.flush();
      await (this.checkpoints as IngestCheckpoints).now();
    });
  }

  /** Stop consuming, write a final checkpoint, commit its offsets, disconnect. Idempotent. */
  async stop(): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    await this.poller?.stop();
    this.poller = undefined;
    await this.consumer
      ?.stop()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'consumer stop failed'));
    if (wasRunning && this.state && !this.failure) {
      await this.exclusive(() => (this.checkpoints as IngestCheckpoints).now()).catch(
        (error: unknown) => this.fail(error),
      );
    }
    await this.checkpoints?.writing; // a failed or stopped pipeline still finishes the write it started
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.consumer = undefined;
    this.producer = undefined;
    this.admin = undefined;
    this.state?.close();
  }

  stats(): IngestStats {
    const state = this.ingestState;
    return {
      ...this.counts.snapshot(),
      watermark: state.window.watermark(),
      nextStepToClose: state.window.nextStepToClose(),
      openSteps: state.window.openSteps(),
      numEntities: state.vocabulary.numEntities,
      numRelations: state.vocabulary.numRelations,
      offsets: Object.fromEntries(state.offsetEntries().map(([p, o]) => [String(p), o])),
      lag: this.lag(),
      restoredFromCheckpoint: state.restoredFromCheckpoint,
    };
  }

  /** Run `work` after everything queued before it (batches, timer ticks, flushes never interleave). */
  private exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    const result = this.lane.then(work);
    this.lane = result.catch(() => undefined);
    return result;
  }

  private handleMessage(partition: number, message: KafkaMessage): void {
    const outcome = (this.state as IngestState).ingest(message.value, partition);
    this.counts.record(outcome);
    if (outcome.kind === 'late')
      this.outbox.enqueue(
        this.topics.factsLate,
        message,
        { topic: this.topics.facts, partition },
        {
          'tkg.late.step': String(outcome.fact.step),
          'tkg.late.next_step_to_close': String(outcome.info.nextStepToClose),
        },
      );
    else if (outcome.kind === 'rejected')
      this.outbox.enqueue(
        this.topics.factsDlq,
        message,
        { topic: this.topics.facts, partition },
        errorHeaders(outcome),
      );
  }

  private publishCountMetrics(): void {
    if (this.metrics) this.counts.publish(this.metrics);
  }

  private async flushOutbox(): Promise<void> {
    await this.outbox.flush(this.producer as Producer);
  }

  /** Metrics of a checkpoint that just became durable (before its commit and deliveries). */
  private onDurable(job: CheckpointJob, seconds: number): void {
    const state = this.state as IngestState;
    this.counts.values.checkpoints += 1;
    this.counts.values.stepsClosed += job.snapshots.length;
    const metrics = this.metrics;
    if (!metrics) return;
    metrics.checkpointSeconds.observe(seconds);
    metrics.vocabularySize.set({ kind: 'entity' }, state.vocabulary.numEntities);
    metrics.vocabularySize.set({ kind: 'relation' }, state.vocabulary.numRelations);
    const watermark = state.window.watermark();
    if (watermark !== null) metrics.watermarkStep.set(watermark);
    if (job.snapshots.length > 0) {
      metrics.stepsClosed.inc(job.snapshots.length);
      const last = job.snapshots[job.snapshots.length - 1];
      metrics.snapshotFacts.set(last.triples.length / 3);
    }
  }

  /** Best effort: the checkpoint, not the group, is the truth on restart. */
  private async commit(offsets: Array<[number, number]>): Promise<void> {
    await this.consumer
      ?.commitOffsets(
        offsets.map(([partition, offset]) => ({
          topic: this.topics.facts,
          partition,
          offset: String(offset),
        })),
      )
      .catch((error: unknown) =>
        this.logger.warn(
          { err: error },
          'offset commit failed (the checkpoint still holds the offsets)',
        ),
      );
  }

  private async deliver(snapshot: Snapshot): Promise<void> {
    for (const sink of this.sinks) {
      try {
        await sink(snapshot);
      } catch (error) {
        // A sink's failure is not the input's fault and must not stop ingest; the snapshot stays on disk.
        this.logger.error({ err: error, step: snapshot.step }, 'snapshot sink failed');
      }
    }
  }

  private lag(): number {
    const state = this.state as IngestState;
    let lag = 0;
    for (const [partition, high] of this.highWatermarks)
      lag += Math.max(0, high - (state.nextOffset(partition) ?? 0));
    return lag;
  }

  private updateLag(): void {
    this.metrics?.consumerLag.set({ topic: this.topics.facts }, this.lag());
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.logger.error({ err: this.failure }, 'ingest pipeline failed');
    this.running = false;
  }
}
