// Typed errors shared across stages. Owns: the error base class and its retriable flag.
// Every error names the offending value and says how to fix it (CONVENTIONS: errors).

export class TkgError extends Error {
  /** True when retrying the same operation later may succeed (e.g. broker unreachable). */
  readonly retriable: boolean;
  /** Machine-readable reason, bounded set, used as a metric label. */
  readonly reason: string;
  constructor(message: string, options: { reason: string; retriable?: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.reason = options.reason;
    this.retriable = options.retriable ?? false;
  }
}

/** Input that can never be processed (goes to a dead-letter topic, is never retried). */
export class InvalidInputError extends TkgError {
  readonly field: string;
  constructor(field: string, message: string, reason: string) {
    super(`${field}: ${message}`, { reason, retriable: false });
    this.field = field;
  }
}

/** Configuration the user must fix. */
export class ConfigError extends TkgError {
  constructor(message: string) {
    super(message, { reason: 'config', retriable: false });
  }
}
