// The ingest stage's counters. Owns: counting each message's outcome (added, duplicate, skipped, late, rejected by
// reason), handing them to Prometheus as deltas (once per batch and checkpoint: a prom-client inc() per message costs
// more than decoding it), and the warning + metric for a subject whose facts arrive on several partitions. Must not
// touch: the consume loop, the state, what is bad input.
import type { Logger } from 'pino';
import type { IngestOutcome } from '../ingest/ingest-state.ts';
import type { SubjectPartitionMonitor } from '../ingest/subject-partitions.ts';
import type { TkgMetrics } from '../metrics/metrics.ts';

export interface IngestCountValues {
  messages: number;
  factsAdded: number;
  factsDuplicate: number;
  factsSkipped: number;
  rejected: number;
  late: number;
  stepsClosed: number;
  checkpoints: number;
  rejectedByReason: Record<string, number>;
}

export class IngestCounts {
  readonly values: IngestCountValues = {
    messages: 0,
    factsAdded: 0,
    factsDuplicate: 0,
    factsSkipped: 0,
    rejected: 0,
    late: 0,
    stepsClosed: 0,
    checkpoints: 0,
    rejectedByReason: {},
  };
  /** What publish() already added to the Prometheus counters. */
  private readonly reported = {
    ingested: 0,
    duplicate: 0,
    late: 0,
    rejected: 0,
    rejectedByReason: {} as Record<string, number>,
    mismatches: 0,
  };
  private lastMismatchWarnMs = 0;

  /** Count one message's outcome (hot path: a switch and an increment). */
  record(outcome: IngestOutcome): void {
    const counts = this.values;
    counts.messages += 1;
    switch (outcome.kind) {
      case 'added':
        counts.factsAdded += 1;
        break;
      case 'duplicate':
        counts.factsDuplicate += 1;
        break;
      case 'skipped':
        counts.factsSkipped += 1;
        break;
      case 'late':
        counts.late += 1;
        break;
      case 'rejected':
        counts.rejected += 1;
        counts.rejectedByReason[outcome.reason] =
          (counts.rejectedByReason[outcome.reason] ?? 0) + 1;
        break;
    }
  }

  /** A copy for stats(). */
  snapshot(): IngestCountValues {
    return { ...this.values, rejectedByReason: { ...this.values.rejectedByReason } };
  }

  /** Add what changed since the last call to the Prometheus counters. */
  publish(metrics: TkgMetrics): void {
    const counts = this.values;
    const reported = this.reported;
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

  /** Count facts whose subject arrived on another partition before; warn at most once a minute. */
  reportPartitionMismatches(
    monitor: SubjectPartitionMonitor,
    context: { topic: string; names: readonly string[]; metrics?: TkgMetrics; logger: Logger },
  ): void {
    if (monitor.mismatches === this.reported.mismatches) return;
    context.metrics?.factsPartitionMismatch.inc(monitor.mismatches - this.reported.mismatches);
    this.reported.mismatches = monitor.mismatches;
    const now = Date.now();
    if (now - this.lastMismatchWarnMs < 60_000 || !monitor.lastMismatch) return;
    this.lastMismatchWarnMs = now;
    const { subject, firstPartition, partition } = monitor.lastMismatch;
    context.logger.warn(
      {
        topic: context.topic,
        subject: context.names[subject],
        firstPartition,
        partition,
        factsOnAnotherPartition: monitor.mismatches,
      },
      "one subject's facts arrive on several partitions: a producer does not partition by the subject key like Kafka's Java client (librdkafka clients: set partitioner=murmur2_random; key every fact by its subject; keep the partition count)",
    );
  }
}
