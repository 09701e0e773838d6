// Name bytes -> vocabulary id without making a string (the ingest hot path: three lookups per fact).
// Owns: an open-addressing hash table from the UTF-8 bytes of names to ids already in a vocabulary,
// with the bytes kept in one growing arena. Must not assign ids itself: a miss builds the string once
// and asks the vocabulary (which assigns, persists and enforces limits), then remembers the answer.
// Valid while the vocabulary only grows (PersistentVocabulary truncates only when a checkpoint is
// loaded, before ingest starts).

const EMPTY = -1;
/** idOf's answer for bytes that are not valid UTF-8: the caller takes the general path. */
export const NOT_UTF8 = -2;

/** 32-bit FNV-1a of bytes[start, end). */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return hash | 0;
}

export class Utf8NameCache {
  private readonly assign: (name: string) => number;
  private slots: Int32Array; // [buckets], EMPTY or an entry index
  private mask: number;
  private entryHash = new Int32Array(1024); // [entries]
  private entryId = new Int32Array(1024); // [entries]
  private entryStart = new Int32Array(1024); // [entries] offset of the name's bytes in `arena`
  private entryLength = new Int32Array(1024); // [entries]
  private entries = 0;
  private arena = new Uint8Array(64 * 1024);
  private arenaUsed = 0;

  /** `assign`: the vocabulary's idOf (the id of a name, assigned if new; may throw, e.g. vocabulary_full). */
  constructor(assign: (name: string) => number, buckets = 2048) {
    this.assign = assign;
    this.slots = new Int32Array(buckets).fill(EMPTY);
    this.mask = buckets - 1;
  }

  /** Id of the name whose UTF-8 bytes are bytes[start, end), or NOT_UTF8. May throw what `assign` throws. */
  idOf(bytes: Uint8Array, start: number, end: number): number {
    const hash = hashBytes(bytes, start, end);
    const length = end - start;
    const arena = this.arena;
    let bucket = hash & this.mask;
    for (;;) {
      const entry = this.slots[bucket];
      if (entry === EMPTY) break;
      if (this.entryHash[entry] === hash && this.entryLength[entry] === length) {
        const at = this.entryStart[entry];
        let k = 0;
        while (k < length && arena[at + k] === bytes[start + k]) k++;
        if (k === length) return this.entryId[entry];
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
    if (this.entries === this.entryId.length) {
      const grown = (old: Int32Array) => {
        const next = new Int32Array(old.length * 2);
        next.set(old);
        return next;
      };
      this.entryHash = grown(this.entryHash);
      this.entryId = grown(this.entryId);
      this.entryStart = grown(this.entryStart);
      this.entryLength = grown(this.entryLength);
    }
    if (this.arenaUsed + length > this.arena.length) {
      const arena = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + length));
      arena.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = arena;
    }
    this.arena.set(bytes.subarray(start, start + length), this.arenaUsed);
    const entry = this.entries++;
    this.entryHash[entry] = hash;
    this.entryId[entry] = id;
    this.entryStart[entry] = this.arenaUsed;
    this.entryLength[entry] = length;
    this.arenaUsed += length;
    if (this.entries * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    else this.place(entry);
  }

  private place(entry: number): void {
    let bucket = this.entryHash[entry] & this.mask;
    while (this.slots[bucket] !== EMPTY) bucket = (bucket + 1) & this.mask;
    this.slots[bucket] = entry;
  }

  private rehash(buckets: number): void {
    this.slots = new Int32Array(buckets).fill(EMPTY);
    this.mask = buckets - 1;
    for (let entry = 0; entry < this.entries; entry++) this.place(entry);
  }
}
