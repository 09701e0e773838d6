// Idle sources for the event-time window (Flink's vocabulary: a partition that sends nothing is an idle source and
// stops holding the watermark back). Owns: the rule that decides when a partition is idle, how far an idle partition
// lets the watermark advance, and the history of the highest partition watermark over time that the rule needs.
// Pure: times are numbers (ms) handed in by the caller; no Kafka, no clock of its own, no I/O.
//
// The rule (T = the idle timeout). Partition p is idle at a verification issued at time b when
//   (1) a read of p's log-end offset issued at b found no unread record (the source's position >= that offset), and
//   (2) p delivered no record since b - T,
// i.e. p has been caught up for the whole timeout. An idle p lets the watermark advance only to the highest partition
// watermark that had been reached by b - T (`WatermarkHistory.valueAt(b - T)`), not to what other partitions show
// now: a producer sends its batches for different partitions a few ms apart, so whatever it sent p together with the
// facts that raised the other partitions was in p's log before b, and the reader has read it. Quiet partitions at
// start-up, the order in which stages start and a producer's per-partition timing therefore never make a valid fact
// late; only a fact that reaches its partition more than T after later facts reached another one can be.
// When every partition is idle the watermark follows the most advanced one, T after it was reached.

/** Idleness state of one partition (the window keeps one per partition). */
export interface PartitionIdleness {
  /** A record arrived since `lastRecordMs` was last stamped (set on the hot path without reading the clock). */
  sawRecord: boolean;
  /** Latest time the partition is known to have delivered a record (stamped lazily: never earlier than the truth). */
  lastRecordMs: number;
  /** Idle at its last verification (and no record since). */
  idle: boolean;
  /** While idle: the watermark this partition lets the window advance to (-Infinity otherwise). */
  allowance: number;
}

export function newPartitionIdleness(nowMs: number): PartitionIdleness {
  // Registration counts as activity: a partition is idle only after T of verified quiet after it was registered.
  return { sawRecord: false, lastRecordMs: nowMs, idle: false, allowance: -Infinity };
}

/** Stamp a record seen since the last stamp with `nowMs` (later than or equal to when it really arrived). */
export function stampActivity(partition: PartitionIdleness, nowMs: number): void {
  if (partition.sawRecord) {
    partition.sawRecord = false;
    partition.lastRecordMs = nowMs;
  }
}

/** The partition delivered a record or has unread ones: it holds the watermark again. */
export function wake(partition: PartitionIdleness, nowMs: number): void {
  partition.idle = false;
  partition.allowance = -Infinity;
  partition.lastRecordMs = Math.max(partition.lastRecordMs, nowMs);
}

/**
 * Apply a caught-up verification issued at `readIssuedAtMs` (rule above). Returns true when the partition is idle
 * afterwards and its allowance rose (the window should then re-evaluate its watermark).
 */
export function applyCaughtUp(
  partition: PartitionIdleness,
  readIssuedAtMs: number,
  idleTimeoutMs: number,
  history: WatermarkHistory,
): boolean {
  if (readIssuedAtMs - partition.lastRecordMs < idleTimeoutMs) return false;
  partition.idle = true;
  const allowance = history.valueAt(readIssuedAtMs - idleTimeoutMs);
  if (allowance <= partition.allowance) return false;
  partition.allowance = allowance;
  return true;
}

/**
 * The highest partition watermark (a partition's maximum step minus the allowed lateness) over time: a monotone step
 * function recorded when it rises. `valueAt(t)` is the value reached by time t; for times older than what is kept it
 * answers -Infinity (an idle partition then allows nothing, which only delays closing).
 */
export class WatermarkHistory {
  private times: number[] = [];
  private values: number[] = [];

  /** Highest value recorded (-Infinity before any). */
  get highest(): number {
    return this.values.length > 0 ? this.values[this.values.length - 1] : -Infinity;
  }

  /** The highest partition watermark rose to `value` at `timeMs` (ignored unless it is a rise). */
  record(timeMs: number, value: number): void {
    if (value <= this.highest) return;
    const last = this.times.length - 1;
    // Clock steps backwards are clamped: the function stays monotone in time.
    this.times.push(last >= 0 && this.times[last] > timeMs ? this.times[last] : timeMs);
    this.values.push(value);
  }

  /** The highest value reached at or before `timeMs`. */
  valueAt(timeMs: number): number {
    let lo = 0;
    let hi = this.times.length - 1;
    let found = -Infinity;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.times[mid] <= timeMs) {
        found = this.values[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Forget entries no query will need: keeps the last entry at or before `timeMs` (it still answers for later times). */
  forgetBefore(timeMs: number): void {
    let keepFrom = 0;
    while (keepFrom + 1 < this.times.length && this.times[keepFrom + 1] <= timeMs) keepFrom += 1;
    if (keepFrom > 0) {
      this.times = this.times.slice(keepFrom);
      this.values = this.values.slice(keepFrom);
    }
  }

  get size(): number {
    return this.times.length;
  }
}
