// Durable log of the live evaluations of a `tkg run` (`<state>/run/evaluations.jsonl`, one StepMetrics
// record per line, fsynced per step) and the final quality table computed from it. A resumed run truncates
// records after its checkpoint's step, so interrupted and uninterrupted runs end with the same table.
// Owns: that file and the aggregation (count-weighted per direction; "both" is the mean of the two
// directions, as SPEC section 2 reports). Must not touch Kafka, the scorer or the model.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { FilterMode } from '../core/types.ts';
import type { StepMetricsRecord } from '../serve/live-eval.ts';
import { writeFileAtomic } from '../core/durable.ts';

export class EvaluationLog {
  readonly path: string;
  private records: StepMetricsRecord[] = [];

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        try {
          this.records.push(JSON.parse(line) as StepMetricsRecord);
        } catch {
          break; // a torn last line from a crash: everything after it is redone
        }
      }
    }
  }

  /** Keep only records of steps <= `step` (the resumed checkpoint), rewriting the file atomically. */
  truncateAfter(step: number): void {
    const kept = this.records.filter((r) => r.step <= step);
    if (kept.length === this.records.length && existsSync(this.path)) return;
    this.records = kept;
    writeFileAtomic(this.path, Buffer.from(kept.map((r) => `${JSON.stringify(r)}\n`).join('')));
  }

  /** Append one step's records durably. */
  append(records: readonly StepMetricsRecord[]): void {
    if (records.length === 0) return;
    const fd = openSync(this.path, 'a');
    try {
      writeSync(fd, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.records.push(...records);
  }

  get all(): readonly StepMetricsRecord[] {
    return this.records;
  }

  /** Distinct evaluated steps. */
  steps(): number[] {
    return [...new Set(this.records.map((r) => r.step))].sort((a, b) => a - b);
  }
}

export interface QualityRow {
  filter: FilterMode;
  direction: 'object' | 'subject' | 'both';
  mrr: number;
  hits1: number;
  hits3: number;
  hits10: number;
  queries: number;
}

export interface QualityTable {
  model: string;
  steps: number;
  firstStep: number | null;
  lastStep: number | null;
  rows: QualityRow[];
}

const FILTERS: FilterMode[] = ['raw', 'static', 'timeAware'];

/** Pure: pool per-step records (count-weighted) into one row per filter and direction. */
export function qualityTable(records: readonly StepMetricsRecord[]): QualityTable {
  const steps = [...new Set(records.map((r) => r.step))].sort((a, b) => a - b);
  const rows: QualityRow[] = [];
  for (const filter of FILTERS) {
    const perDirection: QualityRow[] = [];
    for (const direction of ['object', 'subject'] as const) {
      const part = records.filter(
        (r) => r.filter === filter && r.direction === direction && r.count > 0,
      );
      const queries = part.reduce((a, r) => a + r.count, 0);
      const mean = (f: (r: StepMetricsRecord) => number) =>
        queries === 0 ? 0 : part.reduce((a, r) => a + f(r) * r.count, 0) / queries;
      perDirection.push({
        filter,
        direction,
        mrr: mean((r) => r.mrr),
        hits1: mean((r) => r.hits1),
        hits3: mean((r) => r.hits3),
        hits10: mean((r) => r.hits10),
        queries,
      });
    }
    const [o, s] = perDirection;
    rows.push(...perDirection, {
      filter,
      direction: 'both',
      mrr: (o.mrr + s.mrr) / 2,
      hits1: (o.hits1 + s.hits1) / 2,
      hits3: (o.hits3 + s.hits3) / 2,
      hits10: (o.hits10 + s.hits10) / 2,
      queries: o.queries + s.queries,
    });
  }
  return {
    model: records[0]?.model ?? 'none',
    steps: steps.length,
    firstStep: steps[0] ?? null,
    lastStep: steps[steps.length - 1] ?? null,
    rows,
  };
}

/** Pure: the table as aligned text lines. */
export function formatQualityTable(table: QualityTable): string {
  const header =
    `live quality of ${table.model} over ${table.steps} evaluated steps` +
    (table.firstStep === null
      ? ''
      : ` (${table.firstStep}..${table.lastStep}), each forecast before its step was seen`);
  const lines = [header, 'filter      direction   MRR     H@1     H@3     H@10    queries'];
  for (const r of table.rows) {
    lines.push(
      `${r.filter.padEnd(11)} ${r.direction.padEnd(11)} ${r.mrr.toFixed(2).padStart(6)}  ${r.hits1.toFixed(2).padStart(6)}  ${r.hits3.toFixed(2).padStart(6)}  ${r.hits10.toFixed(2).padStart(6)}  ${String(r.queries).padStart(8)}`,
    );
  }
  return lines.join('\n');
}
