/**
 * The physical limit of durable writes in Node: a log file with group
 * commit and nothing else — no index, no framing, no checksums.
 * Pending records are joined into one `write`, followed by one `fdatasync`,
 * and every writer of the batch is acknowledged after the sync returns.
 *
 * Three flavours: two that append, to show what the thread-pool hop costs,
 * and one that preallocates, as kvlog's log does:
 * - `sync`: `fs.writeSync` + `fs.fdatasyncSync` on the main thread (a batch
 *   is flushed from `setImmediate`, so writers woken by the previous batch
 *   join the next one);
 * - `async`: `fs.writeSync` + callback `fs.fdatasync` on libuv's thread pool;
 *   records arriving during a sync, and those of the writers it wakes, form
 *   the next batch;
 * - `preallocated`: as `sync`, but the file grows in `preallocationBytes`
 *   steps of zeros written ahead of the records, and each batch is written at
 *   its explicit position (`fs.writeSync(fd, bytes, 0, n, position)`), so
 *   the `fdatasync` has no change of file size to commit (kvlog's
 *   `LogFile.append`, minus the framing).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { DurableSubject } from "./BenchSubject.ts"
import { runPromiseWriters } from "./writerLoop.ts"

/** How the group-commit loop writes and syncs. */
export type SyncFlavour = "sync" | "async" | "preallocated"

/** The preallocation step, the same as kvlog's log (`src/internal/log/file/LogFile.ts`). */
export const preallocationBytes = 1024 * 1024

let zeros: Buffer | undefined

/** A log file whose appends resolve once `fdatasync` has returned. */
export class GroupCommitFile {
  private readonly fd: number
  private readonly flavour: SyncFlavour
  private pendingRecords: Array<string> = []
  private pendingAcks: Array<(error?: Error) => void> = []
  private flushScheduled = false
  private syncing = false
  /** Where the next batch goes (`preallocated`): the end of the records so far. */
  private end = 0
  /** The file's size (`preallocated`): `end` plus the zeros written ahead of it. */
  private allocated = 0
  /** Batches written and synced so far. */
  batches = 0

  constructor(filePath: string, flavour: SyncFlavour) {
    this.fd = fs.openSync(filePath, flavour === "preallocated" ? "w" : "a", 0o600)
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
    if (this.flavour !== "async") {
      let failure: Error | undefined
      try {
        if (this.flavour === "preallocated") this.writeAtEnd(Buffer.from(bytes))
        else fs.writeSync(this.fd, bytes)
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

  /** Writes `bytes` at `end`, first extending the file with zeros in whole steps if it is too short. */
  private writeAtEnd(bytes: Buffer): void {
    zeros ??= Buffer.alloc(preallocationBytes)
    while (this.end + bytes.length > this.allocated) {
      writeAll(this.fd, zeros, this.allocated)
      this.allocated += preallocationBytes
    }
    writeAll(this.fd, bytes, this.end)
    this.end += bytes.length
  }

  close(): void {
    fs.closeSync(this.fd)
  }
}

/** Writes all of `bytes` at `position`, looping over short writes. */
const writeAll = (fd: number, bytes: Buffer, position: number): void => {
  for (let written = 0; written < bytes.length;) {
    written += fs.writeSync(fd, bytes, written, bytes.length - written, position + written)
  }
}

const flavourInfo: Record<SyncFlavour, Pick<DurableSubject, "id" | "label" | "description" | "durability">> = {
  sync: {
    id: "raw-fdatasync",
    label: "raw append + fdatasyncSync",
    description:
      "group commit in plain Node: `fs.writeSync` of every pending record, appended, then `fs.fdatasyncSync`, flushed from `setImmediate`.",
    durability: "one appending `fs.writeSync` + one `fs.fdatasyncSync` per batch (blocks the event loop for the sync)"
  },
  async: {
    id: "raw-fdatasync-async",
    label: "raw append + async fdatasync",
    description:
      "group commit in plain Node: `fs.writeSync` of every pending record, appended, then callback `fs.fdatasync` (libuv thread pool).",
    durability:
      "one appending `fs.writeSync` + one callback `fs.fdatasync` per batch (the sync runs on libuv's thread pool)"
  },
  preallocated: {
    id: "raw-fdatasync-prealloc",
    label: "raw preallocated write + fdatasyncSync",
    description:
      `as raw append + fdatasyncSync, but the file grows ${preallocationBytes / 1024 / 1024} MiB of zeros at a time, written ahead of the records, and each batch is written at its position (\`fs.writeSync(fd, bytes, 0, n, position)\`), as kvlog's log does.`,
    durability:
      "one positioned `fs.writeSync` into preallocated zeros + one `fs.fdatasyncSync` per batch: the sync has no file-size change to commit"
  }
}

/** The ids of the raw flavours: the physical limit is the fastest of them at each writer count. */
export const rawFlavourIds: ReadonlyArray<string> = ["raw-fdatasync", "raw-fdatasync-async", "raw-fdatasync-prealloc"]

/** A durable subject over `GroupCommitFile`. */
export const rawAppend = (flavour: SyncFlavour): DurableSubject => ({
  ...flavourInfo[flavour],
  role: "floor",
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
