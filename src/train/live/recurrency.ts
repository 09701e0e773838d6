// The recurrency reference model (src/baselines) live: a training-free model served as a zero-latent graph (every
// dense score 0) plus the recurrency term; its decay and alpha are re-selected on the stream's recent steps.
// Owns: that adapter and its checkpoint (`<dir>/recurrency.json`). Must not import Kafka or src/serve.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Snapshot } from '../../core/types.ts';
import { TkgError } from '../../core/errors.ts';
import type { RecurrencyParams } from '../../baselines/recurrency.ts';
import { writeFileAtomic } from '../../core/durable.ts';
import {
  assertObservable,
  assertReplayable,
  initialRecurrencyParams,
  liveSelection,
  zeroScoringState,
  type LiveModel,
  type LiveModelOptions,
  type ObserveResult,
  type ScoringParts,
} from './index.ts';

interface RecurrencyCheckpoint {
  format: 'tkg-live-recurrency';
  lastStep: number | null;
  params: RecurrencyParams;
  selectedAtStep: number | null;
  validationMrr: number | null;
}

/**
 * The recurrency reference model (src/baselines) live: its parameters are re-selected automatically on the
 * most recent closed steps (single-step protocol, time-aware MRR — the same rule as `tkg eval`, never future
 * steps); its "export" is a zero-latent ONNX scorer (all logits 0) whose history term carries the scores.
 */
export class RecurrencyLiveModel implements LiveModel {
  readonly kind = 'recurrency' as const;
  private readonly options: LiveModelOptions;
  private readonly path: string;
  private readonly seen: Snapshot[] = [];
  private state: RecurrencyCheckpoint;

  private constructor(options: LiveModelOptions, state: RecurrencyCheckpoint) {
    this.options = options;
    this.path = join(options.dir, 'recurrency.json');
    this.state = state;
  }

  static open(options: LiveModelOptions): RecurrencyLiveModel {
    const path = join(options.dir, 'recurrency.json');
    let state: RecurrencyCheckpoint = {
      format: 'tkg-live-recurrency',
      lastStep: null,
      params: initialRecurrencyParams,
      selectedAtStep: null,
      validationMrr: null,
    };
    if (existsSync(path)) {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as RecurrencyCheckpoint;
      if (parsed.format !== 'tkg-live-recurrency')
        throw new TkgError(
          `${path} is not a recurrency checkpoint; delete it or use another state directory`,
          { reason: 'corrupt_checkpoint' },
        );
      state = parsed;
    }
    return new RecurrencyLiveModel(options, state);
  }

  get lastStep(): number {
    return this.state.lastStep ?? Number.NEGATIVE_INFINITY;
  }

  get params(): RecurrencyParams {
    return this.state.params;
  }

  async replay(snapshot: Snapshot): Promise<void> {
    assertReplayable(snapshot.step, this.lastStep);
    const last = this.seen[this.seen.length - 1];
    if (!last || snapshot.step > last.step) this.seen.push(snapshot);
  }

  async observe(snapshot: Snapshot): Promise<ObserveResult> {
    const started = performance.now();
    assertObservable(snapshot.step, this.lastStep);
    this.seen.push(snapshot);
    this.state = { ...this.state, lastStep: snapshot.step };
    const notes: Record<string, number> = {};
    const last = this.seen[this.seen.length - 1];
    const due = liveSelection(
      this.seen,
      this.state.selectedAtStep,
      this.options,
      last.numEntities,
      Math.max(1, ...this.seen.map((s) => s.numRelations)),
    );
    if (due) {
      const { selection, firstValidationStep } = due;
      this.state = {
        ...this.state,
        params: selection.params.global,
        selectedAtStep: snapshot.step,
        validationMrr: selection.validationMrr.global,
      };
      notes.selectionSeconds = selection.seconds;
      notes.validationMrr = selection.validationMrr.global;
      this.options.onProgress?.(
        `recurrency: selected decay ${selection.params.global.decay}, alpha ${selection.params.global.alpha} on steps ${firstValidationStep}..${last.step} ` +
          `(time-aware MRR ${selection.validationMrr.global.toFixed(2)}, ${selection.seconds.toFixed(1)} s)`,
      );
    }
    return { seconds: (performance.now() - started) / 1000, notes };
  }

  scoringParts(
    step: number,
    version: number,
    numEntities: number,
    numRelations: number,
  ): ScoringParts {
    const dense = zeroScoringState(numEntities, numRelations, step, version);
    const { decay, alpha } = this.state.params;
    return {
      dense,
      terms: { kind: 'recurrency', numRelations, decay, strictWeight: 1, relaxedWeight: alpha },
      notes: {
        model: 'recurrency',
        selectedAtStep: String(this.state.selectedAtStep ?? ''),
        validationMrr: String(this.state.validationMrr ?? ''),
      },
    };
  }

  async checkpoint(): Promise<void> {
    writeFileAtomic(this.path, Buffer.from(JSON.stringify(this.state)));
  }

  dispose(): void {
    this.seen.length = 0;
  }
}
