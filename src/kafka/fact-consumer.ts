// The Kafka ingest consumer (issue 3 item 4): a kafkajs consumer group on `<prefix>.facts` ->
// IngestState (decode, validate, vocabulary, window) -> durable snapshots -> sinks.
// Owns: the consume loop, dead-lettering to `<prefix>.facts.dlq` (original key/value/headers plus
// tkg.error.* and tkg.source.* headers), late facts to `<prefix>.facts.late`, checkpoint scheduling
// (every N messages, every T ms, at each step close; captured in the consume loop and written in the
// background, one at a time), committing offsets only after the checkpoint that covers them, seeking
// to the checkpoint's offsets on start, and ingest metrics (counters added per batch, not per message).
// Must not import src/serve, src/train or tfjs. Run ONE ingest process per facts topic: the window's
// watermark is a minimum over all partitions, so one process must see every partition (the consumer
// group gives offset storage and fail-over, not parallelism).
import type {
  Admin,
  Consumer,
  ConsumerConfig,
  IHeaders,
  KafkaMessage,
  Kafka,
  Message,
  Producer,
} from 'kafkajs';
import { pino, type Logger } from 'pino';
import type { Snapshot } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';
import type { TkgConfig } from '../config/config.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';
import { createKafkaClient, createProducer } from './client.ts';
import { ensureTopics, topicNames, type TopicNames } from './topics.ts';
import { LogEndPoller, type LogEnd } from './log-end-poller.ts';
import { withRetries } from './retry.ts';
import { SchemaCodec } from '../schemas/codec.ts';
import type { ConfluentRegistry } from '../schemas/registry.ts';
import type { StepClockSpec } from '../core/step-clock.ts';
import { IngestState, type CheckpointJob } from '../ingest/ingest-state.ts';
import type { FactLimits } from '../ingest/validate.ts';

export interface IngestPipelineOptions {
  /** Bootstrap servers (ignored when `kafka` is given). */
  brokers?: string[];
  kafka?: Kafka;
  topicPrefix?: string;
  /** Consumer group id (default `<prefix>.ingest`). */
  groupId?: string;
  stateDir: string;
  clock?: StepClockSpec;
  allowedLateness?: number;
  idleTimeoutMs?: number;
  /** Checkpoint after this many messages (default 20,000). */
  checkpointEveryMessages?: number;
  /** ... or when this much time passed with changes (default 1000 ms). */
  checkpointIntervalMs?: number;
  limits?: Partial<FactLimits>;
  metrics?: TkgMetrics;
  logger?: Logger;
  codec?: SchemaCodec;
  /** Schema registry of the producers' Confluent-framed facts (their unknown schema ids are resolved from it). */
  registry?: ConfluentRegistry;
  /** Create the facts/dlq/late topics if missing (default true) with this many partitions (default 3). */
  createTopics?: boolean;
  partitions?: number;
  /** kafkajs consumer session timeout (default 10,000 ms; the broker's minimum is usually 6,000). */
  sessionTimeoutMs?: number;
  /** Fetch size per partition (default DEFAULT_MAX_BYTES_PER_PARTITION); see ingestConsumerConfig. */
  maxBytesPerPartition?: number;
  /** On start, hand persisted snapshots with step >= this to the sinks first (a restarted trainer catching up). */
  replayPersistedFrom?: number;
  emitEmptySteps?: boolean;
  now?: () => number;
}

/** The ingest options the configuration decides (topics, group, state, event time, checkpoints, limits). */
export function ingestOptionsFromConfig(
  config: TkgConfig,
): Omit<IngestPipelineOptions, 'brokers' | 'kafka' | 'metrics' | 'logger'> {
  return {
    topicPrefix: config.topicPrefix,
    groupId: config.ingestGroup,
    stateDir: config.stateDir,
    clock: {
      granularity: config.granularity,
      origin: config.origin,
      foldAfter: config.foldAfter,
      beforeOrigin: config.beforeOrigin,
    },
    allowedLateness: config.allowedLateness,
    idleTimeoutMs: config.idleTimeoutMs,
    checkpointEveryMessages: config.checkpointEveryMessages,
    checkpointIntervalMs: config.checkpointIntervalMs,
    limits: { maxMessageBytes: config.maxFactBytes, maxNameBytes: config.maxNameBytes },
    partitions: config.partitions,
    sessionTimeoutMs: config.ingestSessionTimeoutMs,
  };
}

export interface IngestStats {
  messages: number;
  factsAdded: number;
  factsDuplicate: number;
  factsSkipped: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  late: number;
  stepsClosed: number;
  checkpoints: number;
  watermark: number | null;
  nextStepToClose: number | null;
  openSteps: number[];
  numEntities: number;
  numRelations: number;
  offsets: Record<string, number>;
  lag: number;
  restoredFromCheckpoint: boolean;
}

type SnapshotSink = (snapshot: Snapshot) => void | Promise<void>;

const OUTBOX_MAX_MESSAGES = 500;
const OUTBOX_MAX_BYTES = 512 * 1024;
const MAX_HEADER_MESSAGE_CHARS = 1000;
/** Messages between checks of liveness / seeks / the checkpoint clock inside a batch. */
const CHECK_EVERY = 256;
/** Messages between heartbeats inside a batch (kafkajs sends one only when its interval passed). */
const HEARTBEAT_EVERY = 2048;

/**
 * Bytes fetched per partition per request. Measured on YAGO (201k messages, bare kafkajs consumer, CPU s,
 * shared 2-core machine): 16 MiB 0.52-0.81, 4 MiB 0.29-0.41, 1 MiB 0.27-0.41, 512 KiB 0.29-0.48. kafkajs
 * decodes a response whole, so large fetches keep more message objects alive through young-GC scavenges.
 */
export const DEFAULT_MAX_BYTES_PER_PARTITION = 1024 * 1024;

/** The ingest consumer's kafkajs settings (the bench's bare kafkajs consumer reads with the same ones). */
export function ingestConsumerConfig(
  groupId: string,
  options: { sessionTimeoutMs?: number; maxBytesPerPartition?: number } = {},
): ConsumerConfig {
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  return {
    groupId,
    sessionTimeout,
    rebalanceTimeout: Math.max(sessionTimeout, 10_000),
    heartbeatInterval: Math.min(1000, Math.floor(sessionTimeout / 3)),
    allowAutoTopicCreation: false,
    maxBytesPerPartition: options.maxBytesPerPartition ?? DEFAULT_MAX_BYTES_PER_PARTITION,
    maxWaitTimeInMs: 100,
  };
}

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
  private outbox: Array<{ topic: string; message: Message }> = [];
  private outboxBytes = 0;
  private lane: Promise<unknown> = Promise.resolve();
  /** The checkpoint being written in the background (resolved when none; never rejects). */
  private writing: Promise<void> = Promise.resolve();
  private poller: LogEndPoller | undefined;
  /** Partitions the group assigned to this process (undefined before the first join: all of them). */
  private assigned: Set<number> | undefined;
  private readonly now: () => number;
  private reportedMismatches = 0;
  private lastMismatchWarnMs = 0;
  private messagesSinceCheckpoint = 0;
  private lastCheckpointMs = 0;
  private readonly highWatermarks = new Map<number, number>();
  private running = false;
  private failure: Error | undefined;
  private readonly counts = {
    messages: 0,
    factsAdded: 0,
    factsDuplicate: 0,
    factsSkipped: 0,
    rejected: 0,
    late: 0,
    stepsClosed: 0,
    checkpoints: 0,
    rejectedByReason: {} as Record<string, number>,
  };
  /** What publishCountMetrics already added to the Prometheus counters. */
  private readonly reportedCounts = {
    ingested: 0,
    duplicate: 0,
    late: 0,
    rejected: 0,
    rejectedByReason: {} as Record<string, number>,
  };

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
    for (const { partition, low } of topicOffsets) {
      const logStart = Number(low);
      let next = state.nextOffset(partition);
      if (next === undefined || next < logStart) {
        if (next !== undefined)
          this.logger.warn(
            { partition, checkpoint: next, logStart },
            'records below the log start were deleted by retention before ingest read them',
          );
        next = logStart;
      }
      state.setNextOffset(partition, next);
      state.window.addPartition(partition);
    }
    this.applyLogEnd(
      issuedAt,
      topicOffsets.map(({ partition, high, low }) => ({
        partition,
        high: Number(high),
        low: Number(low),
      })),
    );
    await withRetries('check the ingest group offsets', () => this.resetGroupIfAhead(admin), retry);

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
    this.lastCheckpointMs = Date.now();
    this.running = true;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const registry = this.options.registry;
        await this.exclusive(async () => {
          const partition = batch.partition;
          const messages = batch.messages;
          const everyMessages = this.options.checkpointEveryMessages ?? 20_000;
          let next = state.nextOffset(partition) ?? 0;
          let lastSeen: string | undefined;
          for (let i = 0; i < messages.length; i++) {
            // Per-message work is the hot path: liveness, seeks (kafkajs's isStale builds a JSON key per
            // call), heartbeats and the clock-based checkpoint are checked every CHECK_EVERY messages.
            if (i % CHECK_EVERY === 0) {
              if (!isRunning() || isStale() || !this.running) break;
              if (i > 0) {
                if (i % HEARTBEAT_EVERY === 0) await heartbeat();
                if (this.checkpointDue(false)) await this.checkpointInBackground();
              }
            }
            const message = messages[i];
            const offset = Number(message.offset);
            if (offset >= next) {
              if (registry) {
                const id = codec.unknownConfluentId(message.value);
                if (id !== undefined) await this.resolveSchemaId(registry, id, heartbeat);
              }
              this.handleMessage(partition, message);
              next = offset + 1;
              state.setNextOffset(partition, next);
              if (++this.messagesSinceCheckpoint >= everyMessages)
                await this.checkpointInBackground();
            }
            lastSeen = message.offset;
            if (this.outbox.length >= OUTBOX_MAX_MESSAGES || this.outboxBytes >= OUTBOX_MAX_BYTES)
              await this.flushOutbox();
          }
          // One resolve per batch (kafkajs parses the offset into a Long on every call).
          if (lastSeen !== undefined) resolveOffset(lastSeen);
          this.publishCountMetrics();
          // The fetch's high watermark can only say "unread records remain"; idleness needs a fresh log-end read.
          const high = Number(batch.highWatermark);
          this.highWatermarks.set(partition, high);
          if ((state.nextOffset(partition) ?? 0) < high) state.window.markUnread(partition);
          this.updateLag();
          this.reportPartitionMismatches();
          // Steps closed by this batch are captured at its end (one checkpoint per batch) and become durable
          // (then reach the sinks) while the next batch is processed.
          if (this.checkpointDue(true)) await this.checkpointInBackground();
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
          if (
            state.pendingSnapshots().length > 0 ||
            (state.hasChanges() &&
              Date.now() - this.lastCheckpointMs >= this.checkpointIntervalMs())
          ) {
            await this.checkpointInBackground();
          }
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
   * Resolve a producer's Confluent schema id from the registry before its first fact is decoded. While the registry
   * does not answer, wait with backoff (heartbeating, logging): that is not the fact's fault, so it is no dead letter.
   */
  private async resolveSchemaId(
    registry: ConfluentRegistry,
    id: number,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await registry.resolveId(id, 'Fact');
        return;
      } catch (error) {
        if (!this.running) throw error;
        const wait = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
        this.logger.warn(
          { id, attempt, err: (error as Error).message, retryInMs: wait },
          'schema registry did not answer; ingest waits for it',
        );
        await heartbeat().catch(() => undefined);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Count facts whose subject arrived on another partition before; warn at most once a minute. */
  private reportPartitionMismatches(): void {
    const monitor = (this.state as IngestState).subjectPartitions;
    if (monitor.mismatches === this.reportedMismatches) return;
    this.metrics?.factsPartitionMismatch.inc(monitor.mismatches - this.reportedMismatches);
    const now = Date.now();
    if (now - this.lastMismatchWarnMs >= 60_000 && monitor.lastMismatch) {
      const { subject, firstPartition, partition } = monitor.lastMismatch;
      this.logger.warn(
        {
          topic: this.topics.facts,
          subject: (this.state as IngestState).vocabulary.entityNames[subject],
          firstPartition,
          partition,
          factsOnAnotherPartition: monitor.mismatches,
        },
        "one subject's facts arrive on several partitions: a producer does not partition by the subject key like Kafka's Java client (librdkafka clients: set partitioner=murmur2_random; key every fact by its subject; keep the partition count)",
      );
      this.lastMismatchWarnMs = now;
    }
    this.reportedMismatches = monitor.mismatches;
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
    const targets = offsets.map(({ partition, high }) => [partition, Number(high)] as const);
    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    for (;;) {
      if (this.failure) throw this.failure;
      if (targets.every(([partition, high]) => (state.nextOffset(partition) ?? 0) >= high)) break;
      if (Date.now() > deadline) {
        const behind = targets
          .filter(([p, high]) => (state.nextOffset(p) ?? 0) < high)
          .map(([p, high]) => `${p}: ${state.nextOffset(p)}/${high}`);
        throw new TkgError(
          `ingest did not catch up within ${options.timeoutMs} ms (partition position/end: ${behind.join(', ')})`,
          {
            reason: 'timeout',
            retriable: true,
          },
        );
      }
      await new Promise((r) => setTimeout(r, options.pollMs ?? 50));
    }
    await this.exclusive(() => this.checkpointNow());
  }

  /** End of stream: close every open step (later facts for them are late), make it durable, deliver it. */
  async flush(): Promise<void> {
    const state = this.ingestState;
    await this.exclusive(async () => {
      state.window.flush();
      await this.checkpointNow();
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
      await this.exclusive(() => this.checkpointNow()).catch((error: unknown) => this.fail(error));
    }
    await this.writing; // a failed or stopped pipeline still finishes the write it started
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
      ...this.counts,
      rejectedByReason: { ...this.counts.rejectedByReason },
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

  // ---- internals -------------------------------------------------------------------------------

  private checkpointIntervalMs(): number {
    return this.options.checkpointIntervalMs ?? 1000;
  }

  private checkpointDue(onStepClose: boolean): boolean {
    const state = this.state as IngestState;
    if (onStepClose && state.pendingSnapshots().length > 0) return true;
    if (this.messagesSinceCheckpoint >= (this.options.checkpointEveryMessages ?? 20_000))
      return true;
    return state.hasChanges() && Date.now() - this.lastCheckpointMs >= this.checkpointIntervalMs();
  }

  /** Run `work` after everything queued before it (batches, timer ticks, flushes never interleave). */
  private exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    const result = this.lane.then(work);
    this.lane = result.catch(() => undefined);
    return result;
  }

  private handleMessage(partition: number, message: KafkaMessage): void {
    const state = this.state as IngestState;
    this.counts.messages += 1;
    const outcome = state.ingest(message.value, partition);
    switch (outcome.kind) {
      case 'added':
        this.counts.factsAdded += 1;
        break;
      case 'duplicate':
        this.counts.factsDuplicate += 1;
        break;
      case 'skipped':
        this.counts.factsSkipped += 1;
        break;
      case 'late':
        this.counts.late += 1;
        this.enqueue(this.topics.factsLate, message, partition, {
          'tkg.late.step': String(outcome.fact.step),
          'tkg.late.next_step_to_close': String(outcome.info.nextStepToClose),
        });
        break;
      case 'rejected': {
        this.counts.rejected += 1;
        this.counts.rejectedByReason[outcome.reason] =
          (this.counts.rejectedByReason[outcome.reason] ?? 0) + 1;
        const text =
          outcome.message.length > MAX_HEADER_MESSAGE_CHARS
            ? `${outcome.message.slice(0, MAX_HEADER_MESSAGE_CHARS)}...`
            : outcome.message;
        this.enqueue(this.topics.factsDlq, message, partition, {
          'tkg.error.reason': outcome.reason,
          'tkg.error.field': outcome.field,
          'tkg.error.message': text,
        });
        break;
      }
    }
  }

  /**
   * Counters reach Prometheus as deltas once per batch and checkpoint, not per message (a prom-client
   * inc() per message costs more than decoding the message).
   */
  private publishCountMetrics(): void {
    const metrics = this.metrics;
    if (!metrics) return;
    const counts = this.counts;
    const reported = this.reportedCounts;
    const ingested = counts.factsAdded + counts.factsDuplicate;
    if (ingested > reported.ingested) metrics.factsIngested.inc(ingested - reported.ingested);
    if (counts.factsDuplicate > reported.duplicate)
      metrics.factsDuplicate.inc(counts.factsDuplicate - reported.duplicate);
    if (counts.late > reported.late) metrics.factsLate.inc(counts.late - reported.late);
    reported.ingested = ingested;
    reported.duplicate = counts.factsDuplicate;
    reported.late = counts.late;
    if (counts.rejected > reported.rejected) {
      for (const [reason, count] of Object.entries(counts.rejectedByReason)) {
        const before = reported.rejectedByReason[reason] ?? 0;
        if (count > before) metrics.factsRejected.inc({ reason }, count - before);
        reported.rejectedByReason[reason] = count;
      }
      reported.rejected = counts.rejected;
    }
  }

  /** Queue the ORIGINAL key, value and headers plus ours for the DLQ / late topic. */
  private enqueue(
    topic: string,
    message: KafkaMessage,
    partition: number,
    extra: Record<string, string>,
  ): void {
    const headers: IHeaders = { ...(message.headers ?? {}) };
    for (const [key, value] of Object.entries(extra)) headers[key] = value;
    headers['tkg.source.topic'] = this.topics.facts;
    headers['tkg.source.partition'] = String(partition);
    headers['tkg.source.offset'] = message.offset;
    this.outbox.push({
      topic,
      message: { key: message.key, value: message.value, headers, timestamp: message.timestamp },
    });
    this.outboxBytes += (message.value?.length ?? 0) + (message.key?.length ?? 0) + 256;
  }

  private async flushOutbox(): Promise<void> {
    if (this.outbox.length === 0) return;
    const producer = this.producer as Producer;
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of this.outbox) {
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push(message);
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic.entries()].map(([topic, messages]) => ({ topic, messages })),
    });
    this.outbox = [];
    this.outboxBytes = 0;
  }

  /**
   * DLQ/late sends acked -> capture the state (IngestState.beginCheckpoint) -> in the background:
   * snapshots + vocabulary + checkpoint durable -> commit offsets -> sinks. Ingest goes on while the disk
   * works; at most one checkpoint is being written (the next capture waits for it), so writes, commits
   * and deliveries stay in capture order. Call inside the lane.
   */
  private async checkpointInBackground(): Promise<void> {
    const state = this.state as IngestState;
    this.publishCountMetrics();
    await this.flushOutbox();
    this.messagesSinceCheckpoint = 0;
    this.lastCheckpointMs = Date.now();
    if (!state.hasChanges()) return;
    await this.writing;
    if (this.failure) throw this.failure;
    const started = performance.now();
    const job = state.beginCheckpoint();
    this.writing = this.completeCheckpoint(job, started);
  }

  /** checkpointInBackground, then wait until it is durable, committed and delivered. Call inside the lane. */
  private async checkpointNow(): Promise<void> {
    await this.checkpointInBackground();
    await this.writing;
    if (this.failure) throw this.failure;
  }

  /** Never rejects: a failed write stops the pipeline (the previous checkpoint stays the truth). */
  private async completeCheckpoint(job: CheckpointJob, started: number): Promise<void> {
    const state = this.state as IngestState;
    try {
      await job.write();
    } catch (error) {
      this.fail(error);
      return;
    }
    this.counts.checkpoints += 1;
    this.metrics?.checkpointSeconds.observe((performance.now() - started) / 1000);
    this.metrics?.vocabularySize.set({ kind: 'entity' }, state.vocabulary.numEntities);
    this.metrics?.vocabularySize.set({ kind: 'relation' }, state.vocabulary.numRelations);
    const watermark = state.window.watermark();
    if (watermark !== null) this.metrics?.watermarkStep.set(watermark);
    const offsets = job.offsets;
    if (this.consumer && offsets.length > 0) {
      // Best effort: the checkpoint, not the group, is the truth on restart.
      await this.consumer
        .commitOffsets(
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
    for (const snapshot of job.snapshots) {
      this.counts.stepsClosed += 1;
      this.metrics?.stepsClosed.inc();
      this.metrics?.snapshotFacts.set(snapshot.triples.length / 3);
      await this.deliver(snapshot);
    }
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

  /**
   * If the group's committed offsets are AHEAD of the checkpoint (e.g. the state directory was replaced),
   * rewind the group to the checkpoint so no record is skipped. Needs the group to be empty: waits for a
   * dead member's session to expire.
   */
  private async resetGroupIfAhead(admin: Admin): Promise<void> {
    const state = this.state as IngestState;
    const committed = await admin.fetchOffsets({
      groupId: this.groupId,
      topics: [this.topics.facts],
    });
    const partitions = committed[0]?.partitions ?? [];
    const ahead = partitions.filter(
      ({ partition, offset }) =>
        Number(offset) >= 0 && Number(offset) > (state.nextOffset(partition) ?? 0),
    );
    if (ahead.length === 0) return;
    this.logger.warn(
      { ahead },
      'group offsets are ahead of the checkpoint; rewinding the group to the checkpoint',
    );
    const deadline = Date.now() + 2 * (this.options.sessionTimeoutMs ?? 10_000) + 10_000;
    for (;;) {
      try {
        await admin.setOffsets({
          groupId: this.groupId,
          topic: this.topics.facts,
          partitions: state
            .offsetEntries()
            .map(([partition, offset]) => ({ partition, offset: String(offset) })),
        });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.logger.error({ err: this.failure }, 'ingest pipeline failed');
    this.running = false;
  }
}
