// The internal topic `<prefix>.snapshots`: closed snapshots with their vocabulary delta, so a trainer
// (or a scoring replica) on another machine can follow the ingest stage without its state directory.
// Owns: the topic's name and configs, the record format (key: step; value: a TKGW container whose JSON
// header carries the step, vocabulary sizes and the names added since the previous closed step), a
// publisher (the ingest CLI's onSnapshot hook) and a follower that rebuilds the vocabulary and hands
// snapshots on in step order. Must not touch: ingest internals, the window, the model.
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import type { NamedVocabulary, Snapshot } from '../core/types.ts';

export type { NamedVocabulary };
import { TkgError } from '../core/errors.ts';
import { decodeContainer, encodeContainer } from '../core/durable.ts';

/** `<prefix>.snapshots` (not one of src/kafka's user-facing topics: an internal stage-to-stage log). */
export function snapshotsTopicName(prefix = 'tkg'): string {
  return `${prefix}.snapshots`;
}

/** 1 partition (steps must stay in order for every reader), kept forever (a new trainer replays all). */
export async function ensureSnapshotsTopic(
  admin: Admin,
  prefix = 'tkg',
  replicationFactor = 1,
): Promise<string> {
  const topic = snapshotsTopicName(prefix);
  const existing = await admin.listTopics();
  if (!existing.includes(topic)) {
    await admin
      .createTopics({
        topics: [
          {
            topic,
            numPartitions: 1,
            replicationFactor,
            configEntries: [
              { name: 'retention.ms', value: '-1' },
              { name: 'max.message.bytes', value: String(32 * 1024 * 1024) },
            ],
          },
        ],
        waitForLeaders: true,
      })
      .catch((error: unknown) => {
        if (!/already exists/i.test(String((error as Error).message))) throw error;
      });
  }
  return topic;
}

/** One record of the snapshots topic. Names with ids in [entityOffset, snapshot.numEntities) are new. */
export interface SnapshotRecord {
  snapshot: Snapshot;
  entityOffset: number;
  newEntities: string[];
  relationOffset: number;
  newRelations: string[];
}

/** Pure: a record's bytes (TKGW container: JSON header + the flat triples block). */
export function encodeSnapshotRecord(record: SnapshotRecord): Buffer {
  const { snapshot } = record;
  return encodeContainer(
    {
      kind: 'snapshot-record',
      step: snapshot.step,
      numEntities: snapshot.numEntities,
      numRelations: snapshot.numRelations,
      entityOffset: record.entityOffset,
      newEntities: record.newEntities,
      relationOffset: record.relationOffset,
      newRelations: record.newRelations,
    },
    [snapshot.triples],
  );
}

/** Pure: parse a record; throws a TkgError (reason 'corrupt_snapshot_record') naming the problem. */
export function decodeSnapshotRecord(
  bytes: Buffer,
  where = 'snapshots topic record',
): SnapshotRecord {
  const { header, blocks } = decodeContainer(bytes, where);
  const ok =
    header.kind === 'snapshot-record' &&
    Number.isInteger(header.step) &&
    Number.isInteger(header.numEntities) &&
    Number.isInteger(header.entityOffset) &&
    Array.isArray(header.newEntities) &&
    Array.isArray(header.newRelations) &&
    blocks.length === 1 &&
    blocks[0].length % 3 === 0;
  if (!ok)
    throw new TkgError(
      `${where} is not a snapshot record (header ${JSON.stringify(header).slice(0, 200)})`,
      { reason: 'corrupt_snapshot_record' },
    );
  return {
    snapshot: {
      step: header.step as number,
      triples: blocks[0],
      numEntities: header.numEntities as number,
      numRelations: header.numRelations as number,
    },
    entityOffset: header.entityOffset as number,
    newEntities: header.newEntities as string[],
    relationOffset: header.relationOffset as number,
    newRelations: header.newRelations as string[],
  };
}

/**
 * Pure: the record of `snapshot`, carrying the names added since `previous` (the vocabulary sizes of the
 * previous closed step, {0, 0} for the first). Stateless per step, so a restarted ingest re-publishes
 * identical records (the follower ignores repeated steps).
 */
export function snapshotRecordOf(
  snapshot: Snapshot,
  vocabulary: NamedVocabulary,
  previous: { numEntities: number; numRelations: number },
): SnapshotRecord {
  const entityOffset = Math.min(previous.numEntities, snapshot.numEntities);
  const relationOffset = Math.min(previous.numRelations, snapshot.numRelations);
  return {
    snapshot,
    entityOffset,
    newEntities: vocabulary.entityNames.slice(entityOffset, snapshot.numEntities),
    relationOffset,
    newRelations: vocabulary.relationNames.slice(relationOffset, snapshot.numRelations),
  };
}

type Sizes = { numEntities: number; numRelations: number };

/** Publishes closed snapshots (in step order) to `<prefix>.snapshots`. */
export class SnapshotPublisher {
  private readonly producer: Producer;
  private readonly topic: string;
  private readonly previousSizesOf: (step: number) => Sizes;
  private previous: Sizes | undefined;

  /**
   * previousSizesOf(step): vocabulary sizes of the last step closed before `step` ({0, 0} if none); asked once,
   * for the first snapshot this publisher sees (e.g. read from the ingest SnapshotStore after a restart).
   */
  constructor(options: {
    producer: Producer;
    topic: string;
    previousSizesOf?: (step: number) => Sizes;
  }) {
    this.producer = options.producer;
    this.topic = options.topic;
    this.previousSizesOf = options.previousSizesOf ?? (() => ({ numEntities: 0, numRelations: 0 }));
  }

  async publish(snapshot: Snapshot, vocabulary: NamedVocabulary): Promise<void> {
    const record = snapshotRecordOf(
      snapshot,
      vocabulary,
      this.previous ?? this.previousSizesOf(snapshot.step),
    );
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: [{ key: String(snapshot.step), value: encodeSnapshotRecord(record) }],
    });
    this.previous = { numEntities: snapshot.numEntities, numRelations: snapshot.numRelations };
  }
}

/** Sizes of the last snapshot in `store` before `step` (what a restarted ingest published last). */
export function previousSizesFromStore(
  store: { steps(): number[]; read(step: number): Snapshot | null },
  step: number,
): Sizes {
  const before = store.steps().filter((s) => s < step);
  const last = before.length > 0 ? store.read(before[before.length - 1]) : null;
  return last
    ? { numEntities: last.numEntities, numRelations: last.numRelations }
    : { numEntities: 0, numRelations: 0 };
}

/** Vocabulary rebuilt from records' deltas (ids are positions). */
export class FollowedVocabulary implements NamedVocabulary {
  readonly entityNames: string[] = [];
  readonly relationNames: string[] = [];

  /** Apply a record's delta; names already known must agree (else the topic mixes two vocabularies). */
  apply(record: SnapshotRecord): void {
    applyDelta(
      this.entityNames,
      record.entityOffset,
      record.newEntities,
      'entity',
      record.snapshot.step,
    );
    applyDelta(
      this.relationNames,
      record.relationOffset,
      record.newRelations,
      'relation',
      record.snapshot.step,
    );
  }
}

function applyDelta(
  names: string[],
  offset: number,
  delta: readonly string[],
  kind: string,
  step: number,
): void {
  if (offset > names.length) {
    throw new TkgError(
      `snapshot record of step ${step} adds ${kind} names from id ${offset} but only ${names.length} are known: records are missing (was the snapshots topic truncated by retention?)`,
      { reason: 'snapshot_gap' },
    );
  }
  delta.forEach((name, i) => {
    const id = offset + i;
    if (id < names.length) {
      if (names[id] !== name)
        throw new TkgError(
          `snapshot record of step ${step} names ${kind} ${id} ${JSON.stringify(name)} but it is ${JSON.stringify(names[id])}: the topic mixes two ingest runs; use a new topic prefix`,
          {
            reason: 'vocabulary_mismatch',
          },
        );
    } else names.push(name);
  });
}

export interface SnapshotTopicFollowerOptions {
  kafka: Kafka;
  topic: string;
  /** Called once per new step, in order, after the vocabulary holds every name the snapshot uses. */
  onSnapshot: (snapshot: Snapshot, vocabulary: FollowedVocabulary) => Promise<unknown>;
}

/**
 * Reads `<prefix>.snapshots` from the beginning (own throw-away group: every follower sees every record),
 * rebuilds the vocabulary, and hands each step after the last one handed over to `onSnapshot`. Records are
 * queued as they arrive and handed over by a separate loop, so slow work (training) never stalls the
 * consumer's heartbeats.
 */
export class SnapshotTopicFollower {
  readonly vocabulary = new FollowedVocabulary();
  private readonly options: SnapshotTopicFollowerOptions;
  private consumer: Consumer | undefined;
  private lastQueuedStep = Number.NEGATIVE_INFINITY;
  private readonly queue: Snapshot[] = [];
  private draining: Promise<void> | undefined;
  private stopped = false;
  private failure: Error | undefined;

  constructor(options: SnapshotTopicFollowerOptions) {
    this.options = options;
  }

  /** A fatal error (corrupt record, vocabulary gap, failing callback); the follower stops handing over. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Snapshots received but not yet handed over. */
  get backlog(): number {
    return this.queue.length;
  }

  async start(): Promise<void> {
    const consumer = this.options.kafka.consumer({
      groupId: `${this.options.topic}.follower.${randomUUID()}`,
      maxBytesPerPartition: 32 * 1024 * 1024,
      maxWaitTimeInMs: 200,
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message, partition }) => {
        if (this.failure || !message.value) return;
        try {
          const record = decodeSnapshotRecord(
            message.value,
            `${this.options.topic}[${partition}]@${message.offset}`,
          );
          this.vocabulary.apply(record);
          if (record.snapshot.step <= this.lastQueuedStep) return;
          this.lastQueuedStep = record.snapshot.step;
          this.queue.push(record.snapshot);
          this.kick();
        } catch (error) {
          this.fail(error);
        }
      },
    });
  }

  /** Resolves when every queued snapshot has been handed over. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.consumer?.disconnect().catch(() => undefined);
    this.consumer = undefined;
    await this.draining;
  }

  /**
   * Start the hand-over loop unless it runs. The loop's promise is stored before it can finish and cleared in a
   * later turn (.finally), which re-starts it if records arrived meanwhile: the follower cannot stall.
   */
  private kick(): void {
    if (this.draining) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.queue.length > 0 && !this.stopped && !this.failure) this.kick();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.stopped && !this.failure) {
        const snapshot = this.queue.shift() as Snapshot;
        await this.options.onSnapshot(snapshot, this.vocabulary);
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private fail(error: unknown): void {
    this.failure ??= error instanceof Error ? error : new Error(String(error));
  }
}
