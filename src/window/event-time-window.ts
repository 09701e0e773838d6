// Event-time tumbling window over steps. Owns: per-partition watermarks (max event step seen minus
// the allowed lateness; the window's watermark is their minimum, where an idle partition counts with what it allows
// (src/window/idleness.ts); every step < watermark is closed, so step t closes once each partition that is not idle
// has seen a step > t + lateness), closing steps IN ORDER into deduplicated Snapshots, late-fact detection, flush at
// end of stream, and the window's checkpointable state.
// Must not touch Kafka, names/vocabulary, files or the trainer: facts arrive as EncodedFact with a partition number,
// snapshots leave through listeners or an async iterator. Idleness comes from signals the source sends ("partition p
// was caught up at a log-end read issued at t", "p has unread records") and an injected clock (`now`), so tests are
// deterministic.
import type { EncodedFact, Snapshot } from '../core/types.ts';
import { ConfigError } from '../core/errors.ts';
import { TripleSet } from './triple-set.ts';
import {
  WatermarkHistory,
  applyCaughtUp,
  newPartitionIdleness,
  stampActivity,
  wake,
  type PartitionIdleness,
} from './idleness.ts';

export type AddOutcome = 'added' | 'duplicate' | 'late';

export interface LateFactInfo {
  /** The fact's step was already closed: every step < nextStepToClose is closed. */
  nextStepToClose: number;
  watermark: number;
}

export interface EventTimeWindowOptions {
  /** Steps a fact may lag its partition's maximum step and still count (default 0). */
  allowedLateness?: number;
  /**
   * A partition verified caught up (markCaughtUp) with no record for this long is idle and stops holding the
   * watermark back (src/window/idleness.ts); 0 disables idleness.
   */
  idleTimeoutMs?: number;
  /** Clock for idleness (ms, the same clock as the times given to markCaughtUp); inject a fake one in tests. */
  now?: () => number;
  /** First step to close (default: the smallest step seen when the first step closes). */
  firstStep?: number;
  /** Emit empty snapshots for steps with no fact between steps with facts (default true). */
  emitEmptySteps?: boolean;
  /** A run of more empty steps than this is skipped without emitting (guards against step typos). */
  maxConsecutiveEmptySteps?: number;
  /** Vocabulary sizes stamped on each snapshot; default: 1 + the largest id seen. */
  vocabularySizes?: () => { numEntities: number; numRelations: number };
}

/** The window's durable state (see checkpoint.ts for its byte form). */
export interface WindowState {
  watermark: number | null;
  nextStepToClose: number | null;
  maxEntityId: number;
  maxRelationId: number;
  partitions: Array<{ partition: number; maxStep: number | null }>;
  openSteps: Array<{ step: number; triples: Int32Array }>; // triples [F * 3], sorted
}

type SnapshotListener = (snapshot: Snapshot) => void;
type LateListener = (fact: EncodedFact, partition: number, info: LateFactInfo) => void;

interface PartitionClock extends PartitionIdleness {
  maxStep: number | null;
}

/** History kept beyond the idle timeout for verifications whose answer arrives late (a slow log-end read). */
const HISTORY_MARGIN_MS = 120_000;

export class EventTimeWindow {
  readonly allowedLateness: number;
  readonly idleTimeoutMs: number;
  private readonly now: () => number;
  private readonly emitEmptySteps: boolean;
  private readonly maxConsecutiveEmptySteps: number;
  private readonly vocabularySizes:
    (() => { numEntities: number; numRelations: number }) | undefined;
  private readonly partitions = new Map<number, PartitionClock>();
  private readonly open = new Map<number, TripleSet>();
  /** The highest partition watermark over time (what idle partitions allow). */
  private readonly history = new WatermarkHistory();
  private currentWatermark: number | null = null;
  private nextStep: number | null;
  private maxEntityId = -1;
  private maxRelationId = -1;
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private readonly lateListeners = new Set<LateListener>();
  private readonly endListeners = new Set<() => void>();
  private ended = false;
  /** Counters since construction (not checkpointed; metrics count per process). */
  readonly counts = { added: 0, duplicate: 0, late: 0, stepsClosed: 0, emptyStepsSkipped: 0 };

  constructor(options: EventTimeWindowOptions = {}, state?: WindowState) {
    const lateness = options.allowedLateness ?? 0;
    if (!Number.isSafeInteger(lateness) || lateness < 0) {
      throw new ConfigError(
        `allowedLateness ${lateness} must be a non-negative integer number of steps`,
      );
    }
    const idle = options.idleTimeoutMs ?? 0;
    if (!(idle >= 0))
      throw new ConfigError(`idleTimeoutMs ${idle} must be >= 0 (0 disables idleness)`);
    this.allowedLateness = lateness;
    this.idleTimeoutMs = idle;
    this.now = options.now ?? Date.now;
    this.emitEmptySteps = options.emitEmptySteps ?? true;
    this.maxConsecutiveEmptySteps = options.maxConsecutiveEmptySteps ?? 10_000;
    this.vocabularySizes = options.vocabularySizes;
    this.nextStep = options.firstStep ?? null;
    if (state) this.restore(state);
  }

  /** Listen for closed snapshots (called synchronously, in step order). Returns an unsubscribe function. */
  onSnapshot(listener: SnapshotListener): () => void {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  }

  /** Listen for late facts (their step is already closed). Returns an unsubscribe function. */
  onLate(listener: LateListener): () => void {
    this.lateListeners.add(listener);
    return () => this.lateListeners.delete(listener);
  }

  /**
   * Closed snapshots as an async iterator (buffers from the moment it is called; ends after `end()`).
   */
  snapshots(): AsyncIterableIterator<Snapshot> {
    const buffer: Snapshot[] = [];
    let wake: (() => void) | null = null;
    const unsubscribe = this.onSnapshot((snapshot) => {
      buffer.push(snapshot);
      wake?.();
    });
    const endListener = () => wake?.();
    this.endListeners.add(endListener);
    const isEnded = () => this.ended;
    const detach = () => {
      unsubscribe();
      this.endListeners.delete(endListener);
    };
    const iterator: AsyncIterableIterator<Snapshot> = {
      async next(): Promise<IteratorResult<Snapshot>> {
        while (buffer.length === 0 && !isEnded()) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
        }
        if (buffer.length > 0) return { value: buffer.shift() as Snapshot, done: false };
        detach();
        return { value: undefined, done: true };
      },
      async return(): Promise<IteratorResult<Snapshot>> {
        detach();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Register a partition (e.g. on assignment): it holds the watermark until it sends facts or goes idle. */
  addPartition(partition: number): void {
    if (!this.partitions.has(partition)) this.partitions.set(partition, this.newClock(null));
  }

  /**
   * The source read `partition`'s log-end offset with a request issued at `readIssuedAtMs` (this window's clock) and
   * had already consumed everything below it. If the partition also delivered no record since readIssuedAtMs - the
   * idle timeout, it is idle and lets the watermark advance to the highest partition watermark reached by then
   * (src/window/idleness.ts). Closes what that allows. Unknown partitions are ignored.
   */
  markCaughtUp(partition: number, readIssuedAtMs: number): void {
    if (this.idleTimeoutMs <= 0) return;
    const clock = this.partitions.get(partition);
    if (!clock) return;
    stampActivity(clock, this.now());
    if (applyCaughtUp(clock, readIssuedAtMs, this.idleTimeoutMs, this.history)) this.advance();
  }

  /**
   * The source has unread records for `partition` (Kafka: its position is below a log-end offset): the partition is
   * not idle, whatever its quiet time; a slow reader never makes its own data late.
   */
  markUnread(partition: number): void {
    this.addPartition(partition);
    wake(this.partitions.get(partition) as PartitionClock, this.now());
  }

  /** Forget a partition (revoked): it no longer holds the watermark. */
  removePartition(partition: number): void {
    this.partitions.delete(partition);
    this.advance();
  }

  /**
   * Add a fact seen on `partition`. Closes every step the new watermark passes (listeners fire
   * synchronously, in step order) and returns what happened to the fact.
   */
  add(fact: EncodedFact, partition = 0): AddOutcome {
    let clock = this.partitions.get(partition);
    if (!clock) {
      clock = this.newClock(null);
      this.partitions.set(partition, clock);
    }
    // Hot path: no clock read per fact. Activity is stamped at the next tick() or verification; an idle partition
    // that delivers a record holds the watermark again at once.
    clock.sawRecord = true;
    if (clock.idle) wake(clock, this.now());
    const raised = clock.maxStep === null || fact.step > clock.maxStep;
    if (raised) {
      clock.maxStep = fact.step;
      const partitionWatermark = fact.step - this.allowedLateness;
      if (this.idleTimeoutMs > 0 && partitionWatermark > this.history.highest)
        this.history.record(this.now(), partitionWatermark);
    }
    let outcome: AddOutcome;
    if (this.nextStep !== null && fact.step < this.nextStep) {
      outcome = 'late';
      this.counts.late += 1;
      const info: LateFactInfo = {
        nextStepToClose: this.nextStep,
        watermark: this.currentWatermark ?? -Infinity,
      };
      for (const listener of this.lateListeners) listener(fact, partition, info);
    } else {
      let set = this.open.get(fact.step);
      if (!set) {
        set = new TripleSet();
        this.open.set(fact.step, set);
      }
      if (set.add(fact.subject, fact.relation, fact.object)) {
        outcome = 'added';
        this.counts.added += 1;
        if (fact.subject > this.maxEntityId) this.maxEntityId = fact.subject;
        if (fact.object > this.maxEntityId) this.maxEntityId = fact.object;
        if (fact.relation > this.maxRelationId) this.maxRelationId = fact.relation;
      } else {
        outcome = 'duplicate';
        this.counts.duplicate += 1;
      }
    }
    // The watermark moves only when a partition's maximum step rises (or at a verification, see markCaughtUp).
    if (raised) this.advance();
    return outcome;
  }

  /**
   * Stamp the records seen since the last tick with the clock (idleness measures quiet time from them) and forget
   * watermark history no verification can need. Call it regularly (the ingest consumer does, a few times per idle
   * timeout); it closes nothing by itself.
   */
  tick(): void {
    if (this.idleTimeoutMs <= 0) return;
    const now = this.now();
    for (const clock of this.partitions.values()) stampActivity(clock, now);
    this.history.forgetBefore(now - this.idleTimeoutMs - HISTORY_MARGIN_MS);
  }

  /** End of stream: close every open step in order (later facts for them are late). */
  flush(): void {
    let maxOpen: number | null = null;
    for (const step of this.open.keys()) if (maxOpen === null || step > maxOpen) maxOpen = step;
    if (maxOpen === null) return;
    this.closeThrough(maxOpen + 1);
    if (this.currentWatermark === null || this.currentWatermark < maxOpen + 1)
      this.currentWatermark = maxOpen + 1;
  }

  /** Flush and end the async iterators. */
  end(): void {
    this.flush();
    this.ended = true;
    for (const listener of this.endListeners) listener();
  }

  /** Current watermark in steps (steps < watermark are closed), or null before any fact. */
  watermark(): number | null {
    return this.currentWatermark;
  }

  /** The next step to close (all smaller steps are closed), or null before the first close. */
  nextStepToClose(): number | null {
    return this.nextStep;
  }

  /** Steps currently open (not yet closed), ascending. */
  openSteps(): number[] {
    return [...this.open.keys()].sort((a, b) => a - b);
  }

  /** Facts held in open steps. */
  openFactCount(): number {
    let n = 0;
    for (const set of this.open.values()) n += set.size;
    return n;
  }

  /**
   * Partitions, whether each is idle (false = it holds the watermark at its own maximum step minus the lateness),
   * and, for idle ones, the watermark it allows.
   */
  partitionStatus(): Array<{
    partition: number;
    maxStep: number | null;
    idle: boolean;
    allows: number | null;
  }> {
    return [...this.partitions.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([partition, clock]) => ({
        partition,
        maxStep: clock.maxStep,
        idle: clock.idle,
        allows: clock.idle && Number.isFinite(clock.allowance) ? clock.allowance : null,
      }));
  }

  /** The durable state; open steps as sorted triples. */
  state(): WindowState {
    return {
      watermark: this.currentWatermark,
      nextStepToClose: this.nextStep,
      maxEntityId: this.maxEntityId,
      maxRelationId: this.maxRelationId,
      partitions: [...this.partitions.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([partition, clock]) => ({ partition, maxStep: clock.maxStep })),
      openSteps: this.openSteps().map((step) => ({
        step,
        triples: (this.open.get(step) as TripleSet).toSortedTriples(),
      })),
    };
  }

  private restore(state: WindowState): void {
    this.currentWatermark = state.watermark;
    this.nextStep = state.nextStepToClose ?? this.nextStep;
    this.maxEntityId = state.maxEntityId;
    this.maxRelationId = state.maxRelationId;
    let highest = -Infinity;
    for (const { partition, maxStep } of state.partitions) {
      this.partitions.set(partition, this.newClock(maxStep));
      if (maxStep !== null && maxStep - this.allowedLateness > highest)
        highest = maxStep - this.allowedLateness;
    }
    // When the restored partitions reached their steps is unknown: count it as now (idle partitions wait T for it).
    if (this.idleTimeoutMs > 0 && highest > -Infinity) this.history.record(this.now(), highest);
    for (const { step, triples } of state.openSteps)
      this.open.set(step, TripleSet.fromTriples(triples));
  }

  private newClock(maxStep: number | null): PartitionClock {
    return { maxStep, ...newPartitionIdleness(this.idleTimeoutMs > 0 ? this.now() : 0) };
  }

  /** Recompute the watermark (monotone) and close the steps it passes. */
  private advance(): void {
    // min over partitions of what each allows: its own watermark, or more while it is idle
    let candidate = Infinity;
    for (const clock of this.partitions.values()) {
      let allows = clock.maxStep === null ? -Infinity : clock.maxStep - this.allowedLateness;
      if (clock.idle && clock.allowance > allows) allows = clock.allowance;
      if (allows < candidate) candidate = allows;
    }
    if (candidate === -Infinity || candidate === Infinity) return;
    if (this.currentWatermark !== null && candidate <= this.currentWatermark) return;
    this.currentWatermark = candidate;
    this.closeThrough(candidate);
  }

  /** Close every step < `end` in order. */
  private closeThrough(end: number): void {
    if (this.nextStep === null) {
      let minOpen: number | null = null;
      for (const step of this.open.keys()) if (minOpen === null || step < minOpen) minOpen = step;
      if (minOpen === null || minOpen >= end) return;
      this.nextStep = minOpen;
    }
    let step: number = this.nextStep;
    while (step < end) {
      const set = this.open.get(step);
      if (set) {
        this.open.delete(step);
        this.nextStep = step + 1; // before emitting: listeners see the step as closed
        this.emit(step, set.toSortedTriples());
        step += 1;
        continue;
      }
      // Empty step: fill the gap up to the next open step (or the watermark), unless the run is absurdly long.
      let nextOpen = end;
      for (const s of this.open.keys()) if (s > step && s < nextOpen) nextOpen = s;
      if (!this.emitEmptySteps || nextOpen - step > this.maxConsecutiveEmptySteps) {
        this.counts.emptyStepsSkipped += nextOpen - step;
        step = nextOpen;
        this.nextStep = step;
        continue;
      }
      this.nextStep = step + 1;
      this.emit(step, new Int32Array(0));
      step += 1;
    }
  }

  private emit(step: number, triples: Int32Array): void {
    const sizes = this.vocabularySizes?.() ?? {
      numEntities: this.maxEntityId + 1,
      numRelations: this.maxRelationId + 1,
    };
    const snapshot: Snapshot = {
      step,
      triples,
      numEntities: sizes.numEntities,
      numRelations: sizes.numRelations,
    };
    this.counts.stepsClosed += 1;
    for (const listener of this.snapshotListeners) listener(snapshot);
  }
}
