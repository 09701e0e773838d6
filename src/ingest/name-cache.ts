// Name bytes -> vocabulary id without making a string (the ingest hot path: three lookups per fact).
// Owns: an open-addressing hash table from the UTF-8 bytes of names to ids already in a vocabulary,
// with the bytes kept in one growing arena. Must not assign ids itself: a miss builds the string once
// and asks the vocabulary (which assigns, persists and enforces limits), then remembers the answer.
// Valid while the vocabulary only grows (PersistentVocabulary truncates only when a checkpoint is
// loaded, before ingest starts).
//
// Layout (few cache lines per lookup): `table` holds [entry + 1 (0 = empty), hash] per bucket, and
// `entries` holds [id, arena start, length] per entry; names' bytes are back to back in `arena`.

/** idOf's answer for bytes that are not valid UTF-8: the caller takes the general path. */
export const NOT_UTF8 = -2;

const ENTRY_FIELDS = 3;

/** 32-bit hash of bytes[start, end): FNV-1a style mixing of 4-byte words, then the tail bytes. */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5 ^ (end - start);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const word = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    hash = Math.imul(hash ^ word, 0x01000193);
    hash ^= hash >>> 15;
  }
  for (; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return (hash ^ (hash >>> 13)) | 0;
}

export class Utf8NameCache {
  private readonly assign: (name: string) => number;
  private table: Int32Array; // [buckets * 2]: entry + 1 (0 = empty), hash
  private mask: number; // buckets - 1
  private entries = new Int32Array(1024 * ENTRY_FIELDS); // [capacity * 3]: id, arena start, length
  private count = 0;
  private arena = new Uint8Array(64 * 1024);
  private arenaUsed = 0;

  /** `assign`: the vocabulary's idOf (the id of a name, assigned if new; may throw, e.g. vocabulary_full). */
  constructor(assign: (name: string) => number, buckets = 2048) {
    this.assign = assign;
    this.table = new Int32Array(buckets * 2);
    this.mask = buckets - 1;
  }

  /** Id of the name whose UTF-8 bytes are bytes[start, end), or NOT_UTF8. May throw what `assign` throws. */
  idOf(bytes: Uint8Array, start: number, end: number): number {
    const hash = hashBytes(bytes, start, end);
    const length = end - start;
    const table = this.table;
    let bucket = hash & this.mask;
    for (;;) {
      const slot = table[bucket * 2];
      if (slot === 0) break;
      if (table[bucket * 2 + 1] === hash) {
        const at = (slot - 1) * ENTRY_FIELDS;
        if (this.entries[at + 2] === length) {
          const arena = this.arena;
          const from = this.entries[at + 1];
          let k = 0;
          while (k < length && arena[from + k] === bytes[start + k]) k++;
          if (k === length) return this.entries[at];
        }
      }
      bucket = (bucket + 1) & this.mask;
    }
    const name = Buffer.from(bytes.buffer, bytes.byteOffset + start, length).toString('utf8');
    // Invalid UTF-8 decodes to U+FFFD and would not round-trip: leave it to the general path.
    if (Buffer.byteLength(name, 'utf8') !== length) return NOT_UTF8;
    const id = this.assign(name);
    this.insert(hash, id, bytes, start, length);
    return id;
  }

  private insert(hash: number, id: number, bytes: Uint8Array, start: number, length: number): void {
    if ((this.count + 1) * ENTRY_FIELDS > this.entries.length) {
      const entries = new Int32Array(this.entries.length * 2);
      entries.set(this.entries);
      this.entries = entries;
    }
    if (this.arenaUsed + length > this.arena.length) {
      const arena = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + length));
      arena.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = arena;
    }
    this.arena.set(bytes.subarray(start, start + length), this.arenaUsed);
    const entry = this.count++;
    this.entries[entry * ENTRY_FIELDS] = id;
    this.entries[entry * ENTRY_FIELDS + 1] = this.arenaUsed;
    this.entries[entry * ENTRY_FIELDS + 2] = length;
    this.arenaUsed += length;
    if (this.count * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    else this.place(entry, hash);
  }

  private place(entry: number, hash: number): void {
    let bucket = hash & this.mask;
    while (this.table[bucket * 2] !== 0) bucket = (bucket + 1) & this.mask;
    this.table[bucket * 2] = entry + 1;
    this.table[bucket * 2 + 1] = hash;
  }

  private rehash(buckets: number): void {
    const old = this.table;
    this.table = new Int32Array(buckets * 2);
    this.mask = buckets - 1;
    for (let b = 0; b < old.length; b += 2) if (old[b] !== 0) this.place(old[b] - 1, old[b + 1]);
  }
}
