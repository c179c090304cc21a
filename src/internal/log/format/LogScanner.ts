/**
 * Decoding log batches: `batchHeaderProblem` checks a batch header,
 * `recordsProblem` checks every record of a batch without decoding it, and
 * `applyRecords` decodes checked records into a visitor. Replay applies a
 * batch only once all of it has checked out, so a visitor never sees half a
 * batch.
 *
 * This is the hot path of replay: no object per record, strings decoded
 * straight from the buffer. Nothing here throws on any input (only the
 * visitor can throw).
 */
import * as Limits from "../../Limits.ts"
import {
  batchHeaderCrcAt,
  batchHeaderLength,
  batchRecordsLengthAt,
  batchSaltAt,
  batchSequenceAt,
  crc32,
  flagBytes,
  flagDeadline,
  knownFlags,
  maxBatchRecordsBytes,
  maxKeyBytes,
  maxPayloadLength,
  maxValueBytes,
  minPayloadLength,
  opDelete,
  opPut,
  readU32,
  recordHeaderLength
} from "./LogFormat.ts"

/**
 * Receives the records of a log in order. `deadline` is the absolute epoch
 * time in milliseconds from which the key is gone, or `Infinity` for none.
 * A `Uint8Array` value is a fresh copy the visitor may keep. `offset` is the
 * record's byte offset in the file (for tools that show where a record is).
 */
export interface RecordVisitor {
  readonly put: (key: string, value: string | Uint8Array, deadline: number, offset: number) => void
  readonly delete: (key: string, offset: number) => void
  /** Told once, early, about how many records the whole log likely holds. */
  readonly expect?: (records: number) => void
  /**
   * When present, puts and deletes come here instead, as byte ranges of
   * `buf` (valid only during the call): the key `[keyAt, keyAt + keyLength)`
   * and the value `[valueAt, valueAt + valueLength)`, both UTF-8 unless
   * `valueIsBytes`. No string is decoded.
   */
  readonly bytes?: {
    readonly put: (
      buf: Uint8Array,
      keyAt: number,
      keyLength: number,
      valueAt: number,
      valueLength: number,
      valueIsBytes: boolean,
      deadline: number
    ) => void
    readonly delete: (buf: Uint8Array, keyAt: number, keyLength: number) => void
    /**
     * When present, told of each record's key a few records before `put` or
     * `delete` gets it, in the same order, while `buf` stays as it is: an
     * index can start the cache misses of several lookups at once instead of
     * waiting for each in turn.
     */
    readonly lookAhead?: ((buf: Uint8Array, keyAt: number, keyLength: number) => void) | undefined
  } | undefined
}

/**
 * What is wrong with the batch header at `buf[at, at + 32)` of a file whose
 * salt is `salt`, where batch number `sequence` is expected; `undefined` if
 * nothing. Once it passes, its records length is within bounds, so the batch
 * can be read; its count is checked with its records (`recordsProblem`).
 */
export const batchHeaderProblem = (buf: Uint8Array, at: number, salt: number, sequence: number): string | undefined => {
  if (readU32(buf, at + batchHeaderCrcAt) !== crc32(buf, at, at + batchHeaderCrcAt)) {
    return "the batch header's CRC32 does not match"
  }
  if (readU32(buf, at + batchSaltAt) !== salt) return "the batch header carries another file's salt"
  const found = readU32(buf, at + batchSequenceAt)
  if (found !== sequence >>> 0) return `batch sequence ${found} where ${sequence >>> 0} was expected`
  const recordsLength = readU32(buf, at + batchRecordsLengthAt)
  if (recordsLength > maxBatchRecordsBytes) return `impossible records length ${recordsLength}`
  return undefined
}

/**
 * What is wrong with the `count` records in `buf[start, end)`, naming the
 * bad record's offset relative to `start`; `undefined` if they are exactly
 * `count` well-formed records filling the range. Decodes no string unless it
 * is long enough to break a limit.
 *
 * Strings are not checked as UTF-8: records whose CRC matches hold the bytes
 * the encoder wrote, and the encoder writes only well-formed UTF-8. (Decoding
 * would not throw anyway: a bad sequence reads as U+FFFD.)
 */
export const recordsProblem = (buf: Buffer, start: number, end: number, count: number): string | undefined => {
  if (count === 0) return "a batch of no records"
  let at = start
  let records = 0
  while (at < end) {
    if (records === count) return `more bytes after its ${count} records (at +${at - start})`
    if (end - at < recordHeaderLength) return `an incomplete record length (at +${at - start})`
    const length = readU32(buf, at)
    if (length < minPayloadLength || length > maxPayloadLength || length > end - at - recordHeaderLength) {
      return `impossible payload length ${length} (record at +${at - start})`
    }
    const problem = payloadProblem(buf, at + recordHeaderLength, at + recordHeaderLength + length)
    if (problem !== undefined) return `${problem} (record at +${at - start})`
    at += recordHeaderLength + length
    records++
  }
  return records === count ? undefined : `${records} records where the header says ${count}`
}

/** What is wrong with the payload `buf[start, end)` (at least `minPayloadLength` bytes); `undefined` if nothing. */
const payloadProblem = (buf: Buffer, start: number, end: number): string | undefined => {
  const op = buf[start]
  const flags = buf[start + 1]
  let at = start + 2
  if (op === opPut) {
    if ((flags & ~knownFlags) !== 0) return `unknown flags 0x${flags.toString(16)}`
    if ((flags & flagDeadline) !== 0) {
      if (end - at < 8 + 4) return "the payload is too short for its deadline"
      const deadline = buf.readDoubleLE(at)
      // Also rejects NaN, and Infinity (which is written as "no deadline").
      if (!(deadline > 0 && deadline < Infinity)) return `invalid deadline ${deadline}`
      at += 8
    }
    const keyByteLength = readU32(buf, at)
    at += 4
    if (keyByteLength > maxKeyBytes || keyByteLength > end - at) return `invalid key length ${keyByteLength}`
    if (keyByteLength > Limits.maxKeyLength && decodeUtf8(buf, at, at + keyByteLength).length > Limits.maxKeyLength) {
      return `key longer than ${Limits.maxKeyLength}`
    }
    at += keyByteLength
    const valueByteLength = end - at
    if ((flags & flagBytes) !== 0) {
      if (valueByteLength > Limits.maxValueLength) return "value longer than the limit"
    } else {
      if (valueByteLength > maxValueBytes) return "value longer than the limit"
      if (valueByteLength > Limits.maxValueLength && decodeUtf8(buf, at, end).length > Limits.maxValueLength) {
        return "value longer than the limit"
      }
    }
    return undefined
  }
  if (op === opDelete) {
    if (flags !== 0) return `a delete with flags 0x${flags.toString(16)}`
    const keyByteLength = readU32(buf, at)
    at += 4
    if (keyByteLength !== end - at || keyByteLength > maxKeyBytes) {
      return `a delete whose key length ${keyByteLength} does not fill its payload`
    }
    if (keyByteLength > Limits.maxKeyLength && decodeUtf8(buf, at, end).length > Limits.maxKeyLength) {
      return `key longer than ${Limits.maxKeyLength}`
    }
    return undefined
  }
  return `unknown op ${op}`
}

/**
 * Gives the records in `buf[start, end)` to `visitor`, in order, with their
 * offsets in the file, where `buf[0]` is at file offset `base`. Only for
 * records `recordsProblem` has passed: it checks nothing itself.
 */
export const applyRecords = (buf: Buffer, start: number, end: number, visitor: RecordVisitor, base = 0): void => {
  if (visitor.bytes !== undefined) return applyRecordBytes(buf, start, end, visitor.bytes)
  let at = start
  while (at < end) {
    const payloadEnd = at + recordHeaderLength + readU32(buf, at)
    const flags = buf[at + recordHeaderLength + 1]
    if (buf[at + recordHeaderLength] === opPut) {
      let p = at + recordHeaderLength + 2
      let deadline = Infinity
      if ((flags & flagDeadline) !== 0) {
        deadline = buf.readDoubleLE(p)
        p += 8
      }
      const keyEnd = p + 4 + readU32(buf, p)
      const key = decodeUtf8(buf, p + 4, keyEnd)
      visitor.put(
        key,
        (flags & flagBytes) !== 0
          // A copy: the caller reuses `buf` for the next chunk.
          ? new Uint8Array(buf.buffer, buf.byteOffset + keyEnd, payloadEnd - keyEnd).slice()
          : decodeUtf8(buf, keyEnd, payloadEnd),
        deadline,
        base + at
      )
    } else {
      visitor.delete(decodeUtf8(buf, at + recordHeaderLength + 6, payloadEnd), base + at)
    }
    at = payloadEnd
  }
}

/**
 * Gives the records of the whole batches in `buf[from, to)` (each checked by
 * `batchHeaderProblem` and `recordsProblem`) to `visitor`, in order, as
 * `applyRecords` does batch by batch.
 */
export const applyBatches = (buf: Buffer, from: number, to: number, visitor: RecordVisitor, base = 0): void => {
  const bytes = visitor.bytes
  if (bytes !== undefined) {
    if (bytes.lookAhead !== undefined) return applyBatchBytesLookingAhead(buf, from, to, bytes, bytes.lookAhead)
    for (let at = from; at < to;) {
      const recordsEnd = at + batchHeaderLength + readU32(buf, at)
      applyRecordBytes(buf, at + batchHeaderLength, recordsEnd, bytes)
      at = recordsEnd
    }
    return
  }
  for (let at = from; at < to;) {
    const recordsEnd = at + batchHeaderLength + readU32(buf, at)
    applyRecords(buf, at + batchHeaderLength, recordsEnd, visitor, base)
    at = recordsEnd
  }
}

/** `applyRecords` for a visitor that takes bytes: no string, no copy, no object per record. */
const applyRecordBytes = (buf: Buffer, start: number, end: number, visitor: NonNullable<RecordVisitor["bytes"]>): void => {
  for (let at = start; at < end;) at = applyRecordBytesAt(buf, at, visitor)
}

/** Gives the record at `at` to `visitor`; returns where the next one begins. */
const applyRecordBytesAt = (buf: Buffer, at: number, visitor: NonNullable<RecordVisitor["bytes"]>): number => {
  const payloadEnd = at + recordHeaderLength + readU32(buf, at)
  const flags = buf[at + recordHeaderLength + 1]
  if (buf[at + recordHeaderLength] === opPut) {
    let p = at + recordHeaderLength + 2
    let deadline = Infinity
    if ((flags & flagDeadline) !== 0) {
      deadline = buf.readDoubleLE(p)
      p += 8
    }
    const keyLength = readU32(buf, p)
    const keyEnd = p + 4 + keyLength
    visitor.put(buf, p + 4, keyLength, keyEnd, payloadEnd - keyEnd, (flags & flagBytes) !== 0, deadline)
  } else {
    visitor.delete(buf, at + recordHeaderLength + 6, payloadEnd - (at + recordHeaderLength + 6))
  }
  return payloadEnd
}

/**
 * How many records the visitor is told of before the first of them is
 * applied. A CPU profile of replay into the shared index put most of the
 * index's own time on each key's first slot load, a cache miss waited for
 * one record at a time; started together, the misses overlap. Few enough
 * that what they bring into cache is still there when it is used.
 */
const lookAheadRecords = 16

/**
 * `applyBatches` for a visitor that looks ahead: in groups of
 * `lookAheadRecords`, tells it of every key of the group, then applies the
 * group. Batch boundaries do not end a group.
 */
const applyBatchBytesLookingAhead = (
  buf: Buffer,
  from: number,
  to: number,
  visitor: NonNullable<RecordVisitor["bytes"]>,
  lookAhead: (buf: Uint8Array, keyAt: number, keyLength: number) => void
): void => {
  // A cursor is a record's offset and the end of its batch's records; at the
  // end of a batch's records, the next batch header follows.
  let at = from
  let recordsEnd = from
  for (;;) {
    let ahead = at
    let aheadEnd = recordsEnd
    let group = 0
    for (; group < lookAheadRecords; group++) {
      if (ahead === aheadEnd) {
        if (ahead >= to) break
        aheadEnd = ahead + batchHeaderLength + readU32(buf, ahead)
        ahead += batchHeaderLength
      }
      const payload = ahead + recordHeaderLength
      const payloadEnd = payload + readU32(buf, ahead)
      if (buf[payload] === opPut) {
        const p = payload + 2 + ((buf[payload + 1] & flagDeadline) !== 0 ? 8 : 0)
        lookAhead(buf, p + 4, readU32(buf, p))
      } else {
        lookAhead(buf, payload + 6, payloadEnd - (payload + 6))
      }
      ahead = payloadEnd
    }
    if (group === 0) return
    for (let i = 0; i < group; i++) {
      if (at === recordsEnd) {
        recordsEnd = at + batchHeaderLength + readU32(buf, at)
        at += batchHeaderLength
      }
      at = applyRecordBytesAt(buf, at, visitor)
    }
  }
}

/** How `scanRecords` ended: `records` records applied, or the reason none was. */
export type ScanResult =
  | { readonly _tag: "Done"; readonly records: number }
  | { readonly _tag: "Corrupt"; readonly reason: string }

/**
 * Checks the records in `buf[start, end)` (exactly `count` of them, when
 * given), then gives them all to `visitor`, or none if any is bad.
 */
export const scanRecords = (
  buf: Buffer,
  start: number,
  end: number,
  visitor: RecordVisitor,
  count?: number
): ScanResult => {
  const expected = count ?? countRecords(buf, start, end)
  const problem = recordsProblem(buf, start, end, expected)
  if (problem !== undefined) return { _tag: "Corrupt", reason: problem }
  applyRecords(buf, start, end, visitor)
  return { _tag: "Done", records: expected }
}

/** How many records the lengths in `buf[start, end)` delimit (structure unchecked). */
const countRecords = (buf: Uint8Array, start: number, end: number): number => {
  let records = 0
  for (let at = start; end - at >= recordHeaderLength; at += recordHeaderLength + readU32(buf, at)) records++
  return records
}

/**
 * Decodes UTF-8 `buf[start, end)`. Replay decodes two strings a record, and
 * for short ones the native decoder's call costs more than the decoding:
 * short ASCII strings are built with `String.fromCharCode` instead, ~2×
 * faster (keys are usually short ASCII). The rest goes to
 * `Buffer.prototype.utf8Slice`, which is what `toString("utf8")` calls after
 * checking its arguments (~20% of its time on short strings).
 */
const decodeUtf8 = (buf: Buffer, start: number, end: number): string => {
  const length = end - start
  if (length <= maxShortAscii) {
    let bits = 0
    for (let i = start; i < end; i++) bits |= buf[i]
    if (bits < 0x80) return shortAscii(buf, start, length)
  }
  return utf8Slice(buf, start, end)
}

const maxShortAscii = 16
const fromCharCode = String.fromCharCode

/** The `length` (≤ `maxShortAscii`) ASCII bytes at `b[i]` as a string: one builtin call, no array. */
const shortAscii = (b: Uint8Array, i: number, length: number): string => {
  switch (length) {
    case 0:
      return ""
    case 1:
      return fromCharCode(b[i])
    case 2:
      return fromCharCode(b[i], b[i + 1])
    case 3:
      return fromCharCode(b[i], b[i + 1], b[i + 2])
    case 4:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3])
    case 5:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4])
    case 6:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5])
    case 7:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6])
    case 8:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7])
    case 9:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8])
    case 10:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9])
    case 11:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9], b[i + 10])
    case 12:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9], b[i + 10], b[i + 11])
    case 13:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9], b[i + 10], b[i + 11], b[i + 12])
    case 14:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9], b[i + 10], b[i + 11], b[i + 12], b[i + 13])
    case 15:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9], b[i + 10], b[i + 11], b[i + 12], b[i + 13], b[i + 14])
    case 16:
      return fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7], b[i + 8], b[i + 9], b[i + 10], b[i + 11], b[i + 12], b[i + 13], b[i + 14], b[i + 15])
    default:
      throw new RangeError(`shortAscii: length ${length} > ${maxShortAscii}`)
  }
}

interface Utf8Slicer {
  readonly utf8Slice: (start: number, end: number) => string
}

/** Falls back to `toString` should Node ever drop `utf8Slice`. */
const utf8Slice: (buf: Buffer, start: number, end: number) => string =
  typeof (Buffer.prototype as Partial<Utf8Slicer>).utf8Slice === "function"
    ? (buf, start, end) => (buf as unknown as Utf8Slicer).utf8Slice(start, end)
    : (buf, start, end) => buf.toString("utf8", start, end)

