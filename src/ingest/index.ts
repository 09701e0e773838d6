// Public surface of the ingest stage: <prefix>.facts -> validated, windowed, durable snapshots.
// Must not import src/serve, src/train or tfjs. `tkg run` wires IngestPipeline to the trainer via onSnapshot.
export {
  IngestPipeline,
  ingestConsumerConfig,
  DEFAULT_MAX_BYTES_PER_PARTITION,
} from '../kafka/fact-consumer.ts';
export type { IngestPipelineOptions, IngestStats } from '../kafka/fact-consumer.ts';
export { IngestState } from './ingest-state.ts';
export type { CheckpointJob, IngestOutcome, IngestStateOptions } from './ingest-state.ts';
export { Utf8NameCache, NOT_UTF8 } from './name-cache.ts';
export { PersistentVocabulary } from './vocabulary.ts';
export type { VocabularySizes } from './vocabulary.ts';
export {
  validateFact,
  checkMessageSize,
  reasonOf,
  rejectionReasons,
  defaultFactLimits,
} from './validate.ts';
export type { FactLimits, RejectionReason, ValidFact } from './validate.ts';
