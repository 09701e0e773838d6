// Forecasts (SPEC section 4, tkg.forecasts): when a step closes, for each (subject, relation) active in the current
// window, the top-k next-step objects with the bundle's calibrated probabilities (src/model/calibration.ts).
// Owns: which pairs are active and turning scorer results into Forecast records. Must not import src/train, tfjs or
// Kafka (the caller publishes the records).
import type { Snapshot } from '../core/types.ts';
import { namedEvidence, type EvidenceRecord } from './queries.ts';
import type { ServingModel } from './model.ts';
import type { Scorer } from './scorer.ts';

/** A Forecast value (schemas/Forecast.avsc). */
export interface ForecastRecord {
  step: number;
  subject: string;
  relation: string;
  objects: Array<{
    entity: string;
    probability: number;
    score: number | null;
    evidence: EvidenceRecord[];
  }>;
  modelVersion: number;
  historyStep: number;
  calibration: string;
}

/** Pure: distinct (subject, relation) pairs of the snapshots, sorted, flat [s0, r0, s1, r1, ...]. */
export function activePairs(snapshots: readonly Snapshot[]): Int32Array {
  const seen = new Set<string>();
  const pairs: Array<[number, number]> = [];
  for (const snapshot of snapshots) {
    const t = snapshot.triples;
    for (let i = 0; i < t.length; i += 3) {
      const key = `${t[i]},${t[i + 1]}`;
      if (!seen.has(key)) {
        seen.add(key);
        pairs.push([t[i], t[i + 1]]);
      }
    }
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return Int32Array.from(pairs.flat());
}

/** Top-k objects for every active pair the model knows, scored in batches by one model. */
export async function forecastStep(
  scorer: Scorer,
  model: ServingModel,
  pairs: Int32Array,
  k: number,
  evidence = 0,
  batchSize = 256,
): Promise<ForecastRecord[]> {
  const requests = [];
  for (let i = 0; i < pairs.length; i += 2) {
    if (pairs[i] < model.numEntities && pairs[i + 1] < model.numRelations) {
      requests.push({
        direction: 'object' as const,
        anchor: pairs[i],
        relation: pairs[i + 1],
        k,
        evidence,
      });
    }
  }
  const records: ForecastRecord[] = [];
  for (let start = 0; start < requests.length; start += batchSize) {
    const chunk = requests.slice(start, start + batchSize);
    const results = await scorer.scoreBatch(chunk, model);
    results.forEach((result, i) => {
      records.push({
        step: result.step,
        subject: model.entityName(chunk[i].anchor),
        relation: model.relationName(chunk[i].relation),
        objects: Array.from(result.entities, (entity, j) => ({
          entity: model.entityName(entity),
          probability: result.probabilities[j],
          score: result.scores[j],
          evidence: namedEvidence(model, result.evidence?.[j] ?? []),
        })),
        modelVersion: result.modelVersion,
        historyStep: result.historyStep ?? -1,
        calibration: model.calibration.kind,
      });
    });
  }
  return records;
}

/**
 * The closed snapshots a replica keeps for forecasting and late evaluation: the most recent `size`, by step.
 * (Not the event-time window of src/window, nor the trainer's m-snapshot training window.)
 */
export class RecentSteps {
  private readonly size: number;
  private readonly snapshots: Snapshot[] = [];

  constructor(size: number) {
    this.size = Math.max(1, size);
  }

  push(snapshot: Snapshot): void {
    if (this.snapshots.some((s) => s.step === snapshot.step)) return;
    this.snapshots.push(snapshot);
    this.snapshots.sort((a, b) => a.step - b.step);
    while (this.snapshots.length > this.size) this.snapshots.shift();
  }

  get(step: number): Snapshot | undefined {
    return this.snapshots.find((s) => s.step === step);
  }

  /** The snapshots of the `count` steps before `step` (those kept). */
  before(step: number, count: number): Snapshot[] {
    return this.snapshots.filter((s) => s.step < step && s.step >= step - count);
  }

  get lastStep(): number | undefined {
    return this.snapshots.at(-1)?.step;
  }
}
