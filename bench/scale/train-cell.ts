// The training measurement of `npm run bench -- scale`, run in its own child process: window updates of main's NLSM
// trainer (src/train/nlsm, its default engine: TKG_TRAIN_ENGINE) on the synthetic stream, m = 5, a fixed number of Adam
// steps per update, and in the same process the dense bound of that arithmetic: the same GRU matrix products by a
// plain onnxruntime MatMul (one thread: what one core does at these shapes) plus the multiply-adds of the sampled
// edges counted at that GEMM rate, without the gathers,
// transcendentals, allocations, tfjs dispatches and Adam of the real update. Also the export of the scoring state
// (scoringState: z and Theta rolled to the next step over all N rows). Must not hold driver or table logic.
import * as ort from 'onnxruntime-node';
import { mulberry32 } from '../../src/core/random.ts';
import { productSession } from '../lib/gemm-bound.ts';
import { createNlsmForecaster, type UpdateReport } from '../../src/train/nlsm/index.ts';
import { K, WINDOW, type Job, cpuSeconds, log, peakRssMiB, quantile, stream } from './cells.ts';

/** GEMM [m, k] x [k, n] by onnxruntime (one thread, output pre-allocated), `times` times; returns CPU seconds. */
async function timedMatMul(m: number, k: number, n: number, times: number): Promise<number> {
  const session = await productSession('MatMul', m, k, n, m * 31 + n);
  const a = new ort.Tensor('float32', Float32Array.from({ length: m * k }, mulberry32(m + n)), [
    m,
    k,
  ]);
  const c = new ort.Tensor('float32', new Float32Array(m * n), [m, n]);
  await session.run({ a }, { c }); // warm
  const c0 = process.cpuUsage();
  for (let i = 0; i < times; i++) await session.run({ a }, { c });
  const seconds = cpuSeconds(c0);
  await session.release();
  return seconds;
}

/** `passes` K-wide multiply-adds per edge, out[e] += z[e] * coef[relation of e] (typed arrays, no allocation). */
function edgePasses(
  zs: Float32Array,
  coef: Float32Array,
  out: Float32Array,
  edges: number,
  R: number,
  passes: number,
  width: number,
): void {
  const block = zs.length;
  const table = R * width;
  for (let pass = 0; pass < passes; pass++) {
    let base = 0;
    let at = 0;
    for (let e = 0; e < edges; e++) {
      for (let k = 0; k < width; k++) out[at + k] += zs[at + k] * coef[base + k];
      base += width;
      if (base === table) base = 0;
      at += width;
      if (at === block) at = 0;
    }
  }
}

/**
 * The dense bound of one window update: per epoch and window step, the GRU products of the four GRUs (psi mean and
 * log-variance over the U touched rows, width K; theta mean and log-variance over R rows, width D = 4K) forward and
 * backward (3 GEMMs each, by onnxruntime), and 7 K-wide multiply-add passes per sampled edge (forward 2, backward 5)
 * counted at the FLOP rate those GEMMs reached (the machine's dense rate). The same edge passes as a scalar
 * typed-array loop are timed too (edgeLoop*: what plain JS reaches). CPU seconds, like the update it bounds.
 */
async function denseBound(
  U: number,
  R: number,
  L: number,
  edges: number,
  epochs: number,
): Promise<{
  seconds: number;
  gemmSeconds: number;
  gemmGflops: number;
  edgeLoopSeconds: number;
  edgeLoopGflops: number;
  flops: number;
}> {
  const D = 4 * K;
  const calls = epochs * (L - 1) * 2; // two GRUs of each kind
  let gemmSeconds = 0;
  for (const [m, k, n] of [
    [U, K, 3 * K], // forward
    [U, 3 * K, K], // backward: dh
    [K, U, 3 * K], // backward: dW
    [R, D, 3 * D],
    [R, 3 * D, D],
    [D, R, 3 * D],
  ])
    gemmSeconds += await timedMatMul(m, k, n, calls);
  const gemmFlops = calls * 3 * 2 * (U * K * 3 * K + R * D * 3 * D);
  // a cache-sized block of edge rows (the arithmetic, not the memory traffic of the gathers, is what this bounds)
  const zs = Float32Array.from({ length: Math.min(edges, 4096) * K }, (_, i) => (i % 97) / 97);
  const coef = Float32Array.from({ length: R * K }, (_, i) => (i % 89) / 89 - 0.5);
  const out = new Float32Array(zs.length);
  const c0 = process.cpuUsage();
  edgePasses(zs, coef, out, edges, R, 7 * epochs, K);
  const edgeSeconds = cpuSeconds(c0);
  if (!Number.isFinite(out[0])) throw new Error('dense bound overflowed');
  const edgeFlops = epochs * 7 * 2 * edges * K;
  const gemmRate = gemmFlops / gemmSeconds;
  return {
    // the edge arithmetic at the dense rate the GEMMs reached in this cell (the machine), not at the scalar loop's
    seconds: gemmSeconds + edgeFlops / gemmRate,
    gemmSeconds,
    gemmGflops: gemmRate / 1e9,
    edgeLoopSeconds: edgeSeconds,
    edgeLoopGflops: edgeFlops / edgeSeconds / 1e9,
    flops: gemmFlops + edgeFlops,
  };
}

export async function trainCell(
  job: Extract<Job, { kind: 'train' }>,
): Promise<Record<string, unknown>> {
  const forecaster = await createNlsmForecaster({
    model: 'nlsm',
    numEntities: job.N,
    numRelations: job.R,
    directed: true,
    seed: 1,
    windowSize: WINDOW,
    epochsPerWindow: job.epochs,
    minEpochsPerWindow: job.epochs,
  });
  const settings = forecaster.trainer.settings;
  const warmup = WINDOW - 1;
  const wall: number[] = [];
  const cpu: number[] = [];
  const universe: number[] = [];
  const phaseSeconds: Record<string, number> = {};
  const warmupSeconds: number[] = [];
  let windowFacts = 0;
  let last: UpdateReport | null = null;
  let step = 0;
  const started = performance.now();
  for (const snapshot of stream(job.N, job.F, job.R, warmup + job.updates)) {
    // warm-up updates (filling the window) train one Adam step each; the measured ones the full count
    const measured = step >= warmup;
    settings.epochsPerWindow = measured ? job.epochs : 1;
    settings.minEpochsPerWindow = settings.epochsPerWindow;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let report: UpdateReport | null;
    try {
      report = await forecaster.trainer.observe(snapshot);
    } catch (error) {
      // e.g. the wasm heap running out at large N: report what was measured up to here
      return {
        error: `${(error as Error).name}: ${(error as Error).message.split('\n')[0]} (in update ${step + 1}, after ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
        backend: forecaster.backend,
        warmupSeconds,
        updateSeconds: wall,
        rssMiBAtFailure: Math.round(process.memoryUsage().rss / 2 ** 20),
        peakRssMiB: peakRssMiB(),
      };
    }
    const seconds = (performance.now() - t0) / 1000;
    windowFacts = Math.min(step + 1, WINDOW) * (snapshot.triples.length / 3);
    if (report) last = report;
    if (!measured) warmupSeconds.push(seconds);
    if (measured && report) {
      wall.push(seconds);
      cpu.push(cpuSeconds(c0));
      universe.push(report.universe);
      for (const [phase, seconds] of Object.entries(report.phases ?? {}))
        phaseSeconds[phase] = (phaseSeconds[phase] ?? 0) + seconds;
    }
    const done = step + 1;
    const elapsed = (performance.now() - started) / 1000;
    log(
      `    train N=${job.N} F=${job.F} ${measured ? 'update' : 'warm-up'} ${done}/${warmup + job.updates}: ${seconds.toFixed(2)} s, ${report?.epochs ?? 0} Adam steps, ${report?.universe ?? 0} rows, ${windowFacts} window facts, RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB (elapsed ${elapsed.toFixed(0)} s)`,
    );
    step++;
  }
  const e0 = performance.now();
  forecaster.scoringState(forecaster.lastObservedStep + 1);
  const exportSeconds = (performance.now() - e0) / 1000;
  const U = Math.max(...universe);
  const edges = Math.round(windowFacts * (1 + settings.negativesPerPositive));
  const bound = await denseBound(U, job.R, WINDOW, edges, job.epochs);
  const factEpochs = windowFacts * job.epochs * wall.length;
  const cpuP50 = quantile(cpu, 0.5);
  forecaster.dispose();
  return {
    backend: forecaster.backend,
    engine: settings.engine,
    updates: wall.length,
    epochs: job.epochs,
    negativesPerPositive: settings.negativesPerPositive,
    windowFacts,
    touchedRows: U,
    elboPerFact: last?.elbo,
    warmupSeconds,
    updateSeconds: wall,
    updateSecondsP50: quantile(wall, 0.5),
    // seconds per phase of the fit, summed over the measured updates (the 'onnx' engine reports them)
    phaseSeconds,
    updateSecondsP90: quantile(wall, 0.9),
    updateCpuSecondsP50: cpuP50,
    factEpochsPerCpuSecond: Math.round(factEpochs / cpu.reduce((a, b) => a + b, 0)),
    boundSeconds: bound.seconds,
    boundFlops: bound.flops,
    boundGemmSeconds: bound.gemmSeconds,
    boundGemmGflops: bound.gemmGflops,
    edgeLoopSeconds: bound.edgeLoopSeconds,
    edgeLoopGflops: bound.edgeLoopGflops,
    ratioToBound: cpuP50 / bound.seconds,
    exportSeconds,
    peakRssMiB: peakRssMiB(),
  };
}
