/**
 * The open log file: where the next record goes, how many records it holds,
 * and whether it still accepts writes. Every byte that reaches the log goes
 * through `LogFile.append`, which keeps one invariant: the file's bytes up to
 * `end` are whole records, and nothing past `end` is ever acknowledged.
 *
 * System calls go through `FileOps` so that tests can make the disk fail
 * (ENOSPC, EIO) at a chosen call.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { WriteStatus } from "../../../KeyValueStore.ts"
import { StorageError } from "../../errors.ts"

/**
 * The file system calls the log makes while it runs: synchronous, because a
 * thread-pool hop costs ~30 µs a call here, more than the write itself.
 */
export interface FileOps {
  readonly write: (fd: number, bytes: Uint8Array, position: number) => number
  readonly datasync: (fd: number) => void
  readonly truncate: (fd: number, length: number) => void
}

export const nodeFileOps: FileOps = {
  write: (fd, bytes, position) => fs.writeSync(fd, bytes, 0, bytes.length, position),
  datasync: (fd) => fs.fdatasyncSync(fd),
  truncate: (fd, length) => fs.ftruncateSync(fd, length)
}

/** Makes a rename or a new file in `directory` durable. */
export const syncDirectory = (directory: string): void => {
  const fd = fs.openSync(directory, "r")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

export const directoryOf = (file: string): string => path.dirname(path.resolve(file))

const describeError = (error: unknown): string =>
  error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error)

/** Writes all of `bytes` at `position`, looping over short writes. */
export const writeFully = (ops: FileOps, fd: number, bytes: Uint8Array, position: number): void => {
  let written = 0
  while (written < bytes.length) {
    const n = ops.write(fd, written === 0 ? bytes : bytes.subarray(written), position + written)
    if (n <= 0) throw new Error(`write returned ${n}`)
    written += n
  }
}

/**
 * The log grows by this much at a time, written as zeros ahead of the
 * records: an `fdatasync` after a write that does not change the file's size
 * has no metadata to commit, and measures ~25% cheaper here than one after an
 * append. Replay reads zeros after the last record as the log's end.
 */
export const preallocationBytes = 1024 * 1024

let zeros: Buffer | undefined

export class LogFile {
  /** Byte offset of the end of the last whole record: where the next one goes. */
  end: number
  /** Records in the file, live or not (compaction's trigger compares it to live entries). */
  records: number
  /** Bytes appended since the last sync (for the `"interval"` policy). */
  unsynced = 0
  /** The file's size: `end` plus the zeros written ahead of it. */
  allocated: number
  private status: WriteStatus = { _tag: "Writable" }
  /**
   * While a compaction runs, a copy of every batch appended to this file, so
   * the compacted file can be brought up to date before it replaces this one.
   */
  rewrite: Array<Uint8Array> | undefined = undefined
  rewriteBytes = 0

  readonly path: string
  fd: number
  readonly ops: FileOps

  constructor(filePath: string, fd: number, end: number, records: number, ops: FileOps) {
    this.path = filePath
    this.fd = fd
    this.end = end
    this.records = records
    this.ops = ops
    this.allocated = end
  }

  get writeStatus(): WriteStatus {
    return this.status
  }

  /** The error every write gets once the log is read-only; `undefined` while writable. */
  refusal(): StorageError | undefined {
    return this.status._tag === "ReadOnly"
      ? new StorageError({ message: `log ${this.path} refuses writes: ${this.status.reason}` })
      : undefined
  }

  /**
   * Appends whole records and, if `sync`, makes them durable. On failure the
   * file is cut back to where it was, so a later append never lands after a
   * partial batch; if even that fails, or if the sync failed, the log turns
   * read-only. Returns the error, or `undefined` on success.
   */
  append(bytes: Uint8Array, records: number, sync: boolean): StorageError | undefined {
    const refused = this.refusal()
    if (refused !== undefined) return refused
    try {
      if (this.end + bytes.length > this.allocated) this.preallocate(this.end + bytes.length)
      writeFully(this.ops, this.fd, bytes, this.end)
    } catch (error) {
      return this.rollBack(`write of ${bytes.length} bytes at offset ${this.end} failed`, error)
    }
    if (sync) {
      try {
        this.ops.datasync(this.fd)
      } catch (error) {
        // After a failed fsync Linux may have dropped the dirty pages and
        // marked them clean: a retry could "succeed" without the data on disk.
        // So nothing written since the last good sync can be trusted, and the
        // log stops accepting writes (PostgreSQL's answer to "fsyncgate").
        // The batch failed, so cut it off the file; that too is best effort,
        // as the disk may still have written it: after a restart each of its
        // writes may or may not be there, like a write whose answer was lost.
        try {
          this.ops.truncate(this.fd, this.end)
        } catch {
          // Read-only either way.
        }
        return this.fail(`fsync failed (${describeError(error)}); reopen the store to recover`, error)
      }
    }
    this.end += bytes.length
    this.records += records
    this.unsynced = sync ? 0 : this.unsynced + bytes.length
    if (this.rewrite !== undefined) {
      this.rewrite.push(Uint8Array.prototype.slice.call(bytes))
      this.rewriteBytes += bytes.length
    }
    return undefined
  }

  /** Extends the file with zeros to at least `size`, in whole steps. */
  private preallocate(size: number): void {
    zeros ??= Buffer.alloc(preallocationBytes)
    let allocated = this.allocated
    while (allocated < size) {
      writeFully(this.ops, this.fd, zeros, allocated)
      allocated += preallocationBytes
    }
    this.allocated = allocated
  }

  /** Makes `fd`, holding whole records up to `end`, the log. */
  switchTo(fd: number, end: number, records: number): number {
    const old = this.fd
    this.fd = fd
    this.end = end
    this.allocated = end
    this.records = records
    this.unsynced = 0
    this.rewrite = undefined
    this.rewriteBytes = 0
    return old
  }

  private closed = false

  /** Cuts off the zeros written ahead of the records, so a closed log ends at its last record. */
  trim(): StorageError | undefined {
    const refused = this.refusal()
    if (refused !== undefined) return refused
    if (this.allocated === this.end) return undefined
    try {
      this.ops.truncate(this.fd, this.end)
      this.ops.datasync(this.fd)
      this.allocated = this.end
      return undefined
    } catch (error) {
      return this.fail(`trimming the file to ${this.end} bytes failed (${describeError(error)})`, error)
    }
  }

  /** Refuses every later write: the store is closing. */
  refuseWrites(): void {
    if (this.status._tag === "Writable") this.status = { _tag: "ReadOnly", reason: "the store is closed" }
  }

  /** Closes the file (once); every later write is refused. */
  close(): void {
    this.refuseWrites()
    if (this.closed) return
    this.closed = true
    fs.closeSync(this.fd)
  }

  /** Makes everything appended so far durable. */
  sync(): StorageError | undefined {
    const refused = this.refusal()
    if (refused !== undefined) return refused
    if (this.unsynced === 0) return undefined
    try {
      this.ops.datasync(this.fd)
      this.unsynced = 0
      return undefined
    } catch (error) {
      return this.fail(`fsync failed (${describeError(error)}); reopen the store to recover`, error)
    }
  }

  /** Turns the log read-only for good (until reopened), with `reason`. */
  fail(reason: string, cause?: unknown): StorageError {
    if (this.status._tag === "Writable") this.status = { _tag: "ReadOnly", reason }
    return new StorageError({ message: `log ${this.path}: ${reason}`, cause })
  }

  private rollBack(what: string, error: unknown): StorageError {
    try {
      this.ops.truncate(this.fd, this.end)
      this.allocated = this.end
    } catch (truncateError) {
      return this.fail(
        `${what} (${describeError(error)}), and cutting the file back to ${this.end} failed too (${
          describeError(truncateError)
        })`,
        error
      )
    }
    return new StorageError({
      message: `log ${this.path}: ${what} (${describeError(error)}); nothing of it was applied`,
      cause: error
    })
  }
}
