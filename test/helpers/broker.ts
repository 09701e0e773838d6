// Broker for integration tests: KAFKA_BROKERS if set, else the project's local broker in .tkg/test-broker on a free
// port, started once and reused by every test file (node runs each file in its own process; the broker's state file
// .tkg/test-broker/broker.json holds pid + port, and a lock file keeps two processes from starting it at once).
// No mocked broker: integration tests talk to a real Kafka.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { withStartLock } from './start-lock.ts';
import { parseBrokerList } from '../../src/kafka/brokers.ts';
import { localBrokerStatus, projectRoot, startLocalBroker } from '../../src/kafka/local-broker.ts';

export const testBrokerDir = join(projectRoot, '.tkg', 'test-broker');

/** Bootstrap servers for integration tests (starts the shared local test broker if needed). */
export async function testBrokers(): Promise<string[]> {
  if (process.env.KAFKA_BROKERS) return parseBrokerList(process.env.KAFKA_BROKERS);
  const status = await localBrokerStatus(testBrokerDir);
  if (status.running && status.reachable && status.state) return [status.state.bootstrap];
  const state = await withStartLock(
    `${testBrokerDir}.lock`,
    { waitMs: 180_000, staleMs: 120_000, what: 'test broker' },
    () => startLocalBroker({ dir: testBrokerDir, port: 0 }),
  );
  return [state.bootstrap];
}

/** A topic prefix no other test (or test run) uses, e.g. `t-3fa9c2e1`: topics are `<prefix>.facts`, ... */
export function uniqueTopicPrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}
