// Event time -> step, as data. Owns: the slicing rule of a dataset (origin, granularity, fold-after) as a
// plain record, and the DySAT parameters of Enron and UCI. The mapping itself (granularity and time
// parsing, origin, folding) is src/window/step-clock.ts's StepClock: the offline loaders and the
// streaming window apply the same code, so a dataset sliced here equals the same events streamed.
// Pure; no I/O.
import { StepClock, dysatClockSpec, parseEventTime } from '../core/step-clock.ts';

/**
 * How timestamps become steps: step = floor((time - origin) / granularity); events before
 * `origin` have no step (outside the series); events after `foldAfter` are folded into the step
 * that `foldAfter` itself falls in (the DySAT preparation of Enron and UCI).
 */
export interface SlicingRule {
  /** ISO-8601 UTC instant where step 0 starts. */
  origin: string;
  /** Step length: `<n><unit>` with unit ms|s|m|h|d|w|mo|y (e.g. 60d, 10d, 1h; y = calendar years). */
  granularity: string;
  /** ISO-8601 UTC instant; later events go into the step of this instant. Absent: no folding. */
  foldAfter?: string;
}

/** Milliseconds since the epoch of an ISO-8601 string or epoch milliseconds (the window's event-time parser). */
export function parseInstant(value: string | number, what = 'timestamp'): number {
  return parseEventTime(value, what);
}

/** A slicing rule ready to apply to many events: the window's StepClock, events before the origin skipped. */
export type CompiledSlicing = StepClock;

export function compileSlicing(rule: SlicingRule): CompiledSlicing {
  return new StepClock({
    origin: rule.origin,
    granularity: rule.granularity,
    foldAfter: rule.foldAfter,
    beforeOrigin: 'skip',
  });
}

/** Step of an event time, or undefined when it is before the origin. */
export function stepOfTime(timeMs: number, slicing: CompiledSlicing): number | undefined {
  return slicing.stepOfTime(timeMs) ?? undefined;
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
  const spec = dysatClockSpec({
    firstMs,
    lastMs,
    stepDays: params.stepDays,
    startOffsetDays: params.startAfterDays,
    foldBeforeEndDays: params.foldBeforeEndDays,
  });
  return {
    origin: spec.origin as string,
    granularity: spec.granularity as string,
    foldAfter: spec.foldAfter,
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
