// Event time -> step, as data. Owns: the slicing rule (origin, granularity, fold-after) that maps
// timestamps to integer steps, shared by the offline loaders and the streaming window (src/window
// applies the same rule to live events). Pure; no I/O.
import { ConfigError } from '../core/errors.ts';

/**
 * How timestamps become steps: step = floor((time - origin) / granularity); events before
 * `origin` have no step (outside the series); events after `foldAfter` are folded into the step
 * that `foldAfter` itself falls in (the DySAT preparation of Enron and UCI).
 */
export interface SlicingRule {
  /** ISO-8601 UTC instant where step 0 starts. */
  origin: string;
  /** Step length: `<n><unit>` with unit ms, s, m, h, d, w (e.g. 60d, 10d, 1h) or y (calendar years). */
  granularity: string;
  /** ISO-8601 UTC instant; later events go into the step of this instant. Absent: no folding. */
  foldAfter?: string;
}

const unitMs: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** A parsed granularity: fixed milliseconds, or calendar years. */
export type Granularity = { kind: 'fixed'; ms: number } | { kind: 'years'; years: number };

export function parseGranularity(text: string): Granularity {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$/.exec(text);
  if (!match || Number(match[1]) <= 0) {
    throw new ConfigError(
      `granularity ${JSON.stringify(text)}: expected <number><unit> with unit ms|s|m|h|d|w|y, e.g. 60d`,
    );
  }
  const amount = Number(match[1]);
  if (match[2] === 'y') {
    if (!Number.isInteger(amount))
      throw new ConfigError(`granularity ${text}: years must be a whole number`);
    return { kind: 'years', years: amount };
  }
  return { kind: 'fixed', ms: amount * unitMs[match[2]] };
}

/** Milliseconds since the epoch of an ISO-8601 string or epoch-milliseconds number. */
export function parseInstant(value: string | number, what = 'timestamp'): number {
  const ms =
    typeof value === 'number' ? value : /^-?\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new ConfigError(
      `${what} ${JSON.stringify(value)}: not an ISO-8601 time or epoch milliseconds`,
    );
  }
  return ms;
}

/** A slicing rule with parsed fields (parse once, apply to many events). */
export interface CompiledSlicing {
  originMs: number;
  granularity: Granularity;
  foldAfterMs: number | undefined;
}

export function compileSlicing(rule: SlicingRule): CompiledSlicing {
  return {
    originMs: parseInstant(rule.origin, 'origin'),
    granularity: parseGranularity(rule.granularity),
    foldAfterMs:
      rule.foldAfter === undefined ? undefined : parseInstant(rule.foldAfter, 'foldAfter'),
  };
}

function rawStep(timeMs: number, c: CompiledSlicing): number {
  if (c.granularity.kind === 'fixed') return Math.floor((timeMs - c.originMs) / c.granularity.ms);
  const origin = new Date(c.originMs);
  const time = new Date(timeMs);
  let years = time.getUTCFullYear() - origin.getUTCFullYear();
  const anniversary = new Date(c.originMs);
  anniversary.setUTCFullYear(origin.getUTCFullYear() + years);
  if (anniversary.getTime() > timeMs) years--;
  return Math.floor(years / c.granularity.years);
}

/** Step of an event time, or undefined when it is before the origin. */
export function stepOfTime(timeMs: number, slicing: CompiledSlicing): number | undefined {
  if (timeMs < slicing.originMs) return undefined;
  const t =
    slicing.foldAfterMs !== undefined && timeMs > slicing.foldAfterMs
      ? slicing.foldAfterMs
      : timeMs;
  return rawStep(t, slicing);
}

/** The last step the rule can produce (the fold step), if it folds. */
export function finalStep(slicing: CompiledSlicing): number | undefined {
  return slicing.foldAfterMs === undefined ? undefined : rawStep(slicing.foldAfterMs, slicing);
}

/**
 * The DySAT preparation as a rule computed from the data's first and last event:
 * origin = first + startAfterDays, steps of stepDays, fold events after (last - foldBeforeEndDays).
 */
export function dysatSlicing(
  firstMs: number,
  lastMs: number,
  params: { startAfterDays: number; stepDays: number; foldBeforeEndDays: number },
): SlicingRule {
  const day = 86_400_000;
  return {
    origin: new Date(firstMs + params.startAfterDays * day).toISOString(),
    granularity: `${params.stepDays}d`,
    foldAfter: new Date(lastMs - params.foldBeforeEndDays * day).toISOString(),
  };
}

/** Enron (DySAT / the paper): 60-day steps from first + 200 days, tail after last - 200 days folded. */
export const enronSlicingParams = {
  startAfterDays: 200,
  stepDays: 60,
  foldBeforeEndDays: 200,
} as const;
/** UCI (DySAT / the paper): 10-day steps from first + 5 days, tail after last - 60 days folded. */
export const uciSlicingParams = { startAfterDays: 5, stepDays: 10, foldBeforeEndDays: 60 } as const;
