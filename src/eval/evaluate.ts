// End-to-end evaluation of a dataset under a protocol (what `tkg eval` runs). Owns: choosing the
// history / target / selection splits of each dataset, the static filter, running the TKG or link
// protocol with a model factory, and the result records (JSON shape of `tkg eval --json`).
// Models are passed in as factories: src/eval never imports src/train, kafkajs or src/kafka.
import type { LinkForecaster, Snapshot, TkgForecaster } from '../core/types.ts';
import { ConfigError } from '../core/errors.ts';
import { linkSnapshots, tkgSnapshots, type Dataset } from '../datasets/index.ts';
import { type LinkDataset } from '../datasets/events.ts';
import { type SplitName, type TkgDataset } from '../datasets/renet.ts';
import { meanStd, runLinkProtocol, type LinkEvaluation, type LinkProgress } from './link.ts';
import {
  runTkgProtocol,
  type ProtocolProgress,
  type StepRanking,
  type TkgEvaluation,
  type TkgProtocol,
} from './protocols.ts';
import { averageMetrics, buildAnswerFilter, type RankMetrics } from './rank.ts';

/** Splits a TKG model may use to choose its hyperparameters (never the test split). */
export interface SelectionSplits {
  history: Snapshot[];
  validation: Snapshot[];
  description: string;
}

export interface TkgModelContext {
  numEntities: number;
  numRelations: number;
  protocol: TkgProtocol;
  seed: number;
  selection: SelectionSplits;
  log: (line: string) => void;
}

export interface LinkModelContext {
  numNodes: number;
  seed: number;
  /** Early snapshots a model may use for hyperparameter selection. */
  selection: SelectionSplits;
  log: (line: string) => void;
}

export type TkgModelFactory = (
  context: TkgModelContext,
) => Promise<TkgForecaster & { dispose?: () => void; describe?: () => unknown }>;
export type LinkModelFactory = (
  context: LinkModelContext,
) => Promise<LinkForecaster & { dispose?: () => void; describe?: () => unknown }>;

export type Metrics4 = Pick<RankMetrics, 'mrr' | 'hits1' | 'hits3' | 'hits10'>;

export interface TkgEvalReport {
  kind: 'tkg';
  dataset: string;
  protocol: TkgProtocol;
  /** The forecast split: test, or valid (--target valid, development). */
  target: EvalTarget;
  model: string;
  raw: Metrics4;
  static: Metrics4;
  timeAware: Metrics4;
  perDirection: {
    object: Record<'raw' | 'static' | 'timeAware', Metrics4>;
    subject: Record<'raw' | 'static' | 'timeAware', Metrics4>;
  };
  queries: number;
  historySteps: [number, number] | null;
  testSteps: [number, number];
  steps: StepRanking[];
  seeds: number[];
  /** Model description (e.g. the recurrency parameters chosen on validation). */
  modelInfo: unknown[];
  notes: string[];
  observeSeconds: number;
  scoreSeconds: number;
  seconds: number;
}

export interface LinkEvalReport {
  kind: 'link';
  dataset: string;
  protocol: 'single-step';
  model: string;
  numNodes: number;
  numSteps: number;
  microAuc: { mean: number; std: number };
  macroAuc: { mean: number; std: number };
  perStepAuc: LinkEvaluation['perStepAuc'];
  perSeed: Array<{
    seed: number;
    microAuc: number;
    macroAuc: number;
    steps: Array<{ step: number; positives: number; auc: number }>;
  }>;
  modelInfo: unknown[];
  notes: string[];
  seconds: number;
}

const strip = (m: RankMetrics): Metrics4 => ({
  mrr: m.mrr,
  hits1: m.hits1,
  hits3: m.hits3,
  hits10: m.hits10,
});
const range = (s: readonly Snapshot[]): [number, number] | null =>
  s.length === 0 ? null : [s[0].step, s[s.length - 1].step];

/** Share of the history's facts held by the selection steps carved from its end (selectionSplit). */
export const SELECTION_FACT_SHARE = 0.1;

/**
 * The one selection rule of every dataset and of the live stream: the validation steps are the history's last steps
 * that together hold at least SELECTION_FACT_SHARE of its facts and are at least `minSteps` steps, but never more than
 * half of the steps (the selection needs a history of its own); the selection history is everything before them. The multi-step protocol passes its horizon (the number
 * of steps it forecasts) as minSteps, so a model is selected at the horizons it will forecast at. Nobody hands a stream a validation split, so none is used here.
 */
export function selectionSplit(history: readonly Snapshot[], minSteps = 1): SelectionSplits {
  if (history.length < 2)
    throw new ConfigError(`selection needs at least 2 history steps, got ${history.length}`);
  const total = history.reduce((n, s) => n + s.triples.length / 3, 0);
  const most = Math.max(1, Math.floor(history.length / 2));
  let k = 0;
  let facts = 0;
  while (k < most && (k < minSteps || facts < SELECTION_FACT_SHARE * total)) {
    facts += history[history.length - 1 - k].triples.length / 3;
    k++;
  }
  const split = history.length - k;
  return {
    history: history.slice(0, split),
    validation: history.slice(split),
    description: `history steps ${history[0].step}-${history[split - 1].step} -> selection steps ${history[split].step}-${history[history.length - 1].step} (the history's last ${k} steps, ${Math.round((100 * facts) / Math.max(1, total))}% of its facts)`,
  };
}

/** Which split `tkg eval` forecasts: the test split (the default), or valid (development, never reads test). */
export type EvalTarget = 'test' | 'valid';

/**
 * History / targets / selection of a TKG dataset.
 * - target 'test' (default): targets = test and history = every other split (YAGO: train + valid; WIKI here: valid
 *   only); a dataset without a test split (ICEWS14's development copy: train + valid) has history = train and
 *   targets = valid.
 * - target 'valid' (development): targets = valid and history = the splits before it (train); a dataset without a
 *   train split (WIKI here) splits valid itself: history = its first ceil(n / 2) steps, targets = its last
 *   floor(n / 2). The test split is never read (nor is it in the static filter, see staticFilterSplits).
 * Selection: selectionSplit(history), the same rule for every dataset.
 */
export function tkgSplits(
  dataset: TkgDataset,
  target: EvalTarget = 'test',
): {
  history: Snapshot[];
  targets: Snapshot[];
  selection: SelectionSplits;
  notes: string[];
} {
  const notes: string[] = [];
  const { train, valid, test } = dataset.splits;
  let history: Snapshot[];
  let targets: Snapshot[];
  if (target === 'valid') {
    if (valid === undefined)
      throw new ConfigError(`--target valid: dataset ${dataset.name} has no valid split`);
    if (train !== undefined) {
      history = tkgSnapshots(dataset, ['train']);
      targets = tkgSnapshots(dataset, ['valid']);
      notes.push('--target valid: history = train, target = valid (the test split is not read)');
    } else {
      const steps = tkgSnapshots(dataset, ['valid']);
      if (steps.length < 3)
        throw new ConfigError(
          `--target valid: dataset ${dataset.name} has no train split and only ${steps.length} valid steps; need at least 3 to split valid into history and target`,
        );
      const split = Math.ceil(steps.length / 2);
      history = steps.slice(0, split);
      targets = steps.slice(split);
      notes.push(
        `--target valid without a train split: history = valid steps ${history[0].step}-${history[split - 1].step}, target = valid steps ${targets[0].step}-${targets[targets.length - 1].step} (the test split is not read)`,
      );
    }
  } else if (test !== undefined) {
    targets = tkgSnapshots(dataset, ['test']);
    if (train === undefined && valid === undefined)
      throw new ConfigError(
        `dataset ${dataset.name} has only a test split; need train or valid as history`,
      );
    history = tkgSnapshots(dataset, train !== undefined ? ['train', 'valid'] : ['valid']);
    if (train === undefined)
      notes.push(
        `train split not available: valid (steps ${history[0].step}-${history[history.length - 1].step}) is the history, test the target (a shorter history than the paper's)`,
      );
  } else {
    if (train === undefined || valid === undefined)
      throw new ConfigError(
        `dataset ${dataset.name} has no test split and not both train and valid; evaluation needs test.txt, or train.txt + valid.txt (history = train, target = valid)`,
      );
    history = tkgSnapshots(dataset, ['train']);
    targets = tkgSnapshots(dataset, ['valid']);
    notes.push('no test split: history = train, target = valid (development split)');
  }
  return { history, targets, selection: selectionSplit(history), notes };
}

/** The splits whose facts the static filter removes: all of them, or (target valid) every split but test. */
export function staticFilterSplits(target: EvalTarget): SplitName[] {
  return target === 'valid' ? ['train', 'valid'] : ['train', 'valid', 'test'];
}

function averageOverSeeds(parts: RankMetrics[]): Metrics4 {
  return strip(averageMetrics(parts));
}

/** Runs the TKG protocol once per seed and reports direction-averaged metrics (mean over seeds). */
export async function evaluateTkg(input: {
  dataset: TkgDataset;
  protocol: TkgProtocol;
  modelName: string;
  createModel: TkgModelFactory;
  seeds: number[];
  /** 'valid': develop without the test split (tkgSplits); default 'test'. */
  target?: EvalTarget;
  limitSteps?: number;
  batchSize?: number;
  onProgress?: (p: ProtocolProgress & { seed: number }) => void;
  log?: (line: string) => void;
}): Promise<TkgEvalReport> {
  const t0 = performance.now();
  const { dataset } = input;
  const log = input.log ?? (() => {});
  const target = input.target ?? 'test';
  const { history, targets: allTargets, notes, ...splits } = tkgSplits(dataset, target);
  const targets =
    input.limitSteps !== undefined ? allTargets.slice(0, input.limitSteps) : allTargets;
  // multi-step forecasts the whole target block from its origin: select at that horizon
  const selection =
    input.protocol === 'multi-step' ? selectionSplit(history, allTargets.length) : splits.selection;
  if (targets.length < allTargets.length)
    notes.push(
      `--limit-steps ${input.limitSteps}: ${targets.length} of ${allTargets.length} target steps scored`,
    );
  const staticFilter = buildAnswerFilter(
    tkgSnapshots(dataset, staticFilterSplits(target)).map((s) => s.triples),
    dataset.numRelations,
  );
  const runs: TkgEvaluation[] = [];
  const modelInfo: unknown[] = [];
  for (const seed of input.seeds) {
    const model = await input.createModel({
      numEntities: dataset.numEntities,
      numRelations: dataset.numRelations,
      protocol: input.protocol,
      seed,
      selection,
      log,
    });
    if (model.describe) modelInfo.push(model.describe());
    try {
      runs.push(
        await runTkgProtocol({
          forecaster: model,
          history,
          targets,
          protocol: input.protocol,
          staticFilter,
          numEntities: dataset.numEntities,
          numRelations: dataset.numRelations,
          batchSize: input.batchSize,
          onProgress: (p) => input.onProgress?.({ ...p, seed }),
        }),
      );
    } finally {
      model.dispose?.();
    }
  }
  const modes = ['raw', 'static', 'timeAware'] as const;
  const per = (direction: 'object' | 'subject') =>
    Object.fromEntries(
      modes.map((m) => [m, averageOverSeeds(runs.map((r) => r.perDirection[direction][m]))]),
    ) as Record<(typeof modes)[number], Metrics4>;
  return {
    kind: 'tkg',
    dataset: dataset.name,
    protocol: input.protocol,
    target: dataset.splits.test === undefined ? 'valid' : target,
    model: input.modelName,
    raw: averageOverSeeds(runs.map((r) => r.raw)),
    static: averageOverSeeds(runs.map((r) => r.static)),
    timeAware: averageOverSeeds(runs.map((r) => r.timeAware)),
    perDirection: { object: per('object'), subject: per('subject') },
    queries: runs[0].queries,
    historySteps: range(history),
    testSteps: range(targets)!,
    steps: runs[0].steps,
    seeds: input.seeds,
    modelInfo,
    // the split chooser's notes supersede the loader's "train split not available" remark
    notes: [
      ...dataset.notes.filter(() => !notes.some((m) => m.includes('train split'))),
      ...notes,
      `hyperparameter selection: ${selection.description}`,
    ],
    observeSeconds: runs.reduce((a, r) => a + r.observeSeconds, 0),
    scoreSeconds: runs.reduce((a, r) => a + r.scoreSeconds, 0),
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Selection splits of a link dataset for models with hyperparameters: the first half of the series
 * (history = its first steps, validation = its last 2 steps). The link protocol forecasts every
 * step, so these overlap early forecast targets; said in the report notes.
 */
export function linkSelection(snapshots: readonly Snapshot[]): SelectionSplits {
  const half = Math.max(2, Math.floor(snapshots.length / 2));
  const v = Math.min(2, half - 1);
  return {
    history: snapshots.slice(0, half - v),
    validation: snapshots.slice(half - v, half),
    description: `steps 0-${half - v - 1} -> ${half - v}-${half - 1} (first half of the series)`,
  };
}

/**
 * Trainer options of the homogeneous-network protocol (Enron, UCI): chosen once and used for every
 * link dataset (never per dataset). Every option is pinned here, so the trainer's streaming defaults
 * (src/config, tuned for YAGO / WIKI) do not move these results. Plain data: src/eval does not import
 * the trainer; `tkg eval` passes these to createNlsmForecaster, flags override some of them.
 * Deviations from the paper's settings, and why (measured on Enron and UCI, one seed, README table):
 * - sTheta 0.01 (paper 0.1). History: the theta log-variance GRU (H = K * 4 = 256) used to take the
 *   raw log-variance as its hidden state, so one Adam step could flip its update gates and throw the
 *   log-variance into tanh's range [-1, 1] (theta std ~1: every logit shifted by tens of nats, UCI
 *   seeds collapsed to Micro-AUC 65-70). The trainer now runs log-variance GRUs in the frame
 *   log(s^2) + scale * h (src/train/nlsm/graph.ts logVarGruStep), which fixed the collapse for any s;
 *   0.01 stays because it is still a little better (UCI, 2-3 seeds: Micro 86.1 vs 85.7 with 0.1;
 *   Enron 89.8 vs 89.2).
 * - learningRate 0.03 with 30 Adam steps per update (paper 0.01, epochs unstated): the time budget
 *   (10 seeds of Enron in 2 minutes) allows ~30 steps per update.
 * - windowSize 3: each update trains the last 3 snapshots (initial state warm-started and evolved by
 *   the GRUs); 5 and 16 were no better and slower.
 */
export const linkTrainingProfile = {
  K: 64,
  windowSize: 3,
  epochsPerWindow: 30,
  minEpochsPerWindow: 30,
  convergenceTolerance: 0,
  learningRate: 0.03,
  /** Importance-weighted negatives per positive and step. */
  negativesPerPositive: 10,
  uniformNegativeFraction: 0.2,
  /** Std of a new node's psi mean (z = sigmoid(psi) stays away from 0 / 1). */
  initScale: 1,
  sPsi: 0.1,
  sTheta: 0.01,
  sigmaPsi: 10,
  sigmaTheta: 10,
} as const;

/** The paper's link-forecasting protocol over seeds (Micro / Macro AUC, mean and std). */
export async function evaluateLink(input: {
  dataset: LinkDataset;
  modelName: string;
  createModel: LinkModelFactory;
  seeds: number[];
  onProgress?: (p: LinkProgress) => void;
  log?: (line: string) => void;
}): Promise<LinkEvalReport> {
  const t0 = performance.now();
  const { dataset } = input;
  const snapshots = linkSnapshots(dataset);
  const selection = linkSelection(snapshots);
  const modelInfo: unknown[] = [];
  const result = await runLinkProtocol({
    snapshots,
    seeds: input.seeds,
    onProgress: input.onProgress,
    createForecaster: async (seed) => {
      const model = await input.createModel({
        numNodes: dataset.numNodes,
        seed,
        selection,
        log: input.log ?? (() => {}),
      });
      if (model.describe) modelInfo.push(model.describe());
      return model;
    },
  });
  return {
    kind: 'link',
    dataset: dataset.name,
    protocol: 'single-step',
    model: input.modelName,
    numNodes: dataset.numNodes,
    numSteps: dataset.numSteps,
    microAuc: result.microAuc,
    macroAuc: result.macroAuc,
    perStepAuc: result.perStepAuc,
    perSeed: result.seeds,
    modelInfo,
    notes: [
      ...dataset.notes,
      `slicing: origin ${dataset.slicing.origin}, granularity ${dataset.slicing.granularity}, fold after ${dataset.slicing.foldAfter}`,
      'positives: distinct links i -> j (i != j) of step t + 1 between nodes seen in steps <= t; negatives: as many distinct sampled non-links among seen nodes (seeded by seed and step)',
    ],
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * One report from link reports over disjoint seed sets (e.g. seeds run by parallel worker
 * processes): Micro / Macro mean and std over all seeds, per-step means recomputed from the seeds'
 * step AUCs, seeds in ascending order. `seconds` is the caller's wall time.
 */
export function mergeLinkReports(
  reports: readonly LinkEvalReport[],
  seconds: number,
): LinkEvalReport {
  if (reports.length === 0) {
    throw new ConfigError('mergeLinkReports: no reports to merge (every worker failed?)');
  }
  const first = reports[0];
  for (const r of reports) {
    if (r.dataset !== first.dataset || r.model !== first.model || r.numNodes !== first.numNodes) {
      throw new ConfigError(
        `mergeLinkReports: ${r.dataset}/${r.model}/${r.numNodes} nodes does not match ${first.dataset}/${first.model}/${first.numNodes}`,
      );
    }
  }
  const perSeed = reports.flatMap((r) => r.perSeed).sort((a, b) => a.seed - b.seed);
  const seen = new Set<number>();
  for (const s of perSeed) {
    if (seen.has(s.seed)) throw new ConfigError(`mergeLinkReports: seed ${s.seed} appears twice`);
    seen.add(s.seed);
  }
  const stepNumbers = [...new Set(perSeed.flatMap((r) => r.steps.map((s) => s.step)))].sort(
    (a, b) => a - b,
  );
  return {
    ...first,
    microAuc: meanStd(perSeed.map((r) => r.microAuc)),
    macroAuc: meanStd(perSeed.map((r) => r.macroAuc)),
    perStepAuc: stepNumbers.map((step) => ({
      step,
      auc: meanStd(
        perSeed.flatMap((r) => r.steps.filter((s) => s.step === step).map((s) => s.auc)),
      ),
    })),
    perSeed,
    modelInfo: reports.flatMap((r) => r.modelInfo),
    seconds,
  };
}

export type EvalReport = TkgEvalReport | LinkEvalReport;
export type { Dataset };
