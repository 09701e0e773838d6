// TKG evaluation protocols of SPEC section 2 over any TkgForecaster. Owns: turning target snapshots
// into object and subject queries, batched scoring, ranking under the three filters, and the
// multi-step / single-step orderings of observe and score. Must not import kafkajs, src/kafka or
// src/train (forecasters are passed in).
import type { Direction, Snapshot, TkgForecaster } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import {
  RankCollector,
  buildAnswerFilter,
  filteredRanks,
  sparseFilteredRanks,
  summarizeRanks,
  trueAnswers,
  type AnswerFilter,
  type RankingSummary,
} from './rank.ts';

export type TkgProtocol = 'multi-step' | 'single-step';

/**
 * A forecaster whose scores are sparse: explicit scores for a few entities per query, `defaultScore` for every other
 * one (the rule model without a base). The protocol then ranks in O(nnz) per query instead of O(N).
 */
export interface SparseTkgForecaster extends TkgForecaster {
  scoreSparse(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
  ): Promise<Array<{ entities: Int32Array; values: Float32Array; defaultScore: number }>>;
}

function isSparse(forecaster: TkgForecaster): forecaster is SparseTkgForecaster {
  return typeof (forecaster as Partial<SparseTkgForecaster>).scoreSparse === 'function';
}
export const tkgProtocols: readonly TkgProtocol[] = ['multi-step', 'single-step'];

/** Progress of a protocol run: observing history, or scoring targets. */
export interface ProtocolProgress {
  phase: 'observe' | 'score';
  step: number;
  /** Units done / total in this phase (snapshots when observing, queries when scoring). */
  done: number;
  total: number;
  elapsedSeconds: number;
  /** Estimated seconds left in this phase (NaN before the first unit completes). */
  etaSeconds: number;
}

export interface StepRanking {
  step: number;
  queries: number; // object + subject queries
  /** Direction-averaged MRR (%) of this step per filter. */
  mrr: { raw: number; static: number; timeAware: number };
}

export interface TkgEvaluation extends RankingSummary {
  protocol: TkgProtocol;
  queries: number;
  steps: StepRanking[];
  /** Seconds spent observing history and scoring targets. */
  observeSeconds: number;
  scoreSeconds: number;
}

export interface TkgProtocolInput {
  forecaster: TkgForecaster;
  /** Snapshots observed before the first target (ascending steps). */
  history: readonly Snapshot[];
  /** Snapshots to forecast (ascending steps, after the history). */
  targets: readonly Snapshot[];
  protocol: TkgProtocol;
  /** Static filter: every fact of train/valid/test (buildAnswerFilter over all splits). */
  staticFilter: AnswerFilter;
  numEntities: number;
  numRelations: number;
  /** Queries per score() call (default 512). */
  batchSize?: number;
  onProgress?: (progress: ProtocolProgress) => void;
}

/** Seconds left: remaining units at the average rate so far. */
function eta(done: number, total: number, elapsed: number): number {
  return done === 0 ? NaN : ((total - done) * elapsed) / done;
}

/**
 * Ranks every fact of one target snapshot in both directions (the forecaster is NOT updated).
 * Adds the ranks to `collector` and returns this step's summary. Used by the protocols and by
 * the live pipeline's per-step evaluation.
 */
export async function rankSnapshot(
  forecaster: TkgForecaster,
  target: Snapshot,
  staticFilter: AnswerFilter,
  numEntities: number,
  collector: RankCollector,
  options: { batchSize?: number; onBatch?: (queriesDone: number) => void } = {},
): Promise<StepRanking> {
  const batchSize = options.batchSize ?? 512;
  const timeAwareFilter = buildAnswerFilter([target.triples], staticFilter.numRelations);
  const stepCollector = new RankCollector();
  const F = target.triples.length / 3;
  const lookup = new Map<number, number>();
  let done = 0;
  for (const direction of ['object', 'subject'] as Direction[]) {
    for (let start = 0; start < F; start += batchSize) {
      const B = Math.min(batchSize, F - start);
      const anchors = new Int32Array(B);
      const relations = new Int32Array(B);
      const answers = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        const i = 3 * (start + b);
        const s = target.triples[i];
        const r = target.triples[i + 1];
        const o = target.triples[i + 2];
        anchors[b] = direction === 'object' ? s : o;
        relations[b] = r;
        answers[b] = direction === 'object' ? o : s;
      }
      if (isSparse(forecaster)) {
        const rows = await forecaster.scoreSparse(target.step, direction, anchors, relations);
        for (let b = 0; b < B; b++) {
          const row = rows[b];
          const ranks = sparseFilteredRanks(
            row.entities,
            row.values,
            row.entities.length,
            numEntities,
            answers[b],
            row.defaultScore,
            trueAnswers(staticFilter, direction, anchors[b], relations[b]),
            trueAnswers(timeAwareFilter, direction, anchors[b], relations[b]),
            lookup,
          );
          collector.add(direction, ranks);
          stepCollector.add(direction, ranks);
        }
        done += B;
        options.onBatch?.(done);
        continue;
      }
      const scores = await forecaster.score(
        target.step,
        direction,
        anchors,
        relations,
        numEntities,
      ); // [B * N]
      if (scores.length !== B * numEntities) {
        throw new InvalidInputError(
          'scores',
          `${forecaster.name}.score returned ${scores.length} values for ${B} queries x ${numEntities} entities; expected ${B * numEntities}`,
          'forecaster_contract',
        );
      }
      for (let b = 0; b < B; b++) {
        const ranks = filteredRanks(
          scores,
          b * numEntities,
          numEntities,
          answers[b],
          trueAnswers(staticFilter, direction, anchors[b], relations[b]),
          trueAnswers(timeAwareFilter, direction, anchors[b], relations[b]),
        );
        collector.add(direction, ranks);
        stepCollector.add(direction, ranks);
      }
      done += B;
      options.onBatch?.(done);
    }
  }
  const mrrOf = (mode: 'raw' | 'static' | 'timeAware'): number =>
    (summarizeRanks(stepCollector.ranksOf('object', mode)).mrr +
      summarizeRanks(stepCollector.ranksOf('subject', mode)).mrr) /
    2;
  return {
    step: target.step,
    queries: 2 * F,
    mrr: { raw: mrrOf('raw'), static: mrrOf('static'), timeAware: mrrOf('timeAware') },
  };
}

/**
 * Runs a TKG protocol.
 * - multi-step (the paper): observe every history snapshot, then score each target step in turn
 *   WITHOUT observing targets (the forecaster rolls forward from the last history step);
 * - single-step (streaming): observe the history, then for each target: score it, then observe it.
 */
export async function runTkgProtocol(input: TkgProtocolInput): Promise<TkgEvaluation> {
  const { forecaster, history, targets, protocol, staticFilter, numEntities } = input;
  if (!['multi-step', 'single-step'].includes(protocol)) {
    throw new InvalidInputError(
      'protocol',
      `${protocol} is not one of multi-step, single-step`,
      'invalid_argument',
    );
  }
  const lastHistory = history.length > 0 ? history[history.length - 1].step : -Infinity;
  for (let i = 0; i < targets.length; i++) {
    if (targets[i].step <= (i === 0 ? lastHistory : targets[i - 1].step)) {
      throw new InvalidInputError(
        'targets',
        `target step ${targets[i].step} is not after the previous step; targets must follow the history in ascending order`,
        'invalid_argument',
      );
    }
  }
  const t0 = performance.now();
  const seconds = (since: number): number => (performance.now() - since) / 1000;
  for (let i = 0; i < history.length; i++) {
    await forecaster.observe(history[i]);
    const elapsed = seconds(t0);
    input.onProgress?.({
      phase: 'observe',
      step: history[i].step,
      done: i + 1,
      total: history.length,
      elapsedSeconds: elapsed,
      etaSeconds: eta(i + 1, history.length, elapsed),
    });
  }
  const observeEnd = performance.now();
  let observeSeconds = seconds(t0);
  const collector = new RankCollector();
  const totalQueries = targets.reduce((n, s) => n + (2 * s.triples.length) / 3, 0);
  let queriesBefore = 0;
  let observedDuringScoring = 0;
  const steps: StepRanking[] = [];
  for (const target of targets) {
    const stepRanking = await rankSnapshot(
      forecaster,
      target,
      staticFilter,
      numEntities,
      collector,
      {
        batchSize: input.batchSize,
        onBatch: (done) => {
          const elapsed = seconds(observeEnd) - observedDuringScoring;
          const queriesDone = queriesBefore + done;
          input.onProgress?.({
            phase: 'score',
            step: target.step,
            done: queriesDone,
            total: totalQueries,
            elapsedSeconds: elapsed,
            etaSeconds: eta(queriesDone, totalQueries, elapsed),
          });
        },
      },
    );
    steps.push(stepRanking);
    queriesBefore += stepRanking.queries;
    if (protocol === 'single-step') {
      const before = performance.now();
      await forecaster.observe(target);
      const spent = seconds(before);
      observedDuringScoring += spent;
      observeSeconds += spent;
    }
  }
  const scoreSeconds = seconds(observeEnd) - observedDuringScoring;
  return {
    ...collector.summary(),
    protocol,
    queries: totalQueries,
    steps,
    observeSeconds,
    scoreSeconds,
  };
}
