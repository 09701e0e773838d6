// Schema registry for integration tests: TKG_SCHEMA_REGISTRY_URL if set, else the project's local registry (Apicurio
// Registry, deploy/registry) in .tkg/test-registry on a free port, started once per test run and reused by every test
// file (node runs each file in its own process; its state file holds pid + url, a lock file keeps two processes from
// starting it at once). test/run.ts stops it at the end. No mocked registry.
import { join } from 'node:path';
import { withStartLock } from './start-lock.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { localRegistryStatus, startLocalRegistry } from '../../src/kafka/local-registry.ts';

export const testRegistryDir = join(projectRoot, '.tkg', 'test-registry');

/** Base URL of the Confluent-compatible API for integration tests (starts the shared local registry if needed). */
export async function testRegistryUrl(): Promise<string> {
  if (process.env.TKG_SCHEMA_REGISTRY_URL) return process.env.TKG_SCHEMA_REGISTRY_URL;
  const status = await localRegistryStatus(testRegistryDir);
  if (status.running && status.reachable && status.state) return status.state.url;
  const state = await withStartLock(
    `${testRegistryDir}.lock`,
    { waitMs: 240_000, staleMs: 180_000, what: 'test registry' },
    () => startLocalRegistry({ dir: testRegistryDir, port: 0 }),
  );
  return state.url;
}
