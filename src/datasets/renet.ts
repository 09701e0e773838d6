// RE-NET layout loader (YAGO, WIKI, ICEWS-style directories). Owns: parsing train/valid/test
// (.txt or .txt.gz, tab- or space-separated `subject relation object step [unused...]`), time stamps that advance
// in a common stride (ICEWS: 24 per day) divided into consecutive steps,
// entity2id / relation2id / stat.txt when present. Ids may be integers (used as given) or names
// (mapped to dense ids). Must not import kafkajs, src/kafka, src/train or tfjs.
import { basename } from 'node:path';
import type { FactEvent } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import { findMaybeGzipped, readText } from './files.ts';
import type { FactArray } from './snapshots.ts';
import { Vocabulary } from './vocabulary.ts';

export type SplitName = 'train' | 'valid' | 'test';
export const splitNames: readonly SplitName[] = ['train', 'valid', 'test'];

/** A temporal knowledge graph with dense ids and integer steps. */
export interface TkgDataset {
  kind: 'tkg';
  name: string;
  directory: string;
  numEntities: number; // N
  numRelations: number; // R
  /** entityNames[id]; the id as a string when no name is known. */
  entityNames: string[];
  relationNames: string[];
  /** Flat [s, r, o, step] per fact, in file order; a missing split is undefined. */
  splits: Partial<Record<SplitName, FactArray>>;
  /** Human-readable remarks (e.g. a missing split). */
  notes: string[];
}

const isInteger = (token: string): boolean => /^-?\d+$/.test(token);

/** Parses `name<TAB>id[<TAB>...]` lines (entity2id.txt, relation2id.txt). */
function readIdFile(path: string): Array<[string, number]> {
  const pairs: Array<[string, number]> = [];
  for (const line of readText(path).split('\n')) {
    if (line.length === 0) continue;
    const fields = line.split('\t');
    if (fields.length < 2 || !isInteger(fields[1].trim())) continue; // header or malformed: ignored
    pairs.push([fields[0], Number(fields[1])]);
  }
  return pairs;
}

/** Loads a RE-NET layout directory. At least one of train/valid/test must exist. */
export function loadRenetDataset(
  directory: string,
  name: string = basename(directory),
): TkgDataset {
  const files: Partial<Record<SplitName, string>> = {};
  for (const split of splitNames) {
    const file = findMaybeGzipped(directory, `${split}.txt`);
    if (file !== undefined) files[split] = file;
  }
  if (Object.keys(files).length === 0) {
    throw new InvalidInputError(
      'dataset',
      `${directory} has none of train.txt, valid.txt, test.txt (optionally .gz); expected the RE-NET layout`,
      'dataset_layout',
    );
  }
  const notes: string[] = [];
  const entities = new Vocabulary();
  const relations = new Vocabulary();
  const entityFile = findMaybeGzipped(directory, 'entity2id.txt');
  const relationFile = findMaybeGzipped(directory, 'relation2id.txt');
  if (entityFile) for (const [n, id] of readIdFile(entityFile)) entities.assign(n, id);
  if (relationFile) for (const [n, id] of readIdFile(relationFile)) relations.assign(n, id);
  let statEntities = 0;
  let statRelations = 0;
  const statFile = findMaybeGzipped(directory, 'stat.txt');
  if (statFile) {
    const fields = readText(statFile).trim().split(/\s+/).map(Number);
    statEntities = Number.isInteger(fields[0]) ? fields[0] : 0;
    statRelations = Number.isInteger(fields[1]) ? fields[1] : 0;
  }

  let maxEntity = -1;
  let maxRelation = -1;
  const splits: Partial<Record<SplitName, FactArray>> = {};
  for (const split of splitNames) {
    const file = files[split];
    if (file === undefined) {
      notes.push(`${split} split not available in ${directory}`);
      continue;
    }
    const lines = readText(file).split('\n');
    const out = new Int32Array(lines.length * 4);
    let n = 0;
    for (let li = 0; li < lines.length; li++) {
      const line = lines[li];
      if (line.length === 0 || line.startsWith('#')) continue;
      const f = line.includes('\t') ? line.split('\t') : line.trim().split(/\s+/);
      if (f.length < 4) {
        throw new InvalidInputError(
          `${file}:${li + 1}`,
          `expected "subject relation object step", got ${JSON.stringify(line)}`,
          'dataset_line',
        );
      }
      const stepToken = f[3].trim();
      if (!isInteger(stepToken)) {
        throw new InvalidInputError(
          `${file}:${li + 1}`,
          `step ${JSON.stringify(stepToken)} is not an integer; RE-NET files carry integer steps (use a named fact file with timestamps instead)`,
          'dataset_line',
        );
      }
      const sTok = f[0].trim();
      const rTok = f[1].trim();
      const oTok = f[2].trim();
      const s = isInteger(sTok) ? Number(sTok) : entities.idOf(sTok);
      const r = isInteger(rTok) ? Number(rTok) : relations.idOf(rTok);
      const o = isInteger(oTok) ? Number(oTok) : entities.idOf(oTok);
      if (s < 0 || r < 0 || o < 0) {
        throw new InvalidInputError(
          `${file}:${li + 1}`,
          `negative id in ${JSON.stringify(line)}`,
          'dataset_line',
        );
      }
      out[n++] = s;
      out[n++] = r;
      out[n++] = o;
      out[n++] = Number(stepToken);
      if (s > maxEntity) maxEntity = s;
      if (o > maxEntity) maxEntity = o;
      if (r > maxRelation) maxRelation = r;
    }
    splits[split] = out.slice(0, n);
  }
  const stride = timeStride(Object.values(splits));
  if (stride > 1) {
    notes.push(
      `time stamps advance in multiples of ${stride}: one step = ${stride} time units (decays are per step)`,
    );
    for (const facts of Object.values(splits)) {
      const offset = ((facts[3] % stride) + stride) % stride; // every stamp has this residue
      for (let i = 3; i < facts.length; i += 4) facts[i] = (facts[i] - offset) / stride;
    }
  }
  const numEntities = Math.max(statEntities, maxEntity + 1, entities.size);
  const numRelations = Math.max(statRelations, maxRelation + 1, relations.size);
  const entityNames = Array.from({ length: numEntities }, (_, i) => entities.names[i] ?? String(i));
  const relationNames = Array.from(
    { length: numRelations },
    (_, i) => relations.names[i] ?? String(i),
  );
  return {
    kind: 'tkg',
    name,
    directory,
    numEntities,
    numRelations,
    entityNames,
    relationNames,
    splits,
    notes,
  };
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * Pure: the greatest common divisor of the differences between the distinct time stamps of every split
 * (ICEWS stamps advance by 24 per day: 24; YAGO's consecutive years: 1), 1 when there is a single stamp.
 * Dividing by it makes the stamps consecutive steps wherever the data has no gap, and keeps real gaps.
 */
export function timeStride(splits: readonly Int32Array[]): number {
  const stamps = new Set<number>();
  for (const facts of splits) for (let i = 3; i < facts.length; i += 4) stamps.add(facts[i]);
  const sorted = [...stamps].sort((a, b) => a - b);
  let stride = 0;
  for (let i = 1; i < sorted.length; i++) stride = gcd(sorted[i] - sorted[i - 1], stride);
  return Math.max(1, stride);
}

/** The facts of one split as named FactEvents with integer steps (what `tkg publish` sends). */
export function tkgFactEvents(dataset: TkgDataset, split: SplitName): FactEvent[] {
  const facts = dataset.splits[split];
  if (facts === undefined) return [];
  const events: FactEvent[] = new Array(facts.length / 4);
  for (let i = 0, k = 0; i < facts.length; i += 4, k++) {
    events[k] = {
      subject: dataset.entityNames[facts[i]],
      relation: dataset.relationNames[facts[i + 1]],
      object: dataset.entityNames[facts[i + 2]],
      step: facts[i + 3],
    };
  }
  return events;
}
