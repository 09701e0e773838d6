// A bundle's term inputs: every closed snapshot received (a replica reads them from <prefix>.snapshots), and the
// TermState a bundle's term spec needs as of the bundle's history step (its forecast step - 1). A bundle is scored
// only against the state of exactly that step: the state advances when a newer bundle asks for a later step, a spec
// of another kind or decay rebuilds it from the kept snapshots, and a query for an older step (a held model) gets a
// state rebuilt to that step. So a query is scored by one bundle and one state of its term inputs, whatever arrives
// when, and two replicas with the same bundle and snapshots compute the same term.
// Used by every serving replica and by the trainer (calibration scores each closed step with the bundle that forecast
// it). Owns: the kept snapshots and the step-pinned TermState. Pure; imports only src/core and src/model.
import type { Snapshot } from '../core/types.ts';
import { createTermState, type TermStateOptions } from './term-states.ts';
import { termSpecKey, type TermSpec, type TermState } from './terms.ts';

interface PinnedState {
  key: string;
  /** Every step <= asOf has been observed (empty snapshots for steps without one). */
  asOf: number;
  state: TermState;
}

const emptySnapshot = (step: number): Snapshot => ({
  step,
  triples: new Int32Array(0),
  numEntities: 0,
  numRelations: 0,
});

export class TermInputs {
  private readonly snapshots: Snapshot[] = [];
  private current: PinnedState | undefined;
  /** The last state rebuilt for an older step (a held model evaluated after a newer one became current). */
  private past: PinnedState | undefined;
  private readonly waiters: Array<{ step: number; resolve: () => void }> = [];
  private readonly stateOptions: TermStateOptions;

  constructor(options: TermStateOptions = {}) {
    this.stateOptions = options;
  }

  /** Last closed step received (-Infinity before the first). */
  get lastStep(): number {
    return this.snapshots.at(-1)?.step ?? Number.NEGATIVE_INFINITY;
  }

  /** A closed step, in step order (older or repeated steps are ignored). */
  add(snapshot: Snapshot): void {
    if (snapshot.step <= this.lastStep) return;
    this.snapshots.push(snapshot);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i].step <= snapshot.step) {
        this.waiters[i].resolve();
        this.waiters.splice(i, 1);
      }
    }
  }

  /** True when every closed step <= `step` has been received (a later step has arrived or is `step` itself). */
  has(step: number): boolean {
    return this.lastStep >= step;
  }

  /** Resolves once every closed step <= `step` has been received. */
  waitFor(step: number): Promise<void> {
    if (this.has(step)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ step, resolve }));
  }

  /**
   * The TermState of `spec` as of `step` (every closed step <= step observed; terms are for step + 1), or undefined
   * for a spec without a term. The caller must have waited for `step` (see has / waitFor).
   */
  stateAt(spec: TermSpec, step: number): TermState | undefined {
    if (spec.kind === 'none') return undefined;
    const key = termSpecKey(spec);
    for (const pinned of [this.current, this.past]) {
      if (pinned && pinned.key === key && pinned.asOf === step) return pinned.state;
    }
    const current = this.current;
    if (current && current.asOf <= step) {
      if (current.key === key || current.state.adopt?.(spec)) {
        current.key = key;
        this.advance(current, step);
        return current.state;
      }
    }
    const rebuilt = this.build(spec, key, step);
    if (!current || step >= current.asOf) this.current = rebuilt;
    else this.past = rebuilt;
    return rebuilt.state;
  }

  private build(spec: TermSpec, key: string, step: number): PinnedState {
    const pinned: PinnedState = {
      key,
      asOf: Number.NEGATIVE_INFINITY,
      state: createTermState(spec, this.stateOptions) as TermState,
    };
    this.advance(pinned, step);
    return pinned;
  }

  private advance(pinned: PinnedState, step: number): void {
    if (pinned.asOf >= step) return;
    for (const snapshot of this.snapshots) {
      if (snapshot.step <= pinned.state.lastStep) continue;
      if (snapshot.step > step) break;
      pinned.state.observe(snapshot);
    }
    if (pinned.state.lastStep < step) pinned.state.observe(emptySnapshot(step));
    pinned.asOf = step;
  }
}
