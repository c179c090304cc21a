/**
 * Replaying a log file: reads it in chunks with synchronous reads, gives every
 * valid record to a visitor, and decides what a bad record means (see
 * `classifyTail`). Memory is bounded by one chunk, or by the largest record
 * (about 192 MiB at the limits) while that record is being read.
 */
import * as fs from "node:fs"
import { checkHeader, frameHeaderLength, headerLength } from "./LogFormat.ts"
import { classifyTail, type RecordVisitor, recordLengthAt, scanRecords } from "./LogScanner.ts"

/**
 * Options of `replayFile`.
 *
 * - `onCorruption`: `"fail"` refuses a log damaged before its tail;
 *   `"truncate"` keeps the records before the first bad one and reports the
 *   rest as dropped (the user's explicit choice to lose data).
 * - `chunkSize`: bytes read per `readSync` (default 1 MiB).
 */
export interface ReplayOptions {
  readonly onCorruption: "fail" | "truncate"
  readonly chunkSize?: number
}

/** Where the valid records end, and why the rest was dropped. */
export interface DroppedTail {
  /** File offset of the first byte dropped (the bad record). */
  readonly offset: number
  readonly reason: string
}

/**
 * The outcome of a replay.
 *
 * - `Ok`: `records` records were given to the visitor. Truncate the file to
 *   `validEnd` before appending to it. `validEnd` is 0 when the file holds no
 *   complete header (a crash while creating it): write a fresh header.
 *   `tornTail` is set when a torn tail was dropped (warn); `truncated` when
 *   corruption was dropped because `onCorruption` is `"truncate"`.
 * - `Corrupt`: the log is damaged before its tail, at `offset`; refuse to open.
 *   The visitor has seen the records before `offset`.
 * - `NotALog`: the file does not begin with a kvlog header of this version.
 */
export type ReplayResult =
  | {
    readonly _tag: "Ok"
    readonly validEnd: number
    readonly records: number
    readonly tornTail?: DroppedTail
    readonly truncated?: DroppedTail
  }
  | { readonly _tag: "Corrupt"; readonly offset: number; readonly reason: string }
  | { readonly _tag: "NotALog"; readonly reason: string }

const defaultChunkSize = 1024 * 1024

/**
 * Replays the log open at `fd`, whose size is `fileSize`, into `visitor`.
 * Never throws for any file content; throws only what `fs.readSync` or the
 * visitor throws.
 */
export const replayFile = (
  fd: number,
  fileSize: number,
  visitor: RecordVisitor,
  options: ReplayOptions
): ReplayResult => {
  const chunkSize = Math.max(options.chunkSize ?? defaultChunkSize, 4 * frameHeaderLength)
  let chunk = Buffer.allocUnsafeSlow(Math.max(chunkSize, headerLength))

  const headerRead = readFully(fd, chunk, 0, Math.min(headerLength, fileSize), 0)
  const header = checkHeader(chunk.subarray(0, headerRead))
  if (header._tag === "Empty") return { _tag: "Ok", validEnd: 0, records: 0 }
  if (header._tag === "NotALog") {
    // A header of zeros in a file of zeros is a creation that never reached the disk.
    return isZeroFrom(fd, chunk, 0, fileSize)
      ? { _tag: "Ok", validEnd: 0, records: 0 }
      : header
  }

  let end = fileSize
  let position = headerLength // file offset of chunk[0]
  let filled = 0 // bytes of chunk holding file data
  let records = 0
  for (;;) {
    const wanted = Math.min(chunk.length - filled, end - (position + filled))
    const read = readFully(fd, chunk, filled, wanted, position + filled)
    // The file shrank under us: treat what we have as the end (never loop forever).
    if (read < wanted) end = position + filled + read
    filled += read
    const scan = scanRecords(chunk, 0, filled, visitor)
    if (records === 0 && scan.records > 0 && visitor.expect !== undefined && position + filled < end) {
      // The first chunk's records are a sample of the whole log's.
      visitor.expect(Math.ceil((scan.records * (end - headerLength)) / scan.offset))
    }
    records += scan.records
    const atEnd = position + filled === end
    if (scan._tag === "Done" && !atEnd) {
      // Carry the straddling record over to the front of the chunk.
      const rest = filled - scan.offset
      const needed = rest >= frameHeaderLength ? recordLengthAt(chunk, scan.offset) : frameHeaderLength
      if (needed > chunk.length || (chunk.length > chunkSize && needed <= chunkSize)) {
        // Grow for a record larger than a chunk; shrink back after it.
        const next = Buffer.allocUnsafeSlow(Math.max(needed, chunkSize))
        chunk.copy(next, 0, scan.offset, filled)
        chunk = next
      } else {
        chunk.copyWithin(0, scan.offset, filled)
      }
      position += scan.offset
      filled = rest
      continue
    }
    if (scan._tag === "Done" && scan.offset === filled) {
      return { _tag: "Ok", validEnd: end, records }
    }
    // A bad record, or an incomplete one at the end of the file.
    const badOffset = position + scan.offset
    const reason = scan._tag === "Corrupt" ? scan.reason : "an incomplete record"
    const inMemory = chunk.subarray(scan.offset, filled)
    // Only on this error path: read the rest of the file into a scratch
    // buffer of its own, so that `inMemory` stays intact.
    const scratch = Buffer.allocUnsafeSlow(64 * 1024)
    const zeroFrom = (relative: number): boolean => isZeroFrom(fd, scratch, badOffset + relative, end)
    // Zeros from here on are space filled ahead of the log's growth: the
    // log simply ends here.
    if (isZero(inMemory, Math.min(inMemory.length, frameHeaderLength)) && zeroFrom(0)) {
      return { _tag: "Ok", validEnd: badOffset, records }
    }
    const verdict = classifyTail(inMemory, end - badOffset, reason, zeroFrom)
    const dropped: DroppedTail = { offset: badOffset, reason: verdict.reason }
    if (verdict._tag === "TornTail") return { _tag: "Ok", validEnd: badOffset, records, tornTail: dropped }
    if (options.onCorruption === "truncate") return { _tag: "Ok", validEnd: badOffset, records, truncated: dropped }
    return { _tag: "Corrupt", offset: badOffset, reason: verdict.reason }
  }
}

/**
 * Reads up to `length` bytes at file offset `position` into `buf[offset..]`,
 * retrying short reads. Returns the bytes read: fewer only at end of file.
 */
const readFully = (fd: number, buf: Buffer, offset: number, length: number, position: number): number => {
  let done = 0
  while (done < length) {
    const read = fs.readSync(fd, buf, offset + done, length - done, position + done)
    if (read === 0) break
    done += read
  }
  return done
}

/**
 * Whether every byte of the file from `from` to `end` is zero. `inMemory`, if
 * given, holds the file's bytes from `from` on, so they need not be read
 * again. Reads the rest through `scratch`, whose contents it overwrites.
 */
const isZeroFrom = (fd: number, scratch: Buffer, from: number, end: number, inMemory?: Uint8Array): boolean => {
  let position = from
  if (inMemory !== undefined) {
    if (!isZero(inMemory, inMemory.length)) return false
    position += inMemory.length
  }
  // `inMemory` may be a view of `scratch`: it has been checked before reading over it.
  while (position < end) {
    const read = readFully(fd, scratch, 0, Math.min(scratch.length, end - position), position)
    if (read === 0) return true
    if (!isZero(scratch, read)) return false
    position += read
  }
  return true
}

const isZero = (bytes: Uint8Array, length: number): boolean => {
  for (let i = 0; i < length; i++) if (bytes[i] !== 0) return false
  return true
}
