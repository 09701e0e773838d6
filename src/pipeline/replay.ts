// Replaying a dataset into `<prefix>.facts` for `tkg run`, resumable after a crash without duplicates:
// facts are published in a fixed order with one in-order producer, so partition p holds the first
// (end offset - start offset) facts of p's sequence; a restart skips exactly those. Owns: choosing the
// replayed steps, the per-partition resume arithmetic and the stoppable, rate-limited send loop.
// Must not touch: the dataset parsers (src/datasets), the publisher's encoding (src/kafka/publisher.ts).
import type { Producer } from '../kafka/client.ts';
import type { FactEvent } from '../core/types.ts';
import { ConfigError } from '../core/errors.ts';
import { keyPartitioner, publishFacts, type FactFormat } from '../kafka/publisher.ts';
import type { SchemaCodec } from '../schemas/codec.ts';

/**
 * Pure: the facts of `replaySteps` consecutive steps starting `fromStep` steps after the dataset's first step
 * (undefined = to the end), in publishing order (by step; the dataset's order within a step).
 */
export function selectReplay(
  facts: readonly FactEvent[],
  options: { fromStep?: number; replaySteps?: number },
): FactEvent[] {
  if (options.fromStep === undefined && options.replaySteps === undefined) return [...facts];
  if (facts.some((f) => f.step === undefined)) {
    throw new ConfigError(
      '--from-step / --replay-steps need facts with integer steps (a TKG dataset); for timestamped events use --limit',
    );
  }
  const steps = [...new Set(facts.map((f) => f.step as number))].sort((a, b) => a - b);
  const from = options.fromStep ?? 0;
  const chosen = new Set(
    steps.slice(from, options.replaySteps === undefined ? undefined : from + options.replaySteps),
  );
  if (chosen.size === 0)
    throw new ConfigError(
      `--from-step ${from} / --replay-steps ${options.replaySteps}: the dataset has only ${steps.length} steps`,
    );
  return facts
    .filter((f) => chosen.has(f.step as number))
    .sort((a, b) => (a.step as number) - (b.step as number));
}

/**
 * Pure: which facts still need publishing, given how many records each partition gained since the run began
 * (`published[p]`). Keeps the order; facts of partition p beyond its first published[p] are kept.
 */
export function remainingFacts(
  facts: readonly FactEvent[],
  partitions: number,
  published: ReadonlyMap<number, number>,
): FactEvent[] {
  const partitionOf = keyPartitioner(partitions);
  const seen = new Map<number, number>();
  const out: FactEvent[] = [];
  for (const fact of facts) {
    const p = partitionOf(fact.subject);
    const index = seen.get(p) ?? 0;
    seen.set(p, index + 1);
    if (index >= (published.get(p) ?? 0)) out.push(fact);
  }
  return out;
}

export interface ReplayOptions {
  producer: Producer;
  codec: SchemaCodec;
  topic: string;
  /** Facts per second (0 = as fast as possible). */
  rate: number;
  format?: FactFormat;
  /** Facts per publishFacts call (the stop flag is checked between chunks). */
  chunk?: number;
  isStopped: () => boolean;
  onProgress?: (sent: number) => void;
}

/** Publish `facts` in order on one producer (order within each partition is kept), stoppable between chunks. */
export async function replayFacts(
  facts: readonly FactEvent[],
  options: ReplayOptions,
): Promise<number> {
  const chunk =
    options.chunk ??
    (options.rate > 0 ? Math.max(50, Math.min(2000, Math.round(options.rate / 2))) : 5000);
  let sent = 0;
  const started = performance.now();
  for (let start = 0; start < facts.length && !options.isStopped(); start += chunk) {
    // Pace across chunks: chunk i may start no earlier than i * chunk / rate seconds after the first.
    if (options.rate > 0) {
      const wait = started + (start / options.rate) * 1000 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (options.isStopped()) break;
    }
    const part = facts.slice(start, start + chunk);
    const result = await publishFacts(options.producer, options.codec, part, {
      topic: options.topic,
      format: options.format ?? 'avro',
      rate: options.rate,
    });
    sent += result.sent;
    options.onProgress?.(sent);
  }
  return sent;
}
