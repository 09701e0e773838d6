// Local single-node Apache Kafka broker (KRaft, broker+controller in one JVM) run from the jars that
// deploy/kafka/pom.xml fetches into deploy/kafka/lib. Owns: the broker directory (server.properties,
// log4j.properties, data/, broker.pid, broker.json, broker.log), storage formatting, start/stop/status.
// Must not touch: topics, producers, consumers (see topics.ts, client.ts) or any stage logic.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import {
  isJvmProcess,
  logTail,
  readJsonState,
  spawnDetachedJava,
  stopProcess,
} from './jvm-process.ts';
import { ConfigError, TkgError } from '../core/errors.ts';

/** Project root (this file is src/kafka/local-broker.ts). */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const brokerLibDir = join(projectRoot, 'deploy', 'kafka', 'lib');

/** A broker could not be started, reached or stopped. Retriable: the environment may recover. */
export class BrokerError extends TkgError {
  constructor(message: string, reason: string, retriable = false) {
    super(message, { reason, retriable });
  }
}

/** What a running local broker left behind in `<dir>/broker.json`. */
export interface LocalBrokerState {
  pid: number;
  port: number;
  controllerPort: number;
  /** Absolute broker directory. */
  dir: string;
  /** `127.0.0.1:<port>`. */
  bootstrap: string;
  clusterId: string;
  startedAt: string;
  logFile: string;
}

export interface LocalBrokerOptions {
  /** Broker directory (relative paths resolve against the working directory). Default `.tkg/broker`. */
  dir?: string;
  /** Client listener port on 127.0.0.1; 0 picks a free port. Default 9092. */
  port?: number;
  /** JVM max heap in MiB. Default 512. */
  heapMb?: number;
  /** How long to wait for the broker to accept a kafkajs admin connection. Default 60 s. */
  readyTimeoutMs?: number;
  /** Progress lines (e.g. "formatting storage"); default: silent. */
  onProgress?: (line: string) => void;
}

export interface LocalBrokerStatus {
  running: boolean;
  /** True when a kafkajs admin answered describeCluster. */
  reachable: boolean;
  state?: LocalBrokerState;
  dir: string;
}

const stateFileName = 'broker.json';
const pidFileName = 'broker.pid';
const logFileName = 'broker.log';
const maxMessageBytes = 64 * 1024 * 1024;

function brokerDirOf(dir: string | undefined): string {
  return resolve(dir ?? '.tkg/broker');
}

/** A free TCP port on 127.0.0.1 (bound then released; the kernel does not hand it out again at once). */
export async function findFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolveFree(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolveFree(true)));
  });
}

/** True when `pid` is alive and is a Kafka JVM serving `dir` (guards against pid reuse). */
export function isBrokerProcess(pid: number, dir: string): boolean {
  return isJvmProcess(pid, dir, 'kafka.Kafka');
}

export function readBrokerState(dir?: string): LocalBrokerState | undefined {
  return readJsonState<LocalBrokerState>(join(brokerDirOf(dir), stateFileName));
}

/** Last `lines` lines of the broker log (for error messages). */
export function brokerLogTail(dir?: string, lines = 30): string {
  return logTail(join(brokerDirOf(dir), logFileName), lines);
}

function commandExists(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error;
}

/**
 * Make sure the Kafka jars are in deploy/kafka/lib; if not, fetch them with `mvn -q -B package`.
 * Returns the classpath glob. Throws a ConfigError naming the missing tool and how to install it.
 */
export function ensureBrokerJars(onProgress?: (line: string) => void): string {
  if (!commandExists('java', ['-version'])) {
    throw new ConfigError(
      'java not found: the local Kafka broker needs a Java 17+ runtime; install it (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless) or set KAFKA_BROKERS to an existing broker',
    );
  }
  const hasJars =
    existsSync(brokerLibDir) &&
    readdirSync(brokerLibDir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f));
  if (!hasJars) {
    if (!commandExists('mvn', ['-v'])) {
      throw new ConfigError(
        `Kafka jars missing in ${brokerLibDir} and mvn not found: install Maven (Debian/Ubuntu: apt-get install -y maven) and run \`cd deploy/kafka && mvn -q -B package\`, or set KAFKA_BROKERS`,
      );
    }
    onProgress?.('fetching Kafka jars with Maven (deploy/kafka, mvn -q -B package)');
    const result = spawnSync('mvn', ['-q', '-B', 'package'], {
      cwd: dirname(brokerLibDir),
      encoding: 'utf8',
    });
    if (result.status !== 0) {
      throw new BrokerError(
        `mvn -q -B package in ${dirname(brokerLibDir)} failed (exit ${result.status}): ${(result.stdout + result.stderr).slice(-2000)}`,
        'jars_fetch_failed',
        true,
      );
    }
  }
  return join(brokerLibDir, '*');
}

/**
 * A random Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as `kafka-storage random-uuid`). Like
 * Kafka's own Uuid.randomUuid it never starts with '-': `kafka-storage format --cluster-id -x...` reads such an id as
 * an option and fails (1 start in 64 did).
 */
export function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function serverProperties(dir: string, port: number, controllerPort: number): string {
  return [
    '# Written by tkg broker start (src/kafka/local-broker.ts): single-node KRaft broker for development and tests.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${join(dir, 'data')}`,
    'num.partitions=1',
    'default.replication.factor=1',
    'min.insync.replicas=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=4',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=false',
    'delete.topic.enable=true',
    `message.max.bytes=${maxMessageBytes}`,
    `replica.fetch.max.bytes=${maxMessageBytes}`,
    `socket.request.max.bytes=${2 * maxMessageBytes}`,
    'log.retention.hours=8760',
    'log.retention.bytes=-1',
    'log.segment.bytes=268435456',
    'num.network.threads=2',
    'num.io.threads=4',
    '',
  ].join('\n');
}

function log4jProperties(): string {
  return [
    'log4j.rootLogger=INFO, stdout',
    'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
    'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
    'log4j.logger.kafka=INFO',
    'log4j.logger.org.apache.kafka=INFO',
    'log4j.logger.state.change.logger=WARN',
    'log4j.logger.kafka.request.logger=WARN',
    'log4j.logger.kafka.log.LogCleaner=WARN',
    'log4j.logger.org.apache.kafka.storage.internals.log=WARN',
    '',
  ].join('\n');
}

function javaBaseArgs(dir: string, heapMb: number, classpath: string): string[] {
  return [
    `-Xmx${heapMb}m`,
    `-Xms${Math.min(heapMb, 256)}m`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
    `-Dkafka.logs.dir=${join(dir, 'logs')}`,
    '-cp',
    classpath,
  ];
}

async function canConnect(bootstrap: string, timeoutMs = 3000): Promise<boolean> {
  const kafka = new Kafka({
    clientId: 'tkg-broker-probe',
    brokers: [bootstrap],
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.describeCluster();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until the group coordinator answers offset fetches for a group. On a fresh broker the first group request
 * creates __consumer_offsets and, while its partitions load, the broker answers NOT_COORDINATOR /
 * COORDINATOR_LOAD_IN_PROGRESS, which kafkajs's admin does not retry. Returns false on timeout.
 */
export async function waitForGroupCoordinator(
  bootstrap: string,
  timeoutMs: number,
): Promise<boolean> {
  const kafka = new Kafka({
    clientId: 'tkg-broker-warmup',
    brokers: [bootstrap],
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const deadline = Date.now() + timeoutMs;
  try {
    await admin.connect();
    while (Date.now() < deadline) {
      try {
        await admin.fetchOffsets({ groupId: 'tkg-broker-warmup', topics: [] });
        return true;
      } catch {
        await sleep(250);
      }
    }
    return false;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Status of the broker in `dir`: is its process alive, does it answer a kafkajs admin. */
export async function localBrokerStatus(dir?: string): Promise<LocalBrokerStatus> {
  const absolute = brokerDirOf(dir);
  const state = readBrokerState(absolute);
  if (!state || !isBrokerProcess(state.pid, absolute))
    return { running: false, reachable: false, dir: absolute, state };
  return { running: true, reachable: await canConnect(state.bootstrap), state, dir: absolute };
}

/**
 * Start the broker in `dir` (idempotent: returns the running one if its process is alive and reachable).
 * Formats KRaft storage on first use; runs detached with a pid file and a log file; resolves when a kafkajs
 * admin connects. Throws BrokerError with the log tail when it does not come up within readyTimeoutMs.
 */
export async function startLocalBroker(
  options: LocalBrokerOptions = {},
): Promise<LocalBrokerState> {
  const dir = brokerDirOf(options.dir);
  const progress = options.onProgress ?? (() => undefined);
  const existing = await localBrokerStatus(dir);
  if (existing.running && existing.state) {
    const wanted = options.port ?? 9092;
    if (wanted !== 0 && wanted !== existing.state.port) {
      throw new BrokerError(
        `a broker already runs from ${dir} on port ${existing.state.port} (pid ${existing.state.pid}), not ${wanted}: stop it first (tkg broker stop --dir ${dir})`,
        'already_running',
      );
    }
    if (existing.reachable) return existing.state;
    await waitUntilReady(existing.state, options.readyTimeoutMs ?? 60_000);
    return existing.state;
  }
  const classpath = ensureBrokerJars(progress);
  mkdirSync(join(dir, 'logs'), { recursive: true });

  const requestedPort = options.port ?? 9092;
  const port = requestedPort === 0 ? await findFreePort() : requestedPort;
  if (!(await isPortFree(port))) {
    throw new BrokerError(
      `port ${port} on 127.0.0.1 is already in use: choose another (--port N, TKG_BROKER_PORT, or 0 for a free port)`,
      'port_in_use',
    );
  }
  const previous = readBrokerState(dir);
  let controllerPort =
    previous?.controllerPort &&
    previous.controllerPort !== port &&
    (await isPortFree(previous.controllerPort))
      ? previous.controllerPort
      : await findFreePort();
  while (controllerPort === port) controllerPort = await findFreePort();

  writeFileSync(join(dir, 'server.properties'), serverProperties(dir, port, controllerPort));
  writeFileSync(join(dir, 'log4j.properties'), log4jProperties());
  const heapMb = options.heapMb ?? 512;

  // Format storage once (meta.properties marks a formatted log dir).
  const metaFile = join(dir, 'data', 'meta.properties');
  let clusterId = previous?.clusterId;
  if (!existsSync(metaFile)) {
    clusterId = randomClusterId();
    progress(`formatting KRaft storage in ${join(dir, 'data')} (cluster ${clusterId})`);
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    const format = spawnSync(
      'java',
      [
        ...javaBaseArgs(dir, 256, classpath),
        'kafka.tools.StorageTool',
        'format',
        '-t',
        clusterId,
        '-c',
        join(dir, 'server.properties'),
      ],
      { encoding: 'utf8' },
    );
    if (format.status !== 0) {
      throw new BrokerError(
        `formatting Kafka storage failed (exit ${format.status}): ${(format.stdout + format.stderr).slice(-2000)}`,
        'format_failed',
      );
    }
  } else if (!clusterId) {
    clusterId = /cluster\.id=(\S+)/.exec(readFileSync(metaFile, 'utf8'))?.[1] ?? 'unknown';
  }

  progress(
    `starting Kafka on 127.0.0.1:${port} (controller ${controllerPort}), log ${join(dir, logFileName)}`,
  );
  const logFile = join(dir, logFileName);
  const pid = spawnDetachedJava(
    [...javaBaseArgs(dir, heapMb, classpath), 'kafka.Kafka', join(dir, 'server.properties')],
    dir,
    logFile,
  );
  if (pid === undefined)
    throw new BrokerError('could not spawn java for the Kafka broker', 'spawn_failed', true);
  const state: LocalBrokerState = {
    pid,
    port,
    controllerPort,
    dir,
    bootstrap: `127.0.0.1:${port}`,
    clusterId: clusterId ?? 'unknown',
    startedAt: new Date().toISOString(),
    logFile,
  };
  writeFileSync(join(dir, pidFileName), `${pid}\n`);
  writeFileSync(join(dir, stateFileName), JSON.stringify(state, null, 2) + '\n');
  try {
    await waitUntilReady(state, options.readyTimeoutMs ?? 60_000);
  } catch (error) {
    await stopLocalBroker(dir).catch(() => undefined);
    throw error;
  }
  return state;
}

async function waitUntilReady(state: LocalBrokerState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isBrokerProcess(state.pid, state.dir)) {
      throw new BrokerError(
        `the Kafka broker (pid ${state.pid}) exited during start-up; last lines of ${state.logFile}:\n${brokerLogTail(state.dir)}`,
        'broker_exited',
      );
    }
    if (await canConnect(state.bootstrap, 2000)) {
      // Ready means consumer groups work too (fresh brokers load __consumer_offsets on first use).
      if (await waitForGroupCoordinator(state.bootstrap, Math.max(1000, deadline - Date.now())))
        return;
      break;
    }
    await sleep(500);
  }
  throw new BrokerError(
    `the Kafka broker on ${state.bootstrap} did not accept connections within ${Math.round(timeoutMs / 1000)} s; last lines of ${state.logFile}:\n${brokerLogTail(state.dir)}`,
    'broker_timeout',
    true,
  );
}

/**
 * Stop the broker in `dir` by pid: SIGTERM (controlled shutdown), then SIGKILL after `graceMs`.
 * Returns whether a process was stopped. Leaves data in place (restart keeps topics).
 */
export async function stopLocalBroker(
  dir?: string,
  graceMs = 20_000,
): Promise<{ stopped: boolean; pid?: number }> {
  const absolute = brokerDirOf(dir);
  const state = readBrokerState(absolute);
  const cleanup = () => rmSync(join(absolute, pidFileName), { force: true });
  if (!state || !isBrokerProcess(state.pid, absolute)) {
    cleanup();
    return { stopped: false, pid: state?.pid };
  }
  await stopProcess(state.pid, () => isBrokerProcess(state.pid, absolute), graceMs);
  cleanup();
  return { stopped: true, pid: state.pid };
}
