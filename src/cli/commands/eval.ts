// `tkg eval`: evaluate a model on a dataset under the SPEC section 2 protocols. Wiring only: datasets
// from src/datasets, protocols and reports from src/eval, recurrency from src/baselines, NLSM / BAS
// from src/train (loaded on demand). Exit codes: 0 ok, 1 failure, 2 usage / configuration.
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.ts';
import { loadDataset } from '../../datasets/index.ts';
import {
  evaluateLink,
  evaluateTkg,
  linkTrainingProfile,
  type EvalReport,
  type LinkModelFactory,
  type TkgModelFactory,
} from '../../eval/evaluate.ts';
import { tkgProtocols, type TkgProtocol } from '../../eval/protocols.ts';
import { recurrencyLinkModel, recurrencyTkgModel } from '../../baselines/recurrency-models.ts';
import { hybridTkgModel } from '../../train/hybrid/models.ts';
import { ruleTkgModel } from '../../train/rules/models.ts';
import { parseSeedList, runLinkWorkers, trainerOverrides } from '../link-workers.ts';

interface EvalFlags {
  dataset: string;
  protocol: string;
  model: string;
  seeds?: string;
  limitSteps?: string;
  target: string;
  batchSize: string;
  perRelation?: boolean;
  json?: boolean;
  quiet?: boolean;
  // trainer overrides (NLSM / BAS); link datasets default to linkTrainingProfile
  epochs?: string;
  window?: string;
  learningRate?: string;
  negatives?: string;
  // link datasets: seeds spread over worker processes; an explicit seed list (what workers run)
  jobs?: string;
  seedList?: string;
}

const models = ['nlsm', 'bas', 'recurrency', 'nlsm-h', 'rules', 'nlsm-r'] as const;
type ModelName = (typeof models)[number];

/** The trainer, imported only when an NLSM / BAS model is asked for (tfjs loads with it). */
const loadTrainer = () => import('../../train/nlsm/index.ts');

function parseCount(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a positive integer`);
  return n;
}

/**
 * Progress lines on stderr (a script reads --json from stdout), at most one per 2 s per stream unless forced. Streams are throttled apart, so the
 * trainer's per-step lines never starve the protocol's rate / ETA line (they used to share one clock, and a training
 * line printed just before every observe line suppressed it).
 */
export function progressPrinter(
  enabled: boolean,
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): (line: string, force?: boolean, stream?: string) => void {
  const last = new Map<string, number>();
  return (line, force = false, stream = 'protocol') => {
    if (!enabled) return;
    const now = Date.now();
    if (!force && now - (last.get(stream) ?? 0) < 2000) return;
    last.set(stream, now);
    write(line);
  };
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const etaText = (s: number): string => (Number.isFinite(s) ? `${Math.round(s)}s` : '?');

function humanReport(report: EvalReport): string {
  const lines: string[] = [];
  if (report.kind === 'tkg') {
    lines.push(
      `dataset ${report.dataset}  protocol ${report.protocol}  model ${report.model}  queries ${report.queries}  ` +
        `history steps ${report.historySteps?.join('-') ?? 'none'}  ${report.target} steps ${report.testSteps.join('-')}`,
    );
    lines.push('filter       MRR    H@1    H@3   H@10   | object MRR  subject MRR');
    for (const mode of ['raw', 'static', 'timeAware'] as const) {
      const m = report[mode];
      lines.push(
        `${mode.padEnd(10)} ${fmt(m.mrr).padStart(6)} ${fmt(m.hits1).padStart(6)} ${fmt(m.hits3).padStart(6)} ${fmt(m.hits10).padStart(6)}   | ` +
          `${fmt(report.perDirection.object[mode].mrr).padStart(10)}  ${fmt(report.perDirection.subject[mode].mrr).padStart(11)}`,
      );
    }
    lines.push(
      `seconds ${report.seconds.toFixed(1)} (observe ${report.observeSeconds.toFixed(1)}, score ${report.scoreSeconds.toFixed(1)})`,
    );
  } else {
    lines.push(
      `dataset ${report.dataset}  model ${report.model}  nodes ${report.numNodes}  steps ${report.numSteps}  seeds ${report.perSeed.length}`,
    );
    lines.push(
      `Micro-AUC ${fmt(report.microAuc.mean)} ± ${fmt(report.microAuc.std)}   Macro-AUC ${fmt(report.macroAuc.mean)} ± ${fmt(report.macroAuc.std)}`,
    );
    lines.push(
      `per-step AUC: ${report.perStepAuc.map((s) => `${s.step}:${s.auc.mean.toFixed(1)}`).join(' ')}`,
    );
    lines.push(`seconds ${report.seconds.toFixed(1)}`);
  }
  for (const info of report.modelInfo.slice(0, 1)) lines.push(`model: ${JSON.stringify(info)}`);
  for (const note of report.notes) lines.push(`note: ${note}`);
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('eval')
    .description(
      'evaluate a model: TKG ranking (raw / static / time-aware MRR, Hits@1/3/10) or link forecasting (Micro / Macro AUC)',
    )
    .requiredOption(
      '--dataset <name|dir|file>',
      'yago, wiki, enron, uci, a RE-NET layout directory, or a named fact file (.tsv/.csv/.jsonl)',
    )
    .option(
      '--protocol <p>',
      `TKG protocol: ${tkgProtocols.join(' | ')} (link datasets always use single-step)`,
      'multi-step',
    )
    .option('--model <m>', `${models.join(' | ')}`, 'nlsm')
    .option(
      '--seeds <n>',
      'runs with seeds 1..n, mean (and std for AUC) reported (default: 1 for TKGs, 10 for enron/uci)',
    )
    .option('--limit-steps <n>', 'TKG: score only the first n target steps (quick runs)')
    .option(
      '--target <split>',
      "TKG: test (default) | valid = development without the test split: history = the splits before valid, target = valid (no train split, e.g. WIKI: valid's first half is the history, its second half the target); the static filter leaves test out",
      'test',
    )
    .option('--batch-size <n>', 'queries per score() call', '512')
    .option(
      '--per-relation',
      'recurrency: choose decay and alpha per relation on validation (default: one pair per dataset)',
    )
    .option('--json', 'print the report as JSON on stdout')
    .option('--quiet', 'no progress lines on stderr')
    .option(
      '--epochs <n>',
      'NLSM/BAS: Adam steps per window update (default: TKG_TRAIN_EPOCHS for TKGs, the link profile for enron/uci)',
    )
    .option(
      '--window <m>',
      'NLSM/BAS: snapshots per training window (default: TKG_WINDOW for TKGs, the link profile for enron/uci)',
    )
    .option(
      '--learning-rate <x>',
      'NLSM/BAS: Adam learning rate (default: TKG_LR / the link profile)',
    )
    .option(
      '--negatives <x>',
      'NLSM/BAS: importance-weighted negatives per positive (default: TKG_TRAIN_NEGATIVES / the link profile)',
    )
    .option(
      '--jobs <n>',
      'link datasets: spread the seeds over n worker processes (default 1; use the number of free cores)',
    )
    .option('--seed-list <a,b,...>', 'link datasets: run exactly these seeds (overrides --seeds)')
    .action(async (flags: EvalFlags) => {
      if (!(models as readonly string[]).includes(flags.model)) {
        throw new ConfigError(`--model ${flags.model}: expected one of ${models.join(', ')}`);
      }
      const model = flags.model as ModelName;
      const progress = progressPrinter(!flags.quiet);
      const log = (line: string): void => progress(line, true);
      const dataset = loadDataset(flags.dataset);
      let report: EvalReport;
      if (dataset.kind === 'tkg') {
        if (!(tkgProtocols as readonly string[]).includes(flags.protocol)) {
          throw new ConfigError(
            `--protocol ${flags.protocol}: expected one of ${tkgProtocols.join(', ')}`,
          );
        }
        if (flags.target !== 'test' && flags.target !== 'valid')
          throw new ConfigError(`--target ${flags.target}: expected test or valid`);
        const seedCount = parseCount(flags.seeds, '--seeds') ?? 1;
        let createModel: TkgModelFactory;
        if (model === 'recurrency') {
          createModel = recurrencyTkgModel({ perRelation: flags.perRelation });
        } else if (model === 'rules') {
          createModel = ruleTkgModel();
        } else {
          const trainer = await loadTrainer();
          const baseModel = model === 'nlsm-h' || model === 'nlsm-r' ? 'nlsm' : model;
          createModel = (context) =>
            trainer.createNlsmForecaster({
              model: baseModel,
              numEntities: context.numEntities,
              numRelations: context.numRelations,
              directed: true,
              seed: context.seed,
              ...trainerOverrides(flags),
              onProgress: (p) =>
                progress(
                  `train step ${p.step} loss ${p.loss.toFixed(4)} elbo ${p.elbo.toFixed(4)} (${p.seconds.toFixed(1)} s)`,
                  false,
                  'train',
                ),
            });
          // nlsm-h: NLSM logits + the fitted sparse history term (src/hybrid)
          if (model === 'nlsm-h')
            createModel = hybridTkgModel({ createBase: createModel, baseName: 'nlsm' });
          // nlsm-r: NLSM logits + the rule term (src/train/rules)
          if (model === 'nlsm-r')
            createModel = ruleTkgModel({ createBase: createModel, baseName: 'nlsm' });
        }
        report = await evaluateTkg({
          dataset,
          protocol: flags.protocol as TkgProtocol,
          modelName: model,
          createModel,
          seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
          target: flags.target,
          limitSteps: parseCount(flags.limitSteps, '--limit-steps'),
          batchSize: parseCount(flags.batchSize, '--batch-size'),
          log,
          onProgress: (p) =>
            progress(
              p.phase === 'observe'
                ? `[seed ${p.seed}] observe step ${p.step} (${p.done}/${p.total} snapshots, ETA ${etaText(p.etaSeconds)})`
                : `[seed ${p.seed}] score step ${p.step}: ${p.done}/${p.total} queries, ${Math.round(p.done / Math.max(p.elapsedSeconds, 1e-9))} q/s, ETA ${etaText(p.etaSeconds)}`,
              p.done === p.total,
            ),
        });
      } else {
        if (flags.protocol !== 'multi-step' && flags.protocol !== 'single-step') {
          throw new ConfigError(
            `--protocol ${flags.protocol}: expected single-step for link datasets`,
          );
        }
        const seedCount = parseCount(flags.seeds, '--seeds') ?? 10;
        const seeds = flags.seedList
          ? parseSeedList(flags.seedList)
          : Array.from({ length: seedCount }, (_, i) => i + 1);
        const jobs = Math.min(parseCount(flags.jobs, '--jobs') ?? 1, seeds.length);
        if (jobs > 1) {
          // each worker is `tkg eval` on its share of the seeds; the reports are merged
          report = await runLinkWorkers({ flags, model, seeds, jobs, log });
          process.stdout.write(
            flags.json ? `${JSON.stringify(report)}\n` : `${humanReport(report)}\n`,
          );
          return;
        }
        let createModel: LinkModelFactory;
        if (model === 'recurrency') {
          createModel = recurrencyLinkModel();
        } else if (model === 'nlsm-h' || model === 'nlsm-r' || model === 'rules') {
          throw new ConfigError(
            `--model ${model} ranks TKG queries; ${dataset.name} is a link-forecasting network (use nlsm, bas or recurrency)`,
          );
        } else {
          const trainer = await loadTrainer();
          createModel = (context) =>
            trainer.createNlsmForecaster({
              model,
              numEntities: context.numNodes,
              numRelations: 1,
              directed: true,
              seed: context.seed,
              // the homogeneous protocol's profile (one rule for Enron and UCI), flags override
              ...linkTrainingProfile,
              ...trainerOverrides(flags),
              onProgress: (p) =>
                progress(
                  `train step ${p.step} loss ${p.loss.toFixed(4)} (${p.seconds.toFixed(1)} s)`,
                  false,
                  'train',
                ),
            });
        }
        report = await evaluateLink({
          dataset,
          modelName: model,
          createModel,
          seeds,
          log,
          onProgress: (p) =>
            progress(
              `[seed ${p.seedIndex + 1}/${p.seeds}] forecast step ${p.step} (${p.done}/${p.total}, ETA ${etaText(p.etaSeconds)})`,
              p.done === p.total,
            ),
        });
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : `${humanReport(report)}\n`);
    });
}
