/**
 * Replaying a log file: reads it in chunks through a synchronous `read`,
 * checks each batch whole before giving its records to a visitor, and
 * decides what the first bad batch means: the end of the log (zeros written
 * ahead), a torn tail (the unsynced end of the log, as a crash leaves it:
 * drop it), or damage to synced history (refuse). `docs/log-format.md`
 * explains the rule and why it holds under a power cut.
 *
 * Memory is bounded by one chunk, or by the largest batch while that batch
 * is being read (never more than the file holds).
 */
import {
  batchCountAt,
  batchHeaderLength,
  batchRecordsCrcAt,
  checkFileHeader,
  crc32,
  fileHeaderLength,
  isBatchHeader,
  isZero,
  readU32,
  syncedThroughOf,
  writeU32
} from "./LogFormat.ts"
import { applyBatches, batchHeaderProblem, type RecordVisitor, recordsProblem } from "./LogScanner.ts"

/**
 * Reads up to `length` bytes at file offset `position` into
 * `buffer[offset..]`; returns how many were read, 0 at the end of the file.
 */
export type ReadAt = (buffer: Uint8Array, offset: number, length: number, position: number) => number

/**
 * Options of `replayFile`.
 *
 * - `onCorruption`: `"fail"` refuses a log whose synced history is damaged;
 *   `"truncate"` keeps the batches before the first bad one and reports the
 *   rest as dropped (the user's explicit choice to lose data).
 * - `chunkSize`: bytes read per `read` (default 1 MiB).
 */
export interface ReplayOptions {
  readonly onCorruption: "fail" | "truncate"
  readonly chunkSize?: number
}

/** What replay dropped from the end of the file, and why. */
export interface DroppedTail {
  /** File offset of the first byte dropped (the first bad batch). */
  readonly offset: number
  /** Bytes from `offset` to the end of the file. */
  readonly bytes: number
  readonly reason: string
}

/**
 * The outcome of a replay.
 *
 * - `Ok`: `records` records in `batches` batches were given to the visitor;
 *   the next batch appended has sequence `batches` and carries `salt`.
 *   Truncate the file to `validEnd` before appending to it. `validEnd` is 0
 *   (and `salt` undefined) when the file holds no complete header (a crash
 *   while creating it): write a fresh one. `tornTail` is set when the
 *   unsynced end of the log was dropped (warn); `truncated` when damaged
 *   history was dropped because `onCorruption` is `"truncate"`.
 * - `Corrupt`: the log's synced history is damaged at `offset`; refuse to
 *   open. The visitor has seen the batches before `offset`.
 * - `NotALog`: the file does not begin with a kvlog header of this version.
 */
export type ReplayResult =
  | {
    readonly _tag: "Ok"
    readonly validEnd: number
    readonly records: number
    readonly batches: number
    readonly salt: number | undefined
    readonly tornTail?: DroppedTail
    readonly truncated?: DroppedTail
  }
  | { readonly _tag: "Corrupt"; readonly offset: number; readonly reason: string }
  | { readonly _tag: "NotALog"; readonly reason: string }

const defaultChunkSize = 1024 * 1024
const minChunkSize = 64

/**
 * Replays the log whose size is `fileSize` through `read` into `visitor`.
 * Never throws for any file content; throws only what `read` or the visitor
 * throws.
 */
export const replayFile = (
  read: ReadAt,
  fileSize: number,
  visitor: RecordVisitor,
  options: ReplayOptions
): ReplayResult => {
  const chunkSize = Math.max(options.chunkSize ?? defaultChunkSize, minChunkSize)
  // A small log needs no full chunk; one that grows during replay is read in more chunks.
  let chunk: Buffer = Buffer.allocUnsafeSlow(Math.max(Math.min(chunkSize, fileSize), minChunkSize))

  const header = checkFileHeader(chunk.subarray(0, readFully(read, chunk, 0, Math.min(fileHeaderLength, fileSize), 0)))
  if (header._tag === "Empty") return fresh
  if (header._tag === "NotALog") {
    // A header of zeros in a file of zeros is a creation that never reached the disk.
    return isZeroFrom(read, chunk, 0, fileSize) ? fresh : header
  }
  const salt = header.salt

  let end = fileSize
  let position = fileHeaderLength // file offset of chunk[0]
  let filled = 0 // bytes of chunk holding file data
  let at = 0 // chunk offset of the next batch
  let records = 0
  let batches = 0
  // At the first refill, the records checked so far are a sample of the whole log's.
  let expectTold = visitor.expect === undefined
  const tellExpected = (offset: number): void => {
    if (expectTold || records === 0) return
    expectTold = true
    visitor.expect!(Math.ceil((records * (end - fileHeaderLength)) / (offset - fileHeaderLength)))
  }
  // Batches that checked out are given to the visitor together, from
  // `checkedFrom` to `at`, before anything else happens (a refill, a return,
  // a look past a bad batch): an index then sees runs of records longer than
  // one batch, which it can look ahead in, and still never half a batch.
  let checkedFrom = 0
  const applyChecked = (): void => {
    if (checkedFrom < at) applyBatches(chunk, checkedFrom, at, visitor, position)
    checkedFrom = at
  }
  let damage: string // why the batch at `position + at` is bad
  for (;;) {
    const batchOffset = position + at
    let needed = batchHeaderLength // bytes of the batch at `at` that must be in the chunk
    if (filled - at >= batchHeaderLength) {
      const headerProblem = batchHeaderProblem(chunk, at, salt, batches)
      if (headerProblem !== undefined) {
        damage = headerProblem
        break
      }
      needed = batchHeaderLength + readU32(chunk, at)
      if (filled - at >= needed) {
        const recordsStart = at + batchHeaderLength
        const recordsEnd = at + needed
        if (crc32(chunk, recordsStart, recordsEnd) !== readU32(chunk, at + batchRecordsCrcAt)) {
          damage = "the records' CRC32 does not match"
          break
        }
        const count = readU32(chunk, at + batchCountAt)
        const malformed = recordsProblem(chunk, recordsStart, recordsEnd, count)
        if (malformed !== undefined) {
          applyChecked()
          // The writer never writes such a batch, so no crash explains it.
          return corruption(
            options,
            batchOffset,
            end,
            { records, batches, salt },
            `the batch's checksums match but its records are malformed: ${malformed}`
          )
        }
        records += count
        batches++
        at = recordsEnd
        continue
      }
    }
    // The batch, or its header, is not all in the chunk.
    if (batchOffset + needed > end) {
      applyChecked()
      if (batchOffset === end) return { _tag: "Ok", validEnd: end, records, batches, salt }
      damage = needed === batchHeaderLength
        ? `the file ends inside a batch header (${end - batchOffset} of ${batchHeaderLength} bytes)`
        : `the file ends inside a batch (${end - batchOffset} of ${needed} bytes)`
      break
    }
    // Told before the first chunk's records are applied: the index is the
    // right size before its first key.
    tellExpected(batchOffset)
    applyChecked()
    ;[chunk, position, filled] = refill(read, chunk, chunkSize, at, filled, position, end, needed)
    at = 0
    checkedFrom = 0
    if (filled < Math.min(chunk.length, end - position)) end = position + filled // the file shrank
  }

  // The batch at X is bad or incomplete: X ends the log, or starts a torn
  // tail, or is damage to synced history. Only this path reads past X again.
  applyChecked()
  const applied = { records, batches, salt }
  const x = position + at
  if (isZeroFrom(read, chunk, x, end)) return { _tag: "Ok", validEnd: x, ...applied }
  const later = searchBatchHeaders(read, chunk, x, end, salt)
  if (later.synced !== undefined) {
    return corruption(
      options,
      x,
      end,
      applied,
      `${damage}, and the batch at byte offset ${later.synced.offset} records everything before byte offset ${later.synced.syncedThrough} as synced: damage to synced data`
    )
  }
  const reason = later.count === 0
    ? `${damage}, and nothing after it is a batch of this log: a write cut short by a crash, which cannot be told from damage to the last synced batch`
    : `${damage}; the ${later.count} batch${later.count === 1 ? "" : "es"} after it ${later.count === 1 ? "was" : "were"} written before it was synced: the unsynced end of the log, as a crash leaves it`
  return { _tag: "Ok", validEnd: x, ...applied, tornTail: { offset: x, bytes: end - x, reason } }
}

const fresh: ReplayResult = { _tag: "Ok", validEnd: 0, records: 0, batches: 0, salt: undefined }

const corruption = (
  options: ReplayOptions,
  offset: number,
  end: number,
  applied: { readonly records: number; readonly batches: number; readonly salt: number },
  reason: string
): ReplayResult =>
  options.onCorruption === "truncate"
    ? { _tag: "Ok", validEnd: offset, ...applied, truncated: { offset, bytes: end - offset, reason } }
    : { _tag: "Corrupt", offset, reason }

/**
 * Moves the unconsumed `chunk[at, filled)` to the front, grows the chunk to
 * hold `needed` bytes (or shrinks it back to `chunkSize` after a large
 * batch), and reads as much of the file after it as fits. Returns the chunk,
 * the file offset of its first byte, and how many bytes it holds.
 */
const refill = (
  read: ReadAt,
  chunk: Buffer,
  chunkSize: number,
  at: number,
  filled: number,
  position: number,
  end: number,
  needed: number
): [Buffer, number, number] => {
  const rest = filled - at
  if (needed > chunk.length || (chunk.length > chunkSize && needed <= chunkSize)) {
    const next = Buffer.allocUnsafeSlow(Math.max(needed, chunkSize))
    chunk.copy(next, 0, at, filled)
    chunk = next
  } else if (at > 0) {
    chunk.copyWithin(0, at, filled)
  }
  position += at
  const wanted = Math.min(chunk.length - rest, end - (position + rest))
  return [chunk, position, rest + readFully(read, chunk, rest, wanted, position + rest)]
}

/**
 * Looks at every file offset Y in (x, end - 32] for a valid batch header of
 * this file (its salt, then its CRC). Stops at the first whose syncedThrough
 * lies past x: a batch written after a sync that covered x. Reads through
 * `scratch`, overwriting it. Fast because a salt is rare: `indexOf` finds
 * each candidate natively, and only candidates get a CRC.
 */
const searchBatchHeaders = (
  read: ReadAt,
  scratch: Buffer,
  x: number,
  end: number,
  salt: number
): { readonly count: number; readonly synced?: { readonly offset: number; readonly syncedThrough: number } } => {
  const saltBytes = Buffer.alloc(4)
  writeU32(saltBytes, 0, salt)
  const saltAt = 12
  let count = 0
  let position = x + 1
  while (end - position >= batchHeaderLength) {
    const length = readFully(read, scratch, 0, Math.min(scratch.length, end - position), position)
    if (length < batchHeaderLength) break // the file shrank
    const view = scratch.subarray(0, length)
    for (let i = view.indexOf(saltBytes, saltAt); i !== -1 && i - saltAt + batchHeaderLength <= length; i = view.indexOf(saltBytes, i + 1)) {
      const y = i - saltAt
      if (!isBatchHeader(view, y, salt)) continue
      count++
      const syncedThrough = syncedThroughOf(view, y)
      if (syncedThrough > x) return { count, synced: { offset: position + y, syncedThrough } }
    }
    // The next read starts where a header not wholly in this one could start.
    position += length - (batchHeaderLength - 1)
    if (length < scratch.length) break
  }
  return { count }
}

/**
 * Reads up to `length` bytes at file offset `position` into `buf[offset..]`,
 * retrying short reads. Returns the bytes read: fewer only at end of file.
 */
const readFully = (read: ReadAt, buf: Uint8Array, offset: number, length: number, position: number): number => {
  let done = 0
  while (done < length) {
    const n = read(buf, offset + done, length - done, position + done)
    if (!(n > 0)) break
    done += n
  }
  return done
}

/** Whether every byte of the file from `from` to `end` is zero. Reads through `scratch`, overwriting it. */
const isZeroFrom = (read: ReadAt, scratch: Buffer, from: number, end: number): boolean => {
  let position = from
  while (position < end) {
    const n = readFully(read, scratch, 0, Math.min(scratch.length, end - position), position)
    if (n === 0) return true
    if (!isZero(scratch, 0, n)) return false
    position += n
  }
  return true
}
