// A scoring replica on the real broker for the serving benches: topics under a throw-away prefix, a ServeReplica
// (optionally serving the bundle as entity shards), one announced bundle, and a client that sends queries to
// tkg.queries and times each answer on tkg.answers. Used by `npm run bench -- serve` (one query at a time) and
// `npm run bench -- scale` (batched, through Kafka). Owns: that harness only.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { loadConfig } from '../../src/config/config.ts';
import { resolveBrokerSource } from '../../src/kafka/brokers.ts';
import { createKafkaClient, createProducer } from '../../src/kafka/client.ts';
import { announceBundle } from '../../src/kafka/model-topic.ts';
import { ensureTopics, topicNames } from '../../src/kafka/topics.ts';
import { projectRoot } from '../../src/kafka/local-broker.ts';
import { uncalibrated } from '../../src/model/calibration.ts';
import { SchemaCodec } from '../../src/schemas/codec.ts';
import { ServeReplica } from '../../src/serve/replica.ts';

export interface KafkaServing {
  /** Send queries (subject `e<anchor>`, relation `r<relation>`) in one produce call; resolves with each one's ms. */
  ask(queries: ReadonlyArray<{ anchor: number; relation: number }>, k: number): Promise<number[]>;
  close(): Promise<void>;
  /** Seconds from the announcement to the replica serving it (read, possibly from pieces, loaded, cut). */
  readySeconds: number;
}

export async function startKafkaServing(options: {
  bytes: Uint8Array;
  entities: string[];
  relations: string[];
  hash: string;
  step: number;
  scorerShards?: number;
  /**
   * Serve through this many shard replicas (`tkg shard` processes on this machine, each holding N / shardReplicas
   * rows) behind the replica as a front (TKG_SHARD_SERVERS); 0 = the replica scores by itself (default).
   */
  shardReplicas?: number;
  /** Partitions of the queries and answers topics (default 1). */
  partitions?: number;
  clientId: string;
}): Promise<KafkaServing> {
  const config = loadConfig();
  const source = await resolveBrokerSource(config, process.env, (line) =>
    process.stderr.write(`${line}\n`),
  );
  const kafka = createKafkaClient({ brokers: source.brokers, clientId: options.clientId });
  const prefix = `${options.clientId}-${randomUUID().slice(0, 8)}`;
  const topics = topicNames(prefix);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, {
    prefix,
    partitions: options.partitions ?? 1,
    roles: ['queries', 'answers', 'models', 'modelChunks', 'forecasts', 'evaluations'],
  });
  const codec = SchemaCodec.load();
  const shardProcesses = await startShardReplicas(options.shardReplicas ?? 0, {
    brokers: source.brokers,
    prefix,
  });
  const replica = new ServeReplica({
    kafka,
    codec,
    topicPrefix: prefix,
    modelName: 'nlsm',
    followSnapshots: false,
    scorerThreads: config.scorerThreads,
    scorerShards: options.scorerShards ?? 1,
    shardServers: shardProcesses.urls.map((url) => [url]),
    maxWaitMs: config.scorerMaxWaitMs,
  });
  const producer = createProducer(kafka);
  const consumer = kafka.consumer({ groupId: `${prefix}.client`, maxWaitTimeInMs: 1 });
  const waiting = new Map<string, () => void>();
  let announcedAt: number;
  let readySeconds: number;
  const close = async () => {
    await consumer.disconnect();
    await producer.disconnect();
    await replica.stop();
    await shardProcesses.stop();
    await admin
      .deleteTopics({
        topics: Object.values(topics).filter(
          (t) => t !== topics.facts && !t.startsWith(`${topics.facts}.`),
        ),
      })
      .catch(() => undefined);
    await admin.disconnect();
    await source.release();
  };
  try {
    await replica.start();
    await producer.connect();
    announcedAt = performance.now();
    await announceBundle(producer, codec, topics.models, {
      name: 'nlsm',
      kind: 'nlsm',
      version: 1,
      step: options.step,
      trainedStep: options.step - 1,
      createdAt: new Date().toISOString(),
      vocabularyHash: options.hash,
      onnx: options.bytes,
      location: null,
      entities: options.entities,
      relations: options.relations,
      terms: { kind: 'none' },
      calibration: uncalibrated,
      notes: {},
    });
    await consumer.connect();
    await consumer.subscribe({ topic: topics.answers, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => waiting.get(message.key?.toString() ?? '')?.(),
    });
    // a large bundle is read from its pieces on the chunk topic, then loaded (and cut into shards)
    const deadline = Date.now() + 600_000;
    while (!replica.ready) {
      if (Date.now() > deadline) throw new Error('scoring replica not ready within 600 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    readySeconds = (performance.now() - announcedAt) / 1000;
  } catch (error) {
    await close();
    throw error;
  }
  const ask: KafkaServing['ask'] = async (queries, k) => {
    const ids = queries.map(() => randomUUID());
    const answered = ids.map(
      (id) => new Promise<number>((resolve) => waiting.set(id, () => resolve(performance.now()))),
    );
    const start = performance.now();
    await producer.send({
      topic: topics.queries,
      messages: queries.map((q, i) => ({
        key: `e${q.anchor}`,
        value: codec.encodeValue('Query', {
          replyId: ids[i],
          subject: `e${q.anchor}`,
          relation: `r${q.relation}`,
          k,
        }),
      })),
    });
    const done = await Promise.all(answered);
    for (const id of ids) waiting.delete(id);
    return done.map((t) => t - start);
  };
  return { ask, close, readySeconds };
}

/** `tkg shard` processes 0..count-1 of count on free local ports (model name nlsm); stop() ends them. */
async function startShardReplicas(
  count: number,
  options: { brokers: string[]; prefix: string },
): Promise<{ urls: string[]; stop: () => Promise<void> }> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.push((server.address() as { port: number }).port);
    await new Promise((resolve) => server.close(resolve));
  }
  const children = ports.map((port, index) =>
    spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'shard', '--no-metrics'], {
      cwd: projectRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        KAFKA_BROKERS: options.brokers.join(','),
        TKG_TOPIC_PREFIX: options.prefix,
        TKG_MODEL_NAME: 'nlsm',
        TKG_SHARD_INDEX: String(index),
        TKG_SHARD_COUNT: String(count),
        TKG_SHARD_PORT: String(port),
        TKG_SHARD_HOST: '127.0.0.1',
        TKG_LOG_LEVEL: 'warn',
      },
    }),
  );
  for (const child of children) child.stderr?.on('data', (chunk) => process.stderr.write(chunk));
  return {
    urls: ports.map((port) => `http://127.0.0.1:${port}`),
    stop: async () => {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
              setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
            }),
        ),
      );
    },
  };
}
