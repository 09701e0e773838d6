// The model bundle (SPEC section 7): everything a score depends on, the only thing that crosses from training to
// serving. Training builds bundles (src/train/stage.ts), `<prefix>.models` carries them as ModelAnnouncement records
// (schemas/ModelAnnouncement.avsc: this file is the record's codec), serving loads them (src/serve/bundle-watcher.ts).
//   score(query, e) = (Z w + c)[e]  (the ONNX graph, src/model/scoring-graph.ts)
//                   + term(query, e) (terms: TermSpec over the closed snapshots up to step - 1, src/model/terms.ts)
//   probability     = calibration(score) (src/model/calibration.ts)
// Owns: ModelBundle, ModelAnnouncement and the conversion between them (with validation naming the field).
// Pure; must not import tfjs, onnxruntime, Kafka, src/train or src/serve.
import { TkgError } from '../core/errors.ts';
import {
  decodeCalibration,
  encodeCalibration,
  uncalibrated,
  type Calibration,
} from './calibration.ts';
import {
  decodeTermSpec,
  encodeTermSpec,
  termSpecFromLegacyMetadata,
  type TermSpec,
} from './terms.ts';

export interface ModelBundle {
  /** Announcement key on <prefix>.models: what `tkg serve --model <name>` serves. */
  name: string;
  /** Model kind that produced it (nlsm, bas, recurrency, nlsm-h, ...). */
  kind: string;
  /** Monotonic version (per name). */
  version: number;
  /** The step it forecasts; its term is computed from the closed steps before it (the history step = step - 1). */
  step: number;
  /** The last closed step it was trained on (-1 when unknown). */
  trainedStep: number;
  createdAt: string;
  /** Names by dense id, and their hash (also in the ONNX metadata). */
  entities: string[];
  relations: string[];
  vocabularyHash: string;
  /** The scoring graph: inline ONNX bytes, or a location (path or file:// URL). */
  onnx: Uint8Array | null;
  location: string | null;
  terms: TermSpec;
  calibration: Calibration;
  /** Training notes (train seconds, ELBO, selected form, ...), informational only. */
  notes: Record<string, string>;
}

/** A ModelAnnouncement value (schemas/ModelAnnouncement.avsc). */
export interface ModelAnnouncement {
  name: string;
  version: number;
  step: number;
  createdAt: string;
  vocabularyHash: string;
  onnx: Uint8Array | null;
  location: string | null;
  entities: string[];
  relations: string[];
  metadata: Record<string, string>;
  kind: string;
  trainedStep: number;
  /** TermSpec JSON ('' in announcements written before bundles: the term is then read from metadata). */
  terms: string;
  /** Calibration JSON ('' = uncalibrated). */
  calibration: string;
}

/** The history step of a bundle: its term is computed from every closed step <= this. */
export function historyStepOf(bundle: { step: number }): number {
  return bundle.step - 1;
}

export function bundleToAnnouncement(bundle: ModelBundle): ModelAnnouncement {
  return {
    name: bundle.name,
    version: bundle.version,
    step: bundle.step,
    createdAt: bundle.createdAt,
    vocabularyHash: bundle.vocabularyHash,
    onnx: bundle.onnx,
    location: bundle.location,
    entities: bundle.entities,
    relations: bundle.relations,
    metadata: bundle.notes,
    kind: bundle.kind,
    trainedStep: bundle.trainedStep,
    terms: encodeTermSpec(bundle.terms),
    calibration: encodeCalibration(bundle.calibration),
  };
}

/** A bundle from an announcement; throws a TkgError (reason 'incompatible') naming the invalid field. */
export function bundleFromAnnouncement(announcement: ModelAnnouncement): ModelBundle {
  const where = `model ${announcement.name} version ${announcement.version}`;
  if (announcement.entities.length === 0 || announcement.relations.length === 0)
    throw new TkgError(`${where}: the announcement has an empty vocabulary`, {
      reason: 'incompatible',
    });
  let terms: TermSpec;
  let calibration: Calibration;
  try {
    terms = announcement.terms
      ? decodeTermSpec(announcement.terms)
      : termSpecFromLegacyMetadata(announcement.metadata, announcement.relations.length);
    calibration = announcement.calibration
      ? decodeCalibration(announcement.calibration)
      : uncalibrated;
  } catch (error) {
    throw new TkgError(`${where}: ${(error as Error).message}`, {
      reason: 'incompatible',
      cause: error,
    });
  }
  return {
    name: announcement.name,
    kind: announcement.kind || announcement.metadata.model || announcement.name,
    version: announcement.version,
    step: announcement.step,
    trainedStep: announcement.trainedStep ?? -1,
    createdAt: announcement.createdAt,
    entities: announcement.entities,
    relations: announcement.relations,
    vocabularyHash: announcement.vocabularyHash,
    onnx: announcement.onnx,
    location: announcement.location,
    terms,
    calibration,
    notes: announcement.metadata,
  };
}
