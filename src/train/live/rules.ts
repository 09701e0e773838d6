// The rule model in a live stream (tkg run / tkg train): `rules` (the term alone over a zero-latent ONNX scorer) and
// `nlsm-r` (NLSM trained on the sliding window, its logit scaled by beta, plus the term). Per closed step, in order:
// a sample of the step's queries is scored by the model that forecast it (base logits, term features: never the
// step's own facts), the miner counts the step's rule candidates against the state, the state learns the step, and
// NLSM trains on it. Decay and alpha are chosen once, by the recurrency rule on selectionSplit (the same carving as
// `tkg eval`) once MIN_SELECTION_STEPS steps are seen; the state is built then (from the kept steps) and only ever
// updated afterwards. The ranker is refitted every selectEvery steps on the buffered queries (the last
// selectionSteps steps select the form, src/train/rules/fit.ts). scoringParts gives the dense state (beta folded
// into Theta; zero-latent for `rules`) and the term spec { kind: 'rules', spec }: a serving RuleTermState built from
// that spec over the same closed steps computes the same term. A relation that first appears after the state was
// built joins it in place (growState): its facts count from its first step, its rules are mined from then on.
// Checkpoint: a header (decay, alpha, the state's relation count, weights, beta, the buffered steps) written in turn to
// `<dir>/rules.0.json` / `rules.1.json` before the NLSM checkpoint (a restart takes the newest header not ahead of
// NLSM's), and each buffered step's fitting queries in `<dir>/rules-queries/<step>.bin` (their base logits came from
// the model that forecast the step, which a restart cannot recompute); the term state is rebuilt by replay().
// Owns: that adapter. Must not import Kafka or src/serve.
import type { Direction, Snapshot } from '../../core/types.ts';
import { TkgError } from '../../core/errors.ts';
import { mulberry32 } from '../../core/random.ts';
import { selectRecurrencyParams } from '../../baselines/recurrency.ts';
import { selectionSplit } from '../../eval/evaluate.ts';
import { buildAnswerFilter, trueAnswers } from '../../eval/rank.ts';
import { RF, queryCode, type RuleTermSpec } from '../../model/rule-spec.ts';
import { RuleTermState } from '../../model/rule-term.ts';
import { scaleScoringState } from '../hybrid/export.ts';
import { RuleMiner } from '../rules/miner.ts';
import { RankQueryBuilder, concatRankSets, type RankQuerySet } from '../rules/ranker.ts';
import { fitRuleRanker, relaxedTopKOfForm } from '../rules/fit.ts';
import { decodeRankQuerySet, encodeRankQuerySet } from '../rules/query-codec.ts';
import { AlternatingHeader, StepFiles } from './step-files.ts';
import { FIT_RELAXED_TOP_K, initialRuleSpec } from '../rules/models.ts';
import type { NlsmLiveModel } from './nlsm.ts';
import {
  matchingState,
  zeroScoringState,
  type LiveModel,
  type LiveModelOptions,
  type ObserveResult,
  type ScoringParts,
} from './index.ts';

/** Steps seen before decay and alpha are chosen (the state is built then). */
export const MIN_SELECTION_STEPS = 10;
/** Facts per closed step whose queries (both directions) are kept for the ranker. */
const FACTS_PER_STEP = 200;
/** Steps of queries kept. */
const BUFFER_STEPS = 8;

interface RuleCheckpoint {
  format: 'tkg-live-rules';
  lastStep: number | null;
  decay: number | null;
  alpha: number | null;
  /** Relations of the term state's spec (fixed when decay and alpha are chosen). */
  stateRelations: number | null;
  selectedAtStep: number | null;
  fittedAtStep: number | null;
  weights: number[] | null;
  beta: number;
  form: string | null;
  /** Steps of the buffered fitting query sets (files `<dir>/rules-queries/<step>.bin`), in order. */
  buffer: number[];
}

export class RuleLiveModel implements LiveModel {
  readonly kind: 'rules' | 'nlsm-r';
  private header: RuleCheckpoint;
  private readonly headers: AlternatingHeader<RuleCheckpoint>;
  private readonly files: StepFiles;
  private state: RuleTermState | undefined;
  private miner: RuleMiner | undefined;
  /** Closed steps kept until the decay is chosen (then the state is built from them and they are dropped). */
  private pending: Snapshot[] = [];
  private buffer: Array<{ step: number; set: RankQuerySet }> = [];
  private numRelations = 1;
  private lastSnapshot: Snapshot | undefined;

  private constructor(
    private readonly options: LiveModelOptions,
    private readonly base: NlsmLiveModel | undefined,
    header: RuleCheckpoint,
    headers: AlternatingHeader<RuleCheckpoint>,
    files: StepFiles,
  ) {
    this.kind = options.kind as 'rules' | 'nlsm-r';
    this.header = header;
    this.headers = headers;
    this.files = files;
  }

  static async open(
    options: LiveModelOptions,
    openBase: () => Promise<NlsmLiveModel>,
  ): Promise<RuleLiveModel> {
    const base = options.kind === 'nlsm-r' ? await openBase() : undefined;
    const headers = new AlternatingHeader<RuleCheckpoint>(options.dir, 'rules', 'tkg-live-rules');
    const files = new StepFiles(options.dir, 'rules-queries');
    // the newest header not ahead of NLSM's checkpoint (a crash may fall between the two writes)
    const header: RuleCheckpoint = headers.read(base?.lastStep ?? Number.POSITIVE_INFINITY) ?? {
      format: 'tkg-live-rules',
      lastStep: null,
      decay: null,
      alpha: null,
      stateRelations: null,
      selectedAtStep: null,
      fittedAtStep: null,
      weights: null,
      beta: 0,
      form: null,
      buffer: [],
    };
    if (base && Number.isFinite(base.lastStep) && header.lastStep !== base.lastStep)
      throw new TkgError(
        `${options.dir}: the NLSM checkpoint is at step ${base.lastStep} but no rule-model checkpoint matches it; delete the state directory to start over`,
        { reason: 'corrupt_checkpoint' },
      );
    const model = new RuleLiveModel(options, base, header, headers, files);
    // sets collected with another feature count (an older tkg) cannot join the fit: they are dropped (and collected
    // again over the next steps)
    model.buffer = header.buffer
      .map((step) => ({
        step,
        set: decodeRankQuerySet(files.read(step), `rules-queries/${step}.bin`),
      }))
      .filter((b) => b.set.F === RF);
    if (header.decay !== null) model.buildState([]);
    return model;
  }

  get lastStep(): number {
    return this.header.lastStep ?? Number.NEGATIVE_INFINITY;
  }

  /** The spec exported now (the recurrency form with the initial decay before the first selection). */
  get spec(): RuleTermSpec {
    if (this.state === undefined || this.miner === undefined)
      return initialRuleSpec({ numRelations: this.numRelations, decay: 0.9, alpha: 0.1 });
    const spec = this.state.currentSpec;
    return { ...spec, ...this.miner.rules(spec.numRelations) };
  }

  private buildState(steps: readonly Snapshot[]): void {
    const spec = initialRuleSpec({
      numRelations: this.header.stateRelations ?? this.numRelations,
      decay: this.header.decay!,
      alpha: this.header.alpha!,
      relaxedTopK: relaxedTopKOfForm(this.header.form, FIT_RELAXED_TOP_K),
    });
    // weights of an older spec format (fewer features) read through the spec's upgrade
    if (this.header.weights !== null)
      spec.weights = this.header.weights
        .concat(new Array<number>(Math.max(0, RF - this.header.weights.length)).fill(0))
        .slice(0, RF);
    this.state = new RuleTermState(spec);
    this.miner = new RuleMiner(spec, this.numRelations);
    for (const s of steps) this.learn(s);
  }

  /** Miner then state (the miner counts the step against the state before it). */
  private learn(snapshot: Snapshot): void {
    this.miner!.observe(snapshot, this.state!, this.state!.currentSpec.pathWindow);
    this.state!.observe(snapshot);
    this.miner!.applyUpdates(this.state!);
  }

  private remember(snapshot: Snapshot): void {
    this.numRelations = Math.max(this.numRelations, snapshot.numRelations);
    if (this.state) {
      this.growState();
      this.learn(snapshot);
    } else this.pending.push(snapshot);
    this.lastSnapshot = snapshot;
  }

  /**
   * A relation met after the state was built joins it in place: the codes of the known relations do not move and the
   * new relation's facts only exist from this step on, so the grown state equals one built with the larger count from
   * the start (which is what a restart, or a serving replica, builds from the spec).
   */
  private growState(): void {
    const spec = this.state!.currentSpec;
    if (this.numRelations <= spec.numRelations) return;
    this.state!.useSpec({ ...spec, numRelations: this.numRelations });
    this.header = { ...this.header, stateRelations: this.numRelations };
  }

  async replay(snapshot: Snapshot): Promise<void> {
    if (snapshot.step > this.lastStep)
      throw new TkgError(
        `replay of step ${snapshot.step} after the checkpoint's step ${this.lastStep}; observe it instead`,
        {
          reason: 'out_of_order',
        },
      );
    if (this.lastSnapshot === undefined || snapshot.step > this.lastSnapshot.step)
      this.remember(snapshot);
    await this.base?.replay();
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    if (snapshot.step <= this.lastStep)
      throw new TkgError(
        `step ${snapshot.step} is not after the last observed step ${this.lastStep}`,
        {
          reason: 'out_of_order',
        },
      );
    const notes: Record<string, number> = {};
    if (this.state && this.lastSnapshot) {
      const set = await this.collect(snapshot, this.lastSnapshot.numEntities);
      if (set.answer.length > 0)
        this.buffer = [...this.buffer, { step: snapshot.step, set }].slice(-BUFFER_STEPS);
    }
    this.remember(snapshot);
    const trained = this.base ? await this.base.observe(snapshot) : undefined;
    this.header = { ...this.header, lastStep: snapshot.step };
    if (this.state === undefined && this.pending.length >= MIN_SELECTION_STEPS) this.select(notes);
    const selectEvery = this.options.selectEvery ?? 25;
    const selectionSteps = this.options.selectionSteps ?? 3;
    const due =
      this.buffer.length >= 2 * selectionSteps &&
      (this.header.fittedAtStep === null ||
        snapshot.step - this.header.fittedAtStep >= selectEvery);
    if (due) this.refit(selectionSteps, notes);
    return {
      seconds: (performance.now() - started) / 1000,
      loss: trained?.loss,
      elbo: trained?.elbo,
      notes,
    };
  }

  private select(notes: Record<string, number>): void {
    const selection = selectionSplit(this.pending);
    const last = this.pending[this.pending.length - 1];
    const chosen = selectRecurrencyParams({
      history: selection.history,
      validation: selection.validation,
      protocol: 'single-step',
      numEntities: last.numEntities,
      numRelations: this.numRelations,
    });
    const { decay, alpha } = chosen.params.global;
    this.header = {
      ...this.header,
      decay,
      alpha,
      stateRelations: this.numRelations,
      selectedAtStep: last.step,
    };
    this.buildState(this.pending);
    this.pending = [];
    notes.validationMrr = chosen.validationMrr.global;
    this.options.onProgress?.(
      `${this.kind}: decay ${decay} per step, alpha ${alpha} (recurrency rule on ${selection.description}; time-aware MRR ${chosen.validationMrr.global.toFixed(2)}, ${chosen.seconds.toFixed(1)} s)`,
    );
  }

  private refit(selectionSteps: number, notes: Record<string, number>): void {
    const sets = this.buffer.map((b) => b.set);
    const { theta, report } = fitRuleRanker({
      fit: concatRankSets(sets.slice(0, sets.length - selectionSteps)),
      validation: concatRankSets(sets.slice(sets.length - selectionSteps)),
      recurrencyAlpha: this.header.alpha ?? 0,
    });
    const weights = Array.from(theta.subarray(1));
    const beta = this.base ? theta[0] : 0;
    this.state!.setWeights(weights, relaxedTopKOfForm(report.chosen.form, FIT_RELAXED_TOP_K));
    this.header = {
      ...this.header,
      weights,
      beta,
      form: report.chosen.form,
      fittedAtStep: this.header.lastStep,
    };
    notes.fitSeconds = report.seconds;
    this.options.onProgress?.(
      `${this.kind}: ranker ${report.chosen.form} fitted on steps ${this.buffer[0].step}..${this.header.lastStep} (${report.fitQueries} + ${report.validationQueries} queries): time-aware MRR ${report.chosen.validation.timeAware.toFixed(2)} (${report.seconds.toFixed(1)} s)`,
    );
  }

  /** Up to FACTS_PER_STEP facts of the step as ranker queries, from the state and base before they learn it. */
  private async collect(target: Snapshot, baseEntities: number): Promise<RankQuerySet> {
    const builder = new RankQueryBuilder(
      RF,
      this.base !== undefined,
      32,
      16,
      this.options.seed + target.step,
    );
    const t = target.triples;
    const R = this.state!.currentSpec.numRelations;
    const eligible: number[] = [];
    for (let i = 0; i < t.length; i += 3)
      if (t[i] < baseEntities && t[i + 2] < baseEntities && t[i + 1] < R) eligible.push(i);
    const random = mulberry32(this.options.seed * 7919 + target.step);
    for (let k = 0; k < Math.min(FACTS_PER_STEP, eligible.length); k++) {
      const j = k + Math.floor(random() * (eligible.length - k));
      [eligible[k], eligible[j]] = [eligible[j], eligible[k]];
    }
    const chosen = eligible.slice(0, FACTS_PER_STEP).sort((a, b) => a - b);
    const timeAware = buildAnswerFilter([t], Math.max(R, target.numRelations));
    for (const direction of ['object', 'subject'] as Direction[]) {
      const anchors = Int32Array.from(chosen, (i) => (direction === 'object' ? t[i] : t[i + 2]));
      const relations = Int32Array.from(chosen, (i) => t[i + 1]);
      const rows = this.base
        ? await this.base.score(target.step, direction, anchors, relations, baseEntities)
        : undefined;
      chosen.forEach((i, b) => {
        builder.add({
          numEntities: baseEntities,
          row: rows?.subarray(b * baseEntities, (b + 1) * baseEntities),
          answer: direction === 'object' ? t[i + 2] : t[i],
          candidates: this.state!.candidatesAt(
            target.step,
            queryCode(direction, relations[b]),
            anchors[b],
            FIT_RELAXED_TOP_K,
          ),
          excluded: trueAnswers(timeAware, direction, anchors[b], relations[b]),
        });
      });
    }
    return builder.build();
  }

  scoringParts(
    step: number,
    version: number,
    numEntities: number,
    numRelations: number,
  ): ScoringParts {
    this.numRelations = Math.max(this.numRelations, numRelations);
    const beta = this.base ? (this.header.beta > 0 ? this.header.beta : 1e-4) : 0;
    const dense = this.base
      ? // beta is folded into Theta (the logit is linear in Theta): the graph stays Z w + c
        scaleScoringState(
          matchingState(this.kind, this.base.scoringState(step), {
            version,
            step,
            numEntities,
            numRelations,
          }),
          new Array<number>(numRelations).fill(beta),
        )
      : zeroScoringState(numEntities, numRelations, step, version);
    return {
      dense,
      terms: { kind: 'rules', spec: this.spec },
      notes: {
        model: this.kind,
        K: String(dense.K),
        form: this.header.form ?? 'recurrency (initial)',
        fittedAtStep: String(this.header.fittedAtStep ?? ''),
        baseScale: String(beta),
      },
    };
  }

  async checkpoint(): Promise<void> {
    for (const { step, set } of this.buffer) this.files.write(step, () => encodeRankQuerySet(set));
    this.header = { ...this.header, buffer: this.buffer.map((b) => b.step) };
    this.headers.write(this.header);
    await this.base?.checkpoint();
    // query files no usable header names any more (the other header is behind the base checkpoint now)
    if (this.buffer.length > 0) this.files.prune(this.buffer[0].step);
  }

  dispose(): void {
    this.pending = [];
    this.buffer = [];
    this.base?.dispose();
  }
}
