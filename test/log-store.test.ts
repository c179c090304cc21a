/**
 * The log-backed store (`makeLog`): what was written
 * is what a reopen gives back, under every fsync policy, with TTL deadlines
 * kept as absolute times across the time the store was closed; closing the
 * store flushes what is pending; group commit shares one write and one
 * fdatasync among concurrent writers without starving other fibers; a second
 * open of an open log is refused.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Deferred from "effect/Deferred"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as path from "node:path"
import { KeyValueStore } from "../src/index.ts"
import {
  freshLogPath,
  makeFaultyFileOps,
  openLog,
  readState,
  recordSpans,
  stateOfLog,
  typedFailure,
  type ValueView,
  viewValue,
  withLogStore
} from "./support/logHarness.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

const policies = ["always", "interval", "never"] as const
type Policy = (typeof policies)[number]

// =============================================================================
// Replay equals the model
// =============================================================================

type Op =
  | { readonly _tag: "Put"; readonly key: string; readonly value: KeyValueStore.Value; readonly duration?: number }
  | { readonly _tag: "Delete"; readonly key: string }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "Reopen"; readonly downtime: number }

/** Few keys, so that puts overwrite and deletes hit; non-ASCII and the empty key among them. */
const keyArb = fc.constantFrom("a", "b", "ключ", "🔑", "")
const valueArb: fc.Arbitrary<KeyValueStore.Value> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 10 }),
  fc.string({ unit: "grapheme", maxLength: 4 }),
  fc.constant(""),
  fc.uint8Array({ maxLength: 6 }),
  fc.constant(new Uint8Array(0))
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("Put" as const), key: keyArb, value: valueArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      _tag: fc.constant("Put" as const),
      key: keyArb,
      value: valueArb,
      duration: fc.integer({ min: 1, max: 40 })
    })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("Delete" as const), key: keyArb }) },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("Advance" as const), millis: fc.integer({ min: 1, max: 25 }) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("Reopen" as const), downtime: fc.integer({ min: 0, max: 40 }) }) }
)

/** The reference: a map from key to value and absolute deadline, and the time. */
class Model {
  now = 0
  readonly entries = new Map<string, { readonly value: ValueView; readonly deadline: number }>()
  live(key: string) {
    const entry = this.entries.get(key)
    return entry !== undefined && entry.deadline > this.now ? entry : undefined
  }
  liveKeys(): Array<string> {
    return [...this.entries.keys()].filter((key) => this.live(key) !== undefined).sort()
  }
}

/** The store shows exactly the model: the same keys, values, and time left to each deadline. */
const assertMatchesModel = (store: KeyValueStore.KeyValueStoreService, model: Model, when: string) =>
  Effect.gen(function*() {
    const keys = [...(yield* store.keys)].sort()
    assert.deepStrictEqual(keys, model.liveKeys(), `keys ${when}`)
    for (const key of keys) {
      const expected = model.live(key)!
      assert.strictEqual(viewValue(yield* store.get(key)), expected.value, `value of ${JSON.stringify(key)} ${when}`)
      const left = Option.match(yield* store.timeToLive(key), {
        onNone: () => "none" as const,
        onSome: Duration.toMillis
      })
      assert.strictEqual(
        left,
        expected.deadline === Infinity ? "none" : expected.deadline - model.now,
        `time to live of ${JSON.stringify(key)} ${when}`
      )
    }
    for (const key of model.entries.keys()) {
      if (model.live(key) === undefined) yield* assertKeyNotFound(store.get(key), key)
    }
  })

const replayCase = (policy: Policy, ops: ReadonlyArray<Op>, finalDowntime: number) =>
  Effect.gen(function*() {
    const options: KeyValueStore.LogOptions = { path: yield* freshLogPath("replay"), fsync: policy }
    const model = new Model()
    let open = yield* openLog(options)
    let sessions = 1
    const reopenAfter = (downtime: number) =>
      Effect.gen(function*() {
        yield* open.close
        // Time passes while no store is open: deadlines run out "while the process was down".
        yield* TestClock.adjust(downtime)
        model.now += downtime
        open = yield* openLog(options)
        sessions++
        yield* assertMatchesModel(open.store, model, `after reopen #${sessions - 1} (fsync ${policy})`)
      })
    for (const op of ops) {
      switch (op._tag) {
        case "Put": {
          const returned = yield* open.store.put(
            op.key,
            op.value,
            op.duration === undefined ? undefined : { duration: op.duration }
          )
          assert.strictEqual(viewValue(returned), viewValue(op.value))
          model.entries.set(op.key, {
            value: viewValue(op.value),
            deadline: op.duration === undefined ? Infinity : model.now + op.duration
          })
          break
        }
        case "Delete": {
          if (model.live(op.key) !== undefined) {
            yield* open.store.delete(op.key)
          } else {
            yield* assertKeyNotFound(open.store.delete(op.key), op.key)
          }
          model.entries.delete(op.key)
          break
        }
        case "Advance": {
          yield* TestClock.adjust(op.millis)
          model.now += op.millis
          break
        }
        case "Reopen": {
          yield* reopenAfter(op.downtime)
          break
        }
      }
    }
    yield* reopenAfter(finalDowntime)
    yield* open.close
  })

describe("replay equals the model", () => {
  it.each(policies)(
    "fsync %s: after random puts (string and bytes, with and without TTL) and deletes, each reopen shows exactly the model's keys, values and deadlines",
    async (policy) => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArb, { maxLength: 30 }),
          fc.integer({ min: 0, max: 60 }),
          (ops, finalDowntime) =>
            Effect.runPromise(
              replayCase(policy, ops, finalDowntime).pipe(Effect.scoped, Effect.provide(TestClock.layer()))
            )
        ),
        { numRuns: 100 }
      )
    }
  )

  it.effect("a key that expired while the store was closed stays expired; one with time left keeps exactly its deadline", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("deadline")
      yield* TestClock.adjust(1_000)
      yield* withLogStore({ path: logPath }, (store) =>
        Effect.gen(function*() {
          yield* store.put("short", "s", { duration: 100 })
          yield* store.put("long", "l", { duration: 500 })
          yield* store.put("forever", "f")
        }))
      // Closed from t = 1000 to t = 1300: "short" (deadline 1100) ran out meanwhile.
      yield* TestClock.adjust(300)
      yield* withLogStore({ path: logPath }, (store) =>
        Effect.gen(function*() {
          yield* assertKeyNotFound(store.get("short"), "short")
          assert.strictEqual(yield* store.get("long"), "l")
          assert.deepStrictEqual(yield* store.timeToLive("long"), Option.some(Duration.millis(200)))
          assert.deepStrictEqual(yield* store.timeToLive("forever"), Option.none())
          yield* TestClock.adjust(199)
          assert.strictEqual(yield* store.get("long"), "l")
          yield* TestClock.adjust(1)
          yield* assertKeyNotFound(store.get("long"), "long")
        }))
    }))
})

// =============================================================================
// Closing flushes
// =============================================================================

/** How many whole records the log file holds right now, read from the disk. */
const recordsOnDisk = (logPath: string): number => recordSpans(fs.readFileSync(logPath)).length

describe("closing the store flushes what is pending", () => {
  it.effect.each(["never", "interval"] as const)(
    "fsync %s: puts followed at once by the scope's close are all there after a reopen",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("close-buffered")
        const expected = new Map<string, ValueView>()
        const { close, store } = yield* openLog({ path: logPath, fsync: policy })
        // Concurrent writers, then the close at once: the close must commit
        // what is still queued, not only what the writer took.
        const writers = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 300 }, (_, i) => i), (i) => {
          const value = i % 3 === 0 ? Uint8Array.of(i & 255, 0, 255) : `value ${i} ✓`
          expected.set(`key-${i}`, viewValue(value))
          return store.put(`key-${i}`, value)
        }, { concurrency: 64, discard: true }))
        yield* Fiber.join(writers)
        yield* store.delete("key-7")
        expected.delete("key-7")
        yield* close
        assert.deepStrictEqual(yield* stateOfLog(logPath), expected)
      })
  )

  it.effect.each(["never", "interval"] as const)(
    "fsync %s: every put and delete is in the file (handed to the OS) by the time it is acknowledged, so a process crash cannot lose it",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("first-write")
        const { close, store } = yield* openLog({ path: logPath, fsync: policy })
        for (let i = 0; i < 20; i++) {
          yield* store.put(`k${i}`, `v${i}`)
          // Still open, nothing synced: only the OS's page cache holds it.
          assert.strictEqual(recordsOnDisk(logPath), 2 * i + 1, "an acknowledged put is not in the file")
          yield* store.delete(`k${i}`)
          assert.strictEqual(recordsOnDisk(logPath), 2 * i + 2, "an acknowledged delete is not in the file")
        }
        yield* close
      })
  )

  it.live("fsync always: writes still queued when the scope closes are committed, and their puts succeed", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("close-always")
      const faults = makeFaultyFileOps()
      const { close, store } = yield* openLog({ path: logPath, fsync: "always", fileOps: faults.ops })
      yield* store.put("before", "b")
      const syncsBefore = faults.calls.datasync
      // Submitted, not yet committed: the writer fiber has not had its turn.
      const writers = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) => Effect.forkDetach(store.put(`queued-${i}`, `v${i}`), { startImmediately: true }),
        { concurrency: 1 }
      )
      assert.strictEqual(faults.calls.datasync, syncsBefore, "a batch was committed before the close")
      yield* close
      // A put left waiting by the close would hang: bound the wait so the test fails instead.
      const exits = yield* Effect.timeoutOption(Effect.forEach(writers, Fiber.await), "20 seconds")
      assert.isTrue(Option.isSome(exits), "queued puts were still waiting 20 s after the close")
      for (const exit of Option.getOrThrow(exits)) assert.isTrue(Exit.isSuccess(exit), String(exit))
      const state = yield* stateOfLog(logPath)
      assert.strictEqual(state.size, 51)
      for (let i = 0; i < 50; i++) assert.strictEqual(state.get(`queued-${i}`), `s:v${i}`)
    }))

  it.effect("a closed store refuses writes with StorageError and says it is closed", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("closed")
      const { close, store } = yield* openLog({ path: logPath })
      yield* store.put("k", "v")
      yield* close
      const error = yield* typedFailure(store.put("k", "w"), "StorageError")
      assert.instanceOf(error, KeyValueStore.StorageError)
      assert.deepStrictEqual(yield* store.writeStatus, { _tag: "ReadOnly", reason: "the store is closed" })
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map([["k", "s:v"]]))
    }))
})

// =============================================================================
// Group commit
// =============================================================================

/** Yields until `condition` holds (a bounded number of turns; real I/O may take a few). */
const turnsUntil = (what: string, condition: () => boolean) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100_000 && !condition(); turn++) yield* Effect.yieldNow
    assert.isTrue(condition(), `never saw ${what}`)
  })

/**
 * Holds the store's read lock through an `entries` stream that stops at its
 * first entry until `release`: a batch written meanwhile is durable but waits
 * to be applied, and the writer, still inside it, leaves later writes
 * queued. The store must hold at least one entry.
 */
const holdReadLock = (store: KeyValueStore.KeyValueStoreService) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    let holding = false
    const reader = yield* Effect.forkChild(Stream.runForEach(store.entries, () => {
      holding = true
      return Deferred.await(gate)
    }))
    yield* turnsUntil("the stream holding the read lock", () => holding)
    return {
      release: Effect.flatMap(Deferred.succeed(gate, undefined), () => Fiber.join(reader))
    }
  })

/** How many batches the log file holds right now. */
const batchesOnDisk = (logPath: string): number =>
  new Set(recordSpans(fs.readFileSync(logPath)).map((span) => span.batch)).size


describe("acknowledge: \"buffered\"", () => {
  it.effect.each(["never", "interval"] as const)(
    "fsync %s: a put is acknowledged before its record reaches the file, which the writer hands to the OS within a few turns",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("buffered")
        const { close, store } = yield* openLog({ path: logPath, fsync: policy, acknowledge: "buffered" })
        yield* store.put("only", "write")
        // Acknowledged and readable, but still in the process's buffer.
        assert.strictEqual(yield* store.get("only"), "write")
        assert.strictEqual(recordsOnDisk(logPath), 0, "a buffered put was written before it was acknowledged")
        for (let turn = 0; turn < 100 && recordsOnDisk(logPath) === 0; turn++) yield* Effect.yieldNow
        assert.strictEqual(recordsOnDisk(logPath), 1, "the buffer was not handed to the OS")
        yield* close
      })
  )

  it.effect.each(["never", "interval"] as const)(
    "fsync %s: writes still in the buffer when the scope closes are written and survive a reopen",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("buffered-close")
        const expected = new Map<string, ValueView>()
        const { close, store } = yield* openLog({ path: logPath, fsync: policy, acknowledge: "buffered" })
        // One synchronous burst: the writer fiber gets no turn before the close.
        for (let i = 0; i < 300; i++) {
          const value = i % 3 === 0 ? Uint8Array.of(i & 255, 0, 255) : `value ${i} ✓`
          expected.set(`key-${i}`, viewValue(value))
          yield* store.put(`key-${i}`, value)
        }
        yield* store.delete("key-7")
        expected.delete("key-7")
        assert.strictEqual(recordsOnDisk(logPath), 0, "records already on disk before the close")
        yield* close
        assert.deepStrictEqual(yield* stateOfLog(logPath), expected)
      })
  )

  it.effect("is refused with fsync \"always\", which acknowledges a write only once it is synced", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("buffered-always")
      const error = yield* typedFailure(openLog({ path: logPath, fsync: "always", acknowledge: "buffered" }), "InvalidInput")
      assert.match((error as KeyValueStore.InvalidInput).message, /acknowledge: "buffered" needs fsync "interval" or "never"/)
      assert.isFalse(fs.existsSync(logPath), "a refused open created the log")
    }))
})

describe("group commit", () => {
  it.effect("64 fibers writing at once share one write and one fdatasync per batch, also after the writer went idle", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("group")
      const faults = makeFaultyFileOps()
      yield* withLogStore({ path: logPath, fsync: "always", fileOps: faults.ops }, (store) =>
        Effect.gen(function*() {
          // One lone put first: the writer commits it and goes idle, and the
          // next submit wakes it (the case that once committed one write per sync).
          yield* store.put("lone", "x")
          const syncsBefore = faults.calls.datasync
          const writers = yield* Effect.forkChild(Effect.forEach(
            Array.from({ length: 64 }, (_, fiber) => fiber),
            (fiber) =>
              Effect.gen(function*() {
                for (let i = 0; i < 10; i++) yield* store.put(`f${fiber}-${i % 3}`, `${i}`)
              }),
            { concurrency: "unbounded", discard: true }
          ))
          yield* Fiber.join(writers)
          const syncs = faults.calls.datasync - syncsBefore
          // 640 puts from 64 fibers; about 10 batches of 64.
          assert.isAtMost(syncs, 40, `640 durable puts took ${syncs} fdatasyncs`)
        }))
      assert.strictEqual((yield* stateOfLog(logPath)).size, 1 + 64 * 3)
    }))

  it.live("a batch stops taking writes at 64 MiB of records: three 30 MiB values queued together reach the log in two batches, all durable", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("batch-limit")
      const big = (fill: number) => new Uint8Array(30 * 1024 * 1024).fill(fill)
      yield* withLogStore({ path: logPath, fsync: "always" }, (store) =>
        Effect.gen(function*() {
          yield* store.put("first", "small")
          // A batch held at its apply, so that the three large puts queue up together behind it.
          const hold = yield* holdReadLock(store)
          const second = yield* Effect.forkChild(store.put("second", "small"))
          yield* turnsUntil("the second batch written", () => batchesOnDisk(logPath) === 2)
          const large = yield* Effect.forkChild(
            Effect.forEach([1, 2, 3], (fill) => store.put(`big-${fill}`, big(fill)), { concurrency: "unbounded", discard: true })
          )
          yield* Effect.yieldNow
          yield* hold.release
          yield* Fiber.join(second)
          yield* Fiber.join(large)
        }))
      const spans = recordSpans(fs.readFileSync(logPath))
      assert.strictEqual(spans.length, 5)
      const batches = new Set(spans.slice(2).map((span) => span.batch))
      assert.strictEqual(batches.size, 2, "the three large records were not split at the limit")
      assert.strictEqual((yield* stateOfLog(logPath)).size, 5)
    }))

  it.effect("a fiber that is not writing gets a turn between every few batches while 64 fibers keep the log busy", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("fair")
      const faults = makeFaultyFileOps()
      yield* withLogStore({ path: logPath, fsync: "always", fileOps: faults.ops }, (store) =>
        Effect.gen(function*() {
          yield* store.put("lone", "x")
          let finished = false
          const writers = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 64 }, (_, fiber) => fiber),
              (fiber) =>
                Effect.gen(function*() {
                  for (let i = 0; i < 40; i++) yield* store.put(`f${fiber}`, `${i}`)
                }),
              { concurrency: "unbounded", discard: true }
            ).pipe(Effect.ensuring(Effect.sync(() => (finished = true))))
          )
          // Counted in batches (fdatasyncs), not in time: how many batches pass
          // between two turns of a fiber that only yields and reads.
          let mostBatchesBetweenTurns = 0
          let last = faults.calls.datasync
          while (!finished) {
            yield* Effect.yieldNow
            yield* Effect.exit(store.get("f0"))
            mostBatchesBetweenTurns = Math.max(mostBatchesBetweenTurns, faults.calls.datasync - last)
            last = faults.calls.datasync
          }
          yield* Fiber.join(writers)
          assert.isAtMost(mostBatchesBetweenTurns, 4, "batches committed while a reading fiber waited for its turn")
        }))
    }))
})

// =============================================================================
// One owner
// =============================================================================

describe("interrupted writes", () => {
  it.live("fsync always: a put interrupted while still queued is never written, applied or replayed", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("interrupt-queued")
      const { close, store } = yield* openLog({ path: logPath, fsync: "always" })
      yield* store.put("seed", "s")
      // The next batch is durable but waits for its apply: the writer is busy, so a later put stays queued.
      const hold = yield* holdReadLock(store)
      const first = yield* Effect.forkChild(store.put("first", "in flight"))
      yield* turnsUntil("the first batch written", () => batchesOnDisk(logPath) === 2)
      const queued = yield* Effect.forkChild(store.put("queued", "interrupted"))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(queued)
      yield* hold.release
      yield* Fiber.join(first)
      // One more write proves the queue was served after the interruption.
      yield* store.put("after", "written")
      yield* assertKeyNotFound(store.get("queued"), "queued")
      assert.strictEqual(recordsOnDisk(logPath), 3, "the interrupted put reached the file")
      yield* close
      assert.deepStrictEqual(
        yield* stateOfLog(logPath),
        new Map([["seed", "s:s"], ["first", "s:in flight"], ["after", "s:written"]])
      )
    }))

  it.live("fsync always: a put interrupted once its batch is written still becomes durable and visible, like a lost reply", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("interrupt-in-flight")
      const { close, store } = yield* openLog({ path: logPath, fsync: "always" })
      yield* store.put("seed", "s")
      const hold = yield* holdReadLock(store)
      const inFlight = yield* Effect.forkChild(store.put("k", "written anyway"))
      yield* turnsUntil("the batch written", () => batchesOnDisk(logPath) === 2)
      yield* Fiber.interrupt(inFlight)
      yield* hold.release
      // Another write through the same writer: once it is acknowledged, the earlier batch was applied.
      yield* store.put("next", "n")
      assert.strictEqual(yield* store.get("k"), "written anyway")
      yield* close
      assert.deepStrictEqual(
        yield* stateOfLog(logPath),
        new Map([["seed", "s:s"], ["k", "s:written anyway"], ["next", "s:n"]])
      )
    }))
})

describe("one store per log in this process", () => {
  it.effect("a second open of an open log fails with LogLocked, also through another spelling of its path; the first store is undisturbed", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("owner")
      const first = yield* openLog({ path: logPath })
      yield* first.store.put("k", "first")
      for (const spelling of [logPath, path.join(path.dirname(logPath), ".", "store.log"), path.relative(process.cwd(), logPath)]) {
        const error = yield* typedFailure(KeyValueStore.makeLog({ path: spelling }).pipe(Effect.scoped), "LogLocked")
        assert.instanceOf(error, KeyValueStore.LogLocked)
        const locked = error as KeyValueStore.LogLocked
        assert.strictEqual(locked.path, spelling)
        assert.match(locked.owner, new RegExp(`this process \\(pid ${process.pid}\\)`))
      }
      yield* first.store.put("k", "still first")
      assert.strictEqual(yield* first.store.get("k"), "still first")
      yield* first.close
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map([["k", "s:still first"]]))
    }))

  it.effect("once the first store's scope has closed, the log opens again and the lock file is gone", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("reopen")
      yield* withLogStore({ path: logPath }, (store) => store.put("k", "v"))
      assert.isFalse(fs.existsSync(`${logPath}.lock`))
      const state = yield* withLogStore({ path: logPath }, readState)
      assert.deepStrictEqual(state, new Map([["k", "s:v"]]))
    }))

  it.effect("the log file is created with mode 0600", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("mode")
      const previous = process.umask(0)
      try {
        yield* withLogStore({ path: logPath }, (store) => store.put("k", "v"))
      } finally {
        process.umask(previous)
      }
      assert.strictEqual((fs.statSync(logPath).mode & 0o777).toString(8), "600")
    }))
})
