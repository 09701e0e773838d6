// Datasets. Owns: turning a dataset name or path into TkgDataset / LinkDataset, snapshots and
// named FactEvents. Used by `tkg eval`, `tkg publish` and tests. Must not import kafkajs,
// src/kafka, src/train or tfjs.
import { statSync } from 'node:fs';
import type { FactEvent, Snapshot } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import { findMaybeGzipped, resolveDatasetDirectory } from './files.ts';
import {
  linkFactEvents,
  loadEnron,
  loadNamedFactFile,
  loadUci,
  type LinkDataset,
} from './events.ts';
import { loadRenetDataset, tkgFactEvents, type SplitName, type TkgDataset } from './renet.ts';
import type { SlicingRule } from './slicing.ts';
import { concatFacts, toSnapshots, type FactArray } from './snapshots.ts';

export * from './files.ts';
export * from './events.ts';
export * from './renet.ts';
export * from './slicing.ts';
export * from './snapshots.ts';
export * from './synthetic.ts';
export { Vocabulary } from './vocabulary.ts';

export type Dataset = TkgDataset | LinkDataset;

/**
 * Loads `yago`, `wiki`, `enron`, `uci`, any RE-NET layout directory, an Enron / KONECT-style
 * directory, or a single named fact file (.tsv/.csv/.jsonl, optionally .gz).
 */
export function loadDataset(nameOrPath: string, options: { slicing?: SlicingRule } = {}): Dataset {
  const path = resolveDatasetDirectory(nameOrPath);
  if (statSync(path).isFile()) return loadNamedFactFile(path, options.slicing);
  if (findMaybeGzipped(path, 'emails.csv')) return loadEnron(path);
  if (findMaybeGzipped(path, 'out.opsahl-ucsocial')) return loadUci(path);
  const builtin = ['yago', 'wiki'].includes(nameOrPath.toLowerCase())
    ? nameOrPath.toLowerCase()
    : undefined;
  return loadRenetDataset(path, builtin);
}

export function loadTkgDataset(nameOrPath: string): TkgDataset {
  const dataset = loadDataset(nameOrPath);
  if (dataset.kind !== 'tkg') {
    throw new InvalidInputError(
      'dataset',
      `${nameOrPath} is a homogeneous network (link forecasting), not a TKG`,
      'dataset_kind',
    );
  }
  return dataset;
}

/** Snapshots of the given splits (ascending steps; a step split across files is merged). */
export function tkgSnapshots(dataset: TkgDataset, splits: readonly SplitName[]): Snapshot[] {
  const facts: FactArray = concatFacts(...splits.map((s) => dataset.splits[s]));
  return toSnapshots(facts, dataset.numEntities, dataset.numRelations);
}

/** Contiguous snapshots 0 .. numSteps - 1 of a link dataset (R = 1). */
export function linkSnapshots(dataset: LinkDataset): Snapshot[] {
  return toSnapshots(dataset.facts, dataset.numNodes, 1, { fillGaps: true, fromStep: 0 });
}

/** Named FactEvents of a dataset (for `tkg publish`): a TKG's splits with steps, or a network's timestamped events. */
export function datasetFactEvents(
  dataset: Dataset,
  splits: readonly SplitName[] = ['train', 'valid', 'test'],
): FactEvent[] {
  if (dataset.kind === 'link') return linkFactEvents(dataset);
  return splits.flatMap((s) => tkgFactEvents(dataset, s));
}
