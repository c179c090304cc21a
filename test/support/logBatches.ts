/**
 * Building version-2 logs in memory for the format tests: batches of puts and
 * deletes framed with a chosen `syncedThrough`, an in-memory `read` for
 * `replayFile`, and a visitor that records what replay applied.
 */
import { batchHeaderLength, encodeFileHeader, fileHeaderLength } from "../../src/internal/log/format/LogFormat.ts"
import { RecordEncoder } from "../../src/internal/log/format/LogRecord.ts"
import {
  type ReadAt,
  type ReplayOptions,
  type ReplayResult,
  replayFile
} from "../../src/internal/log/format/LogReplay.ts"
import type { RecordVisitor } from "../../src/internal/log/format/LogScanner.ts"

export type Op =
  | { readonly _tag: "Put"; readonly key: string; readonly value: string | Uint8Array; readonly deadline: number }
  | { readonly _tag: "Delete"; readonly key: string }

export const put = (key: string, value: string | Uint8Array, deadline = Infinity): Op => ({
  _tag: "Put",
  key,
  value,
  deadline
})
export const del = (key: string): Op => ({ _tag: "Delete", key })

/** A visitor that keeps every record it is given, in order. */
export const collector = (): { readonly ops: Array<Op>; readonly visitor: RecordVisitor } => {
  const ops: Array<Op> = []
  return {
    ops,
    visitor: {
      put: (key, value, deadline) => ops.push(put(key, value, deadline)),
      delete: (key) => ops.push(del(key))
    }
  }
}

export const appendOp = (encoder: RecordEncoder, op: Op): number =>
  op._tag === "Put" ? encoder.appendPut(op.key, op.value, op.deadline) : encoder.appendDelete(op.key)

/** A log in memory, and where each of its batches starts and ends. */
export interface EncodedLog {
  readonly bytes: Buffer
  readonly salt: number
  readonly batches: ReadonlyArray<ReadonlyArray<Op>>
  readonly starts: ReadonlyArray<number>
  readonly ends: ReadonlyArray<number>
  /** The `syncedThrough` each batch was written with. */
  readonly syncedThrough: ReadonlyArray<number>
}

/**
 * Writes `batches` (each non-empty) after a file header. `syncedThrough(i,
 * ends)` gives batch i's field from the ends of the batches before it; by
 * default the end of the previous batch, as under `fsync: "always"`.
 */
export const encodeLog = (
  batches: ReadonlyArray<ReadonlyArray<Op>>,
  options: {
    readonly salt?: number
    readonly syncedThrough?: (index: number, ends: ReadonlyArray<number>) => number
    readonly encoder?: RecordEncoder
  } = {}
): EncodedLog => {
  const salt = options.salt ?? 0x5a17_c0de
  const encoder = options.encoder ?? new RecordEncoder(64)
  const pieces: Array<Uint8Array> = [encodeFileHeader(salt)]
  const starts: Array<number> = []
  const ends: Array<number> = []
  const synced: Array<number> = []
  let end = fileHeaderLength
  for (const [index, batch] of batches.entries()) {
    encoder.reset()
    for (const op of batch) appendOp(encoder, op)
    const syncedThrough = options.syncedThrough?.(index, ends) ?? (ends.at(-1) ?? fileHeaderLength)
    const sealed = encoder.seal(index, salt, syncedThrough)
    pieces.push(Buffer.from(sealed))
    starts.push(end)
    end += sealed.length
    ends.push(end)
    synced.push(syncedThrough)
  }
  encoder.reset()
  const bytes = Buffer.concat(pieces)
  if (bytes.length !== end || end !== (ends.at(-1) ?? fileHeaderLength)) throw new Error("encodeLog: lengths disagree")
  if (starts.some((start, i) => start + batchHeaderLength > ends[i])) throw new Error("encodeLog: a batch shorter than its header")
  return { bytes, salt, batches, starts, ends, syncedThrough: synced }
}

/** A `read` over `bytes`, counting the bytes it hands out. */
export const memoryRead = (bytes: Uint8Array): { readonly read: ReadAt; readonly bytesRead: () => number } => {
  let total = 0
  return {
    read: (buffer, offset, length, position) => {
      const n = Math.max(0, Math.min(length, bytes.length - position))
      buffer.set(bytes.subarray(position, position + n), offset)
      total += n
      return n
    },
    bytesRead: () => total
  }
}

/** Replays `bytes` from memory. */
export const replayBytes = (
  bytes: Uint8Array,
  options: ReplayOptions = { onCorruption: "fail" }
): { readonly result: ReplayResult; readonly ops: Array<Op>; readonly bytesRead: number } => {
  const { ops, visitor } = collector()
  const memory = memoryRead(bytes)
  const result = replayFile(memory.read, bytes.length, visitor, options)
  return { result, ops, bytesRead: memory.bytesRead() }
}

/** The records of the first `n` batches, in order. */
export const opsOfBatches = (log: EncodedLog, n: number): Array<Op> => log.batches.slice(0, n).flat()
