/**
 * The public contract of `KeyValueStore` (issue 2), clause by clause, on
 * `layerMemory`; then the extras every store user expects (`has`, `size`,
 * `keys`, `entries`, `timeToLive`, `clear`, `stats`, `writeStatus`,
 * `compact`); the README's usage example; and the index's spill past one
 * table.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../src/index.ts"
import { makeMemory } from "../src/internal/store/makeStore.ts"
import { assertInvalidInput, assertKeyNotFound } from "./support/StoreAssertions.ts"

type Store = KeyValueStore.KeyValueStoreService

/** Runs `test` against a fresh `layerMemory` store, built on the test's `TestClock`. */
const withStore = <A, E>(test: (store: Store) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    return yield* test(yield* KeyValueStore.KeyValueStore)
  }).pipe(Effect.provide(KeyValueStore.layerMemory))

describe("get, put and delete", () => {
  it.effect("get of a key never put fails with KeyNotFound carrying the key", () =>
    withStore((store) => assertKeyNotFound(store.get("never put"), "never put")))

  it.effect("put succeeds with the value it was given", () =>
    withStore((store) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* store.put("s", "a string"), "a string")
        const bytes = new Uint8Array([1, 2, 3])
        assert.strictEqual(yield* store.put("b", bytes), bytes)
        assert.strictEqual(yield* store.put("t", "with ttl", { duration: 10 }), "with ttl")
      })
    ))

  it.effect("get returns the same string that was put", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const values = ["value", "", "ünïcödé ✓ 𝄞 (astral)", "line\nbreak\u0000nul", "x".repeat(100_000)]
        for (const [i, value] of values.entries()) yield* store.put(`k${i}`, value)
        for (const [i, value] of values.entries()) assert.strictEqual(yield* store.get(`k${i}`), value)
      })
    ))

  it.effect("get returns a Uint8Array with the contents of the bytes that were put", () =>
    withStore((store) =>
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

  it.effect("mutating a byte array after put does not change the stored value", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const bytes = new Uint8Array([1, 2, 3])
        yield* store.put("k", bytes)
        bytes[0] = 42
        bytes.fill(7, 1)
        assert.deepStrictEqual(Array.from((yield* store.get("k")) as Uint8Array), [1, 2, 3])
      })
    ))

  it.effect("mutating the byte array get returned does not change the stored value", () =>
    withStore((store) =>
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

  it.effect("put over an existing key replaces its value", () =>
    withStore((store) =>
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

  it.effect("after delete, get fails with KeyNotFound", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "v")
        yield* store.put("other", "o")
        yield* store.delete("k")
        yield* assertKeyNotFound(store.get("k"), "k")
        assert.strictEqual(yield* store.get("other"), "o")
      })
    ))

  it.effect("delete of a key never put, or already deleted, fails with KeyNotFound carrying the key", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* assertKeyNotFound(store.delete("never put"), "never put")
        yield* store.put("k", "v")
        yield* store.delete("k")
        yield* assertKeyNotFound(store.delete("k"), "k")
      })
    ))

  it.effect("the empty string is a key like any other", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* assertKeyNotFound(store.get(""), "")
        yield* store.put("", "empty")
        assert.strictEqual(yield* store.get(""), "empty")
        yield* store.delete("")
        yield* assertKeyNotFound(store.get(""), "")
      })
    ))

  it.effect("put with Duration.infinity keeps the key and clears an earlier TTL", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "with ttl", { duration: 10 })
        yield* store.put("k", "forever", { duration: Duration.infinity })
        yield* TestClock.adjust(Duration.days(10_000))
        assert.strictEqual(yield* store.get("k"), "forever")
        assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
      })
    ))
})

// =============================================================================
// InvalidInput
// =============================================================================

/** What a client can observe of the store, to compare before and after a rejected call. */
const observe = (store: Store) =>
  Effect.gen(function*() {
    const entries = yield* Stream.runCollect(store.entries)
    const timesToLive = yield* Effect.forEach(entries, ([key]) => store.timeToLive(key))
    return {
      entries: entries.map(([key, value]) => [key, typeof value === "string" ? value : Array.from(value)]),
      timesToLive: timesToLive.map(Option.map(Duration.toMillis)),
      size: yield* store.size,
      stats: yield* store.stats
    }
  })

/**
 * Puts `k` → "old" (no TTL) and "ttl" → bytes (with a TTL), runs `attempt`,
 * asserts it fails with `InvalidInput` whose message matches `message`, and
 * that the store looks exactly as before.
 */
const assertRejected = (
  attempt: (store: Store) => Effect.Effect<unknown, unknown>,
  message: ReadonlyArray<RegExp>
) =>
  withStore((store) =>
    Effect.gen(function*() {
      yield* store.put("k", "old")
      yield* store.put("ttl", new Uint8Array([1, 2]), { duration: 1_000 })
      const before = yield* observe(store)
      yield* assertInvalidInput(attempt(store), message)
      assert.deepStrictEqual(yield* observe(store), before)
      assert.strictEqual(yield* store.get("k"), "old")
    })
  )

/** Calls `put` with arguments its type does not allow, as untyped callers can. */
const untypedPut = (store: Store, key: unknown, value: unknown, options?: unknown) =>
  (store.put as (key: unknown, value: unknown, options?: unknown) => Effect.Effect<unknown, unknown>)(
    key,
    value,
    options
  )

describe("put fails with InvalidInput and leaves the store unchanged", () => {
  it.effect.each([
    { label: "a number", key: 42 },
    { label: "null", key: null },
    { label: "undefined", key: undefined },
    { label: "an object", key: { toString: () => "k" } },
    { label: "a String object", key: new String("k") },
    { label: "a symbol", key: Symbol("k") }
  ])("a key that is $label (not a string)", ({ key }) =>
    assertRejected((store) => untypedPut(store, key, "new"), [/key must be a string/]))

  it.effect.each([
    { label: "a number", value: 42 },
    { label: "null", value: null },
    { label: "undefined", value: undefined },
    { label: "a plain object", value: { a: 1 } },
    { label: "an array of bytes", value: [1, 2, 3] },
    { label: "a boolean", value: true },
    { label: "a Uint16Array", value: new Uint16Array([1]) },
    { label: "an ArrayBuffer", value: new ArrayBuffer(2) }
  ])("a value that is $label (neither a string nor a Uint8Array)", ({ value }) =>
    assertRejected((store) => untypedPut(store, "k", value), [/value must be a string or a Uint8Array/]))

  it.effect.each([
    { label: "0", duration: 0 },
    { label: "Duration.zero", duration: Duration.zero },
    { label: "\"0 millis\"", duration: "0 millis" },
    { label: "-1", duration: -1 },
    { label: "-0.5", duration: -0.5 },
    { label: "\"-5 seconds\"", duration: "-5 seconds" },
    { label: "NaN", duration: NaN },
    { label: "-Infinity", duration: -Infinity },
    { label: "\"-Infinity\"", duration: "-Infinity" },
    { label: "Duration.negativeInfinity", duration: Duration.negativeInfinity }
  ])("a duration of $label (zero, negative or NaN)", ({ duration }) =>
    assertRejected((store) => untypedPut(store, "k", "new", { duration }), [/duration/]))

  it.effect.each([
    { label: "\"soon\"", duration: "soon" },
    { label: "\"5 parsecs\"", duration: "5 parsecs" },
    { label: "{} (no duration in it)", duration: {} },
    { label: "true", duration: true },
    { label: "null", duration: null },
    { label: "a function", duration: () => 5 },
    { label: "[1, 2, 3]", duration: [1, 2, 3] }
  ])("a duration of $label (not a Duration input)", ({ duration }) =>
    assertRejected((store) => untypedPut(store, "k", "new", { duration }), [/duration/]))

  it.effect.each([
    { label: "a number", options: 5 },
    { label: "a string", options: "5 seconds" },
    { label: "null", options: null },
    { label: "true", options: true }
  ])("options that are $label (not an object)", ({ options }) =>
    assertRejected((store) => untypedPut(store, "k", "new", options), [/options must be an object/]))

  it.effect("a key one code unit over maxKeyLength", () =>
    assertRejected(
      (store) => store.put("k".repeat(KeyValueStore.maxKeyLength + 1), "new"),
      [/key/, new RegExp(`${KeyValueStore.maxKeyLength + 1}\\b`), new RegExp(`${KeyValueStore.maxKeyLength}\\b`)]
    ))

  it.effect.each([
    { label: "a lone high surrogate", key: "\uD800" },
    { label: "a lone low surrogate", key: "a\uDC00b" },
    { label: "a high surrogate at its end", key: "key\uD83D" }
  ])("a key with $label", ({ key }) => assertRejected((store) => store.put(key, "new"), [/key/, /surrogate/]))

  it.effect("a string value one code unit over maxValueLength", () =>
    assertRejected(
      // A rope: one `maxValueLength` string in memory, not two.
      (store) => store.put("k", "x".repeat(KeyValueStore.maxValueLength) + "x"),
      [/value/, new RegExp(`${KeyValueStore.maxValueLength + 1}\\b`), new RegExp(`${KeyValueStore.maxValueLength}\\b`)]
    ))

  it.effect("bytes one byte over maxValueLength", () =>
    assertRejected(
      (store) => store.put("k", new Uint8Array(KeyValueStore.maxValueLength + 1)),
      [/value/, /bytes/, new RegExp(`${KeyValueStore.maxValueLength + 1}\\b`)]
    ))

  it.effect.each([
    { label: "a lone high surrogate", value: "\uD800" },
    { label: "a lone low surrogate", value: "abc\uDFFFdef" }
  ])("a string value with $label", ({ value }) =>
    assertRejected((store) => store.put("k", value), [/value/, /surrogate/]))

  it.effect("a rejected put with a duration leaves an existing TTL as it was", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "old", { duration: 100 })
        yield* assertInvalidInput(untypedPut(store, "k", "new", { duration: -1 }), [/duration/])
        yield* TestClock.adjust(99)
        assert.strictEqual(yield* store.get("k"), "old")
        yield* TestClock.adjust(1)
        yield* assertKeyNotFound(store.get("k"), "k")
      })
    ))
})

describe("the size limits", () => {
  it.effect("a key of exactly maxKeyLength code units is accepted", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const key = "k".repeat(KeyValueStore.maxKeyLength - 2) + "𝄞" // a surrogate pair: 2 code units
        assert.strictEqual(key.length, KeyValueStore.maxKeyLength)
        yield* store.put(key, "v")
        assert.strictEqual(yield* store.get(key), "v")
      })
    ))

  it.effect("a string value of exactly maxValueLength code units is accepted", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const value = "x".repeat(KeyValueStore.maxValueLength)
        yield* store.put("k", value)
        assert.strictEqual(yield* store.get("k"), value)
        yield* store.delete("k")
      })
    ))

  it.effect("bytes of exactly maxValueLength are accepted", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const value = new Uint8Array(KeyValueStore.maxValueLength)
        value[value.length - 1] = 7
        yield* store.put("k", value)
        const got = (yield* store.get("k")) as Uint8Array
        assert.strictEqual(got.byteLength, KeyValueStore.maxValueLength)
        assert.strictEqual(got[got.length - 1], 7)
        yield* store.delete("k")
      })
    ))
})

// =============================================================================
// The rest of the service
// =============================================================================

describe("has, size, keys, entries, timeToLive, clear, stats, writeStatus, compact", () => {
  it.effect("has is true for a live key and false for one never put or deleted", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "v")
        yield* store.put("gone", "v")
        yield* store.delete("gone")
        assert.isTrue(yield* store.has("k"))
        assert.isFalse(yield* store.has("gone"))
        assert.isFalse(yield* store.has("never put"))
      })
    ))

  it.effect("size counts the live keys: an overwrite adds none, a delete removes one", () =>
    withStore((store) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* store.size, 0)
        yield* store.put("a", "1")
        yield* store.put("b", "2", { duration: 10 })
        assert.strictEqual(yield* store.size, 2)
        yield* store.put("a", "1 again")
        assert.strictEqual(yield* store.size, 2)
        yield* store.delete("a")
        assert.strictEqual(yield* store.size, 1)
      })
    ))

  it.effect("keys lists the live keys in insertion order, as a snapshot", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("c", "1")
        yield* store.put("a", "2", { duration: 10 })
        yield* store.put("b", "3")
        yield* store.put("c", "overwritten, keeps its place")
        yield* store.put("d", "4")
        yield* store.delete("d")
        const keys = yield* store.keys
        assert.deepStrictEqual(keys, ["c", "a", "b"])
        yield* store.put("e", "5")
        assert.deepStrictEqual(keys, ["c", "a", "b"], "a later put does not change an earlier snapshot")
        assert.deepStrictEqual(yield* store.keys, ["c", "a", "b", "e"])
      })
    ))

  it.effect("entries streams every live key with its value", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("s", "string")
        yield* store.put("b", new Uint8Array([1, 2]), { duration: 10 })
        yield* store.put("gone", "v")
        yield* store.delete("gone")
        const entries = yield* Stream.runCollect(store.entries)
        assert.deepStrictEqual(entries, [["s", "string"], ["b", new Uint8Array([1, 2])]])
      })
    ))

  it.effect("entries streams a store larger than one chunk in full", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const count = 10_000
        for (let i = 0; i < count; i++) yield* store.put(`k${i}`, `v${i}`)
        const entries = yield* Stream.runCollect(store.entries)
        assert.strictEqual(entries.length, count)
        entries.forEach(([key, value], i) => {
          assert.strictEqual(key, `k${i}`)
          assert.strictEqual(value, `v${i}`)
        })
      })
    ))

  it.effect("timeToLive is none for a key without TTL and the time left for one with a TTL", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("forever", "v")
        yield* store.put("ttl", "v", { duration: 100 })
        assert.deepStrictEqual(yield* store.timeToLive("forever"), Option.none())
        yield* TestClock.adjust(30)
        const left = yield* store.timeToLive("ttl")
        assert.isTrue(Option.isSome(left))
        assert.strictEqual(Duration.toMillis(Option.getOrThrow(left)), 70)
        yield* TestClock.adjust(69)
        assert.strictEqual(Duration.toMillis(Option.getOrThrow(yield* store.timeToLive("ttl"))), 1)
      })
    ))

  it.effect("timeToLive fails with KeyNotFound for a key never put, deleted or expired", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* assertKeyNotFound(store.timeToLive("never put"), "never put")
        yield* store.put("deleted", "v")
        yield* store.delete("deleted")
        yield* assertKeyNotFound(store.timeToLive("deleted"), "deleted")
        yield* store.put("expired", "v", { duration: 10 })
        yield* TestClock.adjust(10)
        yield* assertKeyNotFound(store.timeToLive("expired"), "expired")
      })
    ))

  it.effect("clear removes every key, with or without TTL, and the store goes on working", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("a", "1")
        yield* store.put("b", "2", { duration: 10 })
        yield* store.clear
        assert.strictEqual(yield* store.size, 0)
        assert.deepStrictEqual(yield* store.keys, [])
        yield* assertKeyNotFound(store.get("a"), "a")
        yield* assertKeyNotFound(store.get("b"), "b")
        assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 0 })
        yield* store.put("b", "again", { duration: 20 })
        yield* TestClock.adjust(10)
        assert.strictEqual(yield* store.get("b"), "again", "the old deadline of b died with clear")
        yield* TestClock.adjust(10)
        yield* assertKeyNotFound(store.get("b"), "b")
      })
    ))

  it.effect("stats counts stored entries, those with a deadline, and those reclaimed", () =>
    withStore((store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 0 })
        yield* store.put("a", "1")
        yield* store.put("b", "2", { duration: 10 })
        yield* store.put("c", "3", { duration: 20 })
        assert.deepStrictEqual(yield* store.stats, { storedEntries: 3, entriesWithDeadline: 2, reclaimed: 0 })
        yield* TestClock.adjust(10)
        assert.deepStrictEqual(yield* store.stats, { storedEntries: 2, entriesWithDeadline: 1, reclaimed: 1 })
        yield* store.delete("c")
        assert.deepStrictEqual(yield* store.stats, { storedEntries: 1, entriesWithDeadline: 0, reclaimed: 1 })
      })
    ))

  it.effect("writeStatus of an in-memory store is Writable", () =>
    withStore((store) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
        yield* store.put("k", "v")
        yield* store.clear
        assert.deepStrictEqual(yield* store.writeStatus, { _tag: "Writable" })
      })
    ))

  it.effect("compact of an in-memory store changes nothing a client can see", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("a", "1")
        yield* store.put("b", new Uint8Array([2]), { duration: 10 })
        yield* store.put("c", "3")
        yield* store.delete("c")
        const before = yield* observe(store)
        yield* store.compact
        assert.deepStrictEqual(yield* observe(store), before)
      })
    ))
})

// =============================================================================
// The README's example
// =============================================================================

describe("the README's usage example", () => {
  it.effect("put, get, delete, get fails; put for 5 ms, get, 5 ms later get fails with KeyNotFound", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      assert.strictEqual(yield* store.put("foo", "bar"), "bar")
      assert.strictEqual(yield* store.get("foo"), "bar")
      yield* store.delete("foo")
      yield* assertKeyNotFound(store.get("foo"), "foo")

      assert.strictEqual(yield* store.put("foo", "bar", { duration: 5 }), "bar")
      assert.strictEqual(yield* store.get("foo"), "bar")
      yield* TestClock.adjust("5 millis")
      yield* assertKeyNotFound(store.get("foo"), "foo")
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))
})

// =============================================================================
// The index past one Map
// =============================================================================

describe("the index spills past one table's capacity (makeMemory with shardCapacity 4)", () => {
  /** Asserts that the store holds exactly `expected`, by every read it offers. */
  const assertHolds = (store: Store, expected: ReadonlyMap<string, KeyValueStore.Value>) =>
    Effect.gen(function*() {
      const keys = yield* store.keys
      assert.deepStrictEqual([...keys].sort(), [...expected.keys()].sort())
      assert.strictEqual(new Set(keys).size, keys.length, "no key listed twice")
      assert.strictEqual(yield* store.size, expected.size)
      const entries = yield* Stream.runCollect(store.entries)
      assert.deepStrictEqual(new Map(entries), new Map(expected))
      for (const [key, value] of expected) assert.strictEqual(yield* store.get(key), value)
    })

  it.effect("get, put, overwrite, delete, keys and size agree across tables", () =>
    Effect.gen(function*() {
      const store = yield* makeMemory({ shardCapacity: 4 })
      const expected = new Map<string, string>()
      const put = (key: string, value: string) =>
        Effect.tap(store.put(key, value), () => Effect.sync(() => expected.set(key, value)))
      const del = (key: string) => Effect.tap(store.delete(key), () => Effect.sync(() => expected.delete(key)))

      // Three tables: k0..k3, k4..k7, k8..k9.
      for (let i = 0; i < 10; i++) yield* put(`k${i}`, `v${i}`)
      yield* assertHolds(store, expected)
      assert.strictEqual((yield* store.stats).storedEntries, 10)

      // A free place in the first table must not make an overwrite in the last one a second entry.
      yield* del("k1")
      yield* put("k9", "v9 overwritten")
      yield* put("k5", "v5 overwritten")
      yield* assertHolds(store, expected)

      // A new key fills the free place; deletes reach every table.
      yield* put("k10", "v10")
      yield* del("k6")
      yield* del("k8")
      yield* assertKeyNotFound(store.get("k6"), "k6")
      yield* assertKeyNotFound(store.delete("k8"), "k8")
      yield* assertHolds(store, expected)
      assert.strictEqual((yield* store.stats).storedEntries, expected.size)
    }))

  it.effect("TTLs expire, are overwritten, cleared and reclaimed across tables", () =>
    Effect.gen(function*() {
      const store = yield* makeMemory({ shardCapacity: 4 })
      for (let i = 0; i < 10; i++) yield* store.put(`k${i}`, `v${i}`)
      yield* store.put("k9", "v9 for 10 ms", { duration: 10 }) // last table: no TTL → TTL
      yield* store.put("k5", "v5 for 20 ms", { duration: 20 }) // middle table
      yield* store.put("k4", "v4 for 5 ms", { duration: 5 })
      yield* store.put("k4", "v4 forever") // TTL cleared in the middle table
      yield* store.put("k10", "v10 for 30 ms", { duration: 30 }) // a fourth table
      yield* store.put("k0", "v0 for 10 ms", { duration: 10 }) // first table
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 11, entriesWithDeadline: 4, reclaimed: 0 })

      yield* TestClock.adjust(10)
      yield* assertKeyNotFound(store.get("k9"), "k9")
      yield* assertKeyNotFound(store.get("k0"), "k0")
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 9, entriesWithDeadline: 2, reclaimed: 2 })
      yield* TestClock.adjust(20)
      const expected = new Map([
        ["k1", "v1"],
        ["k2", "v2"],
        ["k3", "v3"],
        ["k4", "v4 forever"],
        ["k6", "v6"],
        ["k7", "v7"],
        ["k8", "v8"]
      ])
      yield* assertHolds(store, expected)
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 7, entriesWithDeadline: 0, reclaimed: 4 })

      // Reclaimed keys can come back, into whichever table has room.
      yield* store.put("k9", "back", { duration: 10 })
      yield* store.put("k0", "back")
      expected.set("k9", "back").set("k0", "back")
      yield* assertHolds(store, expected)
      yield* TestClock.adjust(10)
      expected.delete("k9")
      yield* assertHolds(store, expected)
      assert.strictEqual((yield* store.stats).storedEntries, expected.size)
    }))
})
