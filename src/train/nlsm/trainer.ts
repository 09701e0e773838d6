// Windowed NLSM / BAS trainer (SPEC section 1, "Windowed training"). Owns: the model state (GRU
// weights, the window's initial psi / theta variational parameters, BAS per-slot parameters, Adam
// moments, the seeded random state), the window of the last m snapshots, window shifts, training,
// forecasting by rolling the GRUs forward, NaN recovery and checkpoint / resume.
// Must not import kafkajs, src/kafka, src/window or src/serve: snapshots arrive through observe().
import * as tf from '@tensorflow/tfjs';
import type { Direction, ScoringState, Snapshot } from '../../core/types.ts';
import { ConfigError, InvalidInputError } from '../../core/errors.ts';
import { SeededRandom } from './rng.ts';
import { buildNegativeProposal, expandTheta, sampleNegatives, thetaEntries } from './math.ts';
import {
  GRU_TENSOR_NAMES,
  efficientCoefficients,
  gruStep,
  logVarGruStep,
  windowElbo,
  type LogVarFrame,
  type GruWeights,
  type Trajectory,
  type WindowBatch,
} from './graph.ts';

export interface TrainerSettings {
  model: 'nlsm' | 'bas';
  directed: boolean;
  K: number;
  windowSize: number; // m
  epochsPerWindow: number;
  minEpochsPerWindow: number;
  convergenceTolerance: number;
  learningRate: number;
  sPsi: number;
  sTheta: number;
  sigmaPsi: number;
  sigmaTheta: number;
  negativesPerPositive: number;
  uniformNegativeFraction: number;
  initScale: number;
  /** Log-variance GRUs run in the frame logVar = log(s^2) + logVarScale * h (graph.ts logVarGruStep). */
  logVarScale: number;
  /**
   * Learning-rate multiplier of entity rows (psi means and log-variances): an entity's rows take Adam
   * steps only in the windows that touch it (16 per update), the shared theta and GRU weights in every one.
   */
  entityLrScale: number;
  seed: number;
}

/** Hooks for fault-injection tests only. */
export interface TrainerTestHooks {
  /** Before the given epoch (1-based) of the given window update (1-based), put a NaN into the working copy of psi. */
  corruptWorkingCopy?: { update: number; epoch: number };
}

/** One parameter: values and Adam moments. Row parameters grow with entities (or relations). */
export interface Parameter {
  rows: 'entity' | 'relation' | 'fixed';
  width: number; // columns per row
  value: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export interface WindowSlot {
  step: number;
  triples: Int32Array; // [F * 3] global ids
}

export interface UpdateReport {
  step: number;
  epochs: number;
  loss: number; // -ELBO per positive fact of the last epoch
  elbo: number; // ELBO per positive fact
  seconds: number;
  nanRestored: boolean;
  universe: number; // nodes trained (touched by the window)
}

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;
/** Update-gate bias at initialisation: u = sigmoid(4) = 0.98, so the untrained GRU nearly carries its state. */
const GRU_UPDATE_BIAS = 4;
const GRU_WEIGHT_STD = 0.01;

const GRU_NAMES = ['psiMeanGru', 'psiLogVarGru', 'thetaMeanGru', 'thetaLogVarGru'] as const;
type GruName = (typeof GRU_NAMES)[number];

/** Per-slot name of a BAS parameter. */
const basName = (base: string, slot: number): string => `${base}@${slot}`;

interface CachedStep {
  z: tf.Tensor2D; // [N + 1, K]: row N is z = 0.5 (entities the model has not seen)
  psiMean: tf.Tensor2D | null; // [N, K] (NLSM, for rolling further)
  thetaMean: tf.Tensor2D; // [R, K * P]
  coefficients: { c0: tf.Tensor1D; A: tf.Tensor2D; B: tf.Tensor2D; C: tf.Tensor2D };
}

export class WindowTrainer {
  readonly settings: TrainerSettings;
  readonly P: number;
  N: number;
  R: number;
  readonly params = new Map<string, Parameter>();
  readonly rng: SeededRandom;
  slots: WindowSlot[] = [];
  lastObserved = -Infinity;
  adamStep = 0;
  updates = 0;
  nanRestores = 0;
  skippedReplays = 0;
  onNanRestore?: (count: number, step: number) => void;
  testHooks: TrainerTestHooks = {};
  private cache = new Map<number, CachedStep>();

  constructor(settings: TrainerSettings, numEntities: number, numRelations: number) {
    if (!Number.isInteger(numEntities) || numEntities < 1) {
      throw new ConfigError(`numEntities ${numEntities}: expected a positive integer`);
    }
    if (!Number.isInteger(numRelations) || numRelations < 1) {
      throw new ConfigError(`numRelations ${numRelations}: expected a positive integer`);
    }
    this.settings = settings;
    this.P = thetaEntries(settings.directed);
    this.N = 0;
    this.R = 0;
    this.rng = new SeededRandom(settings.seed);
    const { K } = settings;
    const D = K * this.P;
    if (settings.model === 'nlsm') {
      for (const name of GRU_NAMES) {
        const H = name.startsWith('psi') ? K : D;
        for (const gate of ['Uu', 'Ur', 'Un']) {
          this.addParameter(
            `${name}.${gate}`,
            'fixed',
            H,
            this.rng.fillNormal(new Float32Array(H * H), 0, GRU_WEIGHT_STD),
          );
        }
        this.addParameter(`${name}.bu`, 'fixed', H, new Float32Array(H).fill(GRU_UPDATE_BIAS));
        for (const bias of ['br', 'bn', 'bhn'])
          this.addParameter(`${name}.${bias}`, 'fixed', H, new Float32Array(H));
      }
    }
    for (const slot of this.parameterSlots()) {
      this.addParameter(this.slotName('psiMean', slot), 'entity', K, new Float32Array(0));
      this.addParameter(this.slotName('psiLogVar', slot), 'entity', K, new Float32Array(0));
      this.addParameter(this.slotName('thetaMean', slot), 'relation', D, new Float32Array(0));
      this.addParameter(this.slotName('thetaLogVar', slot), 'relation', D, new Float32Array(0));
    }
    this.grow(numEntities, numRelations);
  }

  /** NLSM learns the window's initial state only (slot 0); BAS learns every slot directly. */
  private parameterSlots(): number[] {
    return this.settings.model === 'nlsm'
      ? [0]
      : Array.from({ length: this.settings.windowSize }, (_, i) => i);
  }

  private slotName(base: string, slot: number): string {
    return this.settings.model === 'nlsm' ? base : basName(base, slot);
  }

  private addParameter(
    name: string,
    rows: Parameter['rows'],
    width: number,
    value: Float32Array,
  ): void {
    this.params.set(name, {
      rows,
      width,
      value,
      m: new Float32Array(value.length),
      v: new Float32Array(value.length),
    });
  }

  /** New entities / relations: rows initialised from the (narrowed) prior, without restart. */
  grow(numEntities: number, numRelations: number): void {
    if (numEntities <= this.N && numRelations <= this.R) return;
    const { K, initScale } = this.settings;
    const D = K * this.P;
    const newN = Math.max(this.N, numEntities);
    const newR = Math.max(this.R, numRelations);
    const psiLogVarInit = Math.log(this.settings.sPsi ** 2);
    const thetaLogVarInit = Math.log(this.settings.sTheta ** 2);
    // fresh rows, drawn once and copied into every BAS slot (slots start equal)
    const psiMeanRows = this.rng.fillNormal(new Float32Array((newN - this.N) * K), 0, initScale);
    const thetaMeanRows = this.rng.fillNormal(new Float32Array((newR - this.R) * D), 0, 0.1);
    for (const [name, p] of this.params) {
      if (p.rows === 'fixed') continue;
      const rowsNow = p.rows === 'entity' ? newN : newR;
      const rowsBefore = p.rows === 'entity' ? this.N : this.R;
      if (rowsNow === rowsBefore) continue;
      const value = new Float32Array(rowsNow * p.width);
      value.set(p.value);
      const base = name.split('@')[0];
      const fresh = value.subarray(rowsBefore * p.width);
      if (base === 'psiMean') fresh.set(psiMeanRows);
      else if (base === 'psiLogVar') fresh.fill(psiLogVarInit);
      else if (base === 'thetaMean') fresh.set(thetaMeanRows);
      else fresh.fill(thetaLogVarInit);
      const m = new Float32Array(rowsNow * p.width);
      m.set(p.m);
      const v = new Float32Array(rowsNow * p.width);
      v.set(p.v);
      this.params.set(name, { ...p, value, m, v });
    }
    this.N = newN;
    this.R = newR;
    this.clearCache();
  }

  get windowStart(): number {
    return this.slots.length > 0 ? this.slots[0].step : NaN;
  }

  /** Initial (slot 0) parameters of the window, copies (for tests and inspection). */
  windowInitialState(): {
    psiMean: Float32Array;
    psiLogVar: Float32Array;
    thetaMean: Float32Array;
    thetaLogVar: Float32Array;
  } {
    const get = (base: string): Float32Array =>
      this.params.get(this.slotName(base, 0))!.value.slice();
    return {
      psiMean: get('psiMean'),
      psiLogVar: get('psiLogVar'),
      thetaMean: get('thetaMean'),
      thetaLogVar: get('thetaLogVar'),
    };
  }

  gruWeightsCopy(): Record<string, Float32Array> {
    const out: Record<string, Float32Array> = {};
    for (const [name, p] of this.params) if (p.rows === 'fixed') out[name] = p.value.slice();
    return out;
  }

  /**
   * A closed step: append it to the window (empty slots for skipped steps), shift the window while it
   * holds more than m steps, then train. Snapshots at or before the last observed step are ignored
   * (idempotent replay after a resume).
   */
  async observe(snapshot: Snapshot): Promise<UpdateReport | null> {
    if (!Number.isInteger(snapshot.step)) {
      throw new InvalidInputError(
        'snapshot.step',
        `${snapshot.step} is not an integer step`,
        'invalid_step',
      );
    }
    if (snapshot.triples.length % 3 !== 0) {
      throw new InvalidInputError(
        'snapshot.triples',
        `length ${snapshot.triples.length} is not a multiple of 3`,
        'invalid_snapshot',
      );
    }
    if (snapshot.step <= this.lastObserved) {
      this.skippedReplays++;
      return null;
    }
    let maxEntity = snapshot.numEntities;
    let maxRelation = snapshot.numRelations;
    for (let i = 0; i < snapshot.triples.length; i += 3) {
      maxEntity = Math.max(maxEntity, snapshot.triples[i] + 1, snapshot.triples[i + 2] + 1);
      maxRelation = Math.max(maxRelation, snapshot.triples[i + 1] + 1);
      if (snapshot.triples[i] < 0 || snapshot.triples[i + 1] < 0 || snapshot.triples[i + 2] < 0) {
        throw new InvalidInputError(
          'snapshot.triples',
          `negative id in fact ${i / 3} of step ${snapshot.step}`,
          'invalid_snapshot',
        );
      }
    }
    this.grow(maxEntity, maxRelation);
    if (this.slots.length === 0) {
      this.slots.push({ step: snapshot.step, triples: snapshot.triples });
    } else {
      for (let step = this.lastObserved + 1; step <= snapshot.step; step++) {
        this.appendSlot({
          step,
          triples: step === snapshot.step ? snapshot.triples : new Int32Array(0),
        });
        while (this.slots.length > this.settings.windowSize) this.shiftWindow();
      }
    }
    this.lastObserved = snapshot.step;
    this.clearCache();
    const report = await this.trainWindow();
    this.updates++;
    return report;
  }

  /** BAS: a new slot starts as a copy of the latest one (warm start). NLSM: the GRUs produce it. */
  private appendSlot(slot: WindowSlot): void {
    const index = this.slots.length;
    this.slots.push(slot);
    if (this.settings.model === 'bas' && index < this.settings.windowSize) {
      for (const base of ['psiMean', 'psiLogVar', 'thetaMean', 'thetaLogVar']) {
        const from = this.params.get(basName(base, index - 1))!;
        const to = this.params.get(basName(base, index))!;
        to.value.set(from.value);
        to.m.set(from.m);
        to.v.set(from.v);
      }
    }
  }

  /**
   * Drop the oldest step. NLSM: GRU weights kept; the window's initial psi and theta (means and
   * log-variances) become their one-step-evolved values G(initial). BAS: slots move down by one.
   */
  shiftWindow(): void {
    this.slots.shift();
    if (this.settings.model === 'nlsm') {
      const weights = this.gruTensors();
      const pairs: [string, GruName][] = [
        ['psiMean', 'psiMeanGru'],
        ['psiLogVar', 'psiLogVarGru'],
        ['thetaMean', 'thetaMeanGru'],
        ['thetaLogVar', 'thetaLogVarGru'],
      ];
      for (const [base, gru] of pairs) {
        const p = this.params.get(base)!;
        const rows = p.value.length / p.width;
        const frame = this.logVarFrame(base);
        const evolved = tf.tidy(() => {
          const state = tf.tensor2d(p.value, [rows, p.width]);
          return frame ? logVarGruStep(state, weights[gru], frame) : gruStep(state, weights[gru]);
        });
        p.value = evolved.dataSync() as Float32Array;
        evolved.dispose();
      }
      disposeGru(weights);
    } else {
      const last = this.settings.windowSize - 1;
      for (const base of ['psiMean', 'psiLogVar', 'thetaMean', 'thetaLogVar']) {
        const first = this.params.get(basName(base, 0))!;
        for (let slot = 0; slot < last; slot++) {
          this.params.set(basName(base, slot), this.params.get(basName(base, slot + 1))!);
        }
        // the freed arrays become the new last slot, a copy of the latest embedding
        const latest = this.params.get(basName(base, last - 1))!;
        first.value.set(latest.value);
        first.m.set(latest.m);
        first.v.set(latest.v);
        this.params.set(basName(base, last), first);
      }
    }
    this.clearCache();
  }

  /** The frame of a log-variance parameter (psiLogVar, thetaLogVar), null for means. */
  logVarFrame(base: string): LogVarFrame | null {
    const s = this.settings;
    if (base === 'psiLogVar') return { centre: Math.log(s.sPsi ** 2), scale: s.logVarScale };
    if (base === 'thetaLogVar') return { centre: Math.log(s.sTheta ** 2), scale: s.logVarScale };
    return null;
  }

  private gruTensors(): Record<GruName, GruWeights> {
    const out = {} as Record<GruName, GruWeights>;
    for (const name of GRU_NAMES) {
      const w = {} as Record<string, tf.Tensor>;
      for (const part of GRU_TENSOR_NAMES) w[part] = toTensor(this.params.get(`${name}.${part}`)!);
      out[name] = w as unknown as GruWeights;
    }
    return out;
  }

  /** Train on the window: Adam on the ELBO, epochsPerWindow at most, stop early on convergence. */
  private async trainWindow(): Promise<UpdateReport> {
    const t0 = performance.now();
    const s = this.settings;
    const L = this.slots.length;
    // the universe: nodes touched by the window (only they get GRU work)
    const local = new Int32Array(this.N).fill(-1);
    const universe: number[] = [];
    let positives = 0;
    for (const slot of this.slots) {
      for (let i = 0; i < slot.triples.length; i += 3) {
        for (const node of [slot.triples[i], slot.triples[i + 2]]) {
          if (local[node] < 0) {
            local[node] = universe.length;
            universe.push(node);
          }
        }
      }
      positives += slot.triples.length / 3;
    }
    const report: UpdateReport = {
      step: this.lastObserved,
      epochs: 0,
      loss: NaN,
      elbo: NaN,
      seconds: 0,
      nanRestored: false,
      universe: universe.length,
    };
    if (positives === 0) {
      report.seconds = (performance.now() - t0) / 1000;
      return report;
    }
    const U = universe.length;
    const universeTensor = tf.tensor1d(Int32Array.from(universe), 'int32');
    const proposals = this.slots.map((slot) => {
      const localTriples = new Int32Array(slot.triples.length);
      for (let i = 0; i < slot.triples.length; i += 3) {
        localTriples[i] = local[slot.triples[i]];
        localTriples[i + 1] = slot.triples[i + 1];
        localTriples[i + 2] = local[slot.triples[i + 2]];
      }
      return buildNegativeProposal(localTriples, U, this.R, s.uniformNegativeFraction);
    });
    // first window: start the logit offset at the observed density log(F / (U^2 R)) (all 4 entries
    // of every theta shifted by offset / K move every logit by offset)
    if (this.updates === 0) this.initialiseDensityOffset(positives / L, U);

    // working copies: gathered entity rows, all relation rows, all fixed weights
    const names = [...this.params.keys()].filter((name) => {
      if (s.model === 'nlsm') return true;
      const slot = Number(name.split('@')[1]);
      return slot < L;
    });
    const variables = new Map<string, { value: tf.Variable; m: tf.Variable; v: tf.Variable }>();
    for (const name of names) {
      const p = this.params.get(name)!;
      const make = (data: Float32Array): tf.Variable =>
        tf.tidy(() => {
          if (p.rows === 'entity') {
            return tf.variable(
              tf.gather(tf.tensor2d(data, [this.N, p.width]), universeTensor),
              true,
            );
          }
          if (p.rows === 'relation') return tf.variable(tf.tensor2d(data, [this.R, p.width]), true);
          return tf.variable(toTensor({ ...p, value: data }), true);
        });
      variables.set(name, { value: make(p.value), m: make(p.m), v: make(p.v) });
    }
    const varList = [...variables.values()].map((x) => x.value);
    const hyper = {
      K: s.K,
      directed: s.directed,
      sPsi2: s.sPsi ** 2,
      sTheta2: s.sTheta ** 2,
      sigmaPsi2: s.sigmaPsi ** 2,
      sigmaTheta2: s.sigmaTheta ** 2,
    };
    let previousElbo = NaN;
    let nan = false;
    for (let epoch = 1; epoch <= s.epochsPerWindow; epoch++) {
      const batch = this.sampleBatch(proposals, U);
      const hook = this.testHooks.corruptWorkingCopy;
      if (hook && hook.update === this.updates + 1 && hook.epoch === epoch) {
        const target = variables.get(this.slotName('psiMean', 0))!.value;
        tf.tidy(() => target.assign(tf.mul(target, NaN)));
      }
      const { value, grads } = tf.variableGrads(() => {
        const trajectory = this.trajectory(variables, L);
        const { elbo } = windowElbo(trajectory, batch, hyper);
        return tf.div(tf.neg(elbo), positives) as tf.Scalar;
      }, varList);
      const loss = (await value.data())[0];
      value.dispose();
      disposeBatch(batch);
      if (!Number.isFinite(loss)) {
        for (const g of Object.values(grads)) g.dispose();
        nan = true;
        break;
      }
      this.adamStep++;
      this.adamUpdate(variables, grads);
      for (const g of Object.values(grads)) g.dispose();
      report.epochs = epoch;
      report.loss = loss;
      report.elbo = -loss;
      if (
        epoch >= s.minEpochsPerWindow &&
        s.convergenceTolerance > 0 &&
        Number.isFinite(previousElbo) &&
        -loss - previousElbo < s.convergenceTolerance * Math.abs(loss)
      ) {
        break;
      }
      previousElbo = -loss;
    }
    if (nan) {
      // restore the last good state: the arrays still hold it (working copies are never written back)
      this.nanRestores++;
      report.nanRestored = true;
      this.adamStep -= report.epochs;
      this.onNanRestore?.(this.nanRestores, this.lastObserved);
    } else {
      for (const [name, working] of variables) {
        const p = this.params.get(name)!;
        const read = async (t: tf.Variable, into: Float32Array): Promise<void> => {
          const data = (await t.data()) as Float32Array;
          if (p.rows === 'entity') {
            for (let u = 0; u < U; u++) {
              into.set(data.subarray(u * p.width, (u + 1) * p.width), universe[u] * p.width);
            }
          } else {
            into.set(data);
          }
        };
        await read(working.value, p.value);
        await read(working.m, p.m);
        await read(working.v, p.v);
      }
    }
    for (const working of variables.values()) {
      working.value.dispose();
      working.m.dispose();
      working.v.dispose();
    }
    universeTensor.dispose();
    this.clearCache();
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  }

  private initialiseDensityOffset(factsPerStep: number, U: number): void {
    const offset = Math.log(Math.max(factsPerStep, 1) / (U * U * this.R)) / this.settings.K;
    for (const [name, p] of this.params) {
      if (name.split('@')[0] === 'thetaMean')
        for (let i = 0; i < p.value.length; i++) p.value[i] += offset;
    }
  }

  /** Means and log-variances per slot: the GRUs roll the initial state (NLSM) or the slots' own parameters (BAS). */
  private trajectory(variables: Map<string, { value: tf.Variable }>, L: number): Trajectory {
    const get = (name: string): tf.Tensor2D => variables.get(name)!.value as tf.Tensor2D;
    const t: Trajectory = { psiMean: [], psiLogVar: [], thetaMean: [], thetaLogVar: [] };
    if (this.settings.model === 'bas') {
      for (let slot = 0; slot < L; slot++) {
        t.psiMean.push(get(basName('psiMean', slot)));
        t.psiLogVar.push(get(basName('psiLogVar', slot)));
        t.thetaMean.push(get(basName('thetaMean', slot)));
        t.thetaLogVar.push(get(basName('thetaLogVar', slot)));
      }
      return t;
    }
    const gru = (name: GruName): GruWeights => {
      const w = {} as Record<string, tf.Tensor>;
      for (const part of GRU_TENSOR_NAMES) w[part] = variables.get(`${name}.${part}`)!.value;
      return w as unknown as GruWeights;
    };
    const weights = {
      pm: gru('psiMeanGru'),
      ps: gru('psiLogVarGru'),
      tm: gru('thetaMeanGru'),
      ts: gru('thetaLogVarGru'),
    };
    const psiFrame = this.logVarFrame('psiLogVar')!;
    const thetaFrame = this.logVarFrame('thetaLogVar')!;
    t.psiMean.push(get('psiMean'));
    t.psiLogVar.push(get('psiLogVar'));
    t.thetaMean.push(get('thetaMean'));
    t.thetaLogVar.push(get('thetaLogVar'));
    for (let slot = 1; slot < L; slot++) {
      t.psiMean.push(gruStep(t.psiMean[slot - 1], weights.pm));
      t.psiLogVar.push(logVarGruStep(t.psiLogVar[slot - 1], weights.ps, psiFrame));
      t.thetaMean.push(gruStep(t.thetaMean[slot - 1], weights.tm));
      t.thetaLogVar.push(logVarGruStep(t.thetaLogVar[slot - 1], weights.ts, thetaFrame));
    }
    return t;
  }

  /** Noise and edges (positives + importance-weighted samples) for one epoch, from the seeded generator. */
  private sampleBatch(
    proposals: ReturnType<typeof buildNegativeProposal>[],
    U: number,
  ): WindowBatch {
    const s = this.settings;
    const D = s.K * this.P;
    const L = this.slots.length;
    const psiNoise: tf.Tensor2D[] = [];
    const thetaNoise: tf.Tensor2D[] = [];
    for (let slot = 1; slot < L; slot++) {
      psiNoise.push(tf.tensor2d(this.rng.fillNormal(new Float32Array(U * s.K)), [U, s.K]));
      thetaNoise.push(tf.tensor2d(this.rng.fillNormal(new Float32Array(this.R * D)), [this.R, D]));
    }
    const parts: { triples: Int32Array; linear: Float32Array; soft: Float32Array; slot: number }[] =
      [];
    let total = 0;
    proposals.forEach((proposal, slot) => {
      const F = proposal.positives.length / 3;
      const M = Math.max(Math.ceil(s.negativesPerPositive * F), F === 0 ? 0 : 1);
      if (F > 0) {
        parts.push({
          triples: proposal.positives,
          linear: new Float32Array(F).fill(1),
          soft: new Float32Array(F),
          slot,
        });
        total += F;
      }
      if (M > 0) {
        const negatives = sampleNegatives(proposal, M, this.rng);
        parts.push({
          triples: negatives.triples,
          linear: new Float32Array(M),
          soft: negatives.weights,
          slot,
        });
        total += M;
      }
    });
    const subjects = new Int32Array(total);
    const relations = new Int32Array(total);
    const objects = new Int32Array(total);
    const linear = new Float32Array(total);
    const soft = new Float32Array(total);
    let e = 0;
    for (const part of parts) {
      const n = part.linear.length;
      for (let i = 0; i < n; i++, e++) {
        subjects[e] = part.slot * U + part.triples[3 * i];
        relations[e] = part.slot * this.R + part.triples[3 * i + 1];
        objects[e] = part.slot * U + part.triples[3 * i + 2];
      }
      linear.set(part.linear, e - n);
      soft.set(part.soft, e - n);
    }
    return {
      psiNoise,
      thetaNoise,
      edges: { subjects, relations, objects },
      linearWeight: tf.tensor1d(linear),
      softplusWeight: tf.tensor1d(soft),
    };
  }

  private adamUpdate(
    variables: Map<string, { value: tf.Variable; m: tf.Variable; v: tf.Variable }>,
    grads: tf.NamedTensorMap,
  ): void {
    const lr = this.settings.learningRate;
    const correction1 = 1 - ADAM_BETA1 ** this.adamStep;
    const correction2 = 1 - ADAM_BETA2 ** this.adamStep;
    tf.tidy(() => {
      for (const [name, working] of variables) {
        const g = grads[working.value.name];
        if (!g) continue;
        working.m.assign(tf.add(tf.mul(working.m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)));
        working.v.assign(
          tf.add(tf.mul(working.v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)),
        );
        const step = tf.div(
          tf.div(working.m, correction1),
          tf.add(tf.sqrt(tf.div(working.v, correction2)), ADAM_EPSILON),
        );
        const rate =
          this.params.get(name)!.rows === 'entity' ? lr * this.settings.entityLrScale : lr;
        working.value.assign(tf.sub(working.value, tf.mul(step, rate)));
      }
    });
  }

  // ---------------------------------------------------------------- forecasting

  clearCache(): void {
    for (const c of this.cache.values()) disposeCached(c);
    this.cache.clear();
  }

  /** Means at `step`: NLSM rolls the GRUs from the window's initial state; BAS uses the latest slot. */
  private stateAt(step: number): CachedStep {
    const hit = this.cache.get(step);
    if (hit) return hit;
    if (this.slots.length === 0) {
      throw new InvalidInputError(
        'step',
        `cannot forecast step ${step}: no snapshot observed yet`,
        'not_trained',
      );
    }
    const s = this.settings;
    const D = s.K * this.P;
    const start = this.windowStart;
    const target = Math.max(step, start); // before the window: the window's first step
    let built: CachedStep;
    if (s.model === 'bas') {
      const slot = Math.min(target - start, this.slots.length - 1);
      const psi = this.params.get(basName('psiMean', slot))!.value;
      const theta = this.params.get(basName('thetaMean', slot))!.value;
      built = this.buildCached(
        tf.tensor2d(psi, [this.N, s.K]),
        tf.tensor2d(theta, [this.R, D]),
        false,
      );
    } else {
      // the nearest cached step below target, else the window's initial state
      let from = start;
      let psiMean: tf.Tensor2D | null = null;
      let thetaMean: tf.Tensor2D | null = null;
      for (const [cachedStep, c] of this.cache) {
        if (cachedStep <= target && cachedStep >= from && c.psiMean) {
          from = cachedStep;
          psiMean = c.psiMean;
          thetaMean = c.thetaMean;
        }
      }
      const weights = this.gruTensors();
      let psi = psiMean
        ? psiMean.clone()
        : tf.tensor2d(this.params.get('psiMean')!.value, [this.N, s.K]);
      let theta = thetaMean
        ? thetaMean.clone()
        : tf.tensor2d(this.params.get('thetaMean')!.value, [this.R, D]);
      for (let k = from; k < target; k++) {
        const nextPsi = gruStep(psi, weights.psiMeanGru);
        const nextTheta = gruStep(theta, weights.thetaMeanGru);
        psi.dispose();
        theta.dispose();
        psi = nextPsi;
        theta = nextTheta;
      }
      disposeGru(weights);
      built = this.buildCached(psi, theta, true);
    }
    this.cache.set(step, built);
    return built;
  }

  private buildCached(psiMean: tf.Tensor2D, thetaMean: tf.Tensor2D, keepPsi: boolean): CachedStep {
    const s = this.settings;
    const z = tf.tidy(
      () => tf.concat([tf.sigmoid(psiMean), tf.fill([1, s.K], 0.5)], 0) as tf.Tensor2D,
    );
    const coefficients = tf.tidy(() => efficientCoefficients(thetaMean, s.K, s.directed));
    if (!keepPsi) psiMean.dispose();
    return { z, psiMean: keepPsi ? psiMean : null, thetaMean, coefficients };
  }

  /** Scores of all numEntities candidates for B queries at `step`: [B * numEntities]. */
  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    if (anchors.length !== relations.length) {
      throw new InvalidInputError(
        'relations',
        `${relations.length} relations for ${anchors.length} anchors`,
        'invalid_query',
      );
    }
    const state = this.stateAt(step);
    const B = anchors.length;
    const anchorRows = Int32Array.from(anchors, (a) => (a >= 0 && a < this.N ? a : this.N));
    const relationRows = Int32Array.from(relations, (r) => {
      if (r < 0 || r >= this.R) {
        throw new InvalidInputError(
          'relations',
          `relation ${r} is outside 0..${this.R - 1}`,
          'invalid_query',
        );
      }
      return r;
    });
    const scores = tf.tidy(() => {
      const { c0, A, B: Bm, C } = state.coefficients;
      const rel = tf.tensor1d(relationRows, 'int32');
      const za = tf.gather(state.z, tf.tensor1d(anchorRows, 'int32')); // [B, K]
      const a = tf.gather(A, rel); // [B, K]
      const b = tf.gather(Bm, rel);
      const c = tf.gather(C, rel);
      // object queries: w = B + C z_s, offset c0 + A.z_s; subject queries swap A and B
      const w = tf.add(direction === 'object' ? b : a, tf.mul(c, za)); // [B, K]
      const offset = tf.add(
        tf.gather(c0, rel),
        tf.sum(tf.mul(direction === 'object' ? a : b, za), 1),
      ); // [B]
      const candidates =
        numEntities <= this.N
          ? tf.slice(state.z, [0, 0], [numEntities, -1])
          : padRows(state.z, this.N, numEntities);
      return tf.add(tf.matMul(w, candidates, false, true), tf.reshape(offset, [B, 1])); // [B, numEntities]
    });
    const data = (await scores.data()) as Float32Array;
    scores.dispose();
    return data;
  }

  /** Link probabilities sigmoid(logit) of (source, relation 0, target) pairs at `step`. */
  async linkProbability(
    step: number,
    sources: Int32Array,
    targets: Int32Array,
    relation = 0,
  ): Promise<Float32Array> {
    if (sources.length !== targets.length) {
      throw new InvalidInputError(
        'targets',
        `${targets.length} targets for ${sources.length} sources`,
        'invalid_query',
      );
    }
    const state = this.stateAt(step);
    const clamp = (xs: Int32Array): Int32Array =>
      Int32Array.from(xs, (x) => (x >= 0 && x < this.N ? x : this.N));
    const out = tf.tidy(() => {
      const rel = tf.fill([sources.length], relation, 'int32') as tf.Tensor1D;
      const { c0, A, B, C } = state.coefficients;
      const zs = tf.gather(state.z, tf.tensor1d(clamp(sources), 'int32'));
      const zo = tf.gather(state.z, tf.tensor1d(clamp(targets), 'int32'));
      const perK = tf.add(
        tf.add(tf.mul(tf.gather(A, rel), zs), tf.mul(tf.gather(B, rel), zo)),
        tf.mul(tf.gather(C, rel), tf.mul(zs, zo)),
      );
      return tf.sigmoid(tf.add(tf.gather(c0, rel), tf.sum(perK, 1)));
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  /** z and Theta at `step` as plain arrays (for the ONNX exporter and serving). */
  scoringState(step: number): ScoringState {
    const state = this.stateAt(step);
    const z = tf.tidy(() => tf.slice(state.z, [0, 0], [this.N, -1]));
    const zData = z.dataSync() as Float32Array;
    z.dispose();
    const theta = expandTheta(
      state.thetaMean.dataSync() as Float32Array,
      this.R,
      this.settings.K,
      this.settings.directed,
    );
    return {
      numEntities: this.N,
      numRelations: this.R,
      K: this.settings.K,
      z: zData.slice(),
      theta,
      step,
      version: this.updates,
    };
  }

  dispose(): void {
    this.clearCache();
  }
}

function padRows(zWithUnknown: tf.Tensor2D, N: number, total: number): tf.Tensor2D {
  const known = tf.slice(zWithUnknown, [0, 0], [N, -1]);
  const unknown = tf.tile(tf.slice(zWithUnknown, [N, 0], [1, -1]), [total - N, 1]);
  return tf.concat([known, unknown], 0) as tf.Tensor2D;
}

function disposeGru(weights: Record<string, GruWeights>): void {
  for (const w of Object.values(weights)) for (const part of GRU_TENSOR_NAMES) w[part].dispose();
}

/** A fixed parameter as a tensor: [rows, width] matrix, or [width] vector when it has one row. */
function toTensor(p: Pick<Parameter, 'value' | 'width'>): tf.Tensor {
  return p.value.length === p.width
    ? tf.tensor1d(p.value)
    : tf.tensor2d(p.value, [p.value.length / p.width, p.width]);
}

function disposeBatch(batch: WindowBatch): void {
  for (const t of [...batch.psiNoise, ...batch.thetaNoise]) t.dispose();
  batch.linearWeight.dispose();
  batch.softplusWeight.dispose();
}

function disposeCached(c: CachedStep): void {
  c.z.dispose();
  c.psiMean?.dispose();
  c.thetaMean.dispose();
  c.coefficients.c0.dispose();
  c.coefficients.A.dispose();
  c.coefficients.B.dispose();
  c.coefficients.C.dispose();
}
