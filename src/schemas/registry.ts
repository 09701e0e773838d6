// The codec's link to a Confluent-compatible schema registry (Confluent Schema Registry, Apicurio's ccompat API,
// Karapace), through @kafkajs/confluent-schema-registry. Owns: resolving Confluent schema ids the codec does not know
// (the writer's schema fetched once per id, cached, read through Avro schema resolution into the project's schema;
// an id the registry lacks or a schema the contract cannot read becomes a dead-letter error naming the field) and
// registering the project's schemas for Confluent-framed outputs under TopicNameStrategy subjects (<topic>-value).
// Must not touch: Kafka clients, wire framing (codec.ts).
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { TkgError } from '../core/errors.ts';
import { CodecError, type SchemaCodec, type SchemaName } from './codec.ts';

export interface SchemaRegistryOptions {
  /** Base URL of the Confluent-compatible API, e.g. http://127.0.0.1:8081 or http://host:8080/apis/ccompat/v7. */
  url: string;
  /** HTTP basic auth (Confluent Cloud: API key and secret). */
  username?: string;
  password?: string;
}

/** The registry did not answer (network, 5xx): retriable, never the input's fault. */
export class RegistryUnavailableError extends TkgError {
  constructor(url: string, cause: unknown) {
    super(
      `schema registry ${url} did not answer (${(cause as Error)?.message ?? String(cause)}): check --schema-registry-url and its credentials`,
      { reason: 'registry_unavailable', retriable: true, cause },
    );
  }
}

const statusOf = (error: unknown): number | undefined => {
  const status = (error as { status?: unknown })?.status;
  return typeof status === 'number' ? status : undefined;
};

export class ConfluentRegistry {
  readonly url: string;
  private readonly client: SchemaRegistry;
  /** The codec the resolved ids are registered in (decode with this one). */
  readonly codec: SchemaCodec;
  private readonly inFlight = new Map<number, Promise<void>>();

  constructor(codec: SchemaCodec, options: SchemaRegistryOptions) {
    this.codec = codec;
    this.url = options.url.replace(/\/+$/, '');
    const auth =
      options.username !== undefined
        ? { username: options.username, password: options.password ?? '' }
        : undefined;
    this.client = new SchemaRegistry({ host: this.url, auth, clientId: 'tkg-stream' });
  }

  /**
   * Make Confluent schema `id` known to the codec as `expect`: fetch its schema from the registry (once; concurrent
   * callers share the request) and register it through schema resolution. An id the registry does not have, a
   * non-Avro schema or one `expect` cannot read is registered as a failure (its values become dead letters whose
   * error names the field). Throws RegistryUnavailableError when the registry cannot be reached (retry later).
   */
  resolveId(id: number, expect: SchemaName): Promise<void> {
    let pending = this.inFlight.get(id);
    if (!pending) {
      pending = this.fetchAndRegister(id, expect).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, pending);
    }
    return pending;
  }

  private async fetchAndRegister(id: number, expect: SchemaName): Promise<void> {
    let schema: unknown;
    try {
      schema = await this.client.getSchema(id);
    } catch (error) {
      const status = statusOf(error);
      if (status !== undefined && status >= 400 && status < 500) {
        this.codec.registerConfluentFailure(
          id,
          expect,
          new CodecError(
            'value',
            `Confluent schema id ${id} is not in the schema registry ${this.url} (HTTP ${status}): the producer used another registry`,
            'unknown_schema_id',
          ),
        );
        return;
      }
      throw new RegistryUnavailableError(this.url, error);
    }
    const json = (schema as { schema?: () => unknown }).schema?.();
    if (typeof json !== 'object' || json === null) {
      this.codec.registerConfluentFailure(
        id,
        expect,
        new CodecError(
          'value',
          `Confluent schema id ${id} in ${this.url} is not an Avro schema: ${expect} values must be Avro`,
          'schema_mismatch',
        ),
      );
      return;
    }
    try {
      this.codec.registerConfluentId(id, expect, json, `registry id ${id}`);
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      this.codec.registerConfluentFailure(id, expect, error);
    }
  }

  /**
   * Register the project's schema of each `name` under the TopicNameStrategy subject `<topic>-value` and make the
   * codec frame `name` with the id the registry gave it. Throws RegistryUnavailableError or the registry's refusal.
   */
  async registerOutputs(outputs: Array<[SchemaName, string]>): Promise<Map<SchemaName, number>> {
    const ids = new Map<SchemaName, number>();
    for (const [name, topic] of outputs) {
      let id: number;
      try {
        ({ id } = await this.client.register(
          { type: SchemaType.AVRO, schema: JSON.stringify(this.codec.schemas[name]) },
          { subject: `${topic}-value` },
        ));
      } catch (error) {
        const status = statusOf(error);
        if (status !== undefined && status >= 400 && status < 500)
          throw new TkgError(
            `schema registry ${this.url} refused ${name} under subject ${topic}-value (HTTP ${status}): ${(error as Error).message}; check the subject's compatibility setting`,
            { reason: 'registry_refused', cause: error },
          );
        throw new RegistryUnavailableError(this.url, error);
      }
      this.codec.setConfluentOutputId(name, id);
      ids.set(name, id);
    }
    return ids;
  }
}
