/**
 * Readers in worker threads: a store opened with `index: "shared"` is read by
 * other threads through `KeyValueStore.layerSharedReader`, in parallel with
 * its writer, and every read is one the contract allows.
 *
 * - In the owning thread (the reader works there too, on the same clock), a
 *   reader answers as the store does: values, `KeyNotFound`, exact TTL on
 *   `TestClock`, `InvalidInput`, and refused writes.
 * - Values of different lengths and types rewritten while two workers read:
 *   not one torn value.
 * - Histories whose writes come from the owner and whose reads come from two
 *   workers, stamped by one logical clock in shared memory, are linearizable,
 *   while the owner's churn on other keys squeezes, grows and compacts the
 *   index under the readers.
 * - One owner write put between two of a reader's loads, in one thread: the
 *   reader's closing sequence check makes it retry, where answering would
 *   give what the index never held (the worker tests, racing real threads,
 *   pass with that check removed).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Duration from "effect/Duration"
import * as Clock from "effect/Clock"
import { TestClock } from "effect/testing"
import { Worker } from "node:worker_threads"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { SharedIndex } from "../src/internal/index/shared/SharedIndex.ts"
import { SharedIndexReader } from "../src/internal/index/shared/SharedIndexReader.ts"
import { controlEpoch } from "../src/internal/index/shared/SharedLayout.ts"
import { assertLinearizable, type Entry, type StoreOperation } from "../src/testing/Linearizability.ts"
import { makeStalledClock } from "./support/RuntimeCounters.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"
import { versionedValue } from "./support/tornValues.ts"

const workerFile = new URL("./fixtures/shared-reader-worker.ts", import.meta.url)

/** [0] logical clock, [1] stop flag, [2] workers reading. */
const makeControl = () => new Int32Array(new SharedArrayBuffer(16))

const startWorker = (
  store: KeyValueStore.KeyValueStoreService,
  control: Int32Array,
  mode: "history" | "torn",
  process: number,
  keys: ReadonlyArray<string>
) =>
  Effect.gen(function*() {
    const handle = yield* KeyValueStore.shareWithWorker(store)
    const worker = new Worker(workerFile, {
      workerData: { handle, mode, clock: control, process, keys, maxOperations: 30_000 },
      transferList: [handle.port]
    })
    const result = new Promise<any>((resolve, reject) => {
      worker.once("message", resolve)
      worker.once("error", reject)
      worker.once("exit", (code) => reject(new Error(`worker exited with ${code} before reporting`)))
    })
    return result
  })

/** Resolves once `workers` workers have begun to read (a condition, polled). */
const allReading = (control: Int32Array, workers: number) =>
  Effect.promise(() =>
    new Promise<void>((resolve) => {
      const poll = () => Atomics.load(control, 2) >= workers ? resolve() : setTimeout(poll, 1)
      poll()
    })
  )

describe("a reader of a shared store, in the owning thread", () => {
  it.effect("reads what the store holds, misses what it does not, and refuses writes", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "shared" })
      yield* store.put("text", "ü€😀 value")
      yield* store.put("bytes", new Uint8Array([0, 1, 255]))
      const reader = yield* KeyValueStore.makeSharedReader(yield* KeyValueStore.shareWithWorker(store))
      assert.strictEqual(yield* reader.get("text"), "ü€😀 value")
      assert.deepStrictEqual(Array.from((yield* reader.get("bytes")) as Uint8Array), [0, 1, 255])
      yield* assertKeyNotFound(reader.get("absent"), "absent")
      // Writes made after the reader attached are seen at once.
      for (let i = 0; i < 5_000; i++) yield* store.put(`k${i}`, `v${i}`)
      for (let i = 0; i < 5_000; i += 2) yield* store.delete(`k${i}`)
      assert.strictEqual(yield* reader.get("k4999"), "v4999")
      yield* assertKeyNotFound(reader.get("k4998"), "k4998")
      assert.strictEqual(yield* reader.size, 2_502)
      assert.deepStrictEqual((yield* reader.keys).slice(0, 3), ["text", "bytes", "k1"])
      assert.isTrue(yield* reader.has("k1"))
      assert.strictEqual((yield* Effect.flip(reader.put("k1", "other")))._tag, "StorageError")
      assert.strictEqual((yield* Effect.flip(reader.delete("k1")))._tag, "StorageError")
      assert.strictEqual((yield* Effect.flip(reader.put("k1", 5 as never)))._tag, "InvalidInput")
      const invalid = yield* Effect.flip(reader.get("\ud800"))
      assert.strictEqual(invalid._tag, "InvalidInput")
      assert.deepStrictEqual(yield* reader.writeStatus, {
        _tag: "ReadOnly",
        reason: "this store reads another thread's store: write through the thread that opened it"
      })
      assert.strictEqual(yield* store.get("k1"), "v1")
    }))

  it.effect("a store filled before it is shared: the reader counts and walks every entry at once", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "shared" })
      for (let i = 0; i < 100; i++) yield* store.put(`k${i}`, `v${i}`)
      const reader = yield* KeyValueStore.makeSharedReader(yield* KeyValueStore.shareWithWorker(store))
      assert.strictEqual(yield* reader.size, 100)
      assert.strictEqual((yield* reader.keys).length, 100)
      assert.strictEqual((yield* reader.stats).storedEntries, 100)
    }))

  it.effect("a key with a lone surrogate finds no other key's bytes: InvalidInput, from the store and from a reader", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "shared" })
      // Encoded with the unit after a high surrogate taken as its pair, "\udbffa"
      // is the bytes of "\u{102061}"; written as Node's codec writes it (as a
      // long string once was), a lone surrogate is the bytes of U+FFFD.
      const long = "x".repeat(80)
      yield* store.put("\u{102061}", "pair")
      yield* store.put(`${long}\ufffd`, "replacement")
      const reader = yield* KeyValueStore.makeSharedReader(yield* KeyValueStore.shareWithWorker(store))
      for (const from of [store, reader]) {
        for (const key of ["\udbffa", "\udbff\udbff", `${long}\ud800`, "\udc00"]) {
          const error = yield* Effect.flip(from.get(key))
          assert.strictEqual(error._tag, "InvalidInput", JSON.stringify(key))
          assert.isFalse(yield* Effect.orElseSucceed(from.has(key), () => false), JSON.stringify(key))
        }
        assert.strictEqual(yield* from.get("\u{102061}"), "pair")
        assert.strictEqual(yield* from.get(`${long}\ufffd`), "replacement")
      }
    }))

  it.effect("sees a key with a TTL until its deadline and never from it, by the store's clock, with the owner's reaper stalled", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(1_000)
      // The owner's reaper never wakes (its clock's sleeps never end), so the
      // expired key stays in the index: only the reader's own check hides it.
      const clock = yield* TestClock.testClockWith(Effect.succeed)
      const store = yield* KeyValueStore.make({ index: "shared" }).pipe(
        Effect.provideService(Clock.Clock, makeStalledClock(clock))
      )
      const reader = yield* KeyValueStore.makeSharedReader(yield* KeyValueStore.shareWithWorker(store))
      yield* store.put("k", "v", { duration: Duration.millis(10) })
      yield* TestClock.adjust(9)
      assert.strictEqual(yield* reader.get("k"), "v")
      assert.deepStrictEqual(yield* reader.timeToLive("k"), Option.some(Duration.millis(1)))
      yield* TestClock.adjust(1)
      yield* assertKeyNotFound(reader.get("k"), "k")
      assert.isFalse(yield* reader.has("k"))
      yield* assertKeyNotFound(reader.timeToLive("k"), "k")
      assert.strictEqual((yield* store.stats).storedEntries, 1)
    }))

  it.effect("a store on the heap index cannot be shared: InvalidInput names the option", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "heap" })
      const error = yield* Effect.flip(KeyValueStore.shareWithWorker(store))
      assert.include(error.message, `index: "shared"`)
    }))

  it.effect("KVLOG_INDEX decides the default index (the second CI pass depends on it)", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      const shared = yield* Effect.result(KeyValueStore.shareWithWorker(store))
      assert.strictEqual(shared._tag === "Success", process.env.KVLOG_INDEX === "shared")
    }))

  it.effect("a KVLOG_INDEX that names no index is refused with InvalidInput, not taken as the heap index", () =>
    Effect.gen(function*() {
      const before = process.env.KVLOG_INDEX
      process.env.KVLOG_INDEX = "sharde"
      try {
        // `make` has no error channel: a bad index is a defect naming what was expected.
        const defect = yield* KeyValueStore.make().pipe(
          Effect.as(undefined as unknown),
          Effect.catchDefect((defect) => Effect.succeed(defect))
        )
        assert.instanceOf(defect, KeyValueStore.InvalidInput)
        assert.include((defect as Error).message, 'KVLOG_INDEX must be "heap" or "shared"')
        assert.include((defect as Error).message, "sharde")
        const fromLog = yield* Effect.flip(KeyValueStore.makeLog({ path: "/nonexistent-dir/kvlog-never-opened.log" }))
        assert.strictEqual(fromLog._tag, "InvalidInput", "a log store refuses it before opening anything")
        // An explicit option does not read the variable.
        assert.strictEqual((yield* KeyValueStore.make({ index: "heap" })).name.length > 0, true)
      } finally {
        if (before === undefined) delete process.env.KVLOG_INDEX
        else process.env.KVLOG_INDEX = before
      }
    }))
})

describe("readers in worker threads", () => {
  it.live("values of different lengths and types rewritten while two workers read them: no torn value", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "shared" })
      const keys = Array.from({ length: 64 }, (_, i) => `t${i}`)
      for (const key of keys) yield* store.put(key, versionedValue(key, 0))
      const control = makeControl()
      const results = [
        yield* startWorker(store, control, "torn", 1, keys),
        yield* startWorker(store, control, "torn", 2, keys)
      ]
      yield* allReading(control, 2)
      let n = 1
      for (let round = 0; round < 1_500; round++) {
        for (const key of keys) yield* store.put(key, versionedValue(key, n++))
        // Churn on other keys: the table grows, holes are squeezed out, and
        // the arena, mostly garbage, is compacted under the readers.
        yield* store.put(`f${round}`, "x".repeat(round % 50))
        if (round >= 100) yield* store.delete(`f${round - 100}`)
      }
      Atomics.store(control, 1, 1)
      const reports = yield* Effect.promise(() => Promise.all(results))
      for (const report of reports) {
        assert.deepStrictEqual(report.examples, [])
        assert.strictEqual(report.torn, 0)
        assert.strictEqual(report.missing, 0)
        assert.isAbove(report.reads, 1_000)
      }
    }), 120_000)

  it.live("histories of owner writes and reads from two workers, under churn that squeezes, grows and compacts the index, are linearizable", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "shared" })
      // Three keys written all along, and 400 that come and go: deletes leave
      // holes that are squeezed out (entries renumbered under the readers),
      // fresh keys grow the table, overwrites fill the arena with garbage
      // that is compacted. Every one of those writes is in the history, and
      // the workers read all 403 keys.
      const hot = ["a", "b", "c"]
      const churn = Array.from({ length: 400 }, (_, i) => `filler${i}`)
      const control = makeControl()
      const results = [
        yield* startWorker(store, control, "history", 1, [...hot, ...churn]),
        yield* startWorker(store, control, "history", 2, [...churn, ...hot])
      ]
      yield* allReading(control, 2)
      const history: Array<Entry<StoreOperation>> = []
      const stamp = () => Atomics.add(control, 0, 1)
      const put = (key: string, value: string) =>
        Effect.gen(function*() {
          const call = stamp()
          yield* store.put(key, value)
          const ret = stamp()
          history.push({ process: 0, op: { _tag: "put", key, value }, outcome: { _tag: "ok" }, call, ret })
        })
      const remove = (key: string) =>
        Effect.gen(function*() {
          const call = stamp()
          const result = yield* Effect.result(store.delete(key))
          const ret = stamp()
          const outcome = result._tag === "Success" ? { _tag: "ok" as const } : { _tag: "KeyNotFound" as const }
          history.push({ process: 0, op: { _tag: "delete", key }, outcome, call, ret })
        })
      for (let i = 0; i < 12_000; i++) {
        const key = hot[i % 3]
        if (i % 5 === 4) yield* remove(key)
        else yield* put(key, `${key}${i}`)
        yield* put(churn[i % 400], `${i}:${"y".repeat(i % 40)}`)
        if (i % 400 >= 200) yield* remove(churn[i % 400 - 200])
      }
      Atomics.store(control, 1, 1)
      const reports = yield* Effect.promise(() => Promise.all(results))
      let reads = 0
      for (const report of reports) {
        reads += report.history.length
        history.push(...report.history)
      }
      assert.isAbove(reads, 2_000)
      assertLinearizable(history)
    }), 120_000)
})

/**
 * The closing check of the seqlock, one interleaving at a time. The worker
 * tests above race real threads and may never put an owner write between two
 * of a reader's loads; here a reader in this thread has its view of the dense
 * array replaced by a proxy that runs one owner write just before a chosen
 * load, and that load then returns what memory holds after the write — what
 * a plain load racing a write in another thread can see. Each write squeezes
 * the dense array (entries renumbered in place, no buffer replaced, so the
 * layout epoch does not move and only the sequence tells), which turns the
 * loads made before it and those made after it into an answer no instant
 * ever held. Skipping the reader's closing `Atomics.load` (taking every read
 * as settled) fails each test below; so does a removal that does not bump
 * the sequence.
 */
describe("the reader's closing sequence check, with one owner write put between two of its loads", () => {
  /** Squeezes as soon as two holes are half the dense array. */
  const squeezing = () => new SharedIndex({ minHolesToSqueeze: 2 })

  /**
   * A reader of `index` in this thread, attached as `shareWithWorker` does,
   * so that the owner's writes run the seqlock; `interleave(n, write)` runs
   * `write` in the owner just before the reader's `n`-th load from its dense
   * array (counted from 1), once. Loads are counted through the reader's
   * private `entries` view: if that field is renamed, `fired` stays false
   * and the tests say so.
   */
  const readerOf = (index: SharedIndex) => {
    const attachment = index.attachReader()
    const { port } = attachment
    const reader = new SharedIndexReader(attachment)
    const view = reader as unknown as { entries: Uint32Array }
    const state = { fired: false }
    const interleave = (n: number, write: () => void) => {
      // A read first, so that the reader adopts the buffers published since
      // it attached (a new segment moves the epoch): adopting replaces the
      // view, and would drop the proxy. With no write inside it, it is not
      // retried.
      reader.liveEntries(0, false)
      assert.strictEqual(reader.retried, 0)
      let loads = 0
      view.entries = new Proxy(view.entries, {
        get(target, property) {
          if (typeof property === "string" && /^\d+$/.test(property) && ++loads === n && !state.fired) {
            state.fired = true
            write()
          }
          return Reflect.get(target, property)
        }
      })
    }
    return { reader, port, state, interleave }
  }

  it("lookup: a squeeze between reading the key's slot and reading its entry is retried, never answered 'absent'", () => {
    const index = squeezing()
    const { interleave, port, reader, state } = readerOf(index)
    try {
      for (const key of ["a", "k", "c", "d"]) index.set(key, `${key}-value`, Infinity)
      // One hole at entry 0; `k` is entry 1, `c` entry 2.
      index.removeLive("a", 0)
      // The reader loads `k`'s slot (entry 1), then the owner removes `d`: two
      // holes in four entries, so the dense array is squeezed to [k, c] and
      // the slots renumbered. The reader's load of entry 1 now finds `c`,
      // whose key is not `k`, and its probe ends at an empty slot: "absent",
      // although `k` was present before the write and after it.
      interleave(1, () => index.removeLive("d", 0))
      assert.strictEqual(reader.lookup("k", 0), "k-value")
      assert.isTrue(state.fired, "the owner's write ran inside the read")
      assert.isAbove(reader.retried, 0, "the read that overlapped the write was retried")
      assert.strictEqual(index.activity.squeezes, 1, "the write squeezed the dense array")
    } finally {
      port.close()
    }
  })

  it("deadlineOf: the same torn probe is retried, and the key's deadline answered", () => {
    const index = squeezing()
    const { interleave, port, reader, state } = readerOf(index)
    try {
      index.set("a", "a-value", Infinity)
      index.set("k", "k-value", 500)
      index.set("c", "c-value", Infinity)
      index.set("d", "d-value", Infinity)
      index.removeLive("a", 0)
      interleave(1, () => index.removeLive("d", 0))
      assert.strictEqual(reader.deadlineOf("k", 0), 500)
      assert.isTrue(state.fired, "the owner's write ran inside the read")
      assert.isAbove(reader.retried, 0, "the read that overlapped the write was retried")
      assert.strictEqual(index.activity.squeezes, 1, "the write squeezed the dense array")
    } finally {
      port.close()
    }
  })

  it("liveEntries: a squeeze in the middle of the walk is retried, never a mix of before and after", () => {
    const index = squeezing()
    const { interleave, port, reader, state } = readerOf(index)
    try {
      for (const key of ["a", "b", "c", "d"]) index.set(key, `${key}-value`, Infinity)
      index.removeLive("b", 0)
      // Before: [a, hole, c, d]. The walk loads entry 0 (`a`), then the owner
      // removes `a` and squeezes to [c, d]: the walk's next load, entry 1,
      // finds `d`, and the rest are holes. Without the check it answers
      // [a, d], which the index never held (before: [a, c, d]; after: [c, d]).
      interleave(2, () => index.removeLive("a", 0))
      const walk = reader.liveEntries(0, true)
      assert.deepStrictEqual(walk.keys, ["c", "d"])
      assert.deepStrictEqual(walk.values, ["c-value", "d-value"])
      assert.isTrue(state.fired, "the owner's write ran inside the walk")
      assert.isAbove(reader.retried, 0, "the walk that overlapped the write was retried")
      assert.strictEqual(index.activity.squeezes, 1, "the write squeezed the dense array")
    } finally {
      port.close()
    }
  })

  it("a reader that does not read still takes each replaced buffer as it is posted, so its port's queue holds none of them", async () => {
    // Small segments and a small table: a few hundred puts add segments and
    // double the table, and each replaced buffer is posted to the reader.
    const index = new SharedIndex({ firstSegmentBytes: 64 })
    const attachment = index.attachReader()
    const { layout, port } = attachment
    const reader = new SharedIndexReader(attachment)
    const control = new Int32Array(layout.control)
    try {
      const first = reader.adoptedEpoch
      for (let i = 0; i < 500; i++) index.set(`key${i}`, `value${i}`, Infinity)
      const posted = Atomics.load(control, controlEpoch) - first
      assert.isAtLeast(posted, 5, "the puts replaced buffers")
      // Listening after the reader, this sees each message after the reader's
      // own listener did: when it has seen them all, so has the reader.
      await new Promise<void>((resolve) => {
        let seen = 0
        port.on("message", () => {
          if (++seen === posted) resolve()
        })
      })
      assert.strictEqual(reader.adoptedEpoch, first + posted, "the idle reader took every posted layout")
      assert.strictEqual(reader.lookup("key499", 0), "value499")
      assert.strictEqual(reader.retried, 0)
    } finally {
      port.close()
    }
  })
})
