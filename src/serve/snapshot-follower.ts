// Follows the closed snapshots the ingest stage writes (<state-dir>/snapshots, src/window SnapshotStore) and hands
// each new step, in order, to a callback (a replica's onStepClosed). Owns: polling and the last-seen step.
// Must not import src/train or tfjs.
import { SnapshotStore } from '../window/snapshot-store.ts';
import type { Snapshot } from '../core/types.ts';

export class SnapshotFollower {
  private readonly store: SnapshotStore;
  private readonly onSnapshot: (snapshot: Snapshot) => Promise<unknown>;
  private readonly intervalMs: number;
  private lastStep: number;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  /** fromStep: steps <= this are skipped (default: none; replaying old steps rebuilds the filter sets). */
  constructor(options: {
    dir: string;
    onSnapshot: (snapshot: Snapshot) => Promise<unknown>;
    intervalMs?: number;
    fromStep?: number;
  }) {
    this.store = new SnapshotStore(options.dir);
    this.onSnapshot = options.onSnapshot;
    this.intervalMs = options.intervalMs ?? 1000;
    this.lastStep = options.fromStep ?? Number.NEGATIVE_INFINITY;
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    void this.poll();
  }

  /** Hand over every persisted step newer than the last one handed over. */
  poll(): Promise<void> {
    this.polling ??= (async () => {
      try {
        for (const step of this.store.steps()) {
          if (step <= this.lastStep) continue;
          const snapshot = this.store.read(step);
          if (!snapshot) continue;
          await this.onSnapshot(snapshot);
          this.lastStep = step;
        }
      } finally {
        this.polling = undefined;
      }
    })();
    return this.polling;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.polling;
  }
}
