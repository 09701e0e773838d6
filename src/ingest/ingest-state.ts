// The ingest stage's durable state, without Kafka: decode -> validate -> step clock -> vocabulary ->
// window, plus the per-partition next offsets and the checkpoint that binds them together.
// Owns: `<stateDir>/checkpoint.bin` (window state + offsets + vocabulary sizes + clock state, one
// atomic file), `<stateDir>/vocabulary/` and `<stateDir>/snapshots/`. Must not import kafkajs or
// src/kafka (the consumer in consumer.ts drives it), nor src/serve or src/train.
//
// Recovery contract: a checkpoint is written only after (1) every closed snapshot it counts as closed
// is in snapshots/, (2) every vocabulary name its open facts use is fsynced; and offsets are committed
// to Kafka only after the checkpoint. On restart the checkpoint's offsets are the truth: the vocabulary
// is truncated to its sizes, snapshot files of steps it still has open are deleted, and consumption
// resumes at its offsets. Re-delivered facts are harmless (snapshots are sets).
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { EncodedFact, Snapshot } from '../core/types.ts';
import { ConfigError, InvalidInputError } from '../core/errors.ts';
import type { SchemaCodec } from '../schemas/codec.ts';
import { EventTimeWindow, type LateFactInfo } from '../window/event-time-window.ts';
import { StepClock, type StepClockSpec } from '../core/step-clock.ts';
import { decodeWindowState, encodeWindowState } from '../window/checkpoint.ts';
import {
  readFileIfExists,
  removeStaleTempFiles,
  writeFileAtomic,
  writeFileAtomicAsync,
} from '../core/durable.ts';
import { SnapshotStore } from '../window/snapshot-store.ts';
import {
  PlainFactReader,
  emptyPlainFactFields,
  type PlainFactFields,
} from '../schemas/fact-reader.ts';
import { NOT_UTF8, Utf8NameCache } from './name-cache.ts';
import { PersistentVocabulary } from './vocabulary.ts';
import { SubjectPartitionMonitor } from './subject-partitions.ts';
import {
  checkMessageSize,
  defaultFactLimits,
  reasonOf,
  validateFact,
  type FactLimits,
  type RejectionReason,
} from './validate.ts';

export type IngestOutcome =
  | { kind: 'added' | 'duplicate'; fact: EncodedFact }
  | { kind: 'skipped' } // deliberately outside the sliced range (beforeOrigin: 'skip')
  | { kind: 'late'; fact: EncodedFact; info: LateFactInfo }
  | { kind: 'rejected'; reason: RejectionReason; field: string; message: string };

export interface IngestStateOptions {
  stateDir: string;
  codec: SchemaCodec;
  clock?: StepClockSpec;
  allowedLateness?: number;
  idleTimeoutMs?: number;
  now?: () => number;
  limits?: Partial<FactLimits>;
  emitEmptySteps?: boolean;
  /** The facts topic; a checkpoint of another topic is refused. */
  topic: string;
}

/** A captured checkpoint (see IngestState.beginCheckpoint); durable once `write()` resolves. */
export interface CheckpointJob {
  /** Steps closed since the previous capture: deliver them after write(). */
  snapshots: Snapshot[];
  /** Next offset per partition covered by this checkpoint: commit them after write(). */
  offsets: Array<[number, number]>;
  /** Size of the checkpoint file. */
  bytes: number;
  write(): Promise<void>;
}

interface CheckpointExtra {
  format: 'tkg-ingest-checkpoint';
  topic: string;
  offsets: Record<string, number>;
  vocabulary: { numEntities: number; numRelations: number };
  clockSpec: StepClockSpec;
  clockState: { originMs: number | null };
  writtenAt: string;
}

const sameSpec = (a: StepClockSpec, b: StepClockSpec) =>
  (a.granularity ?? '') === (b.granularity ?? '') &&
  (a.origin ?? '') === (b.origin ?? '') &&
  (a.foldAfter ?? '') === (b.foldAfter ?? '') &&
  (a.beforeOrigin ?? 'reject') === (b.beforeOrigin ?? 'reject');

export class IngestState {
  readonly stateDir: string;
  readonly topic: string;
  readonly codec: SchemaCodec;
  readonly vocabulary: PersistentVocabulary;
  readonly clock: StepClock;
  readonly window: EventTimeWindow;
  readonly store: SnapshotStore;
  readonly limits: FactLimits;
  /** Subjects whose facts arrive on more than one partition (not checkpointed: a per-process warning). */
  readonly subjectPartitions = new SubjectPartitionMonitor();
  /** partition -> next offset to process (everything below is in the state). */
  private readonly offsets = new Map<number, number>();
  /** Closed snapshots not yet durable (written at the next checkpoint). */
  private pending: Snapshot[] = [];
  private lastLate: LateFactInfo | null = null;
  /** Hot path for plain Avro facts (see ingest()): reader, its scratch fields, name-bytes -> id caches. */
  private readonly plainReader: PlainFactReader;
  private readonly plainFields: PlainFactFields = emptyPlainFactFields();
  private readonly entityCache: Utf8NameCache;
  private readonly relationCache: Utf8NameCache;
  /** Whether anything changed since the last checkpoint. */
  private dirty = false;
  readonly restoredFromCheckpoint: boolean;

  constructor(options: IngestStateOptions) {
    this.stateDir = options.stateDir;
    this.topic = options.topic;
    this.codec = options.codec;
    this.limits = { ...defaultFactLimits, ...options.limits };
    removeStaleTempFiles(this.stateDir, safeList(this.stateDir));
    const bytes = readFileIfExists(this.checkpointPath);
    let clockSpec = options.clock ?? {};
    let restored: ReturnType<typeof decodeWindowState> | null = null;
    if (bytes) {
      restored = decodeWindowState(bytes, this.checkpointPath);
      const extra = restored.extra as unknown as CheckpointExtra;
      if (extra.topic !== options.topic) {
        throw new ConfigError(
          `state directory ${this.stateDir} holds the checkpoint of topic ${extra.topic}, not ${options.topic}; use another --state-dir`,
        );
      }
      const empty = !clockSpec.granularity && !clockSpec.origin && !clockSpec.foldAfter;
      if (empty) clockSpec = extra.clockSpec;
      else if (!sameSpec(clockSpec, extra.clockSpec)) {
        throw new ConfigError(
          `state directory ${this.stateDir} was created with step clock ${JSON.stringify(extra.clockSpec)}, now ${JSON.stringify(clockSpec)}: steps would change meaning; use the same --granularity/--origin or a new --state-dir`,
        );
      }
    }
    this.clock = new StepClock(
      clockSpec,
      restored ? (restored.extra as unknown as CheckpointExtra).clockState : undefined,
    );
    this.vocabulary = new PersistentVocabulary(join(this.stateDir, 'vocabulary'));
    this.store = new SnapshotStore(join(this.stateDir, 'snapshots'));
    this.window = new EventTimeWindow(
      {
        allowedLateness: options.allowedLateness ?? 0,
        idleTimeoutMs: options.idleTimeoutMs ?? 0,
        now: options.now,
        emitEmptySteps: options.emitEmptySteps,
        vocabularySizes: () => this.vocabulary.sizes(),
      },
      restored?.state,
    );
    if (restored) {
      const extra = restored.extra as unknown as CheckpointExtra;
      this.vocabulary.truncateTo(extra.vocabulary);
      for (const [partition, offset] of Object.entries(extra.offsets))
        this.offsets.set(Number(partition), offset);
      // Steps closed after this checkpoint by a process that then died will close again: drop their files.
      const next = restored.state.nextStepToClose;
      for (const step of this.store.steps())
        if (next === null || step >= next) rmSync(this.store.pathOf(step), { force: true });
    } else {
      // No checkpoint: whatever is in the directory is not covered by one; start clean.
      for (const step of this.store.steps()) rmSync(this.store.pathOf(step), { force: true });
      this.vocabulary.truncateTo({ numEntities: 0, numRelations: 0 });
    }
    this.restoredFromCheckpoint = restored !== null;
    // After the vocabulary's truncation to the checkpoint: from here on it only grows.
    const vocabulary = this.vocabulary;
    this.plainReader = new PlainFactReader(this.codec.fingerprint('Fact'));
    this.entityCache = new Utf8NameCache((name) => vocabulary.entityId(name));
    this.relationCache = new Utf8NameCache((name) => vocabulary.relationId(name));
    this.window.onSnapshot((snapshot) => {
      this.pending.push(snapshot);
    });
    this.window.onLate((_fact, _partition, info) => {
      this.lastLate = info;
    });
  }

  get checkpointPath(): string {
    return join(this.stateDir, 'checkpoint.bin');
  }

  /** Next offset to process for `partition` (undefined if the checkpoint does not know it). */
  nextOffset(partition: number): number | undefined {
    return this.offsets.get(partition);
  }

  setNextOffset(partition: number, offset: number): void {
    this.offsets.set(partition, offset);
    this.dirty = true;
  }

  offsetEntries(): Array<[number, number]> {
    return [...this.offsets.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** Closed snapshots waiting for the next checkpoint. */
  pendingSnapshots(): readonly Snapshot[] {
    return this.pending;
  }

  hasChanges(): boolean {
    return this.dirty || this.pending.length > 0;
  }

  /**
   * One message value from `partition`: never throws for bad input (returns a rejection instead).
   * Does NOT advance the offset; call setNextOffset after handling the outcome.
   */
  ingest(value: Buffer | null, partition: number): IngestOutcome {
    this.dirty = true;
    let fact: EncodedFact | undefined;
    if (value !== null) fact = this.plainFact(value) ?? this.plainJsonFact(value);
    if (fact === undefined) {
      const outcome = this.decodeFact(value);
      if (outcome.kind !== 'fact') return outcome;
      fact = outcome.fact;
    }
    this.lastLate = null;
    this.subjectPartitions.observe(fact.subject, partition);
    const outcome = this.window.add(fact, partition);
    if (outcome === 'late')
      return { kind: 'late', fact, info: this.lastLate as unknown as LateFactInfo };
    return { kind: outcome, fact };
  }

  /**
   * The hot path: a plain Avro fact (current schema, integer step; see PlainFactReader) read
   * without avsc, strings or validation objects; undefined for anything else, which then takes the general
   * path (decodeFact). Both give the same fact for the same value (test/ingest/plain-fact.test.ts).
   */
  private plainFact(value: Buffer): EncodedFact | undefined {
    const limits = this.limits;
    const f = this.plainFields;
    if (value.length > limits.maxMessageBytes || !this.plainReader.read(value, f)) return undefined;
    const maxName = limits.maxNameBytes;
    if (
      f.subjectEnd - f.subjectStart > maxName ||
      f.relationEnd - f.relationStart > maxName ||
      f.objectEnd - f.objectStart > maxName ||
      !Number.isSafeInteger(f.step)
    )
      return undefined;
    try {
      // Same assignment order as the general path: subject, relation, object.
      const subject = this.entityCache.idOf(value, f.subjectStart, f.subjectEnd);
      if (subject === NOT_UTF8) return undefined;
      const relation = this.relationCache.idOf(value, f.relationStart, f.relationEnd);
      if (relation === NOT_UTF8) return undefined;
      const object = this.entityCache.idOf(value, f.objectStart, f.objectEnd);
      if (object === NOT_UTF8) return undefined;
      return { subject, relation, object, step: f.step };
    } catch {
      return undefined; // e.g. vocabulary_full: the general path rejects it with its reason
    }
  }

  /**
   * The JSON hot path: a value that starts with `{` and parses to exactly a plain fact (string names, a
   * non-negative integer step, no timestamp, no other fields) skips the codec's schema walk (defaults,
   * type check: nothing to fill or convert for such an object). Undefined for anything else, including
   * every invalid value: the general path then produces the rejection.
   */
  private plainJsonFact(value: Buffer): EncodedFact | undefined {
    if (value.length === 0 || value[0] !== 0x7b || value.length > this.limits.maxMessageBytes)
      return undefined;
    try {
      const parsed: unknown = JSON.parse(value.toString('utf8'));
      if (!isPlainJsonFact(parsed)) return undefined;
      const valid = validateFact(parsed, this.limits);
      return {
        subject: this.vocabulary.entityId(valid.subject),
        relation: this.vocabulary.relationId(valid.relation),
        object: this.vocabulary.entityId(valid.object),
        step: parsed.step,
      };
    } catch {
      return undefined;
    }
  }

  /** The general path: decode (any wire format) -> validate -> step clock -> vocabulary. */
  private decodeFact(
    value: Buffer | null,
  ): { kind: 'fact'; fact: EncodedFact } | Exclude<IngestOutcome, { fact: EncodedFact }> {
    let fact: EncodedFact;
    try {
      checkMessageSize(value?.length ?? 0, this.limits);
      const decoded = this.codec.decodeValue(value, { expect: 'Fact' });
      const valid = validateFact(decoded.value, this.limits);
      const step = this.clock.stepOf(valid);
      if (step === null) return { kind: 'skipped' };
      fact = {
        subject: this.vocabulary.entityId(valid.subject),
        relation: this.vocabulary.relationId(valid.relation),
        object: this.vocabulary.entityId(valid.object),
        step,
      };
    } catch (error) {
      const reason = reasonOf(error);
      const field = error instanceof InvalidInputError ? error.field : 'value';
      const message = error instanceof Error ? error.message : String(error);
      return { kind: 'rejected', reason, field, message };
    }
    return { kind: 'fact', fact };
  }

  /**
   * Make the state durable: closed snapshots to files, vocabulary fsync, then the checkpoint file
   * (window + offsets + vocabulary sizes + clock) atomically. Returns the snapshots that just became
   * durable (hand them to sinks now) and the offsets the checkpoint covers (commit them now).
   */
  checkpoint(): { snapshots: Snapshot[]; offsets: Array<[number, number]>; bytes: number } {
    const snapshots = this.pending;
    this.store.writeMany(snapshots);
    this.vocabulary.sync();
    const bytes = this.encodeCheckpoint(this.offsetEntries());
    writeFileAtomic(this.checkpointPath, bytes);
    this.pending = [];
    this.dirty = false;
    return { snapshots, offsets: this.offsetEntries(), bytes: bytes.length };
  }

  /**
   * checkpoint() split in two so ingest can go on while the disk works: this call captures the state NOW
   * (closed snapshots, window state, offsets, vocabulary sizes; the state counts as clean afterwards) and
   * returns a job whose `write()` makes exactly that capture durable in the same order as checkpoint():
   * snapshot files (concurrently), vocabulary names up to the captured sizes, then the checkpoint file.
   * Jobs must be written one after the other, in capture order (a later checkpoint file must not be
   * overwritten by an earlier one). Until `write()` resolves, the previous checkpoint is the truth.
   */
  beginCheckpoint(): CheckpointJob {
    const snapshots = this.pending;
    const offsets = this.offsetEntries();
    const sizes = this.vocabulary.sizes();
    const bytes = this.encodeCheckpoint(offsets);
    this.pending = [];
    this.dirty = false;
    return {
      snapshots,
      offsets,
      bytes: bytes.length,
      write: async () => {
        await this.store.writeManyAsync(snapshots);
        await this.vocabulary.syncToAsync(sizes);
        await writeFileAtomicAsync(this.checkpointPath, bytes);
      },
    };
  }

  private encodeCheckpoint(offsets: Array<[number, number]>): Buffer {
    const extra: CheckpointExtra = {
      format: 'tkg-ingest-checkpoint',
      topic: this.topic,
      offsets: Object.fromEntries(offsets.map(([p, o]) => [String(p), o])),
      vocabulary: this.vocabulary.sizes(),
      clockSpec: this.clock.spec,
      clockState: this.clock.state(),
      writtenAt: new Date().toISOString(),
    };
    return encodeWindowState(this.window.state(), extra as unknown as Record<string, unknown>);
  }

  close(): void {
    this.vocabulary.close();
  }
}

const plainJsonKeys = new Set(['subject', 'relation', 'object', 'step', 'timestamp']);

/** A parsed JSON object that reads the same as a Fact record without any schema default or conversion. */
function isPlainJsonFact(
  parsed: unknown,
): parsed is { subject: string; relation: string; object: string; step: number } {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return false;
  const record = parsed as Record<string, unknown>;
  for (const key in record) if (!plainJsonKeys.has(key)) return false;
  return (
    typeof record.subject === 'string' &&
    typeof record.relation === 'string' &&
    typeof record.object === 'string' &&
    typeof record.step === 'number' &&
    Number.isSafeInteger(record.step) &&
    record.step >= 0 &&
    (record.timestamp === undefined || record.timestamp === null)
  );
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
