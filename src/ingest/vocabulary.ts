// Persistent name -> dense id maps for entities and relations (SPEC section 3, "Vocabulary").
// Owns: id assignment (order of first appearance, never reused), the append-only logs
// `<dir>/entities.log` and `<dir>/relations.log` (one JSON string per line), fsync on `sync()`,
// and truncation back to a checkpoint's sizes on restore. Grows while running; no restart needed.
// Must not touch Kafka, the window or the model (the trainer grows its rows from `numEntities`).
import {
  closeSync,
  existsSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  write,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { InvalidInputError, TkgError } from '../core/errors.ts';
import { fsyncDirectory } from '../core/durable.ts';
import { MAX_ENTITY_ID } from '../window/triple-set.ts';

const writeAsync = promisify(
  (
    fd: number,
    buffer: Buffer,
    offset: number,
    length: number,
    callback: (error: NodeJS.ErrnoException | null, written: number) => void,
  ) => write(fd, buffer, offset, length, null, callback),
);
const fsyncAsync = promisify(fsync);

/** One append-only name list: ids are line numbers. */
class NameLog {
  readonly path: string;
  readonly names: string[] = [];
  private readonly ids = new Map<string, number>();
  /** Names [0, persisted) are durable in the file; the rest wait for sync(). */
  private persisted = 0;
  private fd: number | null = null;
  private readonly maxSize: number;
  private readonly kind: 'entity' | 'relation';

  constructor(path: string, kind: 'entity' | 'relation', maxSize: number) {
    this.path = path;
    this.kind = kind;
    this.maxSize = maxSize;
    if (existsSync(path)) this.load();
  }

  private load(): void {
    const text = readFileSync(this.path, 'utf8');
    let start = 0;
    let validBytes = 0;
    for (;;) {
      const end = text.indexOf('\n', start);
      if (end < 0) break; // a torn last line (no newline) is dropped
      let name: unknown;
      try {
        name = JSON.parse(text.slice(start, end));
      } catch {
        break; // torn write: keep the valid prefix
      }
      if (typeof name !== 'string' || this.ids.has(name)) break;
      this.ids.set(name, this.names.length);
      this.names.push(name);
      validBytes += Buffer.byteLength(text.slice(start, end + 1), 'utf8');
      start = end + 1;
    }
    this.persisted = this.names.length;
    if (validBytes !== Buffer.byteLength(text, 'utf8')) this.truncateFile(validBytes);
  }

  idOf(name: string): number {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    if (this.names.length >= this.maxSize) {
      throw new InvalidInputError(
        this.kind === 'entity' ? 'subject' : 'relation',
        `the ${this.kind} vocabulary is full (${this.maxSize} names); raise the limit or start a new state directory`,
        'vocabulary_full',
      );
    }
    const id = this.names.length;
    this.ids.set(name, id);
    this.names.push(name);
    return id;
  }

  lookup(name: string): number | undefined {
    return this.ids.get(name);
  }

  /** Append names not yet on disk and fsync. */
  sync(): void {
    if (this.persisted === this.names.length) return;
    const fd = this.openForAppend();
    const bytes = this.linesOf(this.persisted, this.names.length);
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
    this.persisted = this.names.length;
  }

  /**
   * Append names [persisted, size) and fsync, off the main thread. Names assigned meanwhile (ids >= size)
   * wait for a later call. Calls must not overlap (the ingest consumer chains its checkpoints).
   */
  async syncToAsync(size: number): Promise<void> {
    const from = this.persisted;
    if (size <= from) return;
    const fd = this.openForAppend();
    const bytes = this.linesOf(from, size);
    let written = 0;
    while (written < bytes.length)
      written += await writeAsync(fd, bytes, written, bytes.length - written);
    await fsyncAsync(fd);
    this.persisted = size;
  }

  private linesOf(from: number, to: number): Buffer {
    let lines = '';
    for (let id = from; id < to; id++) lines += JSON.stringify(this.names[id]) + '\n';
    return Buffer.from(lines, 'utf8');
  }

  private openForAppend(): number {
    if (this.fd === null) {
      const created = !existsSync(this.path);
      this.fd = openSync(this.path, 'a');
      if (created) fsyncDirectory(join(this.path, '..'));
    }
    return this.fd;
  }

  /** Forget names with id >= size (in memory and on disk). */
  truncate(size: number): void {
    if (size > this.names.length) {
      throw new TkgError(
        `${this.path} has ${this.names.length} names but the checkpoint expects ${size}: the vocabulary log was lost or edited; restore the state directory together or delete it to start over`,
        { reason: 'corrupt_checkpoint' },
      );
    }
    if (size === this.names.length) return;
    for (const name of this.names.splice(size)) this.ids.delete(name);
    if (this.persisted > size) {
      let bytes = 0;
      for (const name of this.names)
        bytes += Buffer.byteLength(JSON.stringify(name) + '\n', 'utf8');
      this.truncateFile(bytes);
      this.persisted = size;
    }
  }

  private truncateFile(bytes: number): void {
    this.close();
    const fd = openSync(this.path, 'r+');
    try {
      ftruncateSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export interface VocabularySizes {
  numEntities: number;
  numRelations: number;
}

/**
 * Entity and relation vocabularies persisted as append-only logs in `dir`. Usage: `idOf...` while
 * ingesting, `sync()` before writing a checkpoint that records `sizes()`, `truncateTo(sizes)` after
 * loading that checkpoint (names appended after it belong to messages that will be re-delivered).
 */
export class PersistentVocabulary {
  readonly dir: string;
  private readonly entities: NameLog;
  private readonly relations: NameLog;

  constructor(dir: string, options: { maxEntities?: number; maxRelations?: number } = {}) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.entities = new NameLog(
      join(dir, 'entities.log'),
      'entity',
      Math.min(options.maxEntities ?? MAX_ENTITY_ID + 1, MAX_ENTITY_ID + 1),
    );
    this.relations = new NameLog(
      join(dir, 'relations.log'),
      'relation',
      options.maxRelations ?? 1_000_000,
    );
  }

  entityId(name: string): number {
    return this.entities.idOf(name);
  }

  relationId(name: string): number {
    return this.relations.idOf(name);
  }

  lookupEntity(name: string): number | undefined {
    return this.entities.lookup(name);
  }

  lookupRelation(name: string): number | undefined {
    return this.relations.lookup(name);
  }

  entityName(id: number): string | undefined {
    return this.entities.names[id];
  }

  relationName(id: number): string | undefined {
    return this.relations.names[id];
  }

  /** entityNames[id] (read-only view; grows as names arrive). */
  get entityNames(): readonly string[] {
    return this.entities.names;
  }

  get relationNames(): readonly string[] {
    return this.relations.names;
  }

  get numEntities(): number {
    return this.entities.names.length;
  }

  get numRelations(): number {
    return this.relations.names.length;
  }

  sizes(): VocabularySizes {
    return { numEntities: this.numEntities, numRelations: this.numRelations };
  }

  /** Make every assigned name durable (append + fsync). */
  sync(): void {
    this.entities.sync();
    this.relations.sync();
  }

  /** Make names with ids below `sizes` durable (append + fsync) off the main thread; see NameLog.syncToAsync. */
  async syncToAsync(sizes: VocabularySizes): Promise<void> {
    await Promise.all([
      this.entities.syncToAsync(sizes.numEntities),
      this.relations.syncToAsync(sizes.numRelations),
    ]);
  }

  /** Drop names beyond a checkpoint's sizes. */
  truncateTo(sizes: VocabularySizes): void {
    this.entities.truncate(sizes.numEntities);
    this.relations.truncate(sizes.numRelations);
  }

  close(): void {
    this.entities.close();
    this.relations.close();
  }
}
