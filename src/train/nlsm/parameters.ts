// The NLSM / BAS trainer's settings and state types, parameter naming and the parameter <-> tensor helpers shared by
// the trainer (trainer.ts), its window fit (window-fit.ts), its forecasts (forecast.ts) and checkpoints.
// Owns: TrainerSettings, Parameter, WindowSlot, UpdateReport, the GRU parameter names and the tensors of fixed
// parameters. Must not touch the training maths (graph.ts, window-fit.ts) or the random draws (src/core/random.ts Xoshiro128); must not
// import kafkajs, src/kafka, src/window or src/serve.
import * as tf from '@tensorflow/tfjs';
import { GRU_TENSOR_NAMES, type GruWeights } from './graph.ts';
import type { DrawThread } from './draw-worker.ts';

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
  /** What computes a window update's gradient: fused onnxruntime kernels (fused-fit.ts) or tfjs autodiff (window-fit.ts). */
  engine: 'onnx' | 'tfjs';
  /** Where the 'onnx' engine's epochs are drawn (draw-worker.ts; default 'worker', the same numbers either way). */
  drawThread?: DrawThread;
}

/** Hooks for fault-injection tests only. */
export interface TrainerTestHooks {
  /** Before the given epoch (1-based) of the given window update (1-based), put a NaN into the working copy of psi. */
  corruptWorkingCopy?: { update: number; epoch: number };
  /** The onnx engine's edge values (edges x K) per run (default fused-fit.ts EDGE_VALUES_PER_RUN). */
  edgeValuesPerRun?: number;
  /** Rows per block of the window shift's GRU steps (default graph.ts GRU_BLOCK_ROWS). */
  shiftBlockRows?: number;
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
  relations: number; // relations trained (of the window's facts)
  /** Seconds per phase of the fit (the 'onnx' engine: setup, draws, gradient, adam). */
  phases?: Record<string, number>;
}

export const GRU_NAMES = ['psiMeanGru', 'psiLogVarGru', 'thetaMeanGru', 'thetaLogVarGru'] as const;
export type GruName = (typeof GRU_NAMES)[number];

/** Per-slot name of a BAS parameter. */
export const basName = (base: string, slot: number): string => `${base}@${slot}`;

/** The four GRUs as tensors of the current fixed parameters (the caller disposes them: disposeGru). */
export function gruTensors(params: ReadonlyMap<string, Parameter>): Record<GruName, GruWeights> {
  const out = {} as Record<GruName, GruWeights>;
  for (const name of GRU_NAMES) {
    const w = {} as Record<string, tf.Tensor>;
    for (const part of GRU_TENSOR_NAMES) w[part] = toTensor(params.get(`${name}.${part}`)!);
    out[name] = w as unknown as GruWeights;
  }
  return out;
}

export function disposeGru(weights: Record<string, GruWeights>): void {
  for (const w of Object.values(weights)) for (const part of GRU_TENSOR_NAMES) w[part].dispose();
}

/** A fixed parameter as a tensor: [rows, width] matrix, or [width] vector when it has one row. */
export function toTensor(p: Pick<Parameter, 'value' | 'width'>): tf.Tensor {
  return p.value.length === p.width
    ? tf.tensor1d(p.value)
    : tf.tensor2d(p.value, [p.value.length / p.width, p.width]);
}
