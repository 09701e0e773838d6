// Event time -> step. Owns: parsing event times (integer steps, ISO-8601, epoch ms), granularities
// (`1y`, `60d`, `10d`, `6h`, ...), the origin (absolute or "first event + offset") and fold rules.
// Must not touch Kafka, the vocabulary or the trainer: a pure mapping with one piece of state (a
// relative origin resolved from the first event), which is checkpointed with the window.
import { ConfigError, InvalidInputError } from './errors.ts';

const MS_PER_UNIT: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** A step length: fixed milliseconds, or calendar months (`mo`, `y` = 12 months) counted in UTC. */
export type Granularity = { unit: 'fixed'; ms: number } | { unit: 'months'; months: number };

/** Parse `<n><unit>` with unit ms|s|m|h|d|w|mo|y, e.g. `1y`, `60d`, `10d`, `6h`. */
export function parseGranularity(text: string): Granularity {
  const match = /^\s*(\d+)\s*(ms|s|m|h|d|w|mo|y)\s*$/.exec(text);
  if (!match || Number(match[1]) <= 0) {
    throw new ConfigError(
      `granularity ${JSON.stringify(text)} is not <positive integer><unit> with unit ms|s|m|h|d|w|mo|y; use e.g. 1y, 60d, 10d or 6h`,
    );
  }
  const n = Number(match[1]);
  const unit = match[2];
  if (unit === 'y') return { unit: 'months', months: 12 * n };
  if (unit === 'mo') return { unit: 'months', months: n };
  return { unit: 'fixed', ms: n * MS_PER_UNIT[unit] };
}

/** Parse a signed duration like `200d`, `-60d`, `6h` into milliseconds (fixed units only). */
export function parseDurationMs(text: string): number {
  const match = /^\s*([+-]?)\s*(\d+)\s*(ms|s|m|h|d|w)\s*$/.exec(text);
  if (!match) {
    throw new ConfigError(
      `duration ${JSON.stringify(text)} is not [+-]<integer><unit> with unit ms|s|m|h|d|w; use e.g. 200d or -60d`,
    );
  }
  return (match[1] === '-' ? -1 : 1) * Number(match[2]) * MS_PER_UNIT[match[3]];
}

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;
/** Epoch milliseconds accepted as event times: years 1000..9999 would be [-3e13, 2.5e14]; keep a safe range. */
const MAX_ABS_EPOCH_MS = 8.64e15; // the ECMAScript Date range

/**
 * Event time in epoch milliseconds from an ISO-8601 string (date, or date-time; no zone = UTC)
 * or epoch milliseconds (a finite number, or a string of digits). Throws InvalidInputError
 * (reason `invalid_timestamp`) naming the value and the accepted forms.
 */
export function parseEventTime(value: unknown, field = 'timestamp'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || Math.abs(value) > MAX_ABS_EPOCH_MS) {
      throw new InvalidInputError(
        field,
        `epoch milliseconds ${String(value)} is not a finite number within ±8.64e15; send epoch ms or an ISO-8601 string`,
        'invalid_timestamp',
      );
    }
    return Math.floor(value);
  }
  if (typeof value !== 'string') {
    throw new InvalidInputError(
      field,
      `expected an ISO-8601 string or epoch milliseconds, got ${typeof value}`,
      'wrong_type',
    );
  }
  if (/^-?\d{1,16}$/.test(value)) return parseEventTime(Number(value), field);
  const match = ISO_8601.exec(value);
  const shown = JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  if (!match) {
    throw new InvalidInputError(
      field,
      `${shown} is not ISO-8601 (e.g. 2001-11-27T20:39:55Z or 2001-11-27) nor epoch milliseconds`,
      'invalid_timestamp',
    );
  }
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = match;
  let ms = Date.UTC(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    Number(frac.padEnd(3, '0').slice(0, 3)),
  );
  const check = new Date(ms);
  if (
    check.getUTCFullYear() !== Number(y) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  ) {
    throw new InvalidInputError(
      field,
      `${shown} is not a valid calendar date-time`,
      'invalid_timestamp',
    );
  }
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMinutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0');
    ms -= sign * offsetMinutes * 60_000;
  }
  return ms;
}

/** Calendar months from `originMs` to `timeMs` (floor), counted in UTC. */
function wholeMonthsBetween(originMs: number, timeMs: number): number {
  const o = new Date(originMs);
  const t = new Date(timeMs);
  const addMonths = (k: number) =>
    Date.UTC(
      o.getUTCFullYear(),
      o.getUTCMonth() + k,
      o.getUTCDate(),
      o.getUTCHours(),
      o.getUTCMinutes(),
      o.getUTCSeconds(),
      o.getUTCMilliseconds(),
    );
  let k = (t.getUTCFullYear() - o.getUTCFullYear()) * 12 + (t.getUTCMonth() - o.getUTCMonth());
  while (addMonths(k) > timeMs) k -= 1;
  while (addMonths(k + 1) <= timeMs) k += 1;
  return k;
}

/**
 * How timestamps map to steps. Facts that carry an integer `step` use it as is; facts with a
 * `timestamp` need `granularity` and `origin`.
 * - origin: ISO-8601 / epoch ms of the start of step 0, or `first` / `first+200d`: the first
 *   event time seen (by this clock, persisted in the checkpoint) plus an offset.
 * - foldAfter: ISO-8601 / epoch ms; events after it go into the step that contains it (the last step),
 *   as in DySAT's Enron/UCI slicing (`last - 200d`).
 * - beforeOrigin: events before the origin are rejected (`before_origin`, to the dead-letter topic)
 *   or skipped (null step: the fact is deliberately outside the sliced range, like DySAT's first days).
 */
export interface StepClockSpec {
  granularity?: string;
  origin?: string;
  foldAfter?: string;
  beforeOrigin?: 'reject' | 'skip';
}

/** The clock's state that must survive a restart (only a relative origin resolves at run time). */
export interface StepClockState {
  originMs: number | null;
}

export class StepClock {
  readonly spec: StepClockSpec;
  private readonly granularity: Granularity | null;
  private readonly relativeOriginOffsetMs: number | null;
  private originMs: number | null;
  private readonly foldAfterMs: number | null;

  constructor(spec: StepClockSpec = {}, state?: StepClockState) {
    this.spec = { ...spec };
    this.granularity = spec.granularity ? parseGranularity(spec.granularity) : null;
    this.relativeOriginOffsetMs = null;
    this.originMs = null;
    if (spec.origin !== undefined && spec.origin !== '') {
      const relative = /^\s*first\s*(?:([+-])\s*(.+))?$/.exec(spec.origin);
      if (relative) {
        this.relativeOriginOffsetMs = relative[1] ? parseDurationMs(relative[1] + relative[2]) : 0;
      } else {
        this.originMs = parseConfigTime(spec.origin, 'origin');
      }
    }
    if (this.granularity && this.originMs === null && this.relativeOriginOffsetMs === null) {
      throw new ConfigError(
        `granularity ${spec.granularity} needs an origin: set --origin to an ISO-8601 time (start of step 0) or first[+offset], e.g. first+200d`,
      );
    }
    this.foldAfterMs = spec.foldAfter ? parseConfigTime(spec.foldAfter, 'foldAfter') : null;
    if (state && state.originMs !== null) this.originMs = state.originMs;
  }

  /** State to checkpoint (the resolved origin). */
  state(): StepClockState {
    return { originMs: this.originMs };
  }

  /** Origin in epoch ms, or null while a relative origin waits for its first event. */
  origin(): number | null {
    return this.originMs;
  }

  /**
   * Step of an event: `step` if given (a non-negative safe integer), else from `timestampMs`.
   * Returns null when the event is deliberately skipped (before the origin with beforeOrigin 'skip').
   * Throws InvalidInputError for events that cannot be mapped.
   */
  stepOf(event: { step?: number; timestampMs?: number }): number | null {
    if (event.step !== undefined) {
      if (!Number.isSafeInteger(event.step) || event.step < 0) {
        throw new InvalidInputError(
          'step',
          `${String(event.step)} is not a non-negative safe integer`,
          'invalid_step',
        );
      }
      return event.step;
    }
    if (event.timestampMs === undefined) {
      throw new InvalidInputError(
        'step',
        'the fact has neither step nor timestamp; send one of them',
        'missing_field',
      );
    }
    if (!this.granularity) {
      throw new InvalidInputError(
        'timestamp',
        'a timestamped fact arrived but no granularity is configured; send integer steps or start ingest with --granularity and --origin',
        'unmapped_timestamp',
      );
    }
    if (this.originMs === null)
      this.originMs = event.timestampMs + (this.relativeOriginOffsetMs ?? 0);
    return this.stepOfTime(event.timestampMs);
  }

  /** Step of an epoch-ms time under this clock (origin must be resolved). */
  stepOfTime(timeMs: number): number | null {
    const granularity = this.granularity;
    const originMs = this.originMs;
    if (!granularity || originMs === null) {
      throw new ConfigError('stepOfTime needs a granularity and a resolved origin');
    }
    if (timeMs < originMs) {
      if (this.spec.beforeOrigin === 'skip') return null;
      throw new InvalidInputError(
        'timestamp',
        `${new Date(timeMs).toISOString()} is before the origin ${new Date(originMs).toISOString()}; fix the timestamp or start ingest with an earlier --origin`,
        'before_origin',
      );
    }
    const effective =
      this.foldAfterMs !== null && timeMs > this.foldAfterMs ? this.foldAfterMs : timeMs;
    if (granularity.unit === 'fixed') return Math.floor((effective - originMs) / granularity.ms);
    return Math.floor(wholeMonthsBetween(originMs, effective) / granularity.months);
  }
}

function parseConfigTime(text: string, key: string): number {
  try {
    return parseEventTime(/^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text.trim(), key);
  } catch (error) {
    throw new ConfigError(`${key} ${JSON.stringify(text)}: ${(error as Error).message}`);
  }
}

/**
 * DySAT-style slicing (Enron: 60d steps from first + 200d, after last - 200d into the final step;
 * UCI: 10d from first + 5d, after last - 60d). Needs the data's first and last event times.
 */
export function dysatClockSpec(options: {
  firstMs: number;
  lastMs: number;
  stepDays: number;
  startOffsetDays: number;
  foldBeforeEndDays: number;
}): StepClockSpec {
  const day = 86_400_000;
  return {
    granularity: `${options.stepDays}d`,
    origin: new Date(options.firstMs + options.startOffsetDays * day).toISOString(),
    foldAfter: new Date(options.lastMs - options.foldBeforeEndDays * day).toISOString(),
    beforeOrigin: 'skip',
  };
}
