// Trainer checkpoints. Owns: the on-disk format of a WindowTrainer (parameters, Adam moments and
// step, window contents, random state, counters) and its commit order: the binary is made durable
// first, then the JSON header that names it (the commit point), both through src/core's
// writeFileAtomic (temp file, fsync, rename, fsync the directory). Must not import kafkajs,
// src/kafka or src/serve.
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/durable.ts';
import type { TrainerSettings } from './parameters.ts';
import type { WindowTrainer } from './trainer.ts';

const HEADER = 'nlsm-checkpoint.json';
const FORMAT = 1;

interface CheckpointHeader {
  format: number;
  binary: string;
  settings: TrainerSettings;
  N: number;
  R: number;
  lastObserved: number | null;
  adamStep: number;
  updates: number;
  nanRestores: number;
  rngState: (number | null)[];
  slots: { step: number; offset: number; length: number }[]; // Int32 triples in the binary
  params: {
    name: string;
    rows: 'entity' | 'relation' | 'fixed';
    width: number;
    length: number;
    offset: number;
  }[];
}

/** Settings that must match to resume (the others, e.g. epochs, may change between runs). */
const STRUCTURAL: (keyof TrainerSettings)[] = [
  'model',
  'directed',
  'K',
  'windowSize',
  'logVarScale',
];

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, HEADER));
}

export function saveCheckpoint(trainer: WindowTrainer, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const push = (array: Float32Array | Int32Array): number => {
    const at = offset;
    chunks.push(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    offset += array.byteLength;
    return at;
  };
  const slots = trainer.slots.map((slot) => ({
    step: slot.step,
    offset: push(slot.triples),
    length: slot.triples.length,
  }));
  const params: CheckpointHeader['params'] = [];
  for (const [name, p] of trainer.params) {
    params.push({
      name,
      rows: p.rows,
      width: p.width,
      length: p.value.length,
      offset: push(p.value),
    });
    push(p.m);
    push(p.v);
  }
  const binary = `nlsm-checkpoint-${trainer.updates}.bin`;
  const binaryPath = join(dir, binary);
  writeFileAtomic(binaryPath, Buffer.concat(chunks));
  const header: CheckpointHeader = {
    format: FORMAT,
    binary,
    settings: trainer.settings,
    N: trainer.N,
    R: trainer.R,
    lastObserved: Number.isFinite(trainer.lastObserved) ? trainer.lastObserved : null,
    adamStep: trainer.adamStep,
    updates: trainer.updates,
    nanRestores: trainer.nanRestores,
    rngState: trainer.rng.getState().map((v) => (Number.isNaN(v) ? null : v)),
    slots,
    params,
  };
  const headerPath = join(dir, HEADER);
  const previous = existsSync(headerPath)
    ? (JSON.parse(readFileSync(headerPath, 'utf8')) as CheckpointHeader).binary
    : null;
  writeFileAtomic(headerPath, JSON.stringify(header));
  // the previous binary is no longer named by the header
  if (previous && previous !== binary) {
    try {
      unlinkSync(join(dir, previous));
    } catch {
      // best effort: an old binary left behind is harmless
    }
  }
}

/** Loads a checkpoint into a freshly constructed trainer with compatible settings. */
export function loadCheckpoint(trainer: WindowTrainer, dir: string): void {
  const header = JSON.parse(readFileSync(join(dir, HEADER), 'utf8')) as CheckpointHeader;
  if (header.format !== FORMAT) {
    throw new ConfigError(
      `checkpoint in ${dir} has format ${header.format}; this build reads format ${FORMAT}; remove it to start over`,
    );
  }
  for (const key of STRUCTURAL) {
    if (header.settings[key] !== trainer.settings[key]) {
      throw new ConfigError(
        `checkpoint in ${dir} was written with ${key} = ${JSON.stringify(header.settings[key])}, this run has ${JSON.stringify(trainer.settings[key])}; use the same ${key} or another checkpoint directory`,
      );
    }
  }
  const bytes = readFileSync(join(dir, header.binary));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const wanted = { N: trainer.N, R: trainer.R };
  trainer.N = header.N;
  trainer.R = header.R;
  trainer.slots = header.slots.map((slot) => ({
    step: slot.step,
    triples: new Int32Array(buffer.slice(slot.offset, slot.offset + 4 * slot.length)),
  }));
  for (const entry of header.params) {
    const p = trainer.params.get(entry.name);
    if (!p || p.width !== entry.width) {
      throw new ConfigError(
        `checkpoint in ${dir}: parameter ${entry.name} does not fit this model; use another checkpoint directory`,
      );
    }
    const read = (index: number): Float32Array =>
      new Float32Array(
        buffer.slice(
          entry.offset + 4 * entry.length * index,
          entry.offset + 4 * entry.length * (index + 1),
        ),
      );
    p.value = read(0);
    p.m = read(1);
    p.v = read(2);
  }
  trainer.lastObserved = header.lastObserved ?? -Infinity;
  trainer.adamStep = header.adamStep;
  trainer.updates = header.updates;
  trainer.nanRestores = header.nanRestores;
  trainer.rng.setState(header.rngState.map((v) => (v === null ? NaN : v)));
  trainer.clearCache();
  // a resumed run that declares more entities than were known at the checkpoint grows as usual
  trainer.grow(wanted.N, wanted.R);
}
