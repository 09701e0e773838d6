// Forecast probabilities (issue 13): a bundle maps its scores to probabilities a user can threshold. `platt` is
// per-(direction, relation) logistic calibration, p = sigmoid(a * score + b), fitted by the trainer on the stream's own
// recent steps (src/train/calibration.ts: each closed step's facts against the bundle that forecast it, with
// importance-weighted random non-facts), shrunk towards one fit per direction for relations with few facts.
// `sigmoid` (p = sigmoid(score)) is the uncalibrated mapping of a bundle trained before any step could be checked.
// Owns: the Calibration type, its JSON codec and its application. Pure; imports only src/core.
import type { Direction } from '../core/types.ts';
import { TkgError } from '../core/errors.ts';

export interface PlattCalibration {
  kind: 'platt';
  numRelations: number;
  /** Slope and intercept per slot = direction * numRelations + relation (direction 0 = object queries). */
  a: number[];
  b: number[];
  /** Per direction [object, subject]: the pooled fit used for relations with no fit of their own. */
  globalA: [number, number];
  globalB: [number, number];
  /** Closed steps the samples came from, and how many facts they held. */
  fromStep: number;
  toStep: number;
  facts: number;
}
export type Calibration = { kind: 'sigmoid' } | PlattCalibration;

export const uncalibrated: Calibration = { kind: 'sigmoid' };

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** The probability of a score under a calibration (relations outside the fit use the pooled fit). */
export function probabilityOf(
  calibration: Calibration,
  direction: Direction,
  relation: number,
  score: number,
): number {
  if (calibration.kind === 'sigmoid') return sigmoid(score);
  const d = direction === 'object' ? 0 : 1;
  if (relation >= 0 && relation < calibration.numRelations) {
    const slot = d * calibration.numRelations + relation;
    return sigmoid(calibration.a[slot] * score + calibration.b[slot]);
  }
  return sigmoid(calibration.globalA[d] * score + calibration.globalB[d]);
}

function incompatible(message: string): TkgError {
  return new TkgError(`calibration: ${message}; re-export the model`, { reason: 'incompatible' });
}

export function assertCalibration(calibration: Calibration): void {
  if (calibration?.kind === 'sigmoid') return;
  if (calibration?.kind !== 'platt')
    throw incompatible(
      `kind ${JSON.stringify((calibration as { kind?: unknown })?.kind)} is unknown (sigmoid, platt)`,
    );
  const slots = 2 * calibration.numRelations;
  const finite = (xs: unknown) => Array.isArray(xs) && xs.every((x) => Number.isFinite(x));
  if (!Number.isInteger(calibration.numRelations) || calibration.numRelations < 1)
    throw incompatible(`numRelations ${calibration.numRelations} must be a positive integer`);
  if (!finite(calibration.a) || calibration.a.length !== slots)
    throw incompatible(`a must hold ${slots} finite numbers`);
  if (!finite(calibration.b) || calibration.b.length !== slots)
    throw incompatible(`b must hold ${slots} finite numbers`);
  if (!finite(calibration.globalA) || calibration.globalA.length !== 2)
    throw incompatible('globalA must hold 2 finite numbers');
  if (!finite(calibration.globalB) || calibration.globalB.length !== 2)
    throw incompatible('globalB must hold 2 finite numbers');
}

export function encodeCalibration(calibration: Calibration): string {
  assertCalibration(calibration);
  return JSON.stringify(calibration);
}

export function decodeCalibration(text: string): Calibration {
  let calibration: Calibration;
  try {
    calibration = JSON.parse(text) as Calibration;
  } catch (error) {
    throw incompatible(`not JSON (${(error as Error).message})`);
  }
  assertCalibration(calibration);
  return calibration;
}
