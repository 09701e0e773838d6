// Broker choice (issue 3): KAFKA_BROKERS if set; else a Kafka testcontainer when a Docker engine answers;
// else the project's local broker (started if not running, reused via its state file if it is).
// Owns: that decision and the Docker probe. Must not touch: topics, producers, consumers.
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import type { TkgConfig } from '../config/config.ts';
import { ConfigError } from '../core/errors.ts';
import { localBrokerStatus, startLocalBroker } from './local-broker.ts';

export type BrokerSource = 'env' | 'testcontainers' | 'local';

export interface ResolvedBrokers {
  brokers: string[];
  source: BrokerSource;
  /** Stops what resolveBrokers started for this process (the testcontainer); the local broker keeps running. */
  release: () => Promise<void>;
}

/** Parse `host:port,host:port`; throws a ConfigError naming the bad entry. */
export function parseBrokerList(value: string): string[] {
  const brokers = value
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  for (const broker of brokers) {
    if (!/^[^\s:]+:\d{1,5}$/.test(broker) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(broker)) {
      throw new ConfigError(
        `KAFKA_BROKERS entry ${JSON.stringify(broker)} is not host:port (e.g. KAFKA_BROKERS=127.0.0.1:9092)`,
      );
    }
  }
  if (brokers.length === 0)
    throw new ConfigError(
      `KAFKA_BROKERS=${JSON.stringify(value)} lists no broker; unset it to use the local broker`,
    );
  return brokers;
}

/** Socket path of the Docker engine from DOCKER_HOST (unix://...) or the default socket; undefined if none. */
function dockerSocketPath(env: NodeJS.ProcessEnv): string | undefined {
  const host = env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  if (host) return undefined; // tcp:// engines: testcontainers handles them, our quick probe does not
  return existsSync('/var/run/docker.sock') ? '/var/run/docker.sock' : undefined;
}

/** True when a Docker engine answers GET /_ping within `timeoutMs` (no docker CLI needed). */
export async function dockerEngineAnswers(
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 1500,
): Promise<boolean> {
  const socketPath = dockerSocketPath(env);
  if (!socketPath && !env.DOCKER_HOST) return false;
  if (!socketPath) return true; // a remote engine is configured explicitly: let testcontainers try it
  return new Promise((resolveAnswer) => {
    const req = request(
      { socketPath, path: '/_ping', method: 'GET', timeout: timeoutMs },
      (res) => {
        res.resume();
        resolveAnswer(res.statusCode === 200);
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolveAnswer(false);
    });
    req.on('error', () => resolveAnswer(false));
    req.end();
  });
}

interface StartedKafkaContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

/** Start a KRaft Kafka testcontainer; `@testcontainers/kafka` is an optional dependency, imported only here. */
async function startKafkaContainer(): Promise<ResolvedBrokers> {
  const moduleName = '@testcontainers/kafka';
  interface KafkaContainerBuilder {
    withKraft(): KafkaContainerBuilder;
    withEnvironment(env: Record<string, string>): KafkaContainerBuilder;
    start(): Promise<StartedKafkaContainer>;
  }
  let module: { KafkaContainer: new (image: string) => KafkaContainerBuilder };
  try {
    module = (await import(moduleName)) as typeof module; // an optional package, named above
  } catch (error) {
    throw new ConfigError(
      `a Docker engine answers but ${moduleName} (an optional dependency) is not installed (${(error as Error).message}): run \`npm install\` (it needs Node >= 20), set KAFKA_BROKERS, or set TKG_NO_DOCKER=1 to use the local broker`,
    );
  }
  // Same broker settings as the local broker where they matter: no auto-created topics, 64 MiB messages.
  const container = await new module.KafkaContainer('confluentinc/cp-kafka:7.9.0')
    .withKraft()
    .withEnvironment({
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
      KAFKA_MESSAGE_MAX_BYTES: String(64 * 1024 * 1024),
      KAFKA_REPLICA_FETCH_MAX_BYTES: String(64 * 1024 * 1024),
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .start();
  return {
    brokers: [`${container.getHost()}:${container.getMappedPort(9093)}`],
    source: 'testcontainers',
    release: async () => {
      await container.stop();
    },
  };
}

/**
 * Decide which brokers to use, starting one if needed. Order: `config.kafkaBrokers` (KAFKA_BROKERS);
 * else a testcontainer if a Docker engine answers (skip with TKG_NO_DOCKER=1); else the local broker in
 * `config.brokerDir` on `config.brokerPort` (reused if already running, on whatever port it runs).
 */
export async function resolveBrokerSource(
  config: Pick<TkgConfig, 'kafkaBrokers' | 'brokerDir' | 'brokerPort'>,
  env: NodeJS.ProcessEnv = process.env,
  onProgress?: (line: string) => void,
): Promise<ResolvedBrokers> {
  const noop = async () => undefined;
  if (config.kafkaBrokers)
    return { brokers: parseBrokerList(config.kafkaBrokers), source: 'env', release: noop };
  if (env.TKG_NO_DOCKER !== '1' && (await dockerEngineAnswers(env))) {
    onProgress?.('Docker engine found: starting a Kafka testcontainer');
    return startKafkaContainer();
  }
  const status = await localBrokerStatus(config.brokerDir);
  if (status.running && status.state)
    return { brokers: [status.state.bootstrap], source: 'local', release: noop };
  const state = await startLocalBroker({
    dir: config.brokerDir,
    port: config.brokerPort,
    onProgress,
  });
  return { brokers: [state.bootstrap], source: 'local', release: noop };
}

/** Bootstrap servers to use (see resolveBrokerSource). */
export async function resolveBrokers(
  config: Pick<TkgConfig, 'kafkaBrokers' | 'brokerDir' | 'brokerPort'>,
): Promise<string[]> {
  return (await resolveBrokerSource(config)).brokers;
}
