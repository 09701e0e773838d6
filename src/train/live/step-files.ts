// Checkpoint files of the live adapters that keep a buffer of per-step fitting queries (nlsm-r / rules, nlsm-h):
// a JSON header written to two files in turn, so a crash between the header and the base model's checkpoint leaves
// an older header that matches it, and one file per buffered step in a folder, pruned once no header can name it.
// Owns: those file mechanics (through the durable writer). Must not know what a header or a step file holds.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TkgError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/durable.ts';

export interface StepHeader {
  format: string;
  lastStep: number | null;
}

/** `<dir>/<name>.0.json` and `<dir>/<name>.1.json`, written in turn. */
export class AlternatingHeader<H extends StepHeader> {
  private next = 0;

  constructor(
    private readonly dir: string,
    private readonly name: string,
    private readonly format: string,
  ) {}

  private path(parity: number): string {
    return join(this.dir, `${this.name}.${parity}.json`);
  }

  /** The newest header at or before `maxStep` (the base model's checkpoint step, +Infinity without one). */
  read(maxStep = Number.POSITIVE_INFINITY): H | undefined {
    let best: { header: H; parity: number } | undefined;
    for (const parity of [0, 1]) {
      const path = this.path(parity);
      if (!existsSync(path)) continue;
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as H;
      if (parsed.format !== this.format)
        throw new TkgError(
          `${path} is not a ${this.format} checkpoint; delete it or use another state directory`,
          { reason: 'corrupt_checkpoint' },
        );
      const step = parsed.lastStep ?? Number.NEGATIVE_INFINITY;
      if (step > maxStep) continue;
      if (best === undefined || step > (best.header.lastStep ?? Number.NEGATIVE_INFINITY))
        best = { header: parsed, parity };
    }
    if (best !== undefined) this.next = 1 - best.parity;
    return best?.header;
  }

  write(header: H): void {
    writeFileAtomic(this.path(this.next), JSON.stringify(header));
    this.next = 1 - this.next;
  }
}

/** `<dir>/<folder>/<step>.bin`: one file per buffered step, written once. */
export class StepFiles {
  private readonly written = new Set<number>();
  private readonly folder: string;

  constructor(dir: string, folder: string) {
    this.folder = join(dir, folder);
    mkdirSync(this.folder, { recursive: true });
  }

  private path(step: number): string {
    return join(this.folder, `${step}.bin`);
  }

  read(step: number): Uint8Array {
    const bytes = new Uint8Array(readFileSync(this.path(step)));
    this.written.add(step);
    return bytes;
  }

  /** Writes the step's file unless it was written (or read) before. */
  write(step: number, encode: () => Uint8Array): void {
    if (this.written.has(step)) return;
    writeFileAtomic(this.path(step), encode());
    this.written.add(step);
  }

  /** Deletes the files of steps before `keepFrom` (no header names them any more). */
  prune(keepFrom: number): void {
    for (const step of [...this.written]) {
      if (step >= keepFrom) continue;
      rmSync(this.path(step), { force: true });
      this.written.delete(step);
    }
  }
}
