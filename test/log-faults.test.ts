/**
 * Disk faults, injected through `LogOptions.fileOps`: a failed write (ENOSPC)
 * fails every put and delete of its batch with `StorageError`, applies none of
 * them, rolls the file back and leaves the store writable; a failed fdatasync
 * (EIO) turns it read-only until reopened, and the reopen recovers everything
 * acknowledged before; under "never" and "interval" a failed flush or sync
 * turns it read-only at once; a failed compaction leaves the log as it was.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import { KeyValueStore } from "../src/index.ts"
import { scanRecords } from "../src/internal/log/format/LogScanner.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"
import {
  assertSameState,
  assertStorageError,
  diskFull,
  type FaultyFileOps,
  freshLogPath,
  ioFailure,
  isAllZeros,
  makeFaultyFileOps,
  openLog,
  readState,
  recordSpans,
  stateOfLog,
  type ValueView,
  viewValue
} from "./support/logHarness.ts"

/** The keys of the records in `bytes` (one batch, its 32-byte header first), in order, as `put:key` / `delete:key`. */
const recordsIn = (bytes: Uint8Array): Array<string> => {
  const ops: Array<string> = []
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const scan = scanRecords(buffer, 32, buffer.length, {
    put: (key) => ops.push(`put:${key}`),
    delete: (key) => ops.push(`delete:${key}`)
  })
  assert.strictEqual(scan._tag, "Done")
  return ops
}

/** A write that carries records, not the zeros the log grows into. */
const holdsRecords = (bytes: Uint8Array) => !isAllZeros(bytes)

type Write =
  | { readonly _tag: "put"; readonly key: string; readonly value: KeyValueStore.Value }
  | { readonly _tag: "delete"; readonly key: string }

const describeWrite = (write: Write): string => `${write._tag}:${write.key}`

/** Runs `writes` at once, one fiber each, and gives each one's exit, in order. */
const concurrently = (store: KeyValueStore.KeyValueStoreService, writes: ReadonlyArray<Write>) =>
  Effect.gen(function*() {
    const fibers = yield* Effect.forEach(writes, (write) =>
      Effect.forkChild(
        write._tag === "put" ? Effect.asVoid(store.put(write.key, write.value)) : store.delete(write.key)
      ))
    return yield* Effect.forEach(fibers, Fiber.await)
  })

/** Puts `entries` one by one (each acknowledged); gives the state they make. */
const acknowledged = (store: KeyValueStore.KeyValueStoreService, entries: ReadonlyArray<readonly [string, string]>) =>
  Effect.gen(function*() {
    for (const [key, value] of entries) yield* store.put(key, value)
    return new Map<string, ValueView>(entries.map(([key, value]) => [key, viewValue(value)]))
  })

/** The writes of one batch: overwrites, new keys, and a delete of an acknowledged key. */
const batch: ReadonlyArray<Write> = [
  { _tag: "put", key: "a", value: "new a" },
  { _tag: "put", key: "b", value: Uint8Array.of(9, 9) },
  { _tag: "delete", key: "c" },
  ...Array.from({ length: 5 }, (_, i): Write => ({ _tag: "put", key: `fresh-${i}`, value: `fresh ${i}` }))
]

/**
 * Asserts that the writes that failed are exactly those in the failed
 * `write()` call, that each failed with `StorageError`, and gives how many
 * failed.
 */
const assertFailedBatchIsTheFailedWrite = (
  faults: FaultyFileOps,
  exits: ReadonlyArray<Exit.Exit<void, unknown>>
) =>
  Effect.gen(function*() {
    assert.strictEqual(faults.failedWrites.length, 1, "one write() was made to fail")
    const inFailedWrite = recordsIn(faults.failedWrites[0])
    const failed = batch.filter((_, i) => Exit.isFailure(exits[i])).map(describeWrite)
    assert.sameMembers(failed, inFailedWrite, "the writes that failed are the writes of the failed batch")
    assert.isAtLeast(failed.length, 2, "the failed batch held several writes")
    for (const exit of exits) {
      if (Exit.isFailure(exit)) yield* assertStorageError(Effect.suspend(() => exit))
    }
    return failed.length
  })

describe("fsync \"always\": a failed write", () => {
  it.effect("fails every put and delete of its batch with StorageError, applies none of them, and the store stays Writable and accepts later writes", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("enospc")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({ path: logPath, fsync: "always", fileOps: faults.ops })
      const before = yield* acknowledged(store, [["a", "old a"], ["b", "old b"], ["c", "old c"]])

      // The disk fills up halfway through the batch's write().
      faults.failNext("write", diskFull(), holdsRecords, 150)
      const exits = yield* concurrently(store, batch)
      yield* assertFailedBatchIsTheFailedWrite(faults, exits)

      // The writes that succeeded (in a later batch, if any) are applied; the failed ones are not.
      const expected = new Map(before)
      for (const [i, write] of batch.entries()) {
        if (Exit.isFailure(exits[i])) continue
        if (write._tag === "put") expected.set(write.key, viewValue(write.value))
        else expected.delete(write.key)
      }
      assertSameState(yield* readState(store), expected, "after the failed batch")
      assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })

      // The disk has room again: writes go on, and land after the acknowledged
      // ones (a short one: it does not cover all of the half-written batch).
      yield* store.put("later", "fine")
      yield* store.put("c", "newer c")
      expected.set("later", "s:fine")
      expected.set("c", "s:newer c")
      assertSameState(yield* readState(store), expected, "after later writes")
      yield* close
      assertSameState(yield* stateOfLog(logPath), expected, "after a reopen")
    }))

  it.effect("that fails while growing the file (writing the zeros ahead) is rolled back the same way", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("enospc-grow")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({ path: logPath, fsync: "always", fileOps: faults.ops })
      // The first append after an open grows the file: make that fail.
      faults.failNext("write", diskFull(), isAllZeros)
      yield* assertStorageError(store.put("k", "v"))
      assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
      yield* store.put("k", "second try")
      yield* close
      assertSameState(yield* stateOfLog(logPath), new Map([["k", "s:second try"]]))
    }))

  it.effect("whose roll-back fails too turns the store ReadOnly: later writes fail fast, reads go on, and a reopen has everything acknowledged", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("enospc-truncate")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({ path: logPath, fsync: "always", fileOps: faults.ops })
      const before = yield* acknowledged(store, [["a", "old a"], ["b", "old b"]])
      faults.failNext("write", diskFull(), holdsRecords)
      faults.failNext("truncate", ioFailure("ftruncate"))
      yield* assertStorageError(store.put("a", "new a"))
      const status = yield* store.writeStatus
      assert.strictEqual(status._tag, "ReadOnly")
      if (status._tag === "ReadOnly") assert.match(status.reason, /ENOSPC.*cutting the file back.*EIO/)

      const calls = { ...faults.calls }
      assert.match(yield* assertStorageError(store.put("x", "y")), /refuses writes/)
      yield* assertStorageError(store.delete("a"))
      assert.deepStrictEqual(faults.calls, calls, "a refused write still reached the file")
      assertSameState(yield* readState(store), before, "reads after the failure")
      yield* close
      assertSameState(yield* stateOfLog(logPath), before, "after a reopen")
    }))
})

describe("fsync \"always\": a failed fdatasync", () => {
  it.effect("fails its batch with StorageError unapplied, turns the store ReadOnly saying why, refuses later writes at once, and a reopen recovers everything acknowledged", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("eio")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({ path: logPath, fsync: "always", fileOps: faults.ops })
      const before = yield* acknowledged(store, [["a", "old a"], ["b", "old b"], ["c", "old c"]])

      faults.failNext("datasync", ioFailure("fdatasync"))
      const exits = yield* concurrently(store, batch)
      const failed = batch.filter((_, i) => Exit.isFailure(exits[i]))
      assert.strictEqual(failed.length, batch.length, "every write of the batch failed")
      for (const exit of exits) yield* assertStorageError(Effect.suspend(() => exit))
      assertSameState(yield* readState(store), before, "none of the batch was applied")

      const status = yield* store.writeStatus
      assert.strictEqual(status._tag, "ReadOnly")
      if (status._tag === "ReadOnly") assert.match(status.reason, /fsync failed \(EIO\)/)

      const calls = { ...faults.calls }
      yield* assertStorageError(store.put("later", "refused"))
      yield* assertStorageError(store.delete("a"))
      yield* assertStorageError(store.clear)
      yield* assertStorageError(store.compact)
      assert.deepStrictEqual(faults.calls, calls, "a refused write still reached the file")
      // Reads go on.
      assert.strictEqual(yield* store.get("a"), "old a")
      assert.isTrue(yield* store.has("c"))
      assert.strictEqual(yield* store.size, 3)
      yield* close

      // The failed batch reached the file but was never synced: after a reopen
      // each of its writes may or may not be there (its outcome is unknown, as
      // after a crash). Everything acknowledged before it is there.
      const reopened = yield* stateOfLog(logPath)
      const attempted = new Map(batch.map((write) => [write.key, write]))
      for (const [key, value] of before) {
        const write = attempted.get(key)
        const allowed = write === undefined
          ? [value]
          : [value, write._tag === "put" ? viewValue(write.value) : undefined]
        assert.include(allowed, reopened.get(key), `key ${key} after a reopen`)
      }
      for (const [key, value] of reopened) {
        if (before.has(key)) continue
        const write = attempted.get(key)
        assert.isTrue(write?._tag === "put" && viewValue(write.value) === value, `unexpected ${key} = ${value}`)
      }
      // The reopened store accepts writes again.
      const { close: closeAgain, store: again } = yield* openLog({ path: logPath })
      assert.deepStrictEqual(yield* again.writeStatus, { _tag: "Writable" })
      yield* again.put("after reopen", "ok")
      yield* closeAgain
      assert.strictEqual((yield* stateOfLog(logPath)).get("after reopen"), "s:ok")
    }))
})

/** Reads `writeStatus` until the store is read-only; dies after `maxYields` turns. */
const awaitReadOnly = (store: KeyValueStore.KeyValueStoreService, maxYields = 10_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxYields; i++) {
      const status = yield* store.writeStatus
      if (status._tag === "ReadOnly") return status.reason
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`still writable after ${maxYields} yields`))
  })

describe("fsync \"never\" and \"interval\": a failed write", () => {
  it.effect.each(["never", "interval"] as const)(
    "fsync %s: fails its batch with StorageError before acknowledging it, applies none of it, and later writes go on",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("never-enospc")
        const faults = makeFaultyFileOps()
        const { close, store } = yield* openLog({ path: logPath, fsync: policy, fileOps: faults.ops })
        yield* store.put("written", "on disk")

        faults.failNext("write", diskFull(), holdsRecords)
        // Acknowledged only once written: the failed write is the put's own failure.
        yield* assertStorageError(store.put("failed", "never acknowledged"))
        yield* assertKeyNotFound(store.get("failed"), "failed")
        assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
        yield* store.put("later", "fine")
        assert.strictEqual(yield* store.get("written"), "on disk")
        yield* close
        assertSameState(yield* stateOfLog(logPath), new Map([["written", "s:on disk"], ["later", "s:fine"]]))
      })
  )

  it.effect.each(["never", "interval"] as const)(
    "fsync %s, acknowledge buffered: a failed write of the buffer turns the store ReadOnly, and later writes fail with StorageError",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("buffered-enospc")
        const faults = makeFaultyFileOps()
        const { close, store } = yield* openLog({ path: logPath, fsync: policy, acknowledge: "buffered", fileOps: faults.ops })
        yield* store.put("written", "on disk")
        const onDisk = () => recordSpans(fs.readFileSync(logPath)).length
        for (let turn = 0; turn < 100 && onDisk() === 0; turn++) yield* Effect.yieldNow
        assert.strictEqual(onDisk(), 1, "the first put never left the buffer")
        faults.failNext("write", diskFull(), holdsRecords)
        // Acknowledged at once, before the writer's write() fails.
        yield* store.put("buffered", "lost with the failed write")
        let status = yield* store.writeStatus
        for (let turn = 0; turn < 100 && status._tag === "Writable"; turn++) {
          yield* Effect.yieldNow
          status = yield* store.writeStatus
        }
        assert.strictEqual(status._tag, "ReadOnly")
        assert.match(status._tag === "ReadOnly" ? status.reason : "", /acknowledged writes could not be written to the log.*ENOSPC/)
        yield* assertStorageError(store.put("later", "refused"))
        yield* assertStorageError(store.delete("written"))
        assert.strictEqual(yield* store.get("written"), "on disk")
        yield* close
        // What was written before the failure survives; the failed write is lost, as documented.
        assertSameState(yield* stateOfLog(logPath), new Map([["written", "s:on disk"]]))
      })
  )

  it.effect("fsync interval: a failed periodic fdatasync turns the store ReadOnly; a reopen has everything written", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("interval-eio")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({
        path: logPath,
        fsync: "interval",
        fsyncIntervalMillis: 1_000,
        fileOps: faults.ops
      })
      yield* store.put("k", "v")
      faults.failNext("datasync", ioFailure("fdatasync"))
      const syncsBefore = faults.calls.datasync
      yield* TestClock.adjust(999)
      assert.strictEqual(faults.calls.datasync, syncsBefore, "synced before the interval was up")
      assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
      yield* TestClock.adjust(1)
      const reason = yield* awaitReadOnly(store)
      assert.match(reason, /fsync failed \(EIO\)/)
      yield* assertStorageError(store.put("later", "refused"))
      yield* close
      assertSameState(yield* stateOfLog(logPath), new Map([["k", "s:v"]]))
    }))
})

describe("a failed compaction", () => {
  const header = (bytes: Uint8Array) => bytes.length === 20 && bytes[0] === 0x89 && bytes[1] === 0x4b
  it.effect.each([
    { label: "writing the new file's header fails (ENOSPC)", arm: (f: FaultyFileOps) => f.failNext("write", diskFull(), header) },
    { label: "writing the new file's records fails (ENOSPC)", arm: (f: FaultyFileOps) => f.failNext("write", diskFull(), (b) => b.length > 20 && holdsRecords(b)) },
    { label: "syncing the new file before the rename fails (EIO)", arm: (f: FaultyFileOps) => f.failNext("datasync", ioFailure("fdatasync")) }
  ])("$label: compact fails with StorageError, the log and the store are as they were, and writes go on", ({ arm }) =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("compact-fault")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({ path: logPath, fileOps: faults.ops, compaction: { auto: false } })
      const entries: Array<[string, string]> = []
      for (let round = 0; round < 3; round++) for (let i = 0; i < 10; i++) entries.push([`k${i}`, `r${round}`])
      const expected = yield* acknowledged(store, entries)
      const logBefore = fs.readFileSync(logPath)
      arm(faults)
      yield* assertStorageError(store.compact)
      assert.isTrue(fs.readFileSync(logPath).equals(logBefore), "the log changed")
      assert.isFalse(fs.existsSync(`${logPath}.compact`), "the unfinished compacted file was left behind")
      assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
      assert.isUndefined((yield* store.stats).log!.lastCompaction)
      yield* store.put("after", "the failed compaction")
      expected.set("after", "s:the failed compaction")
      // A later compaction, with a healthy disk, succeeds.
      yield* store.compact
      assert.strictEqual((yield* store.stats).log!.records, 11)
      yield* close
      assertSameState(yield* stateOfLog(logPath), expected)
    }))
})
