// Schema registry for integration tests: TKG_SCHEMA_REGISTRY_URL if set, else the project's local registry (Apicurio
// Registry, deploy/registry) in .tkg/test-registry on a free port, started once per test run and reused by every test
// file (node runs each file in its own process; its state file holds pid + url, a lock file keeps two processes from
// starting it at once). test/run.ts stops it at the end. No mocked registry.
import { closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { localRegistryStatus, startLocalRegistry } from '../../src/kafka/local-registry.ts';

export const testRegistryDir = join(projectRoot, '.tkg', 'test-registry');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withStartLock<T>(work: () => Promise<T>): Promise<T> {
  mkdirSync(join(projectRoot, '.tkg'), { recursive: true });
  const lock = `${testRegistryDir}.lock`;
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch {
      let age: number;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue;
      }
      if (age > 180_000) rmSync(lock, { force: true }); // a crashed starter left it
      if (Date.now() > deadline)
        throw new Error(
          `test registry lock ${lock} held for over 4 minutes; delete it if no test runs`,
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

/** Base URL of the Confluent-compatible API for integration tests (starts the shared local registry if needed). */
export async function testRegistryUrl(): Promise<string> {
  if (process.env.TKG_SCHEMA_REGISTRY_URL) return process.env.TKG_SCHEMA_REGISTRY_URL;
  const status = await localRegistryStatus(testRegistryDir);
  if (status.running && status.reachable && status.state) return status.state.url;
  const state = await withStartLock(() => startLocalRegistry({ dir: testRegistryDir, port: 0 }));
  return state.url;
}
