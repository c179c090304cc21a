/**
 * Decoding log records: `scanRecords` walks the framed records in a byte
 * range, checks each one completely, and hands it to a visitor; `classifyTail`
 * decides whether a bad record is a torn tail (a crash cut the last write
 * short: drop it) or corruption inside the log (refuse to open).
 *
 * This is the hot path of replay: no object per record, strings decoded
 * straight from the buffer, the CRC checked in place. It never throws on any
 * input (only the visitor can throw).
 */
import * as Limits from "../../Limits.ts"
import {
  crc32,
  flagBytes,
  flagDeadline,
  frameHeaderLength,
  knownFlags,
  maxKeyBytes,
  maxPayloadLength,
  maxValueBytes,
  minPayloadLength,
  opDelete,
  opPut,
  readU32
} from "./LogFormat.ts"

/**
 * Receives the records of a log in order. `deadline` is the absolute epoch
 * time in milliseconds from which the key is gone, or `Infinity` for none.
 * A `Uint8Array` value is a fresh copy the visitor may keep.
 */
export interface RecordVisitor {
  readonly put: (key: string, value: string | Uint8Array, deadline: number) => void
  readonly delete: (key: string) => void
  /** Told once, early, about how many records the whole log likely holds. */
  readonly expect?: (records: number) => void
}

/**
 * How a scan of `[start, end)` ended. `records` counts the records given to
 * the visitor.
 *
 * - `Done`: every complete record was consumed; `offset` is the first byte not
 *   consumed. If `offset < end`, a record straddles `end`: read more and scan
 *   again from `offset` (`recordLengthAt` says how long it is, once its 12-byte
 *   frame header is in the buffer).
 * - `Corrupt`: the record at `offset` is bad; `reason` says how. Records
 *   before it were consumed.
 */
export type ScanResult =
  | { readonly _tag: "Done"; readonly offset: number; readonly records: number }
  | { readonly _tag: "Corrupt"; readonly offset: number; readonly records: number; readonly reason: string }

/**
 * Decodes the records in `buf[start, end)`, calling `visitor` for each valid
 * one, and stops at the first bad or incomplete record.
 *
 * A frame header is checked as soon as its 12 bytes are in range: a bad length
 * check or an impossible length is `Corrupt` even if the payload lies beyond
 * `end`. A record is given to the visitor only once all of it has been checked.
 *
 * Strings are not validated as UTF-8: a record whose CRC matches holds the
 * bytes the encoder wrote, and the encoder writes only well-formed UTF-8.
 * (Decoding would not throw anyway: a bad sequence would read as U+FFFD.)
 */
export const scanRecords = (buf: Buffer, start: number, end: number, visitor: RecordVisitor): ScanResult => {
  let offset = start
  let records = 0
  while (end - offset >= frameHeaderLength) {
    const length = readU32(buf, offset)
    if ((length ^ readU32(buf, offset + 4)) !== -1) {
      return corrupt(offset, records, "the length check does not match the length")
    }
    if (length < minPayloadLength || length > maxPayloadLength) {
      return corrupt(offset, records, `impossible payload length ${length}`)
    }
    const payloadStart = offset + frameHeaderLength
    const payloadEnd = payloadStart + length
    if (payloadEnd > end) break
    if (crc32(buf, payloadStart, payloadEnd) !== readU32(buf, offset + 8)) {
      return corrupt(offset, records, "the payload's CRC32 does not match")
    }
    const op = buf[payloadStart]
    const flags = buf[payloadStart + 1]
    let at = payloadStart + 2
    if (op === opPut) {
      if ((flags & ~knownFlags) !== 0) return corrupt(offset, records, `unknown flags 0x${flags.toString(16)}`)
      let deadline = Infinity
      if ((flags & flagDeadline) !== 0) {
        if (payloadEnd - at < 8 + 4) return corrupt(offset, records, "the payload is too short for its deadline")
        deadline = buf.readDoubleLE(at)
        // Also rejects NaN, and Infinity (which is written as "no deadline").
        if (!(deadline > 0 && deadline < Infinity)) return corrupt(offset, records, `invalid deadline ${deadline}`)
        at += 8
      }
      const keyByteLength = readU32(buf, at)
      at += 4
      if (keyByteLength > maxKeyBytes || keyByteLength > payloadEnd - at) {
        return corrupt(offset, records, `invalid key length ${keyByteLength}`)
      }
      const key = decodeUtf8(buf, at, at + keyByteLength)
      if (key.length > Limits.maxKeyLength) return corrupt(offset, records, `key longer than ${Limits.maxKeyLength}`)
      at += keyByteLength
      let value: string | Uint8Array
      if ((flags & flagBytes) !== 0) {
        if (payloadEnd - at > Limits.maxValueLength) return corrupt(offset, records, "value longer than the limit")
        // A copy: the caller reuses `buf` for the next chunk.
        value = new Uint8Array(buf.buffer, buf.byteOffset + at, payloadEnd - at).slice()
      } else {
        if (payloadEnd - at > maxValueBytes) return corrupt(offset, records, "value longer than the limit")
        value = decodeUtf8(buf, at, payloadEnd)
        if (value.length > Limits.maxValueLength) return corrupt(offset, records, "value longer than the limit")
      }
      visitor.put(key, value, deadline)
    } else if (op === opDelete) {
      if (flags !== 0) return corrupt(offset, records, `a delete with flags 0x${flags.toString(16)}`)
      const keyByteLength = readU32(buf, at)
      at += 4
      if (keyByteLength !== payloadEnd - at || keyByteLength > maxKeyBytes) {
        return corrupt(offset, records, `a delete whose key length ${keyByteLength} does not fill its payload`)
      }
      const key = decodeUtf8(buf, at, payloadEnd)
      if (key.length > Limits.maxKeyLength) return corrupt(offset, records, `key longer than ${Limits.maxKeyLength}`)
      visitor.delete(key)
    } else {
      return corrupt(offset, records, `unknown op ${op}`)
    }
    offset = payloadEnd
    records++
  }
  return { _tag: "Done", offset, records }
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

const corrupt = (offset: number, records: number, reason: string): ScanResult => ({
  _tag: "Corrupt",
  offset,
  records,
  reason
})

/**
 * The length in bytes (frame header included) that the record at `offset`
 * declares. Meaningful after `scanRecords` stopped with `Done` at `offset` with
 * at least 12 bytes left, which means the frame header there is valid.
 */
export const recordLengthAt = (buf: Uint8Array, offset: number): number =>
  frameHeaderLength + readU32(buf, offset)

// =============================================================================
// Torn tail or corruption
// =============================================================================

/**
 * What a bad or incomplete record at file offset X means:
 *
 * - `TornTail`: a crash cut the last write short. Drop everything from X on
 *   (truncate the file to X) and warn.
 * - `Corruption`: the log is damaged before its tail. Refuse to open, naming
 *   X, unless the user asked to truncate at the first bad record.
 */
export type TailVerdict =
  | { readonly _tag: "TornTail"; readonly reason: string }
  | { readonly _tag: "Corruption"; readonly reason: string }

/**
 * The torn-tail rule. A bad or incomplete record at X is a torn tail iff
 * 1. fewer than 12 bytes remain from X to the end of the file; or
 * 2. its length check is valid and X + 12 + L > end of file; or
 * 3. its length check is valid and X + 12 + L = end of file (it is the last
 *    record, and its CRC or payload is bad); or
 * 4. only zeros follow it: from its end (X + 12 + L) when its length check
 *    is valid, else from the end of its frame header (X + 12). The log grows
 *    into space filled with zeros ahead of time (fdatasync is cheaper when
 *    the file's size does not change), so a write cut short there is
 *    followed by zeros, not by the end of the file.
 * Anything else is corruption before the tail.
 *
 * @param frame the file's bytes from X on: at least `min(12, bytesToEnd)`.
 * @param bytesToEnd the file's size minus X.
 * @param badRecordReason why the scanner rejected the record (used in the
 *   verdict's reason).
 * @param zeroFrom whether every byte from X + `offset` to the end of the file
 *   is zero; called only when rules 1–3 do not decide, as it may have to read
 *   the file.
 */
export const classifyTail = (
  frame: Uint8Array,
  bytesToEnd: number,
  badRecordReason: string,
  zeroFrom: (offset: number) => boolean
): TailVerdict => {
  if (bytesToEnd < frameHeaderLength) {
    return { _tag: "TornTail", reason: `an incomplete frame header (${bytesToEnd} bytes) at the end of the file` }
  }
  const length = readU32(frame, 0)
  if ((length ^ readU32(frame, 4)) === -1) {
    const recordEnd = frameHeaderLength + length
    if (recordEnd > bytesToEnd) {
      return {
        _tag: "TornTail",
        reason: `an incomplete record (${bytesToEnd} of ${recordEnd} bytes) at the end of the file`
      }
    }
    if (recordEnd === bytesToEnd) {
      return { _tag: "TornTail", reason: `the last record is damaged: ${badRecordReason}` }
    }
    if (zeroFrom(recordEnd)) {
      return { _tag: "TornTail", reason: `the last record before zeros is damaged: ${badRecordReason}` }
    }
  } else if (zeroFrom(frameHeaderLength)) {
    return { _tag: "TornTail", reason: `a damaged frame header followed by zeros: ${badRecordReason}` }
  }
  return { _tag: "Corruption", reason: badRecordReason }
}
