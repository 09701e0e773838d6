// Fresh log-end offsets of the facts topic, read on a schedule. Owns: one ListOffsets read at a time (admin
// fetchTopicOffsets), stamped with the time its request was ISSUED (the event-time window's idleness rule needs that,
// src/window/idleness.ts), handed to a callback; failed reads are logged (rate-limited) and retried at the next
// interval, never thrown. Must not touch: the window or offsets it compares against (the fact consumer does that).
import type { Logger } from 'pino';
import type { Admin } from './client.ts';

export interface LogEnd {
  partition: number;
  /** Log-end offset (high watermark): the offset the next record appended to the partition will get. */
  high: number;
  low: number;
}

export interface LogEndPollerOptions {
  admin: Admin;
  topic: string;
  intervalMs: number;
  /** Clock of the issued-at stamps (the window's clock). */
  now: () => number;
  /** Called after every successful read (awaited before the next one is issued). */
  onLogEnd: (issuedAtMs: number, ends: LogEnd[]) => Promise<void> | void;
  /** Called after every interval, whether or not the read succeeded (awaited). */
  onInterval?: () => Promise<void> | void;
  logger?: Logger;
}

export class LogEndPoller {
  private readonly options: LogEndPollerOptions;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private lastWarnMs = 0;
  private failuresSinceWarn = 0;

  constructor(options: LogEndPollerOptions) {
    this.options = options;
  }

  /** One read now (issued-at stamped), handed to onLogEnd. Throws what the read throws. */
  async readOnce(): Promise<void> {
    const issuedAt = this.options.now();
    const offsets = await this.options.admin.fetchTopicOffsets(this.options.topic);
    await this.options.onLogEnd(
      issuedAt,
      offsets.map(({ partition, high, low }) => ({
        partition,
        high: Number(high),
        low: Number(low),
      })),
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  /** Stop scheduling and wait for a read in progress. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.loop;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.loop = this.tick().finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      await this.readOnce();
    } catch (error) {
      this.failuresSinceWarn += 1;
      const now = Date.now();
      if (now - this.lastWarnMs >= 30_000) {
        this.options.logger?.warn(
          {
            topic: this.options.topic,
            err: error instanceof Error ? error.message : String(error),
            failures: this.failuresSinceWarn,
          },
          'log-end offset read failed (idle partitions wait for the next successful read)',
        );
        this.lastWarnMs = now;
        this.failuresSinceWarn = 0;
      }
    }
    try {
      await this.options.onInterval?.();
    } catch (error) {
      this.options.logger?.error({ err: error }, 'log-end poller interval callback failed');
    }
  }
}
