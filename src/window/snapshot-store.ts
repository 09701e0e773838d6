// Closed snapshots on disk: one atomic file per step (`<dir>/step-0000000123.snap`).
// Owns: the snapshot file layout. Must not touch Kafka or the vocabulary. Written BEFORE the checkpoint
// that moves nextStepToClose past the step, so a restarted process neither loses nor re-emits a step.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Snapshot } from '../core/types.ts';
import {
  decodeContainer,
  encodeContainer,
  fsyncDirectory,
  fsyncDirectoryAsync,
  readFileIfExists,
  removeStaleTempFiles,
  writeFileAtomic,
  writeFileAtomicAsync,
  CorruptCheckpointError,
} from '../core/durable.ts';

const FILE_PATTERN = /^step-(\d{10})\.snap$/;

export class SnapshotStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    removeStaleTempFiles(dir, readdirSync(dir));
  }

  pathOf(step: number): string {
    return join(this.dir, `step-${String(step).padStart(10, '0')}.snap`);
  }

  /** Write one snapshot atomically and durably. */
  write(snapshot: Snapshot): void {
    this.writeMany([snapshot]);
  }

  /** Write snapshots atomically (each file) and durably, with one directory fsync for all of them. */
  writeMany(snapshots: readonly Snapshot[]): void {
    if (snapshots.length === 0) return;
    for (const snapshot of snapshots) this.writeOne(snapshot);
    fsyncDirectory(this.dir);
  }

  /**
   * writeMany with the files written and fsynced concurrently off the main thread (one fsync per file is
   * the cost of a checkpoint that closes many steps); resolves when every file and the directory are durable.
   */
  async writeManyAsync(snapshots: readonly Snapshot[]): Promise<void> {
    if (snapshots.length === 0) return;
    await Promise.all(
      snapshots.map((snapshot) =>
        writeFileAtomicAsync(this.pathOf(snapshot.step), encodeSnapshot(snapshot), {
          fsyncDirectory: false,
        }),
      ),
    );
    await fsyncDirectoryAsync(this.dir);
  }

  private writeOne(snapshot: Snapshot): void {
    writeFileAtomic(this.pathOf(snapshot.step), encodeSnapshot(snapshot), {
      fsyncDirectory: false,
    });
  }

  read(step: number): Snapshot | null {
    const path = this.pathOf(step);
    const bytes = readFileIfExists(path);
    if (!bytes) return null;
    const { header, blocks } = decodeContainer(bytes, path);
    if (header.kind !== 'snapshot' || header.step !== step)
      throw new CorruptCheckpointError(path, 'not the snapshot of this step');
    return {
      step,
      triples: blocks[0],
      numEntities: header.numEntities as number,
      numRelations: header.numRelations as number,
    };
  }

  /** Persisted steps, ascending. */
  steps(): number[] {
    return readdirSync(this.dir)
      .map((f) => FILE_PATTERN.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  /** Every persisted snapshot with step >= fromStep, in order. */
  *readFrom(fromStep = -Infinity): Generator<Snapshot> {
    for (const step of this.steps()) {
      if (step < fromStep) continue;
      const snapshot = this.read(step);
      if (snapshot) yield snapshot;
    }
  }
}

function encodeSnapshot(snapshot: Snapshot): Buffer {
  return encodeContainer(
    {
      kind: 'snapshot',
      step: snapshot.step,
      numEntities: snapshot.numEntities,
      numRelations: snapshot.numRelations,
    },
    [snapshot.triples],
  );
}
