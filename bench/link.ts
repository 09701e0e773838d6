// Link-forecasting benchmark (issue 5, the paper's Table 2): `npm run bench -- link [--json] [flags]`.
// Runs `tkg eval --dataset <d> --model <m> --seeds N --json` for Enron and UCI with NLSM and BAS as
// child processes (exactly what a user runs), times each, and prints Micro / Macro AUC next to the
// paper's numbers and the targets (NLSM quality; Enron <= 120 s, UCI <= 600 s for 10 seeds).
// Flags: --datasets enron,uci  --models nlsm,bas  --seeds 10  --jobs 2 (default: min(2, cores)) and overrides
// passed through to tkg eval (--epochs, --window, --learning-rate, --negatives).
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LinkEvalReport } from '../src/eval/evaluate.ts';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'src', 'cli', 'main.ts');

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Table 2 of the paper (percent, mean ± std over 10 runs). */
export const paperTable2 = {
  enron: {
    nlsm: { microAuc: 87.05, macroAuc: 86.24 },
    bas: { microAuc: 76.88, macroAuc: 77.62 },
  },
  uci: {
    nlsm: { microAuc: 86.24, macroAuc: 88.9 },
    bas: { microAuc: 78.79, macroAuc: 83.84 },
  },
} as const;

/** The wall-time targets for the 10-seed evaluation of one model. */
export const secondsTarget = { enron: 120, uci: 600 } as const;

type DatasetName = keyof typeof paperTable2;
type ModelName = 'nlsm' | 'bas';

interface Row {
  microAuc: { mean: number; std: number };
  macroAuc: { mean: number; std: number };
  seconds: number;
  seeds: number;
  numNodes: number;
  numSteps: number;
  perStepAuc: Array<{ step: number; auc: number }>;
  /** Micro / Macro AUC of each seed (spread diagnosis). */
  perSeed: Array<{ seed: number; microAuc: number; macroAuc: number }>;
  paper: { microAuc: number; macroAuc: number };
  /** NLSM only: meets the paper's Micro and Macro and the time target. */
  meetsTargets?: { quality: boolean; seconds: boolean };
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

function runEval(args: string[]): Promise<{ report: LinkEvalReport; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...process.execArgv, cli, 'eval', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderrTail = '';
    let lastShown = 0;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderrTail = (stderrTail + c).slice(-4000);
      const now = Date.now();
      if (now - lastShown > 10_000) {
        lastShown = now;
        const lines = stderrTail.trim().split('\n');
        process.stderr.write(`  ${lines[lines.length - 1]}\n`);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) {
        reject(new Error(`tkg eval ${args.join(' ')} exited ${code}: ${stderrTail.slice(-800)}`));
        return;
      }
      resolve({ report: JSON.parse(stdout.trim().split('\n').pop() ?? '{}'), seconds });
    });
  });
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const datasets = (flag(args, 'datasets') ?? 'enron,uci').split(',') as DatasetName[];
  const models = (flag(args, 'models') ?? 'nlsm,bas').split(',') as ModelName[];
  const seeds = flag(args, 'seeds') ?? '10';
  const jobs = flag(args, 'jobs') ?? String(Math.min(2, availableParallelism()));
  const passThrough: string[] = [];
  for (const name of ['epochs', 'window', 'learning-rate', 'negatives']) {
    const value = flag(args, name);
    if (value !== undefined) passThrough.push(`--${name}`, value);
  }
  const result: Record<string, Record<string, Row>> = {};
  for (const dataset of datasets) {
    if (!(dataset in paperTable2)) throw new Error(`--datasets: ${dataset} is not enron or uci`);
    result[dataset] = {};
    for (const model of models) {
      process.stderr.write(`${dataset} ${model}: tkg eval --seeds ${seeds} --jobs ${jobs} ...\n`);
      const { report, seconds } = await runEval([
        '--dataset',
        dataset,
        '--model',
        model,
        '--seeds',
        seeds,
        '--jobs',
        jobs,
        '--json',
        ...passThrough,
      ]);
      const paper = paperTable2[dataset][model];
      const row: Row = {
        microAuc: { mean: round(report.microAuc.mean), std: round(report.microAuc.std) },
        macroAuc: { mean: round(report.macroAuc.mean), std: round(report.macroAuc.std) },
        seconds: round(seconds, 1),
        seeds: report.perSeed.length,
        numNodes: report.numNodes,
        numSteps: report.numSteps,
        perStepAuc: report.perStepAuc.map((s) => ({ step: s.step, auc: round(s.auc.mean, 1) })),
        perSeed: report.perSeed.map((s) => ({
          seed: s.seed,
          microAuc: round(s.microAuc),
          macroAuc: round(s.macroAuc),
        })),
        paper,
      };
      if (model === 'nlsm') {
        row.meetsTargets = {
          quality: row.microAuc.mean >= paper.microAuc && row.macroAuc.mean >= paper.macroAuc,
          seconds: seconds <= secondsTarget[dataset] * (report.perSeed.length / 10),
        };
      }
      result[dataset][model] = row;
    }
  }
  const lines = [
    'dataset model   Micro-AUC (paper)        Macro-AUC (paper)        seconds (target, 10 seeds)',
  ];
  for (const [dataset, rows] of Object.entries(result)) {
    for (const [model, r] of Object.entries(rows)) {
      lines.push(
        `${dataset.padEnd(7)} ${model.padEnd(6)}  ${r.microAuc.mean.toFixed(2)} ± ${r.microAuc.std.toFixed(2)} (${r.paper.microAuc.toFixed(2)})   ` +
          `${r.macroAuc.mean.toFixed(2)} ± ${r.macroAuc.std.toFixed(2)} (${r.paper.macroAuc.toFixed(2)})   ` +
          `${r.seconds.toFixed(1)} (${secondsTarget[dataset as DatasetName]})`,
      );
    }
  }
  process.stderr.write(`${lines.join('\n')}\n`);
  return {
    ...result,
    settings: { seeds: Number(seeds), jobs: Number(jobs), overrides: passThrough.join(' ') },
  };
}
