// Allocation-free reader for the common shape of a Fact value (the ingest hot path). Owns: recognising an
// Avro single-object Fact of the CURRENT schema with an integer step, no timestamp and names that hold a
// visible ASCII character, and reporting its fields as byte ranges (names stay UTF-8 bytes). Anything else
// (JSON, Confluent framing, older writers, a timestamp, blank names, malformed bytes) is not read here: the caller falls back to
// SchemaCodec.decodeValue, which handles every value and names every error. Must not touch Kafka,
// vocabulary or validation rules beyond "is this the plain shape".
//
// Body layout (schemas/Fact.avsc, Avro binary): subject string, relation string, object string,
// step union [null, long], timestamp union [null, string, long]; a string is a zigzag-varint length then
// UTF-8 bytes; a union is a zigzag-varint branch index then the branch value.

/** Where the fields of a plain Fact are: names as [start, end) byte offsets into the value, and the step. */
export interface PlainFactFields {
  subjectStart: number;
  subjectEnd: number;
  relationStart: number;
  relationEnd: number;
  objectStart: number;
  objectEnd: number;
  step: number;
}

/** A reusable PlainFactFields (fill it with PlainFactReader.read; no allocation per value). */
export function emptyPlainFactFields(): PlainFactFields {
  return {
    subjectStart: 0,
    subjectEnd: 0,
    relationStart: 0,
    relationEnd: 0,
    objectStart: 0,
    objectEnd: 0,
    step: 0,
  };
}

/** Largest step read here (2^48 - 1: 7 varint bytes); larger ones take the general path. */
const MAX_FAST_VARINT_BYTES = 7;

export class PlainFactReader {
  private readonly fingerprintLow: number;
  private readonly fingerprintHigh: number;
  /** Scratch results of readVarint / readAsciiName (read() is synchronous). */
  private varintValue = 0;
  private nameStart = 0;

  /** `fingerprint`: the 8 bytes of the current Fact schema's fingerprint (SchemaCodec.fingerprint('Fact')). */
  constructor(fingerprint: Uint8Array) {
    const bytes = Buffer.from(fingerprint.buffer, fingerprint.byteOffset, fingerprint.byteLength);
    this.fingerprintLow = bytes.readUInt32LE(0);
    this.fingerprintHigh = bytes.readUInt32LE(4);
  }

  /**
   * Fill `out` and return true when `value` is exactly a single-object Fact of the current schema with a
   * non-negative step, a null timestamp and names with a visible ASCII byte; return false otherwise
   * (`out` is then unspecified). Never throws.
   */
  read(value: Buffer, out: PlainFactFields): boolean {
    const end = value.length;
    if (end < 15 || value[0] !== 0xc3 || value[1] !== 0x01) return false;
    if (value.readUInt32LE(2) !== this.fingerprintLow) return false;
    if (value.readUInt32LE(6) !== this.fingerprintHigh) return false;
    let position = 10;
    // Three strings.
    position = this.readAsciiName(value, position, end);
    if (position < 0) return false;
    out.subjectEnd = position;
    out.subjectStart = this.nameStart;
    position = this.readAsciiName(value, position, end);
    if (position < 0) return false;
    out.relationEnd = position;
    out.relationStart = this.nameStart;
    position = this.readAsciiName(value, position, end);
    if (position < 0) return false;
    out.objectEnd = position;
    out.objectStart = this.nameStart;
    // step: union branch 1 (long) = zigzag 1 = 0x02, then the zigzag long.
    if (position >= end || value[position] !== 0x02) return false;
    position = this.readVarint(value, position + 1, end);
    if (position < 0 || this.varintValue % 2 !== 0) return false; // odd zigzag = negative step
    out.step = this.varintValue / 2;
    // timestamp: union branch 0 (null) = 0x00, and nothing after it.
    return position === end - 1 && value[position] === 0x00;
  }

  /** Read an unsigned varint of at most MAX_FAST_VARINT_BYTES into varintValue; returns the next position or -1. */
  private readVarint(bytes: Buffer, position: number, end: number): number {
    let value = 0;
    let scale = 1;
    for (let k = 0; k < MAX_FAST_VARINT_BYTES; k++) {
      if (position >= end) return -1;
      const byte = bytes[position++];
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        this.varintValue = value;
        return position;
      }
      scale *= 128;
    }
    return -1;
  }

  /**
   * Read a non-empty Avro string with at least one visible ASCII byte (0x21-0x7e: so never blank, whatever
   * its other bytes); sets nameStart and returns the position after it, or -1 (let the general path decide).
   */
  private readAsciiName(bytes: Buffer, position: number, end: number): number {
    const start = this.readVarint(bytes, position, end);
    if (start < 0 || this.varintValue % 2 !== 0) return -1;
    const stop = start + this.varintValue / 2;
    if (stop > end || stop === start) return -1;
    let i = start;
    while (i < stop && (bytes[i] <= 0x20 || bytes[i] >= 0x7f)) i++;
    if (i === stop) return -1; // blank, or only non-ASCII: the general path judges it
    this.nameStart = start;
    return stop;
  }
}
