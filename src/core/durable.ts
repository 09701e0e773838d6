// Durable files and their byte form, the one commit-point helper of every stage (CONVENTIONS: write, fsync, rename,
// fsync the directory). Owns: `writeFileAtomic` (+ async), directory fsync, stale temp-file clean-up and the TKGW
// container (magic, JSON header, Int32 blocks) that checkpoints, snapshots and snapshot records use.
// Must not know what the files mean: callers bring their own headers and blocks.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
  existsSync,
  unlinkSync,
} from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { TkgError } from './errors.ts';

const MAGIC = 0x574b4754; // 'TKGW' little-endian
const FORMAT_VERSION = 1;

/** A checkpoint file that cannot be read (truncated, wrong magic, bad header). */
export class CorruptCheckpointError extends TkgError {
  constructor(path: string, detail: string) {
    super(
      `checkpoint ${path} is unreadable (${detail}); restore it from a backup or delete the state directory to start over`,
      {
        reason: 'corrupt_checkpoint',
      },
    );
  }
}

/**
 * Container: u32 magic, u32 version, u32 headerBytes, header JSON (utf-8), zero pad to 4, then the
 * Int32 blocks back to back (little-endian); the header lists each block's length.
 */
export function encodeContainer(header: Record<string, unknown>, blocks: Int32Array[]): Buffer {
  const headerBytes = Buffer.from(
    JSON.stringify({ ...header, blockLengths: blocks.map((b) => b.length) }),
    'utf8',
  );
  const headerPadded = (headerBytes.length + 3) & ~3;
  let total = 12 + headerPadded;
  for (const block of blocks) total += block.length * 4;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(FORMAT_VERSION, 4);
  out.writeUInt32LE(headerBytes.length, 8);
  headerBytes.copy(out, 12);
  let offset = 12 + headerPadded;
  for (const block of blocks) {
    Buffer.from(block.buffer, block.byteOffset, block.byteLength).copy(out, offset);
    offset += block.byteLength;
  }
  return out;
}

export function decodeContainer(
  bytes: Uint8Array,
  source = '<bytes>',
): { header: Record<string, unknown>; blocks: Int32Array[] } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC)
    throw new CorruptCheckpointError(source, 'bad magic');
  const version = buf.readUInt32LE(4);
  if (version !== FORMAT_VERSION)
    throw new CorruptCheckpointError(
      source,
      `format version ${version}, expected ${FORMAT_VERSION}`,
    );
  const headerLength = buf.readUInt32LE(8);
  if (12 + headerLength > buf.length) throw new CorruptCheckpointError(source, 'truncated header');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + headerLength)) as Record<string, unknown>;
  } catch {
    throw new CorruptCheckpointError(source, 'header is not JSON');
  }
  const lengths = header.blockLengths;
  if (!Array.isArray(lengths))
    throw new CorruptCheckpointError(source, 'header has no blockLengths');
  let offset = 12 + ((headerLength + 3) & ~3);
  const blocks: Int32Array[] = [];
  for (const length of lengths as number[]) {
    const byteLength = length * 4;
    if (offset + byteLength > buf.length)
      throw new CorruptCheckpointError(source, 'truncated block');
    const block = new Int32Array(length);
    Buffer.from(block.buffer).set(buf.subarray(offset, offset + byteLength));
    blocks.push(block);
    offset += byteLength;
  }
  if (offset !== buf.length) throw new CorruptCheckpointError(source, 'trailing bytes');
  return { header, blocks };
}

/**
 * Write `data` to `path` atomically and durably: temp file, fsync, rename over, fsync the directory
 * (skip the last with `fsyncDirectory: false` when the caller fsyncs the directory once for many files).
 */
export function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: { fsyncDirectory?: boolean } = {},
): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(temp, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  if (options.fsyncDirectory ?? true) fsyncDirectory(dir);
}

/**
 * writeFileAtomic off the main thread (libuv's pool): the same temp + fsync + rename (+ directory fsync)
 * sequence, so many files can be made durable concurrently. The directory must exist.
 */
export async function writeFileAtomicAsync(
  path: string,
  data: Uint8Array,
  options: { fsyncDirectory?: boolean } = {},
): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  const file = await open(temp, 'w');
  try {
    let written = 0;
    while (written < data.length)
      written += (await file.write(data, written, data.length - written)).bytesWritten;
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  if (options.fsyncDirectory ?? true) await fsyncDirectoryAsync(dir);
}

export async function fsyncDirectoryAsync(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Read a file written by writeFileAtomic, or null if absent; stray temp files of dead writers are removed. */
export function readFileIfExists(path: string): Buffer | null {
  if (!existsSync(path)) return null;
  return readFileSync(path);
}

/** Remove leftover `.name.tmp-<pid>` files (a writer died between write and rename). */
export function removeStaleTempFiles(dir: string, files: string[]): void {
  for (const file of files) {
    if (/^\..*\.tmp-\d+$/.test(file)) {
      try {
        unlinkSync(join(dir, file));
      } catch {
        // already gone
      }
    }
  }
}
