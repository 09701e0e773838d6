// Wiring for `tkg eval` on link datasets: trainer overrides from flags, seed lists, and running the
// seeds in parallel worker processes (each a `tkg eval --seed-list ... --json`), merged by
// src/eval's mergeLinkReports. Owns process spawning only; no evaluation logic of its own.
import { spawn } from 'node:child_process';
import { ConfigError, TkgError } from '../core/errors.ts';
import { mergeLinkReports, type LinkEvalReport } from '../eval/evaluate.ts';

/** The trainer flags of `tkg eval` (strings as commander gives them). */
export interface TrainerFlags {
  dataset: string;
  epochs?: string;
  window?: string;
  learningRate?: string;
  negatives?: string;
}

function positiveNumber(
  value: string | undefined,
  flag: string,
  integer: boolean,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new ConfigError(
      `${flag} ${JSON.stringify(value)}: expected a positive ${integer ? 'integer' : 'number'}`,
    );
  }
  return n;
}

/** createNlsmForecaster options set by flags (absent flags stay absent, so defaults apply). */
export function trainerOverrides(flags: TrainerFlags): {
  epochsPerWindow?: number;
  windowSize?: number;
  learningRate?: number;
  negativesPerPositive?: number;
} {
  const out: ReturnType<typeof trainerOverrides> = {};
  const epochs = positiveNumber(flags.epochs, '--epochs', true);
  const window = positiveNumber(flags.window, '--window', true);
  const learningRate = positiveNumber(flags.learningRate, '--learning-rate', false);
  const negatives = positiveNumber(flags.negatives, '--negatives', false);
  if (epochs !== undefined) out.epochsPerWindow = epochs;
  if (window !== undefined) out.windowSize = window;
  if (learningRate !== undefined) out.learningRate = learningRate;
  if (negatives !== undefined) out.negativesPerPositive = negatives;
  return out;
}

/** `3,4,7` -> [3, 4, 7] (distinct non-negative integers). */
export function parseSeedList(text: string): number[] {
  const seeds = text.split(',').map((part) => part.trim());
  const out: number[] = [];
  for (const part of seeds) {
    const n = Number(part);
    if (part === '' || !Number.isSafeInteger(n) || n < 0 || out.includes(n)) {
      throw new ConfigError(
        `--seed-list ${JSON.stringify(text)}: expected distinct non-negative integers separated by commas, e.g. 1,2,3`,
      );
    }
    out.push(n);
  }
  return out;
}

/** Seeds dealt round-robin to `jobs` workers (seed i to worker i mod jobs). */
export function dealSeeds(seeds: readonly number[], jobs: number): number[][] {
  const shares: number[][] = Array.from({ length: jobs }, () => []);
  seeds.forEach((seed, i) => shares[i % jobs].push(seed));
  return shares.filter((share) => share.length > 0);
}

/**
 * Runs `tkg eval` once per share of the seeds in child processes of this same executable (same node
 * flags, same environment), relays their progress lines with a worker prefix, and merges the reports.
 */
export async function runLinkWorkers(input: {
  flags: TrainerFlags & { quiet?: boolean };
  model: string;
  seeds: readonly number[];
  jobs: number;
  log: (line: string) => void;
}): Promise<LinkEvalReport> {
  const t0 = performance.now();
  const { flags } = input;
  const shares = dealSeeds(input.seeds, input.jobs);
  const trainerArgs: string[] = [];
  if (flags.epochs !== undefined) trainerArgs.push('--epochs', flags.epochs);
  if (flags.window !== undefined) trainerArgs.push('--window', flags.window);
  if (flags.learningRate !== undefined) trainerArgs.push('--learning-rate', flags.learningRate);
  if (flags.negatives !== undefined) trainerArgs.push('--negatives', flags.negatives);
  input.log(`running seeds ${input.seeds.join(',')} in ${shares.length} worker processes`);
  const reports = await Promise.all(
    shares.map((share, worker) =>
      runWorker(
        [
          'eval',
          '--dataset',
          flags.dataset,
          '--model',
          input.model,
          '--seed-list',
          share.join(','),
          '--json',
          ...(flags.quiet ? ['--quiet'] : []),
          ...trainerArgs,
        ],
        (line) => input.log(`[worker ${worker + 1}] ${line}`),
      ),
    ),
  );
  const merged = mergeLinkReports(reports, (performance.now() - t0) / 1000);
  merged.notes = [
    ...merged.notes,
    `seeds run in ${shares.length} parallel worker processes (${shares.map((s) => s.join(',')).join(' | ')}); seconds is the wall time`,
  ];
  return merged;
}

function runWorker(args: string[], relay: (line: string) => void): Promise<LinkEvalReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    let stdout = '';
    let pending = '';
    const stderrTail: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        stderrTail.push(line);
        if (stderrTail.length > 20) stderrTail.shift();
        relay(line);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(
          new TkgError(
            `worker \`tkg ${args.join(' ')}\` exited with code ${code}: ${stderrTail.slice(-5).join(' | ')}`,
            { reason: 'worker_failed' },
          ),
        );
        return;
      }
      try {
        const report = JSON.parse(stdout.trim().split('\n').pop() ?? '') as LinkEvalReport;
        if (report.kind !== 'link') throw new Error(`kind ${String(report.kind)}`);
        resolve(report);
      } catch (error) {
        reject(
          new TkgError(
            `worker \`tkg ${args.join(' ')}\` printed no link report: ${(error as Error).message}`,
            { reason: 'worker_failed' },
          ),
        );
      }
    });
  });
}
