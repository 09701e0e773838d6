// Retrying a start-up step against the cluster (connect, create topics, read offsets, join a group) while the broker
// answers with retriable errors: a leader election right after topic creation (NOT_LEADER_OR_FOLLOWER,
// LEADER_NOT_AVAILABLE), a coordinator that moved or is loading, a rebalance, or a broker that is not up yet (any
// start order, SPEC section 8). Backoff doubles from 250 ms to 5 s with jitter, up to a deadline; every retry is
// logged. Owns: that policy and the retriable test. Must not touch what the step does.

/** Client-side error names that mean "try again" (kafkajs and its KafkaJS-compatible successors use these names). */
const retriableNames = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNumberOfRetriesExceeded', // kafkajs bails out of its own retries on a non-retriable error: this wraps a retriable one
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSLockTimeout',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSFetcherRebalanceError',
]);

/** Kafka protocol error types that clear up by themselves (Kafka's RetriableException family and friends). */
const retriableTypes = new Set([
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'LEADER_NOT_AVAILABLE',
  'REPLICA_NOT_AVAILABLE',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'GROUP_LOAD_IN_PROGRESS',
  'REBALANCE_IN_PROGRESS',
  'UNKNOWN_TOPIC_OR_PARTITION', // metadata not yet propagated right after creation
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_CONTROLLER',
  'KAFKA_STORAGE_ERROR',
  'FETCH_SESSION_ID_NOT_FOUND',
  'OFFSET_NOT_AVAILABLE',
  'UNSTABLE_OFFSET_COMMIT',
  'THROTTLING_QUOTA_EXCEEDED',
]);

/** Node socket errors while a broker (re)starts. */
const retriableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']);

/**
 * True for errors a later attempt can get past: the error's own `retriable` flag, its name, protocol type or socket
 * code, or the same of what it wraps (`originalError`, `cause`, an aggregate's `errors`).
 */
export function isRetriable(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 6) return false;
  const e = error as {
    retriable?: unknown;
    name?: unknown;
    type?: unknown;
    code?: unknown;
    originalError?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (e.retriable === true) return true;
  if (typeof e.name === 'string' && retriableNames.has(e.name)) return true;
  if (typeof e.type === 'string' && retriableTypes.has(e.type)) return true;
  if (typeof e.code === 'string' && retriableCodes.has(e.code)) return true;
  if (isRetriable(e.originalError, depth + 1) || isRetriable(e.cause, depth + 1)) return true;
  return Array.isArray(e.errors) && e.errors.some((inner) => isRetriable(inner, depth + 1));
}

/** Where retries are logged: a pino logger, or anything with the same warn(fields, message). */
export interface RetryLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface RetryOptions {
  logger?: RetryLog;
  /** Give up after this long (default 120 s): the last error is thrown. */
  deadlineMs?: number;
  /** First wait (default 250 ms), doubled up to `maxDelayMs` (default 5 s), with +-20% jitter. */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/** Run `step` until it succeeds, retrying retriable errors with backoff; other errors and the deadline throw. */
export async function withRetries<T>(
  label: string,
  step: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 120_000);
  let delay = options.initialDelayMs ?? 250;
  const maxDelay = options.maxDelayMs ?? 5000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!isRetriable(error) || Date.now() + delay > deadline) throw error;
      const wait = Math.round(delay * (0.8 + 0.4 * Math.random()));
      options.logger?.warn(
        { err: error, attempt, retryInMs: wait },
        `${label}: ${(error as Error).message}; retrying in ${wait} ms`,
      );
      await new Promise((resolve) => setTimeout(resolve, wait));
      delay = Math.min(maxDelay, delay * 2);
    }
  }
}

/** A RetryLog that prints each retry's message as one line (CLI verbs that print to stderr without pino). */
export function retryLogger(print: (line: string) => void): RetryLog {
  return { warn: (_fields, message) => print(message) };
}
