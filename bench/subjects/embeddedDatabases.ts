/**
 * The embedded databases users would pick for durable key-value data: `lmdb`
 * (memory-mapped B+tree, default durable commit) and `classic-level`
 * (LevelDB, `sync: true`), as durable-write and replay subjects.
 */
import { ClassicLevel } from "classic-level"
import { open as openLmdb } from "lmdb"
import * as path from "node:path"
import type { DurableSubject, ReplaySubject } from "./BenchSubject.ts"
import { runPromiseWriters } from "./writerLoop.ts"

/** A put's promise when `separateFlushed` is on: it resolves on commit, `flushed` once synced. */
type FlushedWrite = Promise<boolean> & { readonly flushed?: Promise<unknown> }

const lmdbPath = (workDir: string) => path.join(workDir, "lmdb")
const levelPath = (workDir: string) => path.join(workDir, "classic-level")

/** Records per write transaction or batch when loading replay data (loading is not timed). */
const loadChunk = 50_000

/**
 * lmdb with its default options (on Linux: `overlappingSync`, commits batched
 * by its write thread); a write is acknowledged when its commit is flushed to
 * disk (`separateFlushed`, awaiting the write's `flushed` promise).
 */
export const lmdbDurable: DurableSubject = {
  id: "lmdb",
  label: "lmdb",
  role: "peer",
  description:
    "`open({ path, separateFlushed: true })`, otherwise defaults; ack = `await db.put(key, value).flushed` (the commit is synced).",
  durability: "its default durable commit: batched transactions, synced (`overlappingSync`)",
  open: (workDir) => {
    const db = openLmdb<string, string>({ path: lmdbPath(workDir), separateFlushed: true })
    return Promise.resolve({
      runWriters: (writers, millis, keyPrefix, value) =>
        runPromiseWriters(
          (key, v) => {
            const write = db.put(key, v) as FlushedWrite
            return write.flushed ?? write
          },
          writers,
          millis,
          keyPrefix,
          value
        ),
      close: () => db.close()
    })
  }
}

/** classic-level (LevelDB) with `sync: true` on every put; LevelDB merges queued writers into one log write. */
export const classicLevelDurable: DurableSubject = {
  id: "classic-level",
  label: "classic-level (sync)",
  role: "peer",
  description: "`db.put(key, value, { sync: true })`; LevelDB's writer queue merges concurrent puts into one log write + sync.",
  durability: "`sync: true`: the write-ahead log is synced before the put resolves",
  open: async (workDir) => {
    const db = new ClassicLevel<string, string>(levelPath(workDir))
    await db.open()
    return {
      runWriters: (writers, millis, keyPrefix, value) =>
        runPromiseWriters((key, v) => db.put(key, v, { sync: true }), writers, millis, keyPrefix, value),
      close: () => db.close()
    }
  }
}

/** lmdb: open the environment and read every record through `getRange()`. */
export const lmdbReplay: ReplaySubject = {
  id: "lmdb",
  label: "lmdb (open + full scan)",
  role: "peer",
  description: "loaded with `putSync` in transactions of 50k; timed: `open()` then `for (const { value } of db.getRange())`.",
  write: async (workDir, records) => {
    const db = openLmdb<string, string>({ path: lmdbPath(workDir) })
    for (let from = 0; from < records; from += loadChunk) {
      const to = Math.min(records, from + loadChunk)
      db.transactionSync(() => {
        for (let i = from; i < to; i++) db.putSync(`key${i}`, `value${i}`)
      })
    }
    await db.close()
  },
  openAndScan: (workDir) => {
    const db = openLmdb<string, string>({ path: lmdbPath(workDir) })
    let records = 0
    for (const { value } of db.getRange()) {
      if (value !== undefined) records++
    }
    return Promise.resolve({ records, close: () => db.close() })
  }
}

/** classic-level: open the database (LevelDB replays its write-ahead log) and read every record with `nextv`. */
export const classicLevelReplay: ReplaySubject = {
  id: "classic-level",
  label: "classic-level (open + full scan)",
  role: "peer",
  description: "loaded with `batch()` of 50k; timed: `open()` then an iterator read with `nextv(10_000)` to the end.",
  write: async (workDir, records) => {
    const db = new ClassicLevel<string, string>(levelPath(workDir))
    await db.open()
    for (let from = 0; from < records; from += loadChunk) {
      const batch = db.batch()
      for (let i = from; i < Math.min(records, from + loadChunk); i++) batch.put(`key${i}`, `value${i}`)
      await batch.write()
    }
    await db.close()
  },
  openAndScan: async (workDir) => {
    const db = new ClassicLevel<string, string>(levelPath(workDir))
    await db.open()
    const iterator = db.iterator()
    let records = 0
    for (;;) {
      const entries = await iterator.nextv(10_000)
      if (entries.length === 0) break
      records += entries.length
    }
    await iterator.close()
    return { records, close: () => db.close() }
  }
}
