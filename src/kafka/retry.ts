// Retrying a start-up step against the cluster (connect, create topics, join a group) while the broker answers with
// retriable errors: a leader election right after topic creation (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE), a
// coordinator that moved or is loading, a rebalance, or a broker that is not up yet (any start order). Backoff
// doubles from 250 ms to 5 s with jitter, up to a deadline; every retry is logged. Owns: that policy and the
// retriable test. Must not touch what the step does.
import type { Logger } from 'pino';

const retriableNames = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSBrokerNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSMetadataNotLoaded',
]);

const retriableTypes = new Set([
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'LEADER_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'GROUP_LOAD_IN_PROGRESS',
  'REBALANCE_IN_PROGRESS',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_CONTROLLER',
  'KAFKA_STORAGE_ERROR',
]);

/** True for errors a later attempt can get past (the error's own `retriable` flag, its type, or its cause's). */
export function isRetriable(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 4) return false;
  const e = error as {
    retriable?: unknown;
    name?: unknown;
    type?: unknown;
    originalError?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (e.retriable === true) return true;
  if (typeof e.name === 'string' && retriableNames.has(e.name)) return true;
  if (typeof e.type === 'string' && retriableTypes.has(e.type)) return true;
  if (isRetriable(e.originalError, depth + 1) || isRetriable(e.cause, depth + 1)) return true;
  return Array.isArray(e.errors) && e.errors.some((inner) => isRetriable(inner, depth + 1));
}

export interface RetryOptions {
  logger?: Logger;
  /** Give up after this long (default 120 s). */
  deadlineMs?: number;
}

/** Run `step` until it succeeds, retrying retriable errors with backoff; other errors and the deadline throw. */
export async function withRetries<T>(
  label: string,
  step: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 120_000);
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!isRetriable(error) || Date.now() + delay > deadline) throw error;
      options.logger?.warn(
        { err: error, attempt },
        `${label}: ${(error as Error).message}; retrying in ${delay} ms`,
      );
      await new Promise((resolve) => setTimeout(resolve, delay * (0.8 + 0.4 * Math.random())));
      delay = Math.min(5000, delay * 2);
    }
  }
}
