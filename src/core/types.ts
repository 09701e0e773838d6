// Core data types shared by every stage (ingest, window, train, eval, serve).
// Owns: plain data shapes only. Must not import any library (no kafkajs, no tfjs, no onnxruntime):
// everything here is plain TypeScript and typed arrays so stages meet without depending on each other.

/** A fact as a producer publishes it on `tkg.facts` (names, event time). */
export interface FactEvent {
  subject: string;
  relation: string;
  object: string;
  /** Integer step (already bucketed), if the producer knows it. */
  step?: number;
  /** Event time: ISO-8601 string or epoch milliseconds; mapped to a step by origin + granularity. */
  timestamp?: string | number;
}

/** A fact with dense ids and its step. */
export interface EncodedFact {
  subject: number;
  relation: number;
  object: number;
  step: number;
}

/**
 * A closed snapshot A^t: the deduplicated set of facts of one step.
 * `triples` is flat [s0, r0, o0, s1, r1, o1, ...], sorted by (s, r, o), no duplicates.
 */
export interface Snapshot {
  step: number;
  triples: Int32Array; // [F * 3]
  /** Vocabulary sizes when the snapshot closed (ids are < these). */
  numEntities: number;
  numRelations: number;
}

/** Names by dense id: entityNames[id], relationNames[id] (the ingest stage's persistent vocabulary fits this). */
export interface NamedVocabulary {
  readonly entityNames: readonly string[];
  readonly relationNames: readonly string[];
}

/** Query direction: 'object' = (s, r, ?), 'subject' = (?, r, o). */
export type Direction = 'object' | 'subject';

/** Ranking filter modes of SPEC section 2. */
export type FilterMode = 'raw' | 'static' | 'timeAware';

/**
 * Next-step scoring state exported by the trainer and consumed by the scorer / ONNX exporter.
 * Attributes z = sigmoid(psi) of the forecast step; Theta entries per relation and attribute.
 */
export interface ScoringState {
  numEntities: number; // N
  numRelations: number; // R
  K: number;
  /** z[n * K + k] = sigmoid(psi_nk) at the forecast step. */
  z: Float32Array; // [N, K]
  /** theta[((r * K) + k) * 4 + (2x + y)] = Theta_{k,r}(x, y); x subject attribute, y object attribute. */
  theta: Float32Array; // [R, K, 4]
  /** The step this state forecasts (t + 1 when trained up to t). */
  step: number;
  /** Monotonic model version. */
  version: number;
}

/**
 * Anything that can forecast a TKG: the NLSM trainer, BAS, the recurrency baseline, nlsm-h.
 * Evaluation protocols drive it; it never sees Kafka.
 */
export interface TkgForecaster {
  readonly name: string;
  /** Observe (train on / ingest) a closed snapshot. Snapshots arrive in step order. */
  observe(snapshot: Snapshot): Promise<void>;
  /**
   * Scores of all N entities for B queries at `step` (which may be several steps after the last
   * observed one: multi-step forecasting rolls forward without seeing new facts).
   * direction 'object': anchors are subjects, returns scores of every object; 'subject' the reverse.
   * Returns [B * N] row-major; higher is better. numEntities fixes N.
   */
  score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array>;
}

/** A homogeneous (R = 1) link forecaster: probability of a link i -> j at `step`. */
export interface LinkForecaster {
  readonly name: string;
  observe(snapshot: Snapshot): Promise<void>;
  linkProbability(step: number, sources: Int32Array, targets: Int32Array): Promise<Float32Array>;
}
