// Broker for integration tests: KAFKA_BROKERS if set, else the project's local broker in .tkg/test-broker on a free
// port, started once and reused by every test file (node runs each file in its own process; the broker's state file
// .tkg/test-broker/broker.json holds pid + port, and a lock file keeps two processes from starting it at once).
// No mocked broker: integration tests talk to a real Kafka.
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseBrokerList } from '../../src/kafka/brokers.ts';
import { localBrokerStatus, projectRoot, startLocalBroker } from '../../src/kafka/local-broker.ts';

export const testBrokerDir = join(projectRoot, '.tkg', 'test-broker');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withStartLock<T>(work: () => Promise<T>): Promise<T> {
  mkdirSync(join(projectRoot, '.tkg'), { recursive: true });
  const lock = `${testBrokerDir}.lock`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch {
      let age: number;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue; // released between open and stat
      }
      if (age > 120_000) rmSync(lock, { force: true }); // a crashed starter left it
      if (Date.now() > deadline)
        throw new Error(
          `test broker lock ${lock} held for over 3 minutes; delete it if no test runs`,
        );
      await sleep(250);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Bootstrap servers for integration tests (starts the shared local test broker if needed). */
export async function testBrokers(): Promise<string[]> {
  if (process.env.KAFKA_BROKERS) return parseBrokerList(process.env.KAFKA_BROKERS);
  const status = await localBrokerStatus(testBrokerDir);
  if (status.running && status.reachable && status.state) return [status.state.bootstrap];
  const state = await withStartLock(() => startLocalBroker({ dir: testBrokerDir, port: 0 }));
  return [state.bootstrap];
}

/** A topic prefix no other test (or test run) uses, e.g. `t-3fa9c2e1`: topics are `<prefix>.facts`, ... */
export function uniqueTopicPrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}
