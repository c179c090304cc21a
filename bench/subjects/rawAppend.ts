/**
 * The physical limit of durable writes in Node: an append-only file with
 * group commit and nothing else — no index, no framing, no checksums.
 * Pending records are joined into one `write`, followed by one `fdatasync`,
 * and every writer of the batch is acknowledged after the sync returns.
 *
 * Two flavours, to show what the thread-pool hop costs:
 * - `sync`: `fs.writeSync` + `fs.fdatasyncSync` on the main thread (a batch
 *   is flushed from `setImmediate`, so writers woken by the previous batch
 *   join the next one);
 * - `async`: `fs.writeSync` + callback `fs.fdatasync` on libuv's thread pool;
 *   records arriving during a sync, and those of the writers it wakes, form
 *   the next batch.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { DurableSubject } from "./BenchSubject.ts"
import { runPromiseWriters } from "./writerLoop.ts"

/** How the group-commit loop syncs. */
export type SyncFlavour = "sync" | "async"

/** An append-only file whose appends resolve once `fdatasync` has returned. */
export class GroupCommitFile {
  private readonly fd: number
  private readonly flavour: SyncFlavour
  private pendingRecords: Array<string> = []
  private pendingAcks: Array<(error?: Error) => void> = []
  private flushScheduled = false
  private syncing = false
  /** Batches written and synced so far. */
  batches = 0

  constructor(filePath: string, flavour: SyncFlavour) {
    this.fd = fs.openSync(filePath, "a", 0o600)
    this.flavour = flavour
  }

  /** Appends one record; resolves once it is on disk. */
  append(record: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pendingRecords.push(record)
      this.pendingAcks.push((error) => (error === undefined ? resolve() : reject(error)))
      this.scheduleFlush()
    })
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.syncing) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.flush()
    })
  }

  private takeBatch(): { readonly bytes: string; readonly acks: Array<(error?: Error) => void> } {
    const batch = { bytes: this.pendingRecords.join(""), acks: this.pendingAcks }
    this.pendingRecords = []
    this.pendingAcks = []
    this.batches++
    return batch
  }

  private flush(): void {
    if (this.pendingAcks.length === 0 || this.syncing) return
    const { bytes, acks } = this.takeBatch()
    if (this.flavour === "sync") {
      let failure: Error | undefined
      try {
        fs.writeSync(this.fd, bytes)
        fs.fdatasyncSync(this.fd)
      } catch (error) {
        failure = error as Error
      }
      for (const ack of acks) ack(failure)
      return
    }
    this.syncing = true
    try {
      fs.writeSync(this.fd, bytes)
    } catch (error) {
      this.syncing = false
      for (const ack of acks) ack(error as Error)
      return
    }
    fs.fdatasync(this.fd, (error) => {
      this.syncing = false
      for (const ack of acks) ack(error ?? undefined)
      // From `setImmediate`, so the writers this batch just woke join the next one.
      if (this.pendingAcks.length > 0) this.scheduleFlush()
    })
  }

  close(): void {
    fs.closeSync(this.fd)
  }
}

/** A durable subject over `GroupCommitFile`. */
export const rawAppend = (flavour: SyncFlavour): DurableSubject => ({
  id: flavour === "sync" ? "raw-fdatasync" : "raw-fdatasync-async",
  label: flavour === "sync" ? "raw append + fdatasyncSync" : "raw append + async fdatasync",
  role: "floor",
  description: flavour === "sync"
    ? "group commit in plain Node: `fs.writeSync` of every pending record, then `fs.fdatasyncSync`, flushed from `setImmediate`."
    : "group commit in plain Node: `fs.writeSync` of every pending record, then callback `fs.fdatasync` (libuv thread pool).",
  durability: flavour === "sync"
    ? "one `fs.writeSync` + one `fs.fdatasyncSync` per batch (blocks the event loop for the sync)"
    : "one `fs.writeSync` + one callback `fs.fdatasync` per batch (the sync runs on libuv's thread pool)",
  open: (workDir) => {
    const file = new GroupCommitFile(path.join(workDir, `raw-${flavour}.log`), flavour)
    return Promise.resolve({
      runWriters: (writers, millis, keyPrefix, value) =>
        runPromiseWriters((key, v) => file.append(`${key}\t${v}\n`), writers, millis, keyPrefix, value),
      close: () => {
        file.close()
        return Promise.resolve()
      }
    })
  }
})
