// Which partition each subject's facts arrive on. Owns: detecting a subject whose facts arrive on more than one
// partition of the facts topic (a producer that partitions differently: librdkafka's default consistent_random
// instead of murmur2_random, no key, another key, or a changed partition count). Must not touch Kafka, the window or
// the vocabulary: it sees dense subject ids and partition numbers, and counts.
// Why it matters: the topic's contract is key = subject, partitioned like Kafka's Java client (murmur2), so a
// subject's facts stay in order on one partition whichever client wrote them.

/** The first mismatch seen (for the warning's example). */
export interface PartitionMismatch {
  subject: number;
  firstPartition: number;
  partition: number;
}

export class SubjectPartitionMonitor {
  /** subject id -> 1 + the partition its first fact came from (0 = not seen). */
  private partitionOf = new Uint16Array(1024);
  /** Facts whose subject arrived earlier on another partition. */
  mismatches = 0;
  /** The latest mismatch (its subject and both partitions). */
  lastMismatch: PartitionMismatch | undefined;

  /** Hot path: one array read per fact. */
  observe(subject: number, partition: number): void {
    if (partition >= 0xffff || subject < 0) return;
    if (subject >= this.partitionOf.length) this.grow(subject);
    const seen = this.partitionOf[subject];
    if (seen === 0) this.partitionOf[subject] = partition + 1;
    else if (seen !== partition + 1) {
      this.mismatches += 1;
      this.lastMismatch = { subject, firstPartition: seen - 1, partition };
    }
  }

  private grow(subject: number): void {
    let size = this.partitionOf.length;
    while (size <= subject) size *= 2;
    const grown = new Uint16Array(size);
    grown.set(this.partitionOf);
    this.partitionOf = grown;
  }
}
