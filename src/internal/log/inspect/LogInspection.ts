/**
 * Looking at a log from outside a store: verify it, count what it holds,
 * read its live state or its raw history, and repair it. Every walk is the
 * replay an open runs (`replayFile`), so a tool's verdict on a file is the
 * open's verdict by construction: what the tool calls clean opens, what it
 * calls a torn tail an open drops, what it calls corrupt an open refuses.
 *
 * Nothing here writes to the file except `repairLog`, which takes the log's
 * owner lock first, as an open does.
 */
import * as fs from "node:fs"
import { LogCorrupted, LogLocked } from "../../errors.ts"
import { writeChunkBytes } from "../compaction/Compactor.ts"
import { nodeFileOps } from "../file/FileOps.ts"
import { acquireOwnerLock } from "../file/OwnerLock.ts"
import {
  batchCountAt,
  batchHeaderLength,
  batchRecordsCrcAt,
  crc32,
  fileHeaderLength,
  formatVersion,
  isBatchHeader,
  readU32,
  recordHeaderLength,
  writeU32
} from "../format/LogFormat.ts"
import { type ReadAt, replayFile, type ReplayResult } from "../format/LogReplay.ts"
import type { RecordVisitor } from "../format/LogScanner.ts"
import { keepDropped, realLogPath } from "../openLog.ts"

/** Told how far a walk has read, in bytes of the file. */
export type OnProgress = (bytesRead: number, fileBytes: number) => void

interface Walk {
  readonly fileBytes: number
  readonly result: ReplayResult
}

/**
 * Replays the file at `path` into `visitor`, read-only. Throws what the
 * file system throws (a missing file is an error here: an open would create
 * it, a tool must not).
 */
export const walkLog = (path: string, visitor: RecordVisitor, onProgress?: OnProgress): Walk => {
  const fd = fs.openSync(path, "r")
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile()) throw new Error(`${path} is not a regular file`)
    const fileBytes = stat.size
    const result = replayFile(progressRead(fd, fileBytes, onProgress), fileBytes, visitor, { onCorruption: "fail" })
    return { fileBytes, result }
  } finally {
    fs.closeSync(fd)
  }
}

const progressRead = (fd: number, fileBytes: number, onProgress: OnProgress | undefined): ReadAt => {
  if (onProgress === undefined) return (buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position)
  let furthest = 0
  return (buffer, offset, length, position) => {
    const n = fs.readSync(fd, buffer, offset, length, position)
    if (position + n > furthest) {
      furthest = position + n
      onProgress(furthest, fileBytes)
    }
    return n
  }
}

// =============================================================================
// Verify
// =============================================================================

/**
 * What an open would make of a log.
 *
 * - `Clean`: it opens as it is. `zerosAfter` bytes of zeros written ahead
 *   follow the last batch (an open trims them); `uninitialized` when the file
 *   holds no complete header yet (a crash while it was created: an open
 *   writes one).
 * - `TornTail`: it opens, dropping `bytes` bytes from byte `offset` on (the
 *   unsynced end of the log, as a crash leaves it).
 * - `Corrupt`: the open fails with `LogCorrupted` at `offset`.
 */
export type Verdict =
  | { readonly _tag: "Clean"; readonly zerosAfter: number; readonly uninitialized: boolean }
  | { readonly _tag: "TornTail"; readonly offset: number; readonly bytes: number; readonly reason: string }
  | { readonly _tag: "Corrupt"; readonly offset: number; readonly reason: string }

export interface Verification {
  readonly fileBytes: number
  /** Records in the batches an open keeps (before a torn tail or the damage). */
  readonly records: number
  /** Batches an open keeps; `undefined` for a corrupt log. */
  readonly batches: number | undefined
  /** Where the kept batches end. */
  readonly validEnd: number
  /** Byte offset of the last record kept, if any. */
  readonly lastRecordOffset: number | undefined
  readonly verdict: Verdict
}

/** A visitor that counts records and remembers the last one's offset, and hands each on. */
const counting = (inner?: RecordVisitor) => {
  const seen = { records: 0, lastOffset: undefined as number | undefined }
  const visitor: RecordVisitor = {
    put: (key, value, deadline, offset) => {
      seen.records++
      seen.lastOffset = offset
      inner?.put(key, value, deadline, offset)
    },
    delete: (key, offset) => {
      seen.records++
      seen.lastOffset = offset
      inner?.delete(key, offset)
    }
  }
  return { seen, visitor }
}

const verdictOf = (walk: Walk): Verdict => {
  const result = walk.result
  if (result._tag === "NotALog") return { _tag: "Corrupt", offset: 0, reason: result.reason }
  if (result._tag === "Corrupt") return { _tag: "Corrupt", offset: result.offset, reason: result.reason }
  if (result.tornTail !== undefined) return { _tag: "TornTail", ...result.tornTail }
  const uninitialized = result.salt === undefined
  return { _tag: "Clean", zerosAfter: uninitialized ? 0 : walk.fileBytes - result.validEnd, uninitialized }
}

const verification = (walk: Walk, seen: { readonly records: number; readonly lastOffset: number | undefined }): Verification => {
  const verdict = verdictOf(walk)
  const result = walk.result
  return {
    fileBytes: walk.fileBytes,
    records: seen.records,
    batches: result._tag === "Ok" ? result.batches : undefined,
    validEnd: result._tag === "Ok" ? result.validEnd : verdict._tag === "Corrupt" ? verdict.offset : 0,
    lastRecordOffset: seen.lastOffset,
    verdict
  }
}

/** Checks every batch and record of the log at `path`, as an open would. Never changes the file. */
export const verifyLog = (path: string, onProgress?: OnProgress): Verification => {
  const { seen, visitor } = counting()
  return verification(walkLog(path, visitor, onProgress), seen)
}

/** The error an open gives for a corrupt verdict. */
export const corruptionError = (path: string, verdict: Verdict & { readonly _tag: "Corrupt" }): LogCorrupted =>
  new LogCorrupted({ path, offset: verdict.offset, reason: verdict.reason })

// =============================================================================
// Live state
// =============================================================================

/** A key as the log leaves it: its value and its deadline (`Infinity` for none). */
export interface StoredEntry {
  readonly value: string | Uint8Array
  readonly deadline: number
}

export interface LogState extends Verification {
  /** Every key the log leaves stored, expired ones included, in the order they were first put. */
  readonly entries: Map<string, StoredEntry>
}

/**
 * The keys and values an open would load from the log at `path`, with the
 * verification of the log. Fails with `LogCorrupted` where an open would.
 */
export const readLogState = (path: string, onProgress?: OnProgress): LogState => {
  const entries = new Map<string, StoredEntry>()
  const { seen, visitor } = counting({
    put: (key, value, deadline) => {
      entries.set(key, { value, deadline })
    },
    delete: (key) => {
      entries.delete(key)
    }
  })
  const checked = verification(walkLog(path, visitor, onProgress), seen)
  if (checked.verdict._tag === "Corrupt") throw corruptionError(path, checked.verdict)
  return { ...checked, entries }
}

/**
 * Gives every record of the log at `path` to `visitor`, in file order, as
 * far as an open would read. Fails with `LogCorrupted` where an open would,
 * after the records before the damage.
 */
export const readLogRecords = (path: string, visitor: RecordVisitor, onProgress?: OnProgress): Verification => {
  const { seen, visitor: inner } = counting(visitor)
  const checked = verification(walkLog(path, inner, onProgress), seen)
  if (checked.verdict._tag === "Corrupt") throw corruptionError(path, checked.verdict)
  return checked
}

// =============================================================================
// Statistics
// =============================================================================

/** The bytes a put record of this key and value takes in the log (see `docs/log-format.md`). */
export const putRecordBytes = (keyBytes: number, valueBytes: number, hasDeadline: boolean): number =>
  recordHeaderLength + 1 + 1 + (hasDeadline ? 8 : 0) + 4 + keyBytes + valueBytes

export interface LogStatistics extends Verification {
  readonly formatVersion: number
  /** Keys readable at `now`. */
  readonly liveKeys: number
  /** Of those, keys with a deadline. */
  readonly liveKeysWithTtl: number
  /** Keys whose deadline has passed but whose records are still in the log. */
  readonly expiredKeys: number
  /** The size a compaction at `now` would give the log. */
  readonly compactedBytes: number
  /** The share of the file a compaction at `now` would give back, in [0, 1]. */
  readonly reclaimableShare: number
}

/**
 * Counts what the log at `path` holds at time `now` (epoch ms). Fails with
 * `LogCorrupted` where an open would.
 */
export const logStatistics = (path: string, now: number, onProgress?: OnProgress): LogStatistics => {
  // Only each key's record size and deadline are kept, not its value.
  const entries = new Map<string, { readonly bytes: number; readonly deadline: number }>()
  const { seen, visitor } = counting({
    put: (key, value, deadline) => {
      const keyBytes = Buffer.byteLength(key, "utf8")
      const valueBytes = typeof value === "string" ? Buffer.byteLength(value, "utf8") : value.length
      entries.set(key, { bytes: putRecordBytes(keyBytes, valueBytes, deadline !== Infinity), deadline })
    },
    delete: (key) => {
      entries.delete(key)
    }
  })
  const checked = verification(walkLog(path, visitor, onProgress), seen)
  if (checked.verdict._tag === "Corrupt") throw corruptionError(path, checked.verdict)
  let liveKeys = 0
  let liveKeysWithTtl = 0
  let expiredKeys = 0
  // A compaction writes the live entries in batches that it seals once they
  // reach `writeChunkBytes`: the same rule here gives its size.
  let compactedBytes = fileHeaderLength
  let batchBytes = 0
  for (const entry of entries.values()) {
    if (entry.deadline <= now) {
      expiredKeys++
      continue
    }
    liveKeys++
    if (entry.deadline !== Infinity) liveKeysWithTtl++
    batchBytes += entry.bytes
    if (batchBytes >= writeChunkBytes) {
      compactedBytes += batchHeaderLength + batchBytes
      batchBytes = 0
    }
  }
  if (batchBytes > 0) compactedBytes += batchHeaderLength + batchBytes
  const fileBytes = checked.fileBytes
  return {
    ...checked,
    formatVersion,
    liveKeys,
    liveKeysWithTtl,
    expiredKeys,
    compactedBytes,
    reclaimableShare: fileBytes === 0 ? 0 : Math.max(0, fileBytes - compactedBytes) / fileBytes
  }
}

// =============================================================================
// Repair
// =============================================================================

/**
 * What `repairLog` did.
 *
 * - `Intact`: the log opens as it is: nothing was cut.
 * - `Cut`: `bytes` bytes from byte `offset` on were copied to `backup`, then
 *   cut off. `recordsKept` records remain; `recordsLost` is what the batches
 *   cut off held, as far as their headers are intact (`batchesLost`): a
 *   damaged header hides its batch's count.
 */
export type RepairOutcome =
  | { readonly _tag: "Intact"; readonly verification: Verification }
  | {
    readonly _tag: "Cut"
    readonly cause: "TornTail" | "Corruption"
    readonly offset: number
    readonly bytes: number
    readonly reason: string
    readonly backup: string
    readonly recordsKept: number
    readonly recordsLost: number
    readonly batchesLost: number
  }

/**
 * Cuts the log at `path` back to what can be replayed: a torn tail, or
 * everything from the first damaged batch, after copying the bytes cut off
 * into `<log>.dropped-<offset>-<time>` beside it. Takes the log's owner lock
 * (failing with `LogLocked` while a store has the log open). A file that is
 * not a kvlog log at all is refused with `LogCorrupted`, untouched.
 */
export const repairLog = (path: string, onProgress?: OnProgress): RepairOutcome => {
  const filePath = realLogPath(path)
  if (!fs.existsSync(filePath)) throw Object.assign(new Error(`no such file: ${path}`), { code: "ENOENT" })
  const owner = acquireOwnerLock(filePath)
  if (owner._tag === "Locked") throw new LogLocked({ path, owner: owner.owner })
  try {
    const ops = nodeFileOps
    const fd = ops.openExisting(filePath)
    try {
      const fileBytes = ops.size(fd)
      const { seen, visitor } = counting()
      const read = progressRead(fd, fileBytes, onProgress)
      const result = replayFile(read, fileBytes, visitor, { onCorruption: "truncate" })
      if (result._tag === "NotALog") {
        throw new LogCorrupted({ path, offset: 0, reason: `${result.reason}; nothing was cut` })
      }
      if (result._tag === "Corrupt") throw new LogCorrupted({ path, offset: result.offset, reason: result.reason })
      const dropped = result.tornTail ?? result.truncated
      if (dropped === undefined) {
        return { _tag: "Intact", verification: verification({ fileBytes, result }, seen) }
      }
      const lost = countBatchesFrom(read, dropped.offset, fileBytes, result.salt!)
      const backup = keepDropped(ops, fd, filePath, dropped.offset, dropped.offset + dropped.bytes)
      ops.truncate(fd, dropped.offset)
      ops.datasync(fd)
      return {
        _tag: "Cut",
        cause: result.tornTail !== undefined ? "TornTail" : "Corruption",
        offset: dropped.offset,
        bytes: dropped.bytes,
        reason: dropped.reason,
        backup,
        recordsKept: seen.records,
        recordsLost: lost.records,
        batchesLost: lost.batches
      }
    } finally {
      ops.close(fd)
    }
  } finally {
    owner.release()
  }
}

/**
 * Counts the batches of this file (its salt, a header whose CRC matches)
 * in `[from, end)`, and the records their headers declare. A batch whose
 * records also check out is stepped over whole; otherwise the search goes
 * on from the next byte, so a damaged batch hides nothing that follows it.
 */
const countBatchesFrom = (
  read: ReadAt,
  from: number,
  end: number,
  salt: number
): { readonly records: number; readonly batches: number } => {
  const saltBytes = Buffer.alloc(4)
  writeU32(saltBytes, 0, salt)
  const saltAt = 12
  const bytes = Buffer.allocUnsafeSlow(end - from)
  let filled = 0
  while (filled < bytes.length) {
    const n = read(bytes, filled, bytes.length - filled, from + filled)
    if (!(n > 0)) break
    filled += n
  }
  const view = bytes.subarray(0, filled)
  let records = 0
  let batches = 0
  let next = 0 // the first offset a batch may start at
  for (let i = view.indexOf(saltBytes, saltAt); i !== -1; i = view.indexOf(saltBytes, i + 1)) {
    const y = i - saltAt
    if (y < next || y + batchHeaderLength > view.length || !isBatchHeader(view, y, salt)) continue
    batches++
    records += readU32(view, y + batchCountAt)
    const recordsEnd = y + batchHeaderLength + readU32(view, y)
    if (
      recordsEnd <= view.length &&
      crc32(view, y + batchHeaderLength, recordsEnd) === readU32(view, y + batchRecordsCrcAt)
    ) {
      next = recordsEnd
      i = Math.max(i, recordsEnd - 1)
    }
  }
  return { records, batches }
}
