/**
 * The open log file: where the next batch goes, what is known durable, and
 * whether the log still accepts writes. Every byte that reaches the log goes
 * through `LogFile.appendBatch`, which keeps one invariant: the file's bytes
 * up to `end` are whole batches, and nothing past `end` is ever acknowledged.
 *
 * The file also owns the copy a running compaction takes of every batch
 * appended meanwhile (`beginRewrite`/`takeRewrite`): the compactor reads it,
 * only this class writes it.
 *
 * System calls go through `FileOps`, so tests can fail a chosen call or run
 * the log on a simulated disk.
 */
import * as Effect from "effect/Effect"
import type { WriteStatus } from "../../../KeyValueStore.ts"
import { StorageError } from "../../errors.ts"
import { batchHeaderLength, fileHeaderLength } from "../format/LogFormat.ts"
import type { RecordEncoder } from "../format/LogRecord.ts"
import type { StoreCounters } from "../../observe/StoreMetrics.ts"
import { type FileOps, syncDirectoryInBackground, writeFully } from "./FileOps.ts"

/**
 * The log grows by this much at a time, written as zeros ahead of the
 * batches: an `fdatasync` after a write that does not change the file's size
 * has no metadata to commit, and measures ~25% cheaper here than one after an
 * append. Replay reads zeros after the last batch as the log's end.
 */
export const preallocationBytes = 1024 * 1024

let zeros: Uint8Array | undefined

const describeError = (error: unknown): string =>
  error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error)

/** Records appended while a compaction runs, without their batch header (the copy gets its own). */
export interface RewriteChunk {
  readonly records: Uint8Array
  readonly count: number
}

export class LogFile {
  /** Byte offset of the end of the last whole batch: where the next one goes. */
  private _end: number
  /** Records in the file, live or not (compaction's trigger compares it to live entries). */
  private _records: number
  /** The sequence number the next batch carries. */
  private sequence: number
  /** The file's salt: every batch header repeats it. */
  private salt: number
  /** Everything before this offset is durable: an `fdatasync` covering it has returned. */
  private syncedEnd: number
  /** The file's size: `end` plus the zeros written ahead of it. */
  private allocated: number
  /** Bumped when compaction or `clear` switches files: a sync begun on the old file says nothing of the new one. */
  private generation = 0
  private status: WriteStatus = { _tag: "Writable" }
  private closed = false
  private rewrite: Array<RewriteChunk> | undefined = undefined
  private _rewriteBytes = 0
  /**
   * The directory whose sync makes the last switch of files durable, while
   * that sync has not returned; and what to do once it has (release the old
   * file). See `deferDirectorySync`.
   */
  private unsyncedSwitch: { readonly directory: string; readonly onSynced: () => void } | undefined = undefined

  readonly path: string
  private fd: number
  readonly ops: FileOps
  /** Where batch sizes and sync latencies are counted, for the store's metrics. */
  counters: StoreCounters | undefined = undefined

  constructor(
    filePath: string,
    ops: FileOps,
    fd: number,
    state: { readonly end: number; readonly records: number; readonly sequence: number; readonly salt: number }
  ) {
    this.path = filePath
    this.ops = ops
    this.fd = fd
    this._end = state.end
    this._records = state.records
    this.sequence = state.sequence
    this.salt = state.salt
    this.syncedEnd = state.end
    this.acknowledgedEnd = state.end
    this.allocated = ops.size(fd)
  }

  get end(): number {
    return this._end
  }

  get records(): number {
    return this._records
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
   * Writes the records in `encoder` as one batch (one `write()`), without
   * syncing. On failure the file is cut back to where it was, so a later
   * batch never lands after a partial one; if even that fails the log turns
   * read-only. Returns the error, or `undefined` once the batch is in the
   * file (in the page cache: a process crash no longer loses it).
   */
  appendBatch(encoder: RecordEncoder, acknowledgedOnceWritten: boolean): StorageError | undefined {
    const refused = this.refusal()
    if (refused !== undefined) return refused
    const batch = encoder.seal(this.sequence, this.salt, this.syncedEnd)
    try {
      if (this._end + batch.length > this.allocated) this.preallocate(this._end + batch.length)
      writeFully(this.ops, this.fd, batch, this._end)
    } catch (error) {
      return this.rollBack(`write of ${batch.length} bytes at offset ${this._end} failed`, error)
    }
    this._end += batch.length
    if (acknowledgedOnceWritten) this.acknowledgedEnd = this._end
    this._records += encoder.count
    this.counters?.batchRecords.observe(encoder.count)
    this.sequence = (this.sequence + 1) >>> 0
    if (this.rewrite !== undefined) {
      this.rewrite.push({ records: Uint8Array.prototype.slice.call(encoder.records()), count: encoder.count })
      this._rewriteBytes += batch.length - batchHeaderLength
    }
    return undefined
  }

  /**
   * Batches past this offset wait for their sync before they are
   * acknowledged (`"always"`): a failed sync cuts them off again.
   */
  private acknowledgedEnd = 0

  /**
   * Makes everything appended so far durable, on the main thread. After a
   * failed `fdatasync` Linux may have dropped the dirty pages and marked them
   * clean: a retry could "succeed" without the data on disk. So nothing
   * written since the last good sync can be trusted, and the log stops
   * accepting writes (PostgreSQL's answer to "fsyncgate").
   */
  sync(): StorageError | undefined {
    const refused = this.refusal()
    if (refused !== undefined) return refused
    const switched = this.syncDirectoryNow()
    if (switched !== undefined) return switched
    if (this.syncedEnd === this._end) return undefined
    const started = performance.now()
    try {
      this.ops.datasync(this.fd)
    } catch (error) {
      return this.syncFailed(error)
    }
    this.counters?.fsyncMillis.observe(performance.now() - started)
    this.syncedEnd = this.acknowledgedEnd = this._end
    return undefined
  }

  /**
   * The same, off the main thread: reads and the gathering of the next batch
   * go on while the disk works. Covers what was appended when it was called.
   */
  readonly syncInBackground: Effect.Effect<void, StorageError> = Effect.callback<void, StorageError>((resume) => {
    const refused = this.refusal()
    if (refused !== undefined) return resume(Effect.fail(refused))
    const end = this._end
    if (this.syncedEnd >= end) return resume(Effect.void)
    const generation = this.generation
    const started = performance.now()
    this.ops.datasyncInBackground(this.fd, (error) => {
      if (error === null) this.counters?.fsyncMillis.observe(performance.now() - started)
      if (generation !== this.generation) {
        // The file was switched meanwhile: the new one was synced whole before it took the log's name.
        return resume(Effect.void)
      }
      if (error !== null) return resume(Effect.fail(this.syncFailed(error)))
      if (end > this.syncedEnd) this.syncedEnd = end
      if (end > this.acknowledgedEnd) this.acknowledgedEnd = end
      resume(Effect.void)
    })
  })

  /**
   * After a switch of files whose rename is not yet durable (see
   * `switchTo`): a sync of the log is not complete, nor may the old file's
   * blocks be released, until the directory is synced. A background sync of
   * it is started here; `sync` does it at once if it is still pending, so
   * that no write is acknowledged as durable before the rename is.
   */
  deferDirectorySync(directory: string, onSynced: () => void): void {
    // A switch still pending is made durable by the same directory sync.
    const earlier = this.unsyncedSwitch
    const pending = {
      directory,
      onSynced: earlier === undefined ? onSynced : () => {
        earlier.onSynced()
        onSynced()
      }
    }
    this.unsyncedSwitch = pending
    syncDirectoryInBackground(this.ops, directory, (error) => {
      if (this.unsyncedSwitch !== pending) return
      if (error !== null) {
        this.unsyncedSwitch = undefined
        this.failSwitch(directory, error)
        return
      }
      this.unsyncedSwitch = undefined
      pending.onSynced()
    })
  }

  /** Syncs the directory of a switch not yet durable, now; the error, if it failed. */
  private syncDirectoryNow(): StorageError | undefined {
    const pending = this.unsyncedSwitch
    if (pending === undefined) return undefined
    this.unsyncedSwitch = undefined
    try {
      this.ops.syncDirectory(pending.directory)
    } catch (error) {
      return this.failSwitch(pending.directory, error)
    }
    pending.onSynced()
    return undefined
  }

  /**
   * The rename may not survive a crash: the old log could come back without
   * what is appended from now on. Refuse further writes (the old file is
   * kept, not released).
   */
  private failSwitch(directory: string, error: unknown): StorageError {
    return this.fail(`syncing directory ${directory} after compaction failed`, error)
  }

  private syncFailed(error: unknown): StorageError {
    // The batch being synced failed, so cut it off the file; best effort, as
    // the disk may still have written it: after a restart each of its writes
    // may or may not be there, like a write whose answer was lost.
    if (this.acknowledgedEnd < this._end) {
      try {
        this.ops.truncate(this.fd, this.acknowledgedEnd)
      } catch {
        // Read-only either way.
      }
    }
    return this.fail(`fsync failed (${describeError(error)}); reopen the store to recover`, error)
  }

  /** Extends the file with zeros to at least `size`, in whole steps. */
  private preallocate(size: number): void {
    zeros ??= new Uint8Array(preallocationBytes)
    let allocated = this.allocated
    while (allocated < size) {
      writeFully(this.ops, this.fd, zeros, allocated)
      allocated += preallocationBytes
    }
    this.allocated = allocated
  }

  // ---------------------------------------------------------------------------
  // Compaction's copy of what is appended while it runs
  // ---------------------------------------------------------------------------

  /** From now on, keeps a copy of every batch's records until `takeRewrite` hands them over. */
  beginRewrite(): void {
    this.rewrite = []
    this._rewriteBytes = 0
  }

  /** Whether a compaction is copying what is appended. */
  get rewriting(): boolean {
    return this.rewrite !== undefined
  }

  /** Bytes of records copied and not yet taken. */
  get rewriteBytes(): number {
    return this._rewriteBytes
  }

  /** Hands over the oldest copied chunks, at least one if any, until `budgetMillis` has passed. */
  takeRewrite(budgetMillis: number, visit: (chunk: RewriteChunk) => void): void {
    const chunks = this.rewrite
    if (chunks === undefined) return
    const started = performance.now()
    let taken = 0
    while (taken < chunks.length && (taken === 0 || performance.now() - started < budgetMillis)) {
      const chunk = chunks[taken++]
      this._rewriteBytes -= chunk.records.length
      visit(chunk)
    }
    chunks.splice(0, taken)
  }

  /** Stops copying (the compaction is over, or failed). */
  endRewrite(): void {
    this.rewrite = undefined
    this._rewriteBytes = 0
  }

  /**
   * Makes `fd` the log: a file holding `records` records in `sequence`
   * batches up to `end`, with `salt`, durable up to `syncedEnd` (the whole of
   * it unless said otherwise: later batches record that offset as synced,
   * and replay trusts what is before it). Returns the old descriptor and its
   * size, for the caller to release.
   */
  switchTo(
    fd: number,
    state: {
      readonly end: number
      readonly records: number
      readonly sequence: number
      readonly salt: number
      readonly syncedEnd?: number
    }
  ): { readonly fd: number; readonly size: number } {
    const old = { fd: this.fd, size: this.allocated }
    this.fd = fd
    this._end = state.end
    this.allocated = state.end
    this._records = state.records
    this.sequence = state.sequence
    this.salt = state.salt
    this.syncedEnd = state.syncedEnd ?? state.end
    this.acknowledgedEnd = state.end
    this.generation++
    this.endRewrite()
    return old
  }

  /** Cuts off the zeros written ahead of the batches, so a closed log ends at its last batch. */
  trim(): StorageError | undefined {
    const refused = this.refusal()
    if (refused !== undefined) return refused
    if (this.allocated === this._end) return undefined
    try {
      this.ops.truncate(this.fd, this._end)
      this.ops.datasync(this.fd)
      this.allocated = this._end
      return undefined
    } catch (error) {
      return this.fail(`trimming the file to ${this._end} bytes failed (${describeError(error)})`, error)
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
    this.ops.close(this.fd)
  }

  /** Turns the log read-only for good (until reopened), with `reason`. */
  fail(reason: string, cause?: unknown): StorageError {
    if (this.status._tag === "Writable") this.status = { _tag: "ReadOnly", reason }
    return new StorageError({ message: `log ${this.path}: ${reason}`, cause })
  }

  private rollBack(what: string, error: unknown): StorageError {
    try {
      this.ops.truncate(this.fd, this._end)
      this.allocated = this._end
    } catch (truncateError) {
      return this.fail(
        `${what} (${describeError(error)}), and cutting the file back to ${this._end} failed too (${
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

/** The state of a log that holds just its header. */
export const emptyLogState = (salt: number) => ({ end: fileHeaderLength, records: 0, sequence: 0, salt })
