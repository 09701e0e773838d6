// Timestamped event datasets. Owns: the Enron (`emails.csv.gz`: from,to,time ISO UTC) and UCI
// (`out.opsahl-ucsocial.gz`: from to weight unix_time, `%` comments) raw-event readers, slicing them
// into steps with a SlicingRule, and named fact files (TSV / CSV / JSONL with subject, relation,
// object, step|timestamp). Must not import kafkajs, src/kafka, src/train or tfjs.
import { basename, extname, join } from 'node:path';
import type { FactEvent } from '../core/types.ts';
import { InvalidInputError } from '../core/errors.ts';
import { findMaybeGzipped, readText } from './files.ts';
import type { FactArray } from './snapshots.ts';
import {
  compileSlicing,
  dysatSlicing,
  enronSlicingParams,
  parseInstant,
  stepOfTime,
  uciSlicingParams,
  type SlicingRule,
} from './slicing.ts';
import { Vocabulary } from './vocabulary.ts';
import type { TkgDataset } from './renet.ts';

/** A raw timestamped interaction (an e-mail, a message). */
export interface TimedEvent {
  source: string;
  target: string;
  timeMs: number;
}

/** A homogeneous (R = 1) dynamic network sliced into steps. */
export interface LinkDataset {
  kind: 'link';
  name: string;
  directory: string;
  directed: true;
  /** Nodes of the events kept by the slicing, ids in order of first appearance (time order). */
  numNodes: number;
  nodeNames: string[];
  relationName: string;
  slicing: SlicingRule;
  /** Steps 0 .. numSteps - 1 (contiguous). */
  numSteps: number;
  /** Flat [source, 0, target, step] per kept event (multi-edges kept; snapshots deduplicate). */
  facts: FactArray;
  /** All raw events in time order, including those before the origin (not in `facts`). */
  events: TimedEvent[];
  notes: string[];
}

/** Parses Enron's `from,to,time` CSV (header line optional). */
export function parseEnronCsv(text: string, file = 'emails.csv'): TimedEvent[] {
  const events: TimedEvent[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0 || (i === 0 && line.startsWith('from,'))) continue;
    const f = line.split(',');
    const timeMs = Date.parse(f[2] ?? '');
    if (f.length < 3 || !Number.isFinite(timeMs)) {
      throw new InvalidInputError(
        `${file}:${i + 1}`,
        `expected "from,to,ISO-time", got ${JSON.stringify(line)}`,
        'dataset_line',
      );
    }
    events.push({ source: f[0], target: f[1], timeMs });
  }
  return events;
}

/** Parses KONECT's `from to weight unix_seconds` lines (`%` comments). */
export function parseKonect(text: string, file = 'out.konect'): TimedEvent[] {
  const events: TimedEvent[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0 || line.startsWith('%')) continue;
    const f = line.split(/\s+/);
    const seconds = Number(f[3]);
    if (f.length < 4 || !Number.isFinite(seconds)) {
      throw new InvalidInputError(
        `${file}:${i + 1}`,
        `expected "from to weight unix_time", got ${JSON.stringify(line)}`,
        'dataset_line',
      );
    }
    events.push({ source: f[0], target: f[1], timeMs: seconds * 1000 });
  }
  return events;
}

/**
 * Slices time-ordered events into steps: dense node ids in order of first appearance among kept
 * events; steps are contiguous from 0 (the rule's origin).
 */
export function sliceEvents(
  events: readonly TimedEvent[],
  rule: SlicingRule,
  meta: { name: string; directory: string; relationName: string; notes?: string[] },
): LinkDataset {
  const sorted = [...events].sort((a, b) => a.timeMs - b.timeMs);
  const compiled = compileSlicing(rule);
  const nodes = new Vocabulary();
  const facts = new Int32Array(sorted.length * 4);
  let n = 0;
  let maxStep = -1;
  let dropped = 0;
  for (const e of sorted) {
    const step = stepOfTime(e.timeMs, compiled);
    if (step === undefined) {
      dropped++;
      continue;
    }
    facts[n++] = nodes.idOf(e.source);
    facts[n++] = 0;
    facts[n++] = nodes.idOf(e.target);
    facts[n++] = step;
    if (step > maxStep) maxStep = step;
  }
  const notes = [
    ...(meta.notes ?? []),
    `${dropped} events before the origin ${rule.origin} are outside the series`,
  ];
  return {
    kind: 'link',
    name: meta.name,
    directory: meta.directory,
    directed: true,
    numNodes: nodes.size,
    nodeNames: nodes.names,
    relationName: meta.relationName,
    slicing: rule,
    numSteps: maxStep + 1,
    facts: facts.slice(0, n),
    events: sorted,
    notes,
  };
}

function firstLast(events: readonly TimedEvent[]): [number, number] {
  let first = Infinity;
  let last = -Infinity;
  for (const e of events) {
    if (e.timeMs < first) first = e.timeMs;
    if (e.timeMs > last) last = e.timeMs;
  }
  return [first, last];
}

/** Enron from `<dir>/emails.csv[.gz]`, sliced as DySAT / the paper (expect 143 nodes, 16 steps). */
export function loadEnron(directory: string): LinkDataset {
  const file = findMaybeGzipped(directory, 'emails.csv');
  if (!file)
    throw new InvalidInputError('dataset', `${directory} has no emails.csv(.gz)`, 'dataset_layout');
  const events = parseEnronCsv(readText(file), file);
  const [first, last] = firstLast(events);
  return sliceEvents(events, dysatSlicing(first, last, enronSlicingParams), {
    name: 'enron',
    directory,
    relationName: 'emailed',
  });
}

/** UCI from `<dir>/out.opsahl-ucsocial[.gz]`, sliced as DySAT / the paper (13 steps). */
export function loadUci(directory: string): LinkDataset {
  const file = findMaybeGzipped(directory, 'out.opsahl-ucsocial');
  if (!file)
    throw new InvalidInputError(
      'dataset',
      `${directory} has no out.opsahl-ucsocial(.gz)`,
      'dataset_layout',
    );
  const events = parseKonect(readText(file), file);
  const [first, last] = firstLast(events);
  return sliceEvents(events, dysatSlicing(first, last, uciSlicingParams), {
    name: 'uci',
    directory,
    relationName: 'messaged',
  });
}

/** Raw kept events as named FactEvents with ISO timestamps (what `tkg publish` sends for Enron / UCI). */
export function linkFactEvents(
  dataset: LinkDataset,
  options: { includeBeforeOrigin?: boolean } = {},
): FactEvent[] {
  const originMs = Date.parse(dataset.slicing.origin);
  return dataset.events
    .filter((e) => options.includeBeforeOrigin || e.timeMs >= originMs)
    .map((e) => ({
      subject: e.source,
      relation: dataset.relationName,
      object: e.target,
      timestamp: new Date(e.timeMs).toISOString(),
    }));
}

// ---------------------------------------------------------------------------------------------
// Named fact files: one fact per line, `subject relation object step|timestamp`.

/** Reads a TSV (tab), CSV (comma) or JSONL fact file, optionally gzipped; a header line is skipped. */
export function readNamedFactFile(path: string): FactEvent[] {
  const plain = path.endsWith('.gz') ? path.slice(0, -3) : path;
  const ext = extname(plain).toLowerCase();
  const text = readText(path);
  const lines = text.split('\n');
  const events: FactEvent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    if (ext === '.jsonl' || ext === '.ndjson') {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw new InvalidInputError(
          `${path}:${i + 1}`,
          `invalid JSON: ${(error as Error).message}`,
          'dataset_line',
        );
      }
      events.push(toFactEvent(value as Record<string, unknown>, `${path}:${i + 1}`));
      continue;
    }
    const f = (ext === '.csv' ? line.split(',') : line.split('\t')).map((x) => x.trim());
    if (f.length < 4) {
      throw new InvalidInputError(
        `${path}:${i + 1}`,
        `expected "subject relation object step|timestamp", got ${JSON.stringify(line)}`,
        'dataset_line',
      );
    }
    if (i === 0 && /^(subject|s|head)$/i.test(f[0]) && /^(relation|r|rel)$/i.test(f[1])) continue; // header
    const when = f[3];
    events.push(
      /^-?\d+$/.test(when) && when.length < 10
        ? { subject: f[0], relation: f[1], object: f[2], step: Number(when) }
        : {
            subject: f[0],
            relation: f[1],
            object: f[2],
            timestamp: /^-?\d+$/.test(when) ? Number(when) : when,
          },
    );
  }
  return events;
}

function toFactEvent(v: Record<string, unknown>, where: string): FactEvent {
  const str = (k: string): string => {
    if (typeof v[k] !== 'string' || (v[k] as string).length === 0) {
      throw new InvalidInputError(
        where,
        `field ${k} must be a non-empty string, got ${JSON.stringify(v[k])}`,
        'dataset_line',
      );
    }
    return v[k] as string;
  };
  const event: FactEvent = {
    subject: str('subject'),
    relation: str('relation'),
    object: str('object'),
  };
  if (typeof v.step === 'number' && Number.isInteger(v.step)) event.step = v.step;
  else if (typeof v.timestamp === 'string' || typeof v.timestamp === 'number')
    event.timestamp = v.timestamp;
  else
    throw new InvalidInputError(where, `needs an integer "step" or a "timestamp"`, 'dataset_line');
  return event;
}

/**
 * Encodes named facts into a TkgDataset. Timestamped facts need a slicing rule (default: origin =
 * the first timestamp's UTC midnight, 1-day steps). Splits by step: the last `testSteps` steps are
 * test, the `validSteps` before them valid, the rest train (defaults: 10% of steps each, at least 1).
 */
export function encodeNamedFacts(
  events: readonly FactEvent[],
  options: {
    name: string;
    directory: string;
    slicing?: SlicingRule;
    testSteps?: number;
    validSteps?: number;
  },
): TkgDataset {
  const entities = new Vocabulary();
  const relations = new Vocabulary();
  const notes: string[] = [];
  let rule = options.slicing;
  if (rule === undefined && events.some((e) => e.step === undefined)) {
    let first = Infinity;
    for (const e of events)
      if (e.step === undefined && e.timestamp !== undefined)
        first = Math.min(first, parseInstant(e.timestamp));
    const midnight = new Date(first);
    midnight.setUTCHours(0, 0, 0, 0);
    rule = { origin: midnight.toISOString(), granularity: '1d' };
    notes.push(
      `timestamps sliced with origin ${rule.origin}, granularity 1d (pass a slicing rule to change)`,
    );
  }
  const compiled = rule ? compileSlicing(rule) : undefined;
  const facts = new Int32Array(events.length * 4);
  let n = 0;
  for (const e of events) {
    let step = e.step;
    if (step === undefined) {
      if (e.timestamp === undefined || compiled === undefined) {
        throw new InvalidInputError(
          'fact',
          `${JSON.stringify(e)} has neither step nor timestamp`,
          'dataset_line',
        );
      }
      step = stepOfTime(parseInstant(e.timestamp), compiled);
      if (step === undefined) continue; // before the origin
    }
    facts[n++] = entities.idOf(e.subject);
    facts[n++] = relations.idOf(e.relation);
    facts[n++] = entities.idOf(e.object);
    facts[n++] = step;
  }
  const all = facts.slice(0, n);
  const steps = [...new Set(Array.from({ length: n / 4 }, (_, i) => all[4 * i + 3]))].sort(
    (a, b) => a - b,
  );
  const tenth = Math.max(1, Math.round(steps.length / 10));
  const testSteps = options.testSteps ?? tenth;
  const validSteps = options.validSteps ?? tenth;
  if (steps.length < testSteps + validSteps + 1) {
    throw new InvalidInputError(
      'dataset',
      `${options.name} has ${steps.length} steps; need more than ${testSteps + validSteps} to split train/valid/test`,
      'dataset_layout',
    );
  }
  const testFrom = steps[steps.length - testSteps];
  const validFrom = steps[steps.length - testSteps - validSteps];
  const pick = (lo: number, hi: number): Int32Array => {
    const out: number[] = [];
    for (let i = 0; i < all.length; i += 4)
      if (all[i + 3] >= lo && all[i + 3] < hi) out.push(all[i], all[i + 1], all[i + 2], all[i + 3]);
    return Int32Array.from(out);
  };
  notes.push(`split by step: train < ${validFrom} <= valid < ${testFrom} <= test`);
  return {
    kind: 'tkg',
    name: options.name,
    directory: options.directory,
    numEntities: entities.size,
    numRelations: relations.size,
    entityNames: entities.names,
    relationNames: relations.names,
    splits: {
      train: pick(-Infinity, validFrom),
      valid: pick(validFrom, testFrom),
      test: pick(testFrom, Infinity),
    },
    notes,
  };
}

/** Loads a named fact file as a TkgDataset (see encodeNamedFacts). */
export function loadNamedFactFile(path: string, slicing?: SlicingRule): TkgDataset {
  return encodeNamedFacts(readNamedFactFile(path), {
    name: basename(path),
    directory: join(path, '..'),
    slicing,
  });
}
