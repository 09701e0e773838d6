// `tkg publish --dataset yago|wiki|enron|uci|<path>`: replay a dataset's facts into tkg.facts with a progress bar.
// Wiring only: datasets from src/datasets, brokers/topics/publisher from src/kafka, codec from src/schemas.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { ConfigError } from '../../core/errors.ts';
import { datasetFactEvents, loadDataset } from '../../datasets/index.ts';
import { splitNames, type SplitName } from '../../datasets/renet.ts';
import { resolveBrokerSource } from '../../kafka/brokers.ts';
import { createKafkaClient, createProducer } from '../../kafka/client.ts';
import { publishFacts, type FactFormat } from '../../kafka/publisher.ts';
import { assertTopicLeaders, ensureTopics, topicNames } from '../../kafka/topics.ts';
import { retryLogger, withRetries } from '../../kafka/retry.ts';
import { SchemaCodec } from '../../schemas/codec.ts';

interface PublishFlags {
  dataset: string;
  split: string;
  rate?: string;
  limit?: string;
  format: string;
  topic?: string;
  acks: string;
  json?: boolean;
}

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a non-negative number`);
  return number;
}

export function register(program: Command): void {
  program
    .command('publish')
    .description("publish a dataset's facts to <prefix>.facts (key: subject), with a progress bar")
    .requiredOption(
      '--dataset <name|path>',
      'yago, wiki, enron, uci, a RE-NET directory, or a .tsv/.csv/.jsonl fact file',
    )
    .option('--split <split>', 'train, valid, test or all (TKG datasets)', 'all')
    .option('--rate <n>', 'facts per second (default: as fast as possible)')
    .option('--limit <n>', 'publish at most n facts')
    .option('--format <format>', 'json or avro (single-object encoding)', 'avro')
    .option('--topic <topic>', 'target topic (default <TKG_TOPIC_PREFIX>.facts)')
    .option('--acks <n>', '-1 all in-sync replicas, 1 leader, 0 none', '-1')
    .option('--json', 'print the result as JSON (no progress bar)')
    .action(async (flags: PublishFlags) => {
      const config = loadConfig();
      const split = flags.split;
      if (split !== 'all' && !(splitNames as readonly string[]).includes(split)) {
        throw new ConfigError(`--split ${JSON.stringify(split)}: use train, valid, test or all`);
      }
      if (flags.format !== 'json' && flags.format !== 'avro')
        throw new ConfigError(`--format ${JSON.stringify(flags.format)}: use json or avro`);
      const acks = Number(flags.acks);
      if (acks !== -1 && acks !== 0 && acks !== 1)
        throw new ConfigError(`--acks ${JSON.stringify(flags.acks)}: use -1, 0 or 1`);
      const rate = positiveNumber('--rate', flags.rate);
      const limit = positiveNumber('--limit', flags.limit);

      const dataset = loadDataset(flags.dataset);
      const splits: SplitName[] = split === 'all' ? [...splitNames] : [split as SplitName];
      let facts = datasetFactEvents(dataset, splits);
      if (limit !== undefined) facts = facts.slice(0, limit);

      const log = (line: string) => process.stderr.write(`${line}\n`);
      const brokers = await resolveBrokerSource(config, process.env, log);
      const kafka = createKafkaClient({
        brokers: brokers.brokers,
        clientId: `${config.kafkaClientId}-publish`,
      });
      const topic = flags.topic ?? topicNames(config.topicPrefix).facts;
      // Any stage may start first or together with the others: transient broker errors are retried with a log line.
      const retry = { logger: retryLogger(log) };
      const admin = kafka.admin();
      await withRetries('connect the admin client', () => admin.connect(), retry);
      try {
        if (flags.topic) {
          await withRetries(
            `create ${topic}`,
            async () => {
              const existing = await admin.listTopics();
              if (!existing.includes(topic))
                await admin.createTopics({
                  topics: [{ topic, numPartitions: config.partitions }],
                  waitForLeaders: true,
                });
              await assertTopicLeaders(admin, [topic]);
            },
            retry,
          );
        } else {
          await ensureTopics(admin, {
            prefix: config.topicPrefix,
            partitions: config.partitions,
            logger: retry.logger,
          });
        }
      } finally {
        await admin.disconnect();
      }

      const bar =
        !flags.json && process.stderr.isTTY
          ? new cliProgress.SingleBar(
              {
                format:
                  'publish {bar} {percentage}% | {value}/{total} facts | {speed} facts/s | ETA {eta_formatted}',
                hideCursor: true,
              },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
      const started = performance.now();
      bar?.start(facts.length, 0, { speed: 0 });
      const producer = createProducer(kafka);
      await withRetries('connect the producer', () => producer.connect(), retry);
      let result;
      try {
        result = await publishFacts(producer, SchemaCodec.load(), facts, {
          topic,
          format: flags.format as FactFormat,
          rate,
          acks: acks as -1 | 0 | 1,
          onProgress: (sent) =>
            bar?.update(sent, { speed: Math.round(sent / ((performance.now() - started) / 1000)) }),
        });
      } finally {
        bar?.stop();
        await producer.disconnect();
        await brokers.release();
      }
      const summary = {
        dataset: flags.dataset,
        splits: dataset.kind === 'tkg' ? splits : ['events'],
        topic,
        brokers: brokers.brokers,
        brokerSource: brokers.source,
        format: flags.format,
        facts: result.sent,
        bytes: result.bytes,
        seconds: Number(result.seconds.toFixed(3)),
        factsPerSecond: Math.round(result.factsPerSecond),
      };
      process.stdout.write(
        flags.json
          ? `${JSON.stringify(summary)}\n`
          : `published ${summary.facts} facts (${summary.format}) to ${topic} on ${summary.brokers.join(',')} in ${summary.seconds} s: ${summary.factsPerSecond} facts/s\n`,
      );
    });
}
