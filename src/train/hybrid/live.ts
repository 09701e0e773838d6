// nlsm-h in a live stream (tkg run): what the pipeline's HybridLiveModel needs from src/hybrid, as pure functions
// over the same query sets the offline fit uses: collecting one closed step's fitting queries (scored by the base
// model that forecast the step, before it trains on it), re-slotting query sets when the relation count grew,
// binary (de)serialisation of query sets for the checkpoint, and the recurrency-form weights used before the first
// fit and for relations the fit has not seen. Must not import tfjs, src/train, kafkajs or src/kafka.
import type { Direction, Snapshot, TkgForecaster } from '../../core/types.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { mulberry32 } from '../../core/random.ts';
import { buildAnswerFilter, trueAnswers } from '../../eval/rank.ts';
import { F, FS, slotOf, type HybridWeights } from '../../model/hybrid-features.ts';
import type { QuerySet, QuerySetBuilder } from './query-set.ts';
import type { HybridHistory } from '../../model/hybrid-history.ts';

/** The part of a TkgForecaster the collection needs (logits of all numEntities entities per query). */
export type BaseScorer = Pick<TkgForecaster, 'score'>;

/**
 * Adds up to `maxFacts` facts of `target` (both directions: 2 queries per fact), sampled with `seed`, to `builder`:
 * base logits from `base` (which must not have seen `target` yet), history features from `history` (ditto), the
 * step's other true answers as the time-aware filter. Facts with an id the base model has no row for (entities
 * >= baseEntities, relations >= the history's) are skipped. Returns the number of queries added.
 */
export async function collectStepQueries(input: {
  target: Snapshot;
  base: BaseScorer;
  baseEntities: number;
  history: HybridHistory;
  builder: QuerySetBuilder;
  maxFacts: number;
  seed: number;
  batchSize?: number;
}): Promise<number> {
  const { target, base, history, builder } = input;
  const R = history.numRelations;
  const N = input.baseEntities;
  const triples = target.triples;
  const eligible: number[] = [];
  for (let i = 0; i < triples.length; i += 3)
    if (triples[i] < N && triples[i + 2] < N && triples[i + 1] < R) eligible.push(i);
  // a seeded partial Fisher-Yates: the first maxFacts of a random permutation, in fact order
  const random = mulberry32(input.seed);
  const take = Math.min(input.maxFacts, eligible.length);
  for (let k = 0; k < take; k++) {
    const j = k + Math.floor(random() * (eligible.length - k));
    const t = eligible[k];
    eligible[k] = eligible[j];
    eligible[j] = t;
  }
  const chosen = eligible.slice(0, take).sort((a, b) => a - b);
  // the target may name relations the history has not met yet (a live vocabulary grows): its filter covers them
  const timeAware = buildAnswerFilter([triples], Math.max(R, target.numRelations));
  const batchSize = input.batchSize ?? 256;
  let added = 0;
  for (const direction of ['object', 'subject'] as Direction[]) {
    for (let start = 0; start < chosen.length; start += batchSize) {
      const part = chosen.slice(start, start + batchSize);
      const anchors = Int32Array.from(part, (i) =>
        direction === 'object' ? triples[i] : triples[i + 2],
      );
      const relations = Int32Array.from(part, (i) => triples[i + 1]);
      const rows = await base.score(target.step, direction, anchors, relations, N); // [B, N]
      for (let b = 0; b < part.length; b++) {
        const i = part[b];
        builder.add({
          slot: slotOf(direction, relations[b], R),
          row: rows.subarray(b * N, (b + 1) * N),
          answer: direction === 'object' ? triples[i + 2] : triples[i],
          history: history.candidates(target.step, direction, anchors[b], relations[b]),
          excluded: trueAnswers(timeAware, direction, anchors[b], relations[b]),
        });
        added++;
      }
    }
  }
  return added;
}

/** Pure: the same queries with slots for `numRelations` relations (slot = direction * R + relation). */
export function withNumRelations(set: QuerySet, numRelations: number): QuerySet {
  const R = set.numRelations;
  if (R === numRelations) return set;
  if (numRelations < R)
    throw new InvalidInputError(
      'numRelations',
      `${numRelations} is below the query set's ${R}; relation counts only grow`,
      'invalid_argument',
    );
  const slot = Int32Array.from(set.slot, (s) => (s >= R ? numRelations : 0) + (s % R));
  return { ...set, numRelations, slot };
}

const QUERY_SET_FIELDS = [
  ['slot', Int32Array],
  ['offsets', Int32Array],
  ['base', Float32Array],
  ['features', Float32Array],
  ['answer', Int32Array],
  ['baseFloor', Float32Array],
  ['baseCandidates', Int32Array],
  ['baseRank', Float32Array],
  ['exactCount', Int32Array],
  ['sampleWeight', Float32Array],
  ['excludeMask', Uint8Array],
] as const;

/** Pure: a query set as bytes (a JSON header with the array lengths, then the arrays, 4-byte aligned). */
export function encodeQuerySet(set: QuerySet): Uint8Array {
  const lengths = QUERY_SET_FIELDS.map(([name]) => set[name].length);
  const header = new TextEncoder().encode(
    JSON.stringify({ format: 'tkg-query-set', F, numRelations: set.numRelations, lengths }),
  );
  const headerPadded = 4 + Math.ceil(header.length / 4) * 4;
  const sizes = QUERY_SET_FIELDS.map(([name]) => Math.ceil(set[name].byteLength / 4) * 4);
  const out = new Uint8Array(headerPadded + sizes.reduce((a, b) => a + b, 0));
  new DataView(out.buffer).setUint32(0, header.length, true);
  out.set(header, 4);
  let at = headerPadded;
  QUERY_SET_FIELDS.forEach(([name], i) => {
    const array = set[name];
    out.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), at);
    at += sizes[i];
  });
  return out;
}

/** Pure: the inverse of encodeQuerySet. Throws InvalidInputError on a malformed or foreign buffer. */
export function decodeQuerySet(bytes: Uint8Array): QuerySet {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = bytes.byteLength >= 4 ? view.getUint32(0, true) : -1;
  let header: { format?: string; F?: number; numRelations: number; lengths: number[] };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerLength)));
  } catch {
    throw new InvalidInputError('querySet', 'is not an encoded query set', 'corrupt_checkpoint');
  }
  if (header.format !== 'tkg-query-set' || header.F !== F)
    throw new InvalidInputError(
      'querySet',
      `has format ${header.format} with F = ${header.F}, expected tkg-query-set with F = ${F}; delete the checkpoint`,
      'corrupt_checkpoint',
    );
  let at = 4 + Math.ceil(headerLength / 4) * 4;
  const out: Record<string, unknown> = { numRelations: header.numRelations };
  QUERY_SET_FIELDS.forEach(([name, Type], i) => {
    const length = header.lengths[i];
    const byteLength = length * Type.BYTES_PER_ELEMENT;
    if (at + byteLength > bytes.byteLength)
      throw new InvalidInputError('querySet', 'is truncated', 'corrupt_checkpoint');
    // copy: the source buffer's offset may not be aligned for the element type
    out[name] = new Type(bytes.slice(at, at + byteLength).buffer);
    at += Math.ceil(byteLength / 4) * 4;
  });
  return out as unknown as QuerySet;
}

/**
 * Pure: the recurrency form as HybridWeights: score = beta * base logit + strict + alpha * relaxed for every
 * relation (the reference model, its ties broken by the base logit).
 */
export function recurrencyFormWeights(options: {
  numRelations: number;
  decay: number;
  alpha: number;
  beta: number;
  relaxedTopK: number;
}): HybridWeights {
  const R = options.numRelations;
  const history = new Array<number>(2 * R * F).fill(0);
  for (let slot = 0; slot < 2 * R; slot++) {
    history[slot * F] = 1; // strict
    history[slot * F + FS] = options.alpha; // relaxed
  }
  return {
    numRelations: R,
    decay: options.decay,
    relaxedTopK: options.relaxedTopK,
    baseScale: new Array<number>(R).fill(options.beta),
    history,
  };
}
