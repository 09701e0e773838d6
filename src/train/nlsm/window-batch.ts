// What one window update trains on, shared by both training engines (window-fit.ts on tfjs, fused-fit.ts on the
// onnxruntime kernels): the sub-graph of the window (the nodes and relations its facts touch, local ids), the
// negative proposals per slot, the first window's density offset, each epoch's draws from the trainer's seeded
// generator (noise per slot >= 1, then the importance-weighted negatives) in one fixed order, the update's report
// and epoch bookkeeping (convergence, NaN restore), and Adam's constants. Plain typed arrays, no tensors. Must not
// touch the fit loop, parameters' working copies or Adam's moments; must not import kafkajs, src/kafka, src/window
// or src/serve.
import { buildNegativeProposal, sampleNegatives, type NegativeProposal } from './math.ts';
import type { Xoshiro128 } from '../../core/random.ts';
import type { UpdateReport } from './parameters.ts';
import type { WindowTrainer } from './trainer.ts';

export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
export const ADAM_EPSILON = 1e-8;

/** The report of an update before its fit. */
export function emptyReport(trainer: WindowTrainer, U: number, Rw: number): UpdateReport {
  return {
    step: trainer.lastObserved,
    epochs: 0,
    loss: NaN,
    elbo: NaN,
    seconds: 0,
    nanRestored: false,
    universe: U,
    relations: Rw,
  };
}

/**
 * After an epoch's Adam step: records the epoch in the report and says whether the fit has converged (the ELBO per
 * fact rose by less than the tolerance's share of the loss, after the minimum number of epochs).
 */
export function recordEpoch(
  trainer: WindowTrainer,
  report: UpdateReport,
  epoch: number,
  loss: number,
  previousElbo: number,
): boolean {
  const s = trainer.settings;
  report.epochs = epoch;
  report.loss = loss;
  report.elbo = -loss;
  return (
    epoch >= s.minEpochsPerWindow &&
    s.convergenceTolerance > 0 &&
    Number.isFinite(previousElbo) &&
    -loss - previousElbo < s.convergenceTolerance * Math.abs(loss)
  );
}

/** A NaN loss: the last good state is still in the parameters (working copies are never written back). */
export function recordNanRestore(trainer: WindowTrainer, report: UpdateReport): void {
  trainer.nanRestores++;
  report.nanRestored = true;
  trainer.adamStep -= report.epochs;
  trainer.onNanRestore?.(trainer.nanRestores, trainer.lastObserved);
}

/** The parameters an update trains: all of NLSM's; BAS's slots the window fills. */
export function trainedParameters(trainer: WindowTrainer): string[] {
  const L = trainer.slots.length;
  return [...trainer.params.keys()].filter(
    (name) => trainer.settings.model === 'nlsm' || Number(name.split('@')[1]) < L,
  );
}

/** The window's sub-graph: global ids of its nodes and relations (local id = index), and its positive count. */
export interface WindowUniverse {
  universe: number[];
  relations: number[];
  positives: number;
  proposals: NegativeProposal[];
}

/**
 * The nodes touched by the window (in order of first appearance) and the relations of its facts (ascending), the
 * per-slot negative proposals over them; on the trainer's first update, the logit offset starts at the observed
 * density log(F / (U^2 R)) of the sub-graph.
 */
export function windowUniverse(trainer: WindowTrainer): WindowUniverse {
  const local = new Int32Array(trainer.N).fill(-1);
  const universe: number[] = [];
  const relationLocal = new Int32Array(trainer.R).fill(-1);
  let positives = 0;
  for (const slot of trainer.slots) {
    for (let i = 0; i < slot.triples.length; i += 3) {
      for (const node of [slot.triples[i], slot.triples[i + 2]]) {
        if (local[node] < 0) {
          local[node] = universe.length;
          universe.push(node);
        }
      }
      relationLocal[slot.triples[i + 1]] = 0;
    }
    positives += slot.triples.length / 3;
  }
  const relations: number[] = [];
  for (let r = 0; r < trainer.R; r++)
    if (relationLocal[r] === 0) relationLocal[r] = relations.push(r) - 1;
  const U = universe.length;
  const Rw = relations.length;
  const proposals =
    positives === 0
      ? []
      : trainer.slots.map((slot) => {
          const localTriples = new Int32Array(slot.triples.length);
          for (let i = 0; i < slot.triples.length; i += 3) {
            localTriples[i] = local[slot.triples[i]];
            localTriples[i + 1] = relationLocal[slot.triples[i + 1]];
            localTriples[i + 2] = local[slot.triples[i + 2]];
          }
          return buildNegativeProposal(
            localTriples,
            U,
            Rw,
            trainer.settings.uniformNegativeFraction,
          );
        });
  if (positives > 0 && trainer.updates === 0)
    initialiseDensityOffset(trainer, positives / trainer.slots.length, U, Rw);
  return { universe, relations, positives, proposals };
}

function initialiseDensityOffset(
  trainer: WindowTrainer,
  factsPerStep: number,
  U: number,
  R: number,
): void {
  // all 4 entries of every theta shifted by offset / K move every logit by offset
  const offset = Math.log(Math.max(factsPerStep, 1) / (U * U * R)) / trainer.settings.K;
  for (const [name, p] of trainer.params) {
    if (name.split('@')[0] === 'thetaMean')
      for (let i = 0; i < p.value.length; i++) p.value[i] += offset;
  }
}

/** One epoch's edges over the stacked slots: subject / object slot * U + local node, relation slot * Rw + r. */
export interface EpochEdges {
  subjects: Int32Array;
  relations: Int32Array;
  objects: Int32Array;
  /** Coefficient of the logit (1 for positives, 0 for sampled pairs). */
  linear: Float32Array;
  /** Coefficient of softplus(logit) (importance weight for sampled pairs, 0 for positives). */
  soft: Float32Array;
}

/**
 * One epoch's draws, in this order: for slot 1..L-1 the standard-normal noise of psi [U, K] (into
 * psiNoise(slot)) then of theta [Rw, K P] (into thetaNoise(slot)); then per slot its negatives. Returns the edges.
 */
export function drawEpoch(
  trainer: WindowTrainer,
  proposals: NegativeProposal[],
  U: number,
  Rw: number,
  psiNoise: (slot: number) => Float32Array,
  thetaNoise: (slot: number) => Float32Array,
): EpochEdges {
  return drawEpochWith(
    trainer.rng,
    proposals,
    trainer.settings.negativesPerPositive,
    trainer.slots.length,
    U,
    Rw,
    psiNoise,
    thetaNoise,
  );
}

/** drawEpoch from a given generator (draw-worker.ts runs it on another thread): the same draws in the same order. */
export function drawEpochWith(
  rng: Xoshiro128,
  proposals: NegativeProposal[],
  negativesPerPositive: number,
  L: number,
  U: number,
  Rw: number,
  psiNoise: (slot: number) => Float32Array,
  thetaNoise: (slot: number) => Float32Array,
): EpochEdges {
  for (let slot = 1; slot < L; slot++) {
    rng.fillNormal(psiNoise(slot));
    rng.fillNormal(thetaNoise(slot));
  }
  const parts: { triples: Int32Array; weights: Float32Array | null; slot: number }[] = [];
  let total = 0;
  proposals.forEach((proposal, slot) => {
    const facts = proposal.positives.length / 3;
    const M = Math.max(Math.ceil(negativesPerPositive * facts), facts === 0 ? 0 : 1);
    if (facts > 0) {
      parts.push({ triples: proposal.positives, weights: null, slot });
      total += facts;
    }
    if (M > 0) {
      const negatives = sampleNegatives(proposal, M, rng);
      parts.push({ triples: negatives.triples, weights: negatives.weights, slot });
      total += M;
    }
  });
  const edges: EpochEdges = {
    subjects: new Int32Array(total),
    relations: new Int32Array(total),
    objects: new Int32Array(total),
    linear: new Float32Array(total),
    soft: new Float32Array(total),
  };
  let e = 0;
  for (const part of parts) {
    const n = part.triples.length / 3;
    if (part.weights) edges.soft.set(part.weights, e);
    else edges.linear.fill(1, e, e + n);
    for (let i = 0; i < n; i++, e++) {
      edges.subjects[e] = part.slot * U + part.triples[3 * i];
      edges.relations[e] = part.slot * Rw + part.triples[3 * i + 1];
      edges.objects[e] = part.slot * U + part.triples[3 * i + 2];
    }
  }
  return edges;
}

/** Rows `rows` of a [*, width] array, in that order: [rows.length * width]. */
export function gatherRows(
  data: Float32Array,
  rows: readonly number[],
  width: number,
  into: Float32Array = new Float32Array(rows.length * width),
): Float32Array {
  for (let i = 0; i < rows.length; i++)
    into.set(data.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return into;
}

/** The inverse of gatherRows: row i of `data` back to row rows[i] of `into`. */
export function scatterRows(
  data: Float32Array,
  rows: readonly number[],
  width: number,
  into: Float32Array,
): void {
  for (let i = 0; i < rows.length; i++)
    into.set(data.subarray(i * width, (i + 1) * width), rows[i] * width);
}
