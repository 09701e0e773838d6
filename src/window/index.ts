// Public surface of the event-time window (pure: no Kafka, no trainer). See the files for details.
export { EventTimeWindow } from './event-time-window.ts';
export type {
  AddOutcome,
  EventTimeWindowOptions,
  LateFactInfo,
  WindowState,
} from './event-time-window.ts';
export {
  StepClock,
  parseGranularity,
  parseDurationMs,
  parseEventTime,
  dysatClockSpec,
} from './step-clock.ts';
export type { Granularity, StepClockSpec, StepClockState } from './step-clock.ts';
export { TripleSet, sortTriples, MAX_ENTITY_ID } from './triple-set.ts';
export {
  encodeContainer,
  decodeContainer,
  encodeWindowState,
  decodeWindowState,
  writeFileAtomic,
  fsyncDirectory,
  CorruptCheckpointError,
} from './checkpoint.ts';
export { SnapshotStore } from './snapshot-store.ts';
