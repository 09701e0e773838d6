// NLSM / BAS live: the tfjs sliding-window trainer (src/train/nlsm, loaded on first use so the other models run
// without tfjs), one window update per closed step; its own checkpoint in `<dir>/<kind>` is the commit point.
// Owns: that adapter. Must not import Kafka or src/serve.
import { join } from 'node:path';
import type { Direction, ScoringState, Snapshot } from '../../core/types.ts';
import {
  matchingState,
  type LiveModel,
  type LiveModelOptions,
  type ObserveResult,
  type ScoringParts,
} from './index.ts';

type TrainForecaster = import('../nlsm/index.ts').NlsmForecaster;

/**
 * NLSM (or BAS) trained on a sliding window, one update per closed step. The trainer's checkpoint in
 * `<dir>/<kind>` is the commit point; it restores its own sizes (declared 1 x 1 here, grown by snapshots).
 */
export class NlsmLiveModel implements LiveModel {
  readonly kind: 'nlsm' | 'bas';
  private readonly forecaster: TrainForecaster;
  /** Written by the trainer's onProgress callback during observe(). */
  private readonly progress: { last?: { loss: number; elbo: number } };

  private constructor(
    kind: 'nlsm' | 'bas',
    forecaster: TrainForecaster,
    progress: { last?: { loss: number; elbo: number } },
  ) {
    this.kind = kind;
    this.forecaster = forecaster;
    this.progress = progress;
  }

  static async open(options: LiveModelOptions): Promise<NlsmLiveModel> {
    // Loaded on first use, so the recurrency model runs without tfjs ever being imported.
    const module = await import('../nlsm/index.ts');
    const progress: { last?: { loss: number; elbo: number } } = {};
    const forecaster = await module.createNlsmForecaster({
      model: options.kind as 'nlsm' | 'bas',
      numEntities: 1,
      numRelations: 1,
      directed: options.directed ?? true,
      K: options.K,
      windowSize: options.windowSize,
      seed: options.seed,
      learningRate: options.learningRate,
      epochsPerWindow: options.epochsPerWindow,
      checkpointDir: join(options.dir, options.kind),
      onProgress: (p) => {
        progress.last = { loss: p.loss, elbo: p.elbo };
      },
      onNanRestore: () => options.onNanRestore?.(),
    });
    return new NlsmLiveModel(options.kind as 'nlsm' | 'bas', forecaster, progress);
  }

  get lastStep(): number {
    return this.forecaster.lastObservedStep;
  }

  /** Logits of the current state for a batch of queries ([B, N]; nlsm-h collects its fitting queries with them). */
  score(
    step: number,
    direction: Direction,
    anchors: Int32Array,
    relations: Int32Array,
    numEntities: number,
  ): Promise<Float32Array> {
    return this.forecaster.score(step, direction, anchors, relations, numEntities);
  }

  /** The trainer's scoring state (Z, Theta) for a forecast step. */
  scoringState(step: number): ScoringState {
    return this.forecaster.scoringState(step);
  }

  async replay(): Promise<void> {
    // The trainer's own checkpoint holds its window; nothing to rebuild.
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    this.progress.last = undefined;
    await this.forecaster.observe(snapshot);
    const progress = this.progress.last as { loss: number; elbo: number } | undefined; // set during observe()
    return {
      seconds: (performance.now() - started) / 1000,
      loss: progress?.loss,
      elbo: progress?.elbo,
    };
  }

  scoringParts(
    step: number,
    version: number,
    numEntities: number,
    numRelations: number,
  ): ScoringParts {
    const dense = matchingState(this.kind, this.forecaster.scoringState(step), {
      version,
      step,
      numEntities,
      numRelations,
    });
    return { dense, terms: { kind: 'none' }, notes: { model: this.kind, K: String(dense.K) } };
  }

  async checkpoint(): Promise<void> {
    await this.forecaster.checkpoint();
  }

  dispose(): void {
    this.forecaster.dispose();
  }
}
