/**
 * The public contract of `KeyValueStore` on `layerMemory`, clause by clause,
 * through the contract suite of `kvlog/testing` (the operations and the
 * refusals of bad input; its TTL clauses run in `ttl.test.ts`, its
 * linearizability in `linearizability.test.ts`); then what only kvlog's
 * in-memory store promises: keys and entries in insertion order, the
 * README's usage example, and the index's spill past one table.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../src/index.ts"
import { makeMemory } from "../src/internal/store/makeStore.ts"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

type Store = KeyValueStore.KeyValueStoreService

contractSuite("KeyValueStore.layerMemory", () => KeyValueStore.layerMemory, {
  sections: ["operations", "invalidInput"]
})

/** Runs `test` against a fresh `layerMemory` store, built on the test's `TestClock`. */
const withStore = <A, E>(test: (store: Store) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    return yield* test(yield* KeyValueStore.KeyValueStore)
  }).pipe(Effect.provide(KeyValueStore.layerMemory))

// =============================================================================
// Insertion order
// =============================================================================

describe("keys and entries list the live keys in insertion order", () => {
  it.effect("keys lists the live keys in insertion order: an overwrite keeps its place, a delete leaves none", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("c", "1")
        yield* store.put("a", "2", { duration: 10 })
        yield* store.put("b", "3")
        yield* store.put("c", "overwritten, keeps its place")
        yield* store.put("d", "4")
        yield* store.delete("d")
        assert.deepStrictEqual(yield* store.keys, ["c", "a", "b"])
        yield* store.put("e", "5")
        assert.deepStrictEqual(yield* store.keys, ["c", "a", "b", "e"])
      })
    ))

  it.effect("entries streams the live keys in insertion order", () =>
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

  it.effect("entries keeps insertion order across chunks", () =>
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
