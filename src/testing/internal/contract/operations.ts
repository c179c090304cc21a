/**
 * The contract's operations, clause by clause, on either clock: get, put and
 * delete; values as given (strings, bytes, copies); the size limits; has,
 * size, keys, entries, timeToLive, clear, stats, writeStatus and compact.
 * What depends on time moving is in the TTL sections.
 */
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { assertKeyNotFound } from "../assertions.ts"
import { living, observe, type Store, type StoreUnderTest, testOn, withStore } from "./StoreUnderTest.ts"

const sortedEntries = (entries: ReadonlyArray<readonly [string, unknown]>) =>
  [...entries].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)

export const operationsSection = (sut: StoreUnderTest): void => {
  const it = testOn(sut)
  const store = <A, E, R>(test: (store: Store) => Effect.Effect<A, E, R>) => withStore(sut, test)

  describe("get, put and delete", () => {
    it("get of a key never put fails with KeyNotFound carrying the key", () =>
      store((store) => assertKeyNotFound(store.get("never put"), "never put")))

    it("put succeeds with the value it was given", () =>
      store((store) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* store.put("s", "a string"), "a string")
          const bytes = new Uint8Array([1, 2, 3])
          assert.strictEqual(yield* store.put("b", bytes), bytes)
          assert.strictEqual(yield* store.put("t", "with ttl", { duration: living(sut, 10) }), "with ttl")
        })
      ))

    it("get returns the same string that was put", () =>
      store((store) =>
        Effect.gen(function*() {
          const values = ["value", "", "ünïcödé ✓ 𝄞 (astral)", "line\nbreak\u0000nul", "x".repeat(100_000)]
          for (const [i, value] of values.entries()) yield* store.put(`k${i}`, value)
          for (const [i, value] of values.entries()) assert.strictEqual(yield* store.get(`k${i}`), value)
        })
      ))

    it("get returns a Uint8Array with the contents of the bytes that were put", () =>
      store((store) =>
        Effect.gen(function*() {
          const backing = new Uint8Array([9, 9, 0, 1, 255, 128, 9, 9])
          const values = [new Uint8Array(0), new Uint8Array([0, 1, 2, 255]), backing.subarray(2, 6)]
          for (const [i, value] of values.entries()) yield* store.put(`k${i}`, value)
          for (const [i, value] of values.entries()) {
            const got = yield* store.get(`k${i}`)
            assert.instanceOf(got, Uint8Array)
            assert.deepStrictEqual(Array.from(got as Uint8Array), Array.from(value))
          }
        })
      ))

    it("mutating a byte array after put does not change the stored value", () =>
      store((store) =>
        Effect.gen(function*() {
          const bytes = new Uint8Array([1, 2, 3])
          yield* store.put("k", bytes)
          bytes[0] = 42
          bytes.fill(7, 1)
          assert.deepStrictEqual(Array.from((yield* store.get("k")) as Uint8Array), [1, 2, 3])
        })
      ))

    it("mutating the byte array get returned does not change the stored value", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("k", new Uint8Array([1, 2, 3]))
          const got = (yield* store.get("k")) as Uint8Array
          got[0] = 99
          assert.deepStrictEqual(Array.from((yield* store.get("k")) as Uint8Array), [1, 2, 3])
          const [[, streamed]] = Array.from(yield* Stream.runCollect(store.entries))
          ;(streamed as Uint8Array)[1] = 99
          assert.deepStrictEqual(Array.from((yield* store.get("k")) as Uint8Array), [1, 2, 3])
        })
      ))

    it("put over an existing key replaces its value", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("k", "first")
          yield* store.put("k", "second")
          assert.strictEqual(yield* store.get("k"), "second")
          yield* store.put("k", new Uint8Array([3]))
          assert.deepStrictEqual(Array.from((yield* store.get("k")) as Uint8Array), [3])
          yield* store.put("k", "third")
          assert.strictEqual(yield* store.get("k"), "third")
          assert.strictEqual(yield* store.size, 1)
        })
      ))

    it("after delete, get fails with KeyNotFound", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("k", "v")
          yield* store.put("other", "o")
          yield* store.delete("k")
          yield* assertKeyNotFound(store.get("k"), "k")
          assert.strictEqual(yield* store.get("other"), "o")
        })
      ))

    it("delete of a key never put, or already deleted, fails with KeyNotFound carrying the key", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* assertKeyNotFound(store.delete("never put"), "never put")
          yield* store.put("k", "v")
          yield* store.delete("k")
          yield* assertKeyNotFound(store.delete("k"), "k")
        })
      ))

    it("the empty string is a key like any other", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* assertKeyNotFound(store.get(""), "")
          yield* store.put("", "empty")
          assert.strictEqual(yield* store.get(""), "empty")
          yield* store.delete("")
          yield* assertKeyNotFound(store.get(""), "")
        })
      ))
  })

  describe("the size limits", () => {
    const { maxKeyLength, maxValueLength } = sut.limits
    // Values at the limit are large: generous against a slow disk.
    const large = 120_000

    it("a key of exactly maxKeyLength code units is accepted", () =>
      store((store) =>
        Effect.gen(function*() {
          const key = "k".repeat(maxKeyLength - 2) + "𝄞" // a surrogate pair: 2 code units
          assert.strictEqual(key.length, maxKeyLength)
          yield* store.put(key, "v")
          assert.strictEqual(yield* store.get(key), "v")
        })
      ))

    it("a string value of exactly maxValueLength code units is accepted", () =>
      store((store) =>
        Effect.gen(function*() {
          const value = "x".repeat(maxValueLength)
          yield* store.put("k", value)
          assert.strictEqual(yield* store.get("k"), value)
          yield* store.delete("k")
        })
      ), large)

    it("bytes of exactly maxValueLength are accepted", () =>
      store((store) =>
        Effect.gen(function*() {
          const value = new Uint8Array(maxValueLength)
          value[value.length - 1] = 7
          yield* store.put("k", value)
          const got = (yield* store.get("k")) as Uint8Array
          assert.strictEqual(got.byteLength, maxValueLength)
          assert.strictEqual(got[got.length - 1], 7)
          yield* store.delete("k")
        })
      ), large)
  })

  describe("has, size, keys, entries, timeToLive, clear, stats, writeStatus, compact", () => {
    it("has is true for a live key and false for one never put or deleted", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("k", "v")
          yield* store.put("gone", "v")
          yield* store.delete("gone")
          assert.isTrue(yield* store.has("k"))
          assert.isFalse(yield* store.has("gone"))
          assert.isFalse(yield* store.has("never put"))
        })
      ))

    it("size counts the live keys: an overwrite adds none, a delete removes one", () =>
      store((store) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* store.size, 0)
          yield* store.put("a", "1")
          yield* store.put("b", "2", { duration: living(sut, 10) })
          assert.strictEqual(yield* store.size, 2)
          yield* store.put("a", "1 again")
          assert.strictEqual(yield* store.size, 2)
          yield* store.delete("a")
          assert.strictEqual(yield* store.size, 1)
        })
      ))

    it("keys lists the live keys, as a snapshot", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("c", "1")
          yield* store.put("a", "2", { duration: living(sut, 10) })
          yield* store.put("b", "3")
          yield* store.put("c", "overwritten")
          yield* store.put("d", "4")
          yield* store.delete("d")
          const keys = yield* store.keys
          assert.deepStrictEqual([...keys].sort(), ["a", "b", "c"])
          yield* store.put("e", "5")
          assert.deepStrictEqual([...keys].sort(), ["a", "b", "c"], "a later put does not change an earlier snapshot")
          assert.deepStrictEqual([...(yield* store.keys)].sort(), ["a", "b", "c", "e"])
        })
      ))

    it("entries streams every live key with its value", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("s", "string")
          yield* store.put("b", new Uint8Array([1, 2]), { duration: living(sut, 10) })
          yield* store.put("gone", "v")
          yield* store.delete("gone")
          const entries = yield* Stream.runCollect(store.entries)
          assert.deepStrictEqual(sortedEntries(entries), [["b", new Uint8Array([1, 2])], ["s", "string"]])
        })
      ))

    it("entries streams a store larger than one chunk in full, each key once", () =>
      store((store) =>
        Effect.gen(function*() {
          const count = 10_000
          // Concurrent puts: a durable store commits them in groups, not one sync each.
          yield* Effect.forEach(
            Array.from({ length: count }, (_, i) => i),
            (i) => store.put(`k${i}`, `v${i}`),
            { concurrency: 64, discard: true }
          )
          const entries = yield* Stream.runCollect(store.entries)
          assert.strictEqual(entries.length, count)
          const byKey = new Map(entries)
          assert.strictEqual(byKey.size, count, "no key streamed twice")
          for (let i = 0; i < count; i++) {
            if (byKey.get(`k${i}`) !== `v${i}`) assert.fail(`k${i} streamed as ${String(byKey.get(`k${i}`))}`)
          }
        })
      ))

    it("timeToLive is none for a key kept until deleted", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("forever", "v")
          assert.deepStrictEqual(yield* store.timeToLive("forever"), Option.none())
        })
      ))

    it("timeToLive fails with KeyNotFound for a key never put or deleted", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* assertKeyNotFound(store.timeToLive("never put"), "never put")
          yield* store.put("deleted", "v")
          yield* store.delete("deleted")
          yield* assertKeyNotFound(store.timeToLive("deleted"), "deleted")
        })
      ))

    it("clear removes every key, with or without TTL, and the store goes on working", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("a", "1")
          yield* store.put("b", "2", { duration: living(sut, 10) })
          yield* store.clear
          assert.strictEqual(yield* store.size, 0)
          assert.deepStrictEqual(yield* store.keys, [])
          assert.deepStrictEqual(yield* Stream.runCollect(store.entries), [])
          yield* assertKeyNotFound(store.get("a"), "a")
          yield* assertKeyNotFound(store.get("b"), "b")
          if (sut.supportsStats) {
            const stats = yield* store.stats
            assert.deepStrictEqual(
              { storedEntries: stats.storedEntries, entriesWithDeadline: stats.entriesWithDeadline, reclaimed: stats.reclaimed },
              { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 0 }
            )
          }
          yield* store.put("a", "again")
          assert.strictEqual(yield* store.get("a"), "again")
        })
      ))

    it("writeStatus of a healthy store is Writable", () =>
      store((store) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
          yield* store.put("k", "v")
          yield* store.clear
          assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
        })
      ))

    if (sut.supportsCompact) {
      it("compact changes nothing a client can see", () =>
        store((store) =>
          Effect.gen(function*() {
            yield* store.put("a", "1")
            yield* store.put("b", new Uint8Array([2]), { duration: living(sut, 10) })
            yield* store.put("c", "3")
            yield* store.delete("c")
            const before = yield* observe(sut, store)
            yield* store.compact
            const after = yield* observe(sut, store)
            // Compaction may drop superseded log records: the log's own figures are its to change.
            assert.deepStrictEqual({ ...after, stats: withoutLog(after.stats) }, { ...before, stats: withoutLog(before.stats) })
          })
        ))
    }
  })
}

const withoutLog = <S extends { readonly log?: unknown } | undefined>(stats: S) => {
  if (stats === undefined) return undefined
  const { log: _log, ...rest } = stats
  return rest
}
