// The codec a stage uses, as the configuration decides it: the project's schemas, a schema registry when
// TKG_SCHEMA_REGISTRY_URL is set (ingest resolves producers' Confluent schema ids from it), and for
// TKG_OUTPUT_FORMAT=confluent the project's output schemas registered under TopicNameStrategy subjects
// (<topic>-value) so encodeValue(name, value, 'confluent') frames them with their registry ids.
// Owns: that wiring (topic of each output schema). Must not touch: the codec's framing, the registry protocol.
import type { TkgConfig } from '../config/config.ts';
import { ConfigError } from '../core/errors.ts';
import { SchemaCodec, type SchemaName, type WireFormat } from '../schemas/codec.ts';
import { ConfluentRegistry } from '../schemas/registry.ts';
import { withRetries, type RetryLog } from './retry.ts';
import { topicNames } from './topics.ts';

export type SchemaConfig = Pick<
  TkgConfig,
  | 'schemaRegistryUrl'
  | 'schemaRegistryUsername'
  | 'schemaRegistryPassword'
  | 'outputFormat'
  | 'topicPrefix'
>;

/** The topic each schema is written to (TopicNameStrategy subject = `<topic>-value`). */
export function schemaTopics(prefix: string): Array<[SchemaName, string]> {
  const topics = topicNames(prefix);
  return [
    ['Fact', topics.facts],
    ['Query', topics.queries],
    ['Answer', topics.answers],
    ['Forecast', topics.forecasts],
    ['StepMetrics', topics.evaluations],
    ['ModelAnnouncement', topics.models],
    ['ModelChunk', topics.modelChunks],
  ];
}

export interface ConfiguredCodec {
  codec: SchemaCodec;
  /** The schema registry link (undefined without TKG_SCHEMA_REGISTRY_URL). */
  registry: ConfluentRegistry | undefined;
  /** The wire format outputs are written in (pass it to encodeValue). */
  outputFormat: WireFormat;
}

/**
 * Build the codec the configuration asks for. With --output-format confluent the output schemas are registered
 * (retrying while the registry is unreachable, up to 120 s); without a registry that format is a ConfigError.
 */
export async function codecFromConfig(
  config: SchemaConfig,
  options: { logger?: RetryLog; codec?: SchemaCodec } = {},
): Promise<ConfiguredCodec> {
  const codec = options.codec ?? SchemaCodec.load();
  const outputFormat = config.outputFormat ?? 'avro';
  if (!config.schemaRegistryUrl) {
    if (outputFormat === 'confluent')
      throw new ConfigError(
        '--output-format confluent needs a schema registry: set --schema-registry-url (TKG_SCHEMA_REGISTRY_URL)',
      );
    return { codec, registry: undefined, outputFormat };
  }
  const registry = new ConfluentRegistry(codec, {
    url: config.schemaRegistryUrl,
    username: config.schemaRegistryUsername,
    password: config.schemaRegistryPassword,
  });
  if (outputFormat === 'confluent') {
    const outputs = schemaTopics(config.topicPrefix).filter(([name]) => name !== 'Fact');
    await withRetries('register the output schemas', () => registry.registerOutputs(outputs), {
      logger: options.logger,
    });
  }
  return { codec, registry, outputFormat };
}

/**
 * Resolve a producer's Confluent schema id from the registry before its first value is decoded. While the registry
 * does not answer, wait with backoff (heartbeating, logging): that is not the value's fault, so it is no dead letter.
 * Gives up (throws) only when `running()` turns false.
 */
export async function waitForSchemaId(
  registry: ConfluentRegistry,
  id: number,
  expect: SchemaName,
  context: { running: () => boolean; heartbeat: () => Promise<void>; logger: RetryLog },
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await registry.resolveId(id, expect);
      return;
    } catch (error) {
      if (!context.running()) throw error;
      const wait = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
      context.logger.warn(
        { id, attempt, err: (error as Error).message, retryInMs: wait },
        'schema registry did not answer; ingest waits for it',
      );
      await context.heartbeat().catch(() => undefined);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
