// `npm run bench -- scale [--json] [--sizes 10000,100000,1000000] [--facts 1000,10000,100000] [--updates 3]
//   [--big-updates 1] [--epochs 16] [--cell-budget 240] [--serve-seconds 2] [--relations 20] [--wide-relations 200]
//   [--shards 2] [--serve-only] [--no-kafka]`
// Cost curves of main's engine on synthetic graphs in the RE-NET layout (src/datasets/synthetic.ts: 60% of each
// step's facts recurring from the last 10 steps, Zipf-like degrees): for each N (entities) by facts per step F,
// ingest facts/s (IngestState: decode, validate, vocabulary, window, checkpoint; no broker: `npm run bench -- ingest`
// measures the broker path), NLSM window update p50 / p90 (m = 5, --epochs Adam steps; the window is filled by
// one-step warm-up updates first) next to its dense bound (the same GRU GEMMs by onnxruntime on one thread and the
// edges' multiply-adds at that GEMM rate, measured in the same cell), the export of the scoring state, peak RSS; and
// per N the serving rate at batch 64 (in-process onnxruntime Scorer over all N entities) and its p99 next to a plain
// onnxruntime Gemm of the same shape, plus the bundle (ONNX) bytes; the same bundle as --shards shard graphs in worker
// threads (src/serve/sharded-scorer.ts) next to --shards times a one-thread Gemm over N / shards entities (skipped with
// --shards 1), and through Kafka (a ServeReplica on the broker, one session, then --shards shards in worker threads,
// then as a front over --shards `tkg shard` processes; 4 batches of 64 in flight; skipped with --no-kafka; a bundle
// over the inline limit travels in pieces on tkg.models.chunks). One extra
// training cell at --wide-relations relations shows the cost in R.
// Every cell runs in its own child process (its own peak RSS), one after the other. A training cell whose predicted
// time (from the measured fact-epoch rate of the smaller F at the same N) exceeds --cell-budget seconds, or whose N
// already failed at a smaller F, is skipped with the reason printed and written.
import { loadConfig } from '../src/config/config.ts';
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  WINDOW,
  type Job,
  ingestCell,
  kafkaServeCell,
  serveCell,
  shardedServeCell,
} from './scale/cells.ts';
import { trainCell } from './scale/train-cell.ts';

const self = fileURLToPath(import.meta.url);
type Result = Record<string, unknown>;

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}
const list = (s: string) => s.split(',').map(Number);
const log = (line: string) => process.stderr.write(`${line}\n`);

/** One cell in a child process; its stderr is passed through, its last stdout line is the result. */
function runChild(job: Job): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, self, '--scale-child', JSON.stringify(job)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let tail = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      // tfjs-wasm prints its whole minified module with an uncaught error: pass through readable lines only
      for (const line of text.split('\n')) if (line.length > 0 && line.length < 400) log(line);
    });
    child.on('close', (code, signal) => {
      const lines = stdout.trim().split('\n').filter(Boolean);
      const last = lines.length ? (JSON.parse(lines[lines.length - 1]) as Result) : {};
      if (code === 0 && !('error' in last)) return resolve(last);
      if (code === 0) return resolve(last); // the cell caught its own failure and says what it measured
      const reason =
        (last.error as string | undefined) ??
        tail
          .split('\n')
          .filter((l) => l.length > 0 && l.length < 400 && /Error|error/.test(l))
          .slice(0, 2)
          .join(' / ');
      resolve({ ...last, error: `child exited with ${code ?? signal}: ${reason || 'no message'}` });
    });
  });
}

const fmt = (v: unknown, digits = 0): string =>
  typeof v === 'number' && Number.isFinite(v)
    ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '-';

function table(
  title: string,
  sizes: number[],
  facts: number[],
  cell: (N: number, F: number) => string,
) {
  return [
    title,
    `| N \\ facts per step | ${facts.map((f) => f.toLocaleString('en-US')).join(' | ')} |`,
    `|---|${facts.map(() => '---').join('|')}|`,
    ...sizes.map(
      (N) => `| ${N.toLocaleString('en-US')} | ${facts.map((F) => cell(N, F)).join(' | ')} |`,
    ),
  ].join('\n');
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const sizes = list(flag(args, 'sizes', '10000,100000,1000000'));
  // --serve-only: the serving cells alone (no ingest or training cells)
  const serveOnly = args.includes('--serve-only');
  const facts = serveOnly
    ? []
    : list(flag(args, 'facts', '1000,10000,100000')).sort((a, b) => a - b);
  const updates = Number(flag(args, 'updates', '3'));
  const bigUpdates = Number(flag(args, 'big-updates', '1')); // measured updates at 10,000 facts per step and more
  const epochs = Number(flag(args, 'epochs', '16'));
  const budget = Number(flag(args, 'cell-budget', '240'));
  const serveSeconds = Number(flag(args, 'serve-seconds', '2'));
  const R = Number(flag(args, 'relations', '20'));
  const wideR = Number(flag(args, 'wide-relations', '200'));
  const loadBefore = loadavg();
  const key = (N: number, F: number) => `${N}x${F}`;
  const ingest: Record<string, Result> = {};
  const train: Record<string, Result> = {};
  const serve: Record<string, Result> = {};
  const sharded: Record<string, Result> = {};
  const throughKafka: Record<string, Result> = {};
  const noKafka = args.includes('--no-kafka');
  const shards = Number(flag(args, 'shards', '2'));
  const skipped: Record<string, string> = {};
  const cellsTotal =
    sizes.length * ((shards > 1 ? 2 : 1) + (noKafka ? 0 : 1) + 2 * facts.length) +
    (serveOnly ? 0 : 1);
  let cellsDone = 0;
  const cell = async (label: string, job: Job): Promise<Result> => {
    const started = performance.now();
    const elapsed = (started - t0) / 1000;
    const eta = cellsDone > 0 ? ((elapsed / cellsDone) * (cellsTotal - cellsDone)).toFixed(0) : '?';
    log(
      `scale ${cellsDone + 1}/${cellsTotal}: ${label} (elapsed ${elapsed.toFixed(0)} s, rough ETA ${eta} s)`,
    );
    const result = await runChild(job);
    cellsDone++;
    log(
      `  ${label} done in ${((performance.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(result)}`,
    );
    return result;
  };
  const skip = (label: string, why: string) => {
    cellsDone++;
    skipped[label] = why;
    log(`scale: skipping ${label}: ${why}`);
  };
  for (const N of sizes) {
    serve[N] = await cell(`serve N=${N}`, { kind: 'serve', N, R, seconds: serveSeconds });
    if (shards > 1)
      sharded[N] = await cell(`serve N=${N} ${shards} shards`, {
        kind: 'serve-sharded',
        N,
        R,
        seconds: serveSeconds,
        shards,
      });
    if (!noKafka)
      throughKafka[N] = await cell(`serve N=${N} through Kafka`, {
        kind: 'serve-kafka',
        N,
        R,
        seconds: Math.max(2, serveSeconds),
        shards: Math.max(2, shards),
      });
    for (const F of facts) {
      const steps = Math.max(2, Math.min(10, Math.ceil(300_000 / F)));
      ingest[key(N, F)] = await cell(`ingest N=${N} F=${F}`, { kind: 'ingest', N, F, R, steps });
    }
    for (const [i, F] of facts.entries()) {
      const label = `train N=${N} F=${F}`;
      const n = F >= 10_000 ? bigUpdates : updates;
      // the largest smaller F at this N that ran (measured or failed), and whether one was skipped for the budget
      const smallerF = facts.slice(0, i).reverse();
      const ranF = smallerF.find((f) => train[key(N, f)] !== undefined);
      const smaller = ranF === undefined ? undefined : train[key(N, ranF)];
      const overBudget = smallerF.find((f) =>
        skipped[`train N=${N} F=${f}`]?.startsWith('predicted'),
      );
      if (smaller && typeof smaller.error === 'string') {
        skip(label, `N=${N} already failed at F=${ranF} (${smaller.error})`);
        continue;
      }
      if (overBudget !== undefined) {
        skip(label, `F=${overBudget} at N=${N} was already predicted over the cell budget`);
        continue;
      }
      if (smaller && typeof smaller.factEpochsPerCpuSecond === 'number') {
        // warm-up: WINDOW - 1 one-step updates over 1..WINDOW-1 steps of facts, then n full updates
        const fullWindow = WINDOW * F;
        const predicted =
          (fullWindow * epochs * n + (F * WINDOW * (WINDOW - 1)) / 2) /
          smaller.factEpochsPerCpuSecond;
        if (predicted > budget) {
          skip(
            label,
            `predicted ${predicted.toFixed(0)} CPU s (${n} update(s) of ${fullWindow} window facts x ${epochs} Adam steps at the ${fmt(smaller.factEpochsPerCpuSecond)} fact-epochs per CPU s measured at F=${ranF}) > cell budget ${budget} s`,
          );
          continue;
        }
      }
      train[key(N, F)] = await cell(label, { kind: 'train', N, F, R, updates: n, epochs });
    }
  }
  const wideKey = key(sizes[0], facts[0]);
  const wide: Result = serveOnly
    ? {}
    : await cell(`train N=${sizes[0]} F=${facts[0]} R=${wideR}`, {
        kind: 'train',
        N: sizes[0],
        F: facts[0],
        R: wideR,
        updates,
        epochs,
      });
  const t = (N: number, F: number) => train[key(N, F)];
  const g = (N: number, F: number) => ingest[key(N, F)];
  const trainCellText = (N: number, F: number, text: (r: Result) => string) => {
    const r = t(N, F);
    if (!r) return 'skipped';
    return typeof r.error === 'string' ? 'failed' : text(r);
  };
  const tables = [
    table(
      'ingest facts/s (IngestState: decode, validate, vocabulary, window, checkpoint per step; no broker)',
      sizes,
      facts,
      (N, F) => (g(N, F)?.error ? 'failed' : fmt(g(N, F)?.factsPerSecond)),
    ),
    table(
      `window update p50 / p90 s (m = ${WINDOW}, ${epochs} Adam steps; updates measured)`,
      sizes,
      facts,
      (N, F) =>
        trainCellText(
          N,
          F,
          (r) =>
            `${fmt(r.updateSecondsP50, 2)} / ${fmt(r.updateSecondsP90, 2)} (${fmt(r.updates)})`,
        ),
    ),
    table(
      'window update CPU s p50 / dense bound CPU s (update / bound; the bound counts every FLOP at the GEMM rate of the cell)',
      sizes,
      facts,
      (N, F) =>
        trainCellText(
          N,
          F,
          (r) =>
            `${fmt(r.updateCpuSecondsP50, 2)} / ${fmt(r.boundSeconds, 3)} (${fmt(r.ratioToBound, 0)}x)`,
        ),
    ),
    table(
      'dense bound: GEMM GFLOP/s (onnxruntime, GRU shapes) / scalar JS edge loop GFLOP/s',
      sizes,
      facts,
      (N, F) =>
        trainCellText(N, F, (r) => `${fmt(r.boundGemmGflops, 1)} / ${fmt(r.edgeLoopGflops, 2)}`),
    ),
    table('fact-epochs per CPU second (touched rows)', sizes, facts, (N, F) =>
      trainCellText(N, F, (r) => `${fmt(r.factEpochsPerCpuSecond)} (${fmt(r.touchedRows)})`),
    ),
    table('export of the scoring state s (z, Theta rolled over all N rows)', sizes, facts, (N, F) =>
      trainCellText(N, F, (r) => fmt(r.exportSeconds, 2)),
    ),
    table(
      'peak RSS MiB: train / ingest',
      sizes,
      facts,
      (N, F) => `${fmt(t(N, F)?.peakRssMiB)} / ${fmt(g(N, F)?.peakRssMiB)}`,
    ),
  ];
  const serveTable = [
    `serving (in-process onnxruntime Scorer, one thread, top-10, batch 64, R = ${R})`,
    '| N | queries/s | batch p99 ms | plain Gemm queries/s | scorer / Gemm | bundle MiB | peak RSS MiB |',
    '|---|---|---|---|---|---|---|',
    ...sizes.map((N) => {
      const s = serve[N] ?? {};
      return `| ${N.toLocaleString('en-US')} | ${fmt(s.queriesPerSecond)} | ${fmt(s.batchP99Ms, 1)} | ${fmt(s.gemmQueriesPerSecond)} | ${fmt(s.ratioToGemm, 2)} | ${fmt(Number(s.bundleBytes) / 2 ** 20, 1)} | ${fmt(s.peakRssMiB)} |`;
    }),
    '',
    `sharded serving (${shards} shard graphs, one worker thread and one onnxruntime thread each, 2 batches in flight, top-10, batch 64)`,
    `| N | queries/s | batch p99 ms | ${shards} x Gemm of N/${shards} queries/s | sharded / bound | MiB per shard | peak RSS MiB |`,
    '|---|---|---|---|---|---|---|',
    ...sizes.map((N) => {
      const s = sharded[N] ?? {};
      const bytes = (s.shardBytes as number[] | undefined) ?? [];
      return `| ${N.toLocaleString('en-US')} | ${fmt(s.queriesPerSecond)} | ${fmt(s.batchP99Ms, 1)} | ${fmt(s.boundQueriesPerSecond)} | ${fmt(s.ratioToBound, 2)} | ${fmt(Math.max(...bytes) / 2 ** 20, 1)} | ${fmt(s.peakRssMiB)} |`;
    }),
    '',
    `through Kafka (ServeReplica on the broker, ${loadConfig().partitions} query partitions, 4 batches of 64 queries in flight, top-10; query = produce call to answer)`,
    `| N | 1 session: queries/s | p50 / p99 ms | load s | ${Math.max(2, shards)} shards: queries/s | p50 / p99 ms | load s | ${Math.max(2, shards)} shard processes: queries/s | p50 / p99 ms | load s |`,
    '|---|---|---|---|---|---|---|---|---|---|',
    ...sizes.map((N) => {
      const k = throughKafka[N] ?? {};
      if (typeof k.error === 'string')
        return `| ${N.toLocaleString('en-US')} | ${k.error} | | | | | | | | |`;
      const cellsOf = (r: Result) =>
        `${fmt(r.queriesPerSecond)} | ${fmt(r.queryP50Ms, 1)} / ${fmt(r.queryP99Ms, 1)} | ${fmt(r.readySeconds, 1)}`;
      const [one, many, apart] = [k.unsharded, k.sharded, k.shardReplicas].map(
        (r) => (r ?? {}) as Result,
      );
      return `| ${N.toLocaleString('en-US')} | ${cellsOf(one)} | ${cellsOf(many)} | ${cellsOf(apart)} |`;
    }),
  ].join('\n');
  const relationsLine = `relations: train N=${sizes[0]} F=${facts[0]}: R=${R} ${fmt(t(sizes[0], facts[0])?.updateSecondsP50, 2)} s p50, R=${wideR} ${wide.error ? 'failed' : `${fmt(wide.updateSecondsP50, 2)} s p50`}`;
  const skippedLines = Object.entries(skipped).map(([label, why]) => `skipped ${label}: ${why}`);
  const failedLines = [
    ...Object.entries(train).map(([k, r]) => [`train ${k}`, r] as const),
    ...Object.entries(ingest).map(([k, r]) => [`ingest ${k}`, r] as const),
    ...Object.entries(serve).map(([k, r]) => [`serve ${k}`, r] as const),
    ...Object.entries(sharded).map(([k, r]) => [`serve ${k} ${shards} shards`, r] as const),
    ...Object.entries(throughKafka).map(([k, r]) => [`serve ${k} through Kafka`, r] as const),
    [`train ${wideKey} R=${wideR}`, wide] as const,
  ]
    .filter(([, r]) => typeof r.error === 'string')
    .map(([label, r]) => `failed ${label}: ${String(r.error)}`);
  const seconds = (performance.now() - t0) / 1000;
  const loadAfter = loadavg();
  log(
    `\n${[...tables, serveTable, ...(serveOnly ? [] : [relationsLine]), ...skippedLines, ...failedLines].join('\n\n')}\n`,
  );
  log(
    `scale bench: ${seconds.toFixed(0)} s on ${cpus().length} CPUs, load average before ${loadBefore.map((x) => x.toFixed(1)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(1)).join(' ')} (a shared machine: ratios to the bounds are measured in the same cell)`,
  );
  return {
    sizes,
    factsPerStep: facts,
    relations: R,
    K: 64,
    windowSize: WINDOW,
    epochs,
    updatesPerCell: { small: updates, big: bigUpdates },
    cellBudgetSeconds: budget,
    ingestPath:
      'IngestState (decode, validate, vocabulary, event-time window, checkpoint per step); no broker',
    ingest,
    train,
    serve,
    sharded,
    throughKafka,
    wideRelations: { relations: wideR, N: sizes[0], factsPerStep: facts[0], result: wide },
    skipped,
    seconds: Math.round(seconds),
    cpus: cpus().length,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadAfter,
  };
}

if (process.argv[2] === '--scale-child') {
  const job = JSON.parse(process.argv[3]) as Job;
  let result: Result;
  try {
    result =
      job.kind === 'ingest'
        ? ingestCell(job)
        : job.kind === 'train'
          ? await trainCell(job)
          : job.kind === 'serve'
            ? await serveCell(job)
            : job.kind === 'serve-sharded'
              ? await shardedServeCell(job)
              : await kafkaServeCell(job);
  } catch (error) {
    result = { error: `${(error as Error).name}: ${(error as Error).message.split('\n')[0]}` };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
