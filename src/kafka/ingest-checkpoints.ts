// When and how ingest makes its state durable. Owns: checkpoint scheduling (every N messages, every T ms with
// changes, at each step close) and the background write: DLQ/late sends acked -> capture the state
// (IngestState.beginCheckpoint) -> in the background snapshots + vocabulary + checkpoint durable -> commit offsets ->
// sinks. Ingest goes on while the disk works; at most one checkpoint is being written (the next capture waits for
// it), so writes, commits and deliveries stay in capture order. Must not touch: the consume loop, Kafka clients
// (the pipeline hands in commit and deliver), what goes into the state.
import type { Snapshot } from '../core/types.ts';
import type { CheckpointJob, IngestState } from '../ingest/ingest-state.ts';

export interface IngestCheckpointsOptions {
  state: IngestState;
  everyMessages: number;
  intervalMs: number;
  /** Publish counters and send the DLQ/late outbox (acknowledged) before a capture. */
  beforeCapture: () => Promise<void>;
  /** Commit the offsets a durable checkpoint covers (best effort: the checkpoint is the truth). */
  commit: (offsets: Array<[number, number]>) => Promise<void>;
  /** A checkpoint became durable (metrics), before its commit and deliveries. */
  onDurable: (job: CheckpointJob, seconds: number) => void;
  /** Hand a durable snapshot to the sinks. */
  deliver: (snapshot: Snapshot) => Promise<void>;
  /** Stop the pipeline: a write failed (the previous checkpoint stays the truth). */
  fail: (error: unknown) => void;
  failure: () => Error | undefined;
}

export class IngestCheckpoints {
  private readonly options: IngestCheckpointsOptions;
  private messagesSince = 0;
  private lastMs = Date.now();
  /** The checkpoint being written in the background (resolved when none; never rejects). */
  writing: Promise<void> = Promise.resolve();

  constructor(options: IngestCheckpointsOptions) {
    this.options = options;
  }

  /** One more message handled; true when the message count calls for a checkpoint. */
  noteMessage(): boolean {
    return ++this.messagesSince >= this.options.everyMessages;
  }

  /** Due at a batch boundary: a step closed (`onStepClose`), enough messages, or the interval passed with changes. */
  due(onStepClose: boolean): boolean {
    const state = this.options.state;
    if (onStepClose && state.pendingSnapshots().length > 0) return true;
    if (this.messagesSince >= this.options.everyMessages) return true;
    return this.dueByClock();
  }

  /** Due on the timer: closed snapshots waiting, or changes older than the interval. */
  dueByClock(): boolean {
    const state = this.options.state;
    return (
      state.pendingSnapshots().length > 0 ||
      (state.hasChanges() && Date.now() - this.lastMs >= this.options.intervalMs)
    );
  }

  /** Capture now and write in the background (see the file header). Call inside the pipeline's lane. */
  async inBackground(): Promise<void> {
    const { state } = this.options;
    await this.options.beforeCapture();
    this.messagesSince = 0;
    this.lastMs = Date.now();
    if (!state.hasChanges()) return;
    await this.writing;
    const failure = this.options.failure();
    if (failure) throw failure;
    const started = performance.now();
    const job = state.beginCheckpoint();
    this.writing = this.complete(job, started);
  }

  /** inBackground, then wait until it is durable, committed and delivered. Call inside the lane. */
  async now(): Promise<void> {
    await this.inBackground();
    await this.writing;
    const failure = this.options.failure();
    if (failure) throw failure;
  }

  /** Never rejects: a failed write stops the pipeline. */
  private async complete(job: CheckpointJob, started: number): Promise<void> {
    try {
      await job.write();
    } catch (error) {
      this.options.fail(error);
      return;
    }
    this.options.onDurable(job, (performance.now() - started) / 1000);
    if (job.offsets.length > 0) await this.options.commit(job.offsets);
    for (const snapshot of job.snapshots) await this.options.deliver(snapshot);
  }
}
