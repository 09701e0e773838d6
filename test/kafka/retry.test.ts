// Retriable broker errors (src/kafka/retry.ts): which errors are retried, backoff until success, non-retriable errors
// and the deadline end it; the offsets read tkg run makes right after creating its topics. The errors are the kafkajs
// classes a broker answer or a connection failure produces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { TkgError } from '../../src/core/errors.ts';
import { isRetriable, withRetries } from '../../src/kafka/retry.ts';
import type { Admin } from '../../src/kafka/client.ts';
import { factOffsets } from '../../src/pipeline/run-manifest.ts';

const {
  KafkaJSProtocolError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSNonRetriableError,
  KafkaJSConnectionError,
  KafkaJSAggregateError,
} = kafkajs;

const protocolError = (type: string, code: number, retriable: boolean) =>
  new KafkaJSProtocolError({ message: type, type, code, retriable } as never);

test('retriable: leader elections, coordinator moves, rebalances, refused connections; wrapped or not', () => {
  const notLeader = protocolError('NOT_LEADER_FOR_PARTITION', 6, true);
  assert.equal(isRetriable(notLeader), true);
  assert.equal(isRetriable(protocolError('LEADER_NOT_AVAILABLE', 5, true)), true);
  assert.equal(isRetriable(protocolError('REBALANCE_IN_PROGRESS', 27, false)), true);
  assert.equal(isRetriable(protocolError('NOT_COORDINATOR_FOR_GROUP', 16, true)), true);
  assert.equal(
    isRetriable(new KafkaJSNumberOfRetriesExceeded(notLeader, { retryCount: 8, retryTime: 5000 })),
    true,
    'retries exhausted on a retriable cause',
  );
  assert.equal(isRetriable(new KafkaJSConnectionError('Connection error: ECONNREFUSED')), true);
  assert.equal(isRetriable(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })), true);
  assert.equal(
    isRetriable(new TkgError('no leader yet', { reason: 'leader_not_available', retriable: true })),
    true,
  );
});

test('not retriable: authorization, invalid configuration, plain programming errors', () => {
  assert.equal(isRetriable(protocolError('TOPIC_AUTHORIZATION_FAILED', 29, false)), false);
  assert.equal(isRetriable(protocolError('INVALID_REPLICATION_FACTOR', 38, false)), false);
  assert.equal(isRetriable(new KafkaJSNonRetriableError('Invalid topics array')), false);
  assert.equal(isRetriable(new TypeError('x is not a function')), false);
  assert.equal(
    isRetriable(
      new KafkaJSAggregateError('create', [protocolError('TOPIC_AUTHORIZATION_FAILED', 29, false)]),
    ),
    false,
  );
});

test('withRetries: retries with a log line until it succeeds; stops at once on a non-retriable error and at the deadline', async () => {
  const warnings: string[] = [];
  const logger = {
    warn: (_fields: Record<string, unknown>, message: string) => warnings.push(message),
  };
  let calls = 0;
  const value = await withRetries(
    'read offsets',
    async () => {
      calls += 1;
      if (calls < 3) throw protocolError('NOT_LEADER_FOR_PARTITION', 6, true);
      return 42;
    },
    { logger, initialDelayMs: 5 },
  );
  assert.equal(value, 42);
  assert.equal(calls, 3);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0], /^read offsets: NOT_LEADER_FOR_PARTITION; retrying in \d+ ms$/);
  let fatalCalls = 0;
  await assert.rejects(
    withRetries('x', async () => {
      fatalCalls += 1;
      throw new KafkaJSNonRetriableError('bad');
    }),
    /bad/,
  );
  assert.equal(fatalCalls, 1);
  const started = Date.now();
  await assert.rejects(
    withRetries(
      'y',
      async () => {
        throw protocolError('LEADER_NOT_AVAILABLE', 5, true);
      },
      { deadlineMs: 300, initialDelayMs: 20, maxDelayMs: 40 },
    ),
    /LEADER_NOT_AVAILABLE/,
  );
  assert.ok(Date.now() - started < 2000);
});

test("tkg run's first read of a fresh facts topic retries NOT_LEADER (a topic created a moment ago)", async () => {
  let calls = 0;
  const admin = {
    fetchTopicOffsets: async () => {
      if (calls++ === 0) throw protocolError('NOT_LEADER_FOR_PARTITION', 6, true);
      return [{ partition: 0, offset: '7', high: '7', low: '2' }];
    },
  } as unknown as Admin;
  const offsets = await factOffsets(admin, 'x.facts');
  assert.equal(calls, 2);
  assert.deepEqual([...offsets], [[0, { low: 2, high: 7 }]]);
});
