// Filter sets for ranking served queries (SPEC section 2), maintained from the window state: every closed
// snapshot is added as it closes. Static: (s, r, o) true at any step seen so far; time-aware: true at the same step.
// Owns: the incremental answer sets. The ranking maths itself is src/eval/rank.ts (imported, never duplicated).
// Must not import src/train, tfjs or Kafka.
import type { Direction, FilterMode, Snapshot } from '../core/types.ts';
import { type AnswerFilter, buildAnswerFilter, trueAnswers } from '../eval/rank.ts';

/** Key space for relations in the static sets (relations may grow; ids stay below this). */
const RELATION_KEY_SPACE = 1 << 20;

interface AnswerSet {
  members: Set<number>;
  sorted: Int32Array | undefined; // cache, dropped when members change
}

export class FilterIndex {
  private readonly staticObjects = new Map<number, AnswerSet>(); // key(s, r) -> objects
  private readonly staticSubjects = new Map<number, AnswerSet>(); // key(o, r) -> subjects
  private readonly byStep = new Map<number, AnswerFilter>();
  private readonly retainSteps: number;

  /** retainSteps: how many recent steps keep a time-aware filter (older ones are dropped). */
  constructor(options: { retainSteps?: number } = {}) {
    this.retainSteps = options.retainSteps ?? 32;
  }

  /** Add a closed snapshot (a duplicate add changes nothing: these are sets). */
  addSnapshot(snapshot: Snapshot): void {
    const t = snapshot.triples;
    for (let i = 0; i < t.length; i += 3) {
      const [s, r, o] = [t[i], t[i + 1], t[i + 2]];
      if (r >= RELATION_KEY_SPACE)
        throw new RangeError(`relation id ${r} exceeds the filter key space ${RELATION_KEY_SPACE}`);
      add(this.staticObjects, s * RELATION_KEY_SPACE + r, o);
      add(this.staticSubjects, o * RELATION_KEY_SPACE + r, s);
    }
    this.byStep.set(
      snapshot.step,
      buildAnswerFilter([snapshot.triples], Math.max(1, snapshot.numRelations)),
    );
    for (const step of this.byStep.keys())
      if (step <= snapshot.step - this.retainSteps) this.byStep.delete(step);
  }

  /** Entities a query's ranking leaves out (other true answers), or undefined for none. */
  excluded(
    mode: FilterMode,
    direction: Direction,
    anchor: number,
    relation: number,
    step: number,
  ): Int32Array | undefined {
    if (mode === 'raw') return undefined;
    if (mode === 'timeAware') {
      const filter = this.byStep.get(step);
      return filter && relation < filter.numRelations
        ? trueAnswers(filter, direction, anchor, relation)
        : undefined;
    }
    const map = direction === 'object' ? this.staticObjects : this.staticSubjects;
    const set = map.get(anchor * RELATION_KEY_SPACE + relation);
    if (!set) return undefined;
    set.sorted ??= Int32Array.from(set.members).sort();
    return set.sorted;
  }

  /** The time-aware filter of one step (for live evaluation), if that step was added and is retained. */
  stepFilter(step: number): AnswerFilter | undefined {
    return this.byStep.get(step);
  }
}

function add(map: Map<number, AnswerSet>, key: number, value: number): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = { members: new Set(), sorted: undefined }));
  if (!set.members.has(value)) {
    set.members.add(value);
    set.sorted = undefined;
  }
}
