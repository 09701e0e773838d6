// The event-time window's durable byte form. Owns: the window-state codec (in the TKGW container of
// src/core/durable.ts). Must not touch Kafka or the vocabulary's meaning: callers put their own JSON (offsets,
// vocabulary sizes, clock state) in `extra`, and it is written in the same atomic file as the window state.
import { CorruptCheckpointError, decodeContainer, encodeContainer } from '../core/durable.ts';
import type { WindowState } from './event-time-window.ts';

/** Window state (+ caller's `extra` JSON) to bytes. ~12 bytes per open fact. */
export function encodeWindowState(state: WindowState, extra: Record<string, unknown> = {}): Buffer {
  return encodeContainer(
    {
      kind: 'window',
      extra,
      watermark: state.watermark,
      nextStepToClose: state.nextStepToClose,
      maxEntityId: state.maxEntityId,
      maxRelationId: state.maxRelationId,
      partitions: state.partitions,
      steps: state.openSteps.map((s) => s.step),
    },
    state.openSteps.map((s) => s.triples),
  );
}

export function decodeWindowState(
  bytes: Uint8Array,
  source = '<bytes>',
): { state: WindowState; extra: Record<string, unknown> } {
  const { header, blocks } = decodeContainer(bytes, source);
  if (header.kind !== 'window')
    throw new CorruptCheckpointError(source, `kind ${String(header.kind)}, expected window`);
  const steps = header.steps as number[];
  if (!Array.isArray(steps) || steps.length !== blocks.length)
    throw new CorruptCheckpointError(source, 'steps/blocks mismatch');
  return {
    state: {
      watermark: header.watermark as number | null,
      nextStepToClose: header.nextStepToClose as number | null,
      maxEntityId: header.maxEntityId as number,
      maxRelationId: header.maxRelationId as number,
      partitions: header.partitions as WindowState['partitions'],
      openSteps: steps.map((step, i) => ({ step, triples: blocks[i] })),
    },
    extra: (header.extra ?? {}) as Record<string, unknown>,
  };
}
