// Windowed NLSM / BAS trainer (SPEC section 1, "Windowed training"). Owns: the model state (GRU weights, the
// window's initial psi / theta variational parameters, BAS per-slot parameters, Adam moments, the seeded random
// state), its initialisation and growth, the window of the last m snapshots and its shifts. The fit of one window
// is fused-fit.ts (the onnx engine) or window-fit.ts (tfjs), forecasts forecast.ts, checkpoints checkpoint.ts, the
// types parameters.ts.
// Must not import kafkajs, src/kafka, src/window or src/serve: snapshots arrive through observe().
import type { Direction, ScoringState, Snapshot } from '../../core/types.ts';
import { ConfigError, InvalidInputError } from '../../core/errors.ts';
import { Xoshiro128 } from '../../core/random.ts';
import { thetaEntries } from './math.ts';
import { gruStepRows, type LogVarFrame } from './graph.ts';
import {
  GRU_NAMES,
  basName,
  disposeGru,
  gruTensors,
  type GruName,
  type Parameter,
  type TrainerSettings,
  type TrainerTestHooks,
  type UpdateReport,
  type WindowSlot,
} from './parameters.ts';
import { fitWindow } from './window-fit.ts';
import { emptyReport, windowUniverse } from './window-batch.ts';
import { fitWindowFused, gruStepRowsFused } from './fused-fit.ts';
import { TrainingKernels } from './onnx-kernels.ts';
import { StepForecasts } from './forecast.ts';

/** Update-gate bias at initialisation: u = sigmoid(4) = 0.98, so the untrained GRU nearly carries its state. */
const GRU_UPDATE_BIAS = 4;
const GRU_WEIGHT_STD = 0.01;

export class WindowTrainer {
  readonly settings: TrainerSettings;
  readonly P: number;
  N: number;
  R: number;
  readonly params = new Map<string, Parameter>();
  readonly rng: Xoshiro128;
  slots: WindowSlot[] = [];
  lastObserved = -Infinity;
  adamStep = 0;
  updates = 0;
  nanRestores = 0;
  skippedReplays = 0;
  onNanRestore?: (count: number, step: number) => void;
  testHooks: TrainerTestHooks = {};
  private readonly forecasts = new StepForecasts(this);
  /** The 'onnx' engine's sessions (built on first use, released by dispose). */
  readonly kernels = new TrainingKernels();

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
    this.rng = new Xoshiro128(settings.seed);
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

  /** The name of a per-slot parameter: slot-free for NLSM (slot 0 only), base@slot for BAS. */
  slotName(base: string, slot: number): string {
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
        while (this.slots.length > this.settings.windowSize) await this.shiftWindow();
      }
    }
    this.lastObserved = snapshot.step;
    this.clearCache();
    const started = performance.now();
    const window = windowUniverse(this);
    const report = emptyReport(this, window.universe.length, window.relations.length);
    if (window.positives > 0) {
      const fit = this.settings.engine === 'tfjs' ? fitWindow : fitWindowFused;
      await fit(this, window, report);
    }
    report.seconds = (performance.now() - started) / 1000;
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
  async shiftWindow(): Promise<void> {
    this.slots.shift();
    if (this.settings.model === 'nlsm' && this.settings.engine === 'onnx') {
      for (const base of ['psiMean', 'psiLogVar', 'thetaMean', 'thetaLogVar'] as const) {
        const p = this.params.get(base)!;
        p.value = await gruStepRowsFused(
          this,
          base,
          p.value,
          p.width,
          this.testHooks.shiftBlockRows,
        );
      }
    } else if (this.settings.model === 'nlsm') {
      const weights = gruTensors(this.params);
      const pairs: [string, GruName][] = [
        ['psiMean', 'psiMeanGru'],
        ['psiLogVar', 'psiLogVarGru'],
        ['thetaMean', 'thetaMeanGru'],
        ['thetaLogVar', 'thetaLogVarGru'],
      ];
      for (const [base, gru] of pairs) {
        const p = this.params.get(base)!;
        const frame = this.logVarFrame(base);
        p.value = gruStepRows(p.value, p.width, weights[gru], frame, this.testHooks.shiftBlockRows);
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

  // ---------------------------------------------------------------- forecasting (forecast.ts)

  /** Drops the cached forecasts: after every change of the parameters or the window. */
  clearCache(): void {
    this.forecasts.clear();
  }

  /** Scores of all numEntities candidates for B queries at `step`: [B * numEntities]. */
  score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    return this.forecasts.score(step, direction, anchors, relations, numEntities);
  }

  /** Link probabilities sigmoid(logit) of (source, relation 0, target) pairs at `step`. */
  linkProbability(
    step: number,
    sources: Int32Array,
    targets: Int32Array,
    relation = 0,
  ): Promise<Float32Array> {
    return this.forecasts.linkProbability(step, sources, targets, relation);
  }

  /** z and Theta at `step` as plain arrays (for the ONNX exporter and serving). */
  scoringState(step: number): ScoringState {
    return this.forecasts.scoringState(step);
  }

  dispose(): void {
    this.clearCache();
    void this.kernels.release();
  }
}
