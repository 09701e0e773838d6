// Where ingest starts reading each partition. Owns: start positions (the checkpoint's next offset, else the log
// start; a checkpoint below the log start means retention deleted unread records, which is logged) and rewinding the
// consumer group when its committed offsets are ahead of the checkpoint (the checkpoint is the truth). Must not
// touch: the consume loop, the window.
import type { Logger } from 'pino';
import type { IngestState } from '../ingest/ingest-state.ts';
import { TkgError } from '../core/errors.ts';
import type { Admin } from './client.ts';

/** Set each partition's next offset from the checkpoint (else the log start) and register it with the window. */
export function startPositions(
  state: IngestState,
  offsets: Array<{ partition: number; low: string }>,
  logger: Logger,
): void {
  for (const { partition, low } of offsets) {
    const logStart = Number(low);
    let next = state.nextOffset(partition);
    if (next === undefined || next < logStart) {
      if (next !== undefined)
        logger.warn(
          { partition, checkpoint: next, logStart },
          'records below the log start were deleted by retention before ingest read them',
        );
      next = logStart;
    }
    state.setNextOffset(partition, next);
    state.window.addPartition(partition);
  }
}

/**
 * If the group's committed offsets are AHEAD of the checkpoint (e.g. the state directory was replaced), rewind the
 * group to the checkpoint so no record is skipped. Needs the group to be empty: waits for a dead member's session to
 * expire.
 */
export async function rewindGroupIfAhead(
  admin: Admin,
  options: {
    groupId: string;
    topic: string;
    state: IngestState;
    logger: Logger;
    sessionTimeoutMs: number;
  },
): Promise<void> {
  const { state, groupId, topic } = options;
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const partitions = committed[0]?.partitions ?? [];
  const ahead = partitions.filter(
    ({ partition, offset }) =>
      Number(offset) >= 0 && Number(offset) > (state.nextOffset(partition) ?? 0),
  );
  if (ahead.length === 0) return;
  options.logger.warn(
    { ahead },
    'group offsets are ahead of the checkpoint; rewinding the group to the checkpoint',
  );
  const deadline = Date.now() + 2 * options.sessionTimeoutMs + 10_000;
  for (;;) {
    try {
      await admin.setOffsets({
        groupId,
        topic,
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

/** Resolve once every partition's next offset reached its `high`; rejects with the laggards after `timeoutMs`. */
export async function waitForPositions(
  state: IngestState,
  ends: Array<{ partition: number; high: string }>,
  options: { timeoutMs: number; pollMs: number; failure: () => Error | undefined },
): Promise<void> {
  const targets = ends.map(({ partition, high }) => [partition, Number(high)] as const);
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const failure = options.failure();
    if (failure) throw failure;
    if (targets.every(([partition, high]) => (state.nextOffset(partition) ?? 0) >= high)) return;
    if (Date.now() > deadline) {
      const behind = targets
        .filter(([p, high]) => (state.nextOffset(p) ?? 0) < high)
        .map(([p, high]) => `${p}: ${state.nextOffset(p)}/${high}`);
      throw new TkgError(
        `ingest did not catch up within ${options.timeoutMs} ms (partition position/end: ${behind.join(', ')})`,
        { reason: 'timeout', retriable: true },
      );
    }
    await new Promise((r) => setTimeout(r, options.pollMs));
  }
}
