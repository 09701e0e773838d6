// The project's local schema registry (issue 16): Apicurio Registry (Confluent-compatible API under
// /apis/ccompat/v7, in-memory storage) run as a detached JVM from deploy/registry/app, which deploy/registry/pom.xml
// fetches from Maven Central. Owns: the registry directory (registry.json state, registry.log, pid), start (idempotent,
// waits until the Confluent API answers), status and stop by pid. Must not touch: schemas, codecs, Kafka.
// The broker harness (local-broker.ts) is the pattern: same state-file, pid-check and log-tail habits.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { TkgError } from '../core/errors.ts';
import {
  isJvmProcess,
  logTail,
  readJsonState,
  spawnDetachedJava,
  stopProcess,
} from './jvm-process.ts';
import { findFreePort, projectRoot } from './local-broker.ts';

export const registryAppDir = join(projectRoot, 'deploy', 'registry', 'app');
const stateFileName = 'registry.json';
const logFileName = 'registry.log';
/** The Confluent-compatible API of Apicurio Registry 3 (what Confluent's serializers and clients talk to). */
export const confluentApiPath = '/apis/ccompat/v7';

export class RegistryError extends TkgError {
  constructor(message: string, reason: string, retriable = false) {
    super(message, { reason, retriable });
  }
}

export interface LocalRegistryState {
  pid: number;
  port: number;
  dir: string;
  /** Base URL of the Confluent-compatible API (what --schema-registry-url takes). */
  url: string;
  startedAt: string;
  logFile: string;
}

export interface LocalRegistryOptions {
  dir?: string;
  /** 0 = a free port (default 8081). */
  port?: number;
  heapMb?: number;
  readyTimeoutMs?: number;
  onProgress?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const registryDirOf = (dir: string | undefined) => resolve(dir ?? '.tkg/registry');

/** The runnable jar in deploy/registry/app; fetched with `mvn -q -B package` when missing. */
export function ensureRegistryApp(onProgress?: (line: string) => void): string {
  const find = () =>
    existsSync(registryAppDir)
      ? readdirSync(registryAppDir).find((f) => /^apicurio-registry-app-.*-runner\.jar$/.test(f))
      : undefined;
  let jar = find();
  if (jar) return join(registryAppDir, jar);
  if (spawnSync('mvn', ['-v'], { stdio: 'ignore' }).status !== 0) {
    throw new RegistryError(
      `the schema registry app is missing in ${registryAppDir} and mvn is not found: install Maven (apt-get install -y maven) and run \`cd deploy/registry && mvn -q -B package\`, or point --schema-registry-url at your registry`,
      'registry_app_missing',
    );
  }
  onProgress?.('fetching Apicurio Registry with Maven (deploy/registry, mvn -q -B package)');
  const result = spawnSync('mvn', ['-q', '-B', 'package'], {
    cwd: dirname(registryAppDir),
    encoding: 'utf8',
  });
  jar = find();
  if (result.status !== 0 || !jar) {
    throw new RegistryError(
      `mvn -q -B package in ${dirname(registryAppDir)} failed (exit ${result.status}): ${(result.stdout + result.stderr).slice(-2000)}`,
      'registry_app_missing',
    );
  }
  return join(registryAppDir, jar);
}

/** True when `pid` is alive and is the registry JVM of `dir` (guards against pid reuse). */
export function isRegistryProcess(pid: number, dir: string): boolean {
  return isJvmProcess(pid, dir, 'apicurio-registry-app');
}

export function readRegistryState(dir?: string): LocalRegistryState | undefined {
  return readJsonState<LocalRegistryState>(join(registryDirOf(dir), stateFileName));
}

function registryLogTail(dir: string, lines = 30): string {
  return logTail(join(dir, logFileName), lines);
}

/** True when the Confluent-compatible API answers GET /subjects. */
export async function registryAnswers(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const response = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok;
  } catch {
    return false;
  }
}

export async function localRegistryStatus(
  dir?: string,
): Promise<{ running: boolean; reachable: boolean; dir: string; state?: LocalRegistryState }> {
  const absolute = registryDirOf(dir);
  const state = readRegistryState(absolute);
  if (!state || !isRegistryProcess(state.pid, absolute))
    return { running: false, reachable: false, dir: absolute, state };
  return { running: true, reachable: await registryAnswers(state.url), dir: absolute, state };
}

/**
 * Start the registry in `dir` (idempotent: returns the running one). Runs detached with a state file and a log
 * file; resolves when the Confluent-compatible API answers. Throws RegistryError with the log tail otherwise.
 */
export async function startLocalRegistry(
  options: LocalRegistryOptions = {},
): Promise<LocalRegistryState> {
  const dir = registryDirOf(options.dir);
  const existing = await localRegistryStatus(dir);
  if (existing.running && existing.state) {
    await waitUntilReady(existing.state, options.readyTimeoutMs ?? 120_000);
    return existing.state;
  }
  const jar = ensureRegistryApp(options.onProgress);
  mkdirSync(dir, { recursive: true });
  const port = options.port === 0 ? await findFreePort() : (options.port ?? 8081);
  const logFile = join(dir, logFileName);
  options.onProgress?.(`starting Apicurio Registry on 127.0.0.1:${port}, log ${logFile}`);
  // Small heap, serial GC and C1 only: the registry holds a few schemas; start-up time matters more than peak speed.
  const pid = spawnDetachedJava(
    [
      `-Xmx${options.heapMb ?? 192}m`,
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      `-Dtkg.registry.dir=${dir}`,
      `-Dquarkus.http.port=${port}`,
      '-Dquarkus.http.host=127.0.0.1',
      '-Dquarkus.http.access-log.enabled=false',
      '-jar',
      jar,
    ],
    dir,
    logFile,
  );
  if (pid === undefined)
    throw new RegistryError('could not spawn java for the schema registry', 'spawn_failed', true);
  const state: LocalRegistryState = {
    pid,
    port,
    dir,
    url: `http://127.0.0.1:${port}${confluentApiPath}`,
    startedAt: new Date().toISOString(),
    logFile,
  };
  writeFileSync(join(dir, stateFileName), `${JSON.stringify(state, null, 2)}\n`);
  try {
    await waitUntilReady(state, options.readyTimeoutMs ?? 120_000);
  } catch (error) {
    await stopLocalRegistry(dir).catch(() => undefined);
    throw error;
  }
  return state;
}

async function waitUntilReady(state: LocalRegistryState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRegistryProcess(state.pid, state.dir))
      throw new RegistryError(
        `the schema registry (pid ${state.pid}) exited during start-up; last lines of ${state.logFile}:\n${registryLogTail(state.dir)}`,
        'registry_exited',
      );
    if (await registryAnswers(state.url)) return;
    await sleep(300);
  }
  throw new RegistryError(
    `the schema registry on ${state.url} did not answer within ${Math.round(timeoutMs / 1000)} s; last lines of ${state.logFile}:\n${registryLogTail(state.dir)}`,
    'registry_timeout',
    true,
  );
}

/** Stop the registry of `dir` by pid (SIGTERM, SIGKILL after `graceMs`). Its storage is in memory: schemas go. */
export async function stopLocalRegistry(
  dir?: string,
  graceMs = 10_000,
): Promise<{ stopped: boolean; pid?: number }> {
  const absolute = registryDirOf(dir);
  const state = readRegistryState(absolute);
  if (!state || !isRegistryProcess(state.pid, absolute)) return { stopped: false, pid: state?.pid };
  await stopProcess(state.pid, () => isRegistryProcess(state.pid, absolute), graceMs);
  rmSync(join(absolute, stateFileName), { force: true });
  return { stopped: true, pid: state.pid };
}
