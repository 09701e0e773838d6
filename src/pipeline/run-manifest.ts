// The run manifest of `tkg run` (`<state>/run/run.json`): what the run replays and where its records start in the
// facts topic, so a resumed run replays exactly what is missing and a run with other flags is refused. A fresh run on
// the local broker deletes the previous run's leftover topics. Owns: that file and the topic clean-up.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TkgConfig } from '../config/config.ts';
import { ConfigError, TkgError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/durable.ts';
import type { BrokerSource } from '../kafka/brokers.ts';
import type { Admin } from '../kafka/client.ts';
import { snapshotsTopicName } from '../kafka/snapshot-topic.ts';
import { withRetries } from '../kafka/retry.ts';
import { ensureTopics, topicNames } from '../kafka/topics.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a run replays; a resumed run must ask for the same. */
export interface RunIdentity {
  dataset: string;
  model: string;
  fromStep: number | null;
  replaySteps: number | null;
  limit: number | null;
  topicPrefix: string;
}

export interface RunManifest extends RunIdentity {
  format: 'tkg-run';
  facts: number;
  partitions: number;
  /** End offsets of <prefix>.facts per partition when the run began (the replay's records follow them). */
  startOffsets: Record<string, number>;
  createdAt: string;
}

/**
 * Low and high offsets of every partition of a topic. A topic created a moment ago can answer NOT_LEADER for a
 * while (a loaded broker, many partitions): retriable errors are retried with backoff.
 */
export async function factOffsets(
  admin: Admin,
  topic: string,
): Promise<Map<number, { low: number; high: number }>> {
  const offsets = await withRetries(`reading the offsets of ${topic}`, () =>
    admin.fetchTopicOffsets(topic),
  );
  return new Map(offsets.map((o) => [o.partition, { low: Number(o.low), high: Number(o.high) }]));
}

/** Read `<run>/run.json`, or create it for a fresh run (cleaning a local broker's leftover topics). */
export async function openRunManifest(options: {
  admin: Admin;
  runDir: string;
  factCount: number;
  config: TkgConfig;
  brokerSource: BrokerSource;
  wanted: RunIdentity;
  log: (line: string) => void;
}): Promise<RunManifest> {
  const { admin, runDir, factCount, config, wanted } = options;
  const topics = topicNames(config.topicPrefix);
  const path = join(runDir, 'run.json');
  if (existsSync(path)) {
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as RunManifest;
    for (const [key, value] of Object.entries(wanted)) {
      const had = (manifest as unknown as Record<string, unknown>)[key];
      if (had !== value) {
        throw new ConfigError(
          `state directory ${config.stateDir} holds a run with ${key} ${JSON.stringify(had)}, not ${JSON.stringify(value)}: resume it with the same flags, or start a new run with --fresh (deletes it) or another --state-dir`,
        );
      }
    }
    await ensureTopics(admin, { prefix: config.topicPrefix, partitions: manifest.partitions });
    return manifest;
  }
  if (existsSync(join(config.stateDir, 'checkpoint.bin'))) {
    throw new ConfigError(
      `state directory ${config.stateDir} holds an ingest checkpoint but no run manifest (it belongs to \`tkg ingest\`); use another --state-dir for tkg run`,
    );
  }
  await ensureTopics(admin, { prefix: config.topicPrefix, partitions: config.partitions });
  let offsets = await factOffsets(admin, topics.facts);
  const leftover = [...offsets.values()].reduce((a, o) => a + (o.high - o.low), 0);
  if (leftover > 0) {
    if (options.brokerSource !== 'local') {
      throw new ConfigError(
        `${topics.facts} already holds ${leftover} records and ${config.stateDir} is a fresh run: set TKG_TOPIC_PREFIX (--topic-prefix) to an unused prefix, or resume the run with its state directory`,
      );
    }
    options.log(
      `fresh run: deleting the local broker's leftover ${config.topicPrefix}.* topics (${leftover} old facts)`,
    );
    await recreateTopics(admin, config);
    offsets = await factOffsets(admin, topics.facts);
  }
  const manifest: RunManifest = {
    format: 'tkg-run',
    ...wanted,
    facts: factCount,
    partitions: offsets.size,
    startOffsets: Object.fromEntries([...offsets].map(([p, o]) => [String(p), o.high])),
    createdAt: new Date().toISOString(),
  };
  writeFileAtomic(path, Buffer.from(JSON.stringify(manifest, null, 2)));
  return manifest;
}

async function recreateTopics(admin: Admin, config: TkgConfig): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const topics = topicNames(config.topicPrefix);
  const ours = [...Object.values(topics), snapshotsTopicName(config.topicPrefix)].filter((t) =>
    existing.has(t),
  );
  await admin.deleteTopics({ topics: ours, timeout: 30_000 });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const left = (await admin.listTopics()).filter((t) => ours.includes(t));
      if (left.length === 0) {
        await ensureTopics(admin, { prefix: config.topicPrefix, partitions: config.partitions });
        return;
      }
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline)
      throw new TkgError(`topics ${ours.join(', ')} were not deleted within 60 s`, {
        reason: 'timeout',
        retriable: true,
      });
    await sleep(500);
  }
}
