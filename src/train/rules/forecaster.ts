// The rule model as a TkgForecaster (issue 15): score(o) = beta * logit_base(o) + term(o), the term from
// RuleTermState (src/model/rule-term.ts: recurrence, length-1 temporal rules with lag-bucketed confidences, two-hop
// path rules, popularity), its rules mined online by RuleMiner as steps close. While the history is observed it
// collects fitting queries at the planned steps (the end of the history: fit steps, then selection steps), each
// scored BEFORE it is observed, in the protocol's own way (multi-step: the block rolled forward from the step before
// it; single-step: one step at a time). The ranker is fitted at the first score() (fit.ts), never on a target step.
// Owns: the collection schedule, online mining and the combination at score time. No tfjs (the base is passed in).
import type { Direction, Snapshot, TkgForecaster } from '../../core/types.ts';
import { RF, queryCode, type RuleTermSpec } from '../../model/rule-spec.ts';
import { RuleTermState } from '../../model/rule-term.ts';
import { RuleMiner, type RuleMinerOptions } from './miner.ts';
import { RankQueryBuilder, type RankQuerySet } from './ranker.ts';
import { fitRuleRanker, relaxedTopKOfForm, type RuleFitReport } from './fit.ts';
import { targetsDue, type FittingPhase, type FittingPlan } from '../fitting-plan.ts';
import { TargetQueries } from '../target-queries.ts';

/** The fitting plan (src/train/fitting-plan.ts) and the seed of its query sampling. */
export interface RulePlan extends FittingPlan {
  seed?: number;
}

export interface RuleForecasterOptions {
  numEntities: number;
  numRelations: number;
  /** The initial spec: decays, path window / fanout, relaxedTopK (rules and weights are mined and fitted). */
  spec: RuleTermSpec;
  /** The recurrency baseline's relaxed weight on the same selection splits (the guard's reference form). */
  recurrencyAlpha: number;
  plan?: RulePlan;
  miner?: RuleMinerOptions;
  batchSize?: number;
  log?: (line: string) => void;
}

type Phase = FittingPhase;

/** A log that prints at most one line every 2 s. */
export function throttled(log: ((line: string) => void) | undefined): (line: string) => void {
  let last = 0;
  return (line) => {
    const now = Date.now();
    if (log === undefined || now - last < 2000) return;
    last = now;
    log(line);
  };
}

export class RuleForecaster implements TkgForecaster {
  readonly name: string;
  readonly state: RuleTermState;
  readonly miner: RuleMiner;
  private beta = 0;
  private fitted = false;
  private report: RuleFitReport | undefined;
  private readonly builders: Record<Phase, RankQueryBuilder>;
  private readonly collected = new Set<string>();
  private readonly targets: TargetQueries;
  /** Seconds spent mining, observing the term state and collecting / fitting (for the eval's speed report). */
  readonly seconds = { mine: 0, state: 0, collect: 0, fit: 0, terms: 0 };

  constructor(
    readonly base: TkgForecaster | undefined,
    private readonly options: RuleForecasterOptions,
  ) {
    this.name = base ? `${base.name}+rules` : 'rules';
    this.state = new RuleTermState(options.spec);
    this.miner = new RuleMiner(options.spec, options.numRelations, options.miner);
    this.builders = {
      fit: new RankQueryBuilder(RF, base !== undefined, 32, 32, 11),
      validation: new RankQueryBuilder(RF, base !== undefined, 32, 32, 13),
    };
    this.targets = new TargetQueries({
      plan: options.plan,
      numRelations: options.numRelations,
      batchSize: options.batchSize,
    });
  }

  /** The spec in use: the fitted weights and the rules as mined so far (a state built from it scores the same). */
  get spec(): RuleTermSpec {
    const spec = this.state.currentSpec;
    return { ...spec, ...this.miner.rules(spec.numRelations) };
  }

  get baseScale(): number {
    return this.beta;
  }

  get fitReport(): RuleFitReport | undefined {
    return this.report;
  }

  async observe(snapshot: Snapshot): Promise<void> {
    if (!this.fitted && this.options.plan !== undefined) await this.collectBefore(snapshot);
    let t0 = performance.now();
    this.miner.observe(snapshot, this.state, this.state.currentSpec.pathWindow);
    this.seconds.mine += (performance.now() - t0) / 1000;
    t0 = performance.now();
    this.state.observe(snapshot);
    this.miner.applyUpdates(this.state);
    this.seconds.state += (performance.now() - t0) / 1000;
    if (this.base) await this.base.observe(snapshot);
  }

  async score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    this.ensureFitted();
    const B = anchors.length;
    let scores: Float32Array;
    if (this.base && this.beta > 0) {
      scores = await this.base.score(step, direction, anchors, relations, numEntities);
      for (let i = 0; i < scores.length; i++) scores[i] *= this.beta;
    } else scores = new Float32Array(B * numEntities);
    const t0 = performance.now();
    const next = step === this.state.lastStep + 1;
    for (let b = 0; b < B; b++) {
      const row = next
        ? this.state.terms(direction, anchors[b], relations[b])
        : this.state.termsAt(step, direction, anchors[b], relations[b]);
      if (row === undefined) continue;
      const offset = b * numEntities;
      for (let i = 0; i < row.entities.length; i++)
        scores[offset + row.entities[i]] += row.values[i];
    }
    this.seconds.terms += (performance.now() - t0) / 1000;
    return scores;
  }

  /**
   * Sparse scores (the term rows; every other entity scores 0) when there is no base model in use; the protocol
   * ranks them in O(nnz). With a base model in use this is not offered (see `scoreSparse` below).
   */
  async scoreSparseRows(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
  ): Promise<Array<{ entities: Int32Array; values: Float32Array; defaultScore: number }>> {
    this.ensureFitted();
    const t0 = performance.now();
    const next = step === this.state.lastStep + 1;
    const rows = Array.from(anchors, (anchor, b) => {
      const row = next
        ? this.state.terms(direction, anchor, relations[b])
        : this.state.termsAt(step, direction, anchor, relations[b]);
      return {
        entities: row?.entities ?? new Int32Array(0),
        values: row?.values ?? new Float32Array(0),
        defaultScore: 0,
      };
    });
    this.seconds.terms += (performance.now() - t0) / 1000;
    return rows;
  }

  /** Fits the ranker from the collected queries now (called by the first score()). */
  ensureFitted(): void {
    if (this.fitted) return;
    this.fitted = true;
    const t0 = performance.now();
    let fit: RankQuerySet = this.builders.fit.build();
    let validation: RankQuerySet = this.builders.validation.build();
    if (fit.answer.length === 0) fit = validation;
    if (validation.answer.length === 0) validation = fit;
    const fittedTopK = this.options.spec.relaxedTopK;
    if (fit.answer.length === 0) {
      this.options.log?.(
        'rules: no fitting queries were collected; scoring with the recurrency form',
      );
      this.state.setWeights(this.state.currentSpec.weights, relaxedTopKOfForm(null, fittedTopK));
      return;
    }
    const { theta, report } = fitRuleRanker({
      fit,
      validation,
      recurrencyAlpha: this.options.recurrencyAlpha,
    });
    this.beta = this.base ? theta[0] : 0;
    this.state.setWeights(
      Array.from(theta.subarray(1)),
      relaxedTopKOfForm(report.chosen.form, fittedTopK),
    );
    this.report = report;
    this.seconds.fit += (performance.now() - t0) / 1000;
    const text = (m: { raw: number; static: number; timeAware: number }) =>
      `${m.raw.toFixed(2)}/${m.static.toFixed(2)}/${m.timeAware.toFixed(2)}`;
    const reference = report.forms.find((f) => f.form === 'reference');
    this.options.log?.(
      `rules: fitted on ${report.fitQueries} queries, selected on ${report.validationQueries} (${report.chosen.form}): ` +
        `validation raw/static/time-aware MRR ${text(report.chosen.validation)}` +
        (reference ? ` vs reference (recurrency) ${text(reference.validation)}` : '') +
        `; ${this.spec.rules.length} rules, ${this.spec.paths.length} paths (${report.seconds.toFixed(1)} s)`,
    );
  }

  private async collectBefore(snapshot: Snapshot): Promise<void> {
    for (const { phase, target } of targetsDue(this.options.plan!, snapshot.step))
      await this.collect(phase, target);
  }

  private async collect(phase: Phase, target: Snapshot): Promise<void> {
    const key = `${phase}:${target.step}`;
    if (this.collected.has(key)) return;
    this.collected.add(key);
    const t0 = performance.now();
    await this.addQueries(target, this.builders[phase], this.targets.rate(phase));
    this.seconds.collect += (performance.now() - t0) / 1000;
  }

  /** Queries of a target step as the forecaster sees them now (base logits and term features); observes nothing. */
  async querySetOf(targets: readonly Snapshot[]): Promise<RankQuerySet> {
    const builder = new RankQueryBuilder(RF, this.base !== undefined, 32, 32, 17);
    for (const target of targets) await this.addQueries(target, builder, 1);
    return builder.build();
  }

  private async addQueries(
    target: Snapshot,
    builder: RankQueryBuilder,
    rate: number,
  ): Promise<void> {
    const N = this.options.numEntities;
    await this.targets.forEachBatch(target, rate, async (batch) => {
      const { direction, anchors, relations, answers } = batch;
      const rows = this.base
        ? await this.base.score(target.step, direction, anchors, relations, N)
        : undefined;
      for (let b = 0; b < anchors.length; b++) {
        const [anchor, relation] = [anchors[b], relations[b]];
        builder.add({
          numEntities: N,
          row: rows?.subarray(b * N, (b + 1) * N),
          answer: answers[b],
          candidates: this.state.candidatesAt(
            target.step,
            queryCode(direction, relation),
            anchor,
            this.options.spec.relaxedTopK,
          ),
          excluded: batch.excluded(b),
          staticExcluded: batch.staticExcluded(b),
        });
      }
    });
  }
}
