/**
 * Effect's `BackingPersistence` and `Persistence` (`effect/persistence/Persistence`)
 * on kvlog, on an in-memory store and on a log: the backing store's contract
 * (get, getMany, set, setMany, remove, clear; TTLs on the TestClock: present
 * before the deadline, absent at it), per-store namespacing, each entry's TTL
 * handed to kvlog so that its reaper reclaims the entry unread where Effect's
 * `layerBackingKvs` keeps it until a read, and `PersistedCache` on kvlog's log
 * across a close, a reopen and a compaction. Ends with the documented example,
 * run as its own process.
 *
 * Checked against effect 4.1.0 (node_modules/effect/src/persistence/Persistence.ts,
 * PersistedCache.ts) and Effect's suite for PersistedCache in the
 * Effect-TS/effect repository: packages/effect/test/persistence/PersistedCacheTest.ts
 * at commit 6521bdef986e745ac1d8f5bffbb353248bab17d6. The KeyValueStore suite
 * is mapped in test/persistence-kvs.test.ts; docs/persistence.md has the table.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as EffectKeyValueStore from "effect/persistence/KeyValueStore"
import * as Persistable from "effect/persistence/Persistable"
import * as PersistedCache from "effect/persistence/PersistedCache"
import * as EffectPersistence from "effect/persistence/Persistence"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { KeyValueStore } from "../src/index.ts"
import * as Persistence from "../src/Persistence.ts"
import { makeFaultyFileOps, nodeForTypeScript, tempDirectory } from "./support/logHarness.ts"
import {
  type Backend,
  backends,
  failureOf,
  freshPersistenceLogPath,
  openPersistenceLog,
  withKvlogStore
} from "./support/persistenceStores.ts"

type BackingStore = EffectPersistence.BackingPersistenceStore

/** The `PersistenceError` `effect` fails with; fails the test if it succeeds or fails otherwise. */
const persistenceError = <A, E, R>(effect: Effect.Effect<A, E, R>) => failureOf(effect, EffectPersistence.PersistenceError)

/**
 * Runs `test` with the backing stores `layerBacking` makes on a fresh kvlog
 * store of kind `backend`, and that kvlog store beside them.
 */
const withBacking = <A, E>(
  backend: Backend,
  test: (
    makeStore: (storeId: string) => Effect.Effect<BackingStore, never, Scope.Scope>,
    store: KeyValueStore.KeyValueStoreService
  ) => Effect.Effect<A, E, Scope.Scope>
) =>
  withKvlogStore(backend, ({ store }) =>
    Effect.gen(function*() {
      const backing = yield* EffectPersistence.BackingPersistence
      return yield* test(backing.make, store)
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.provide(Persistence.layerBacking, Layer.succeed(KeyValueStore.KeyValueStore, store)))
    ))

const ttl = (millis: number) => Duration.millis(millis)

describe.each(backends)("BackingPersistence on kvlog (%s)", (backend) => {
  describe("get, getMany, set, setMany, remove, clear", () => {
    it.effect("get of a key never set succeeds with undefined", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          assert.strictEqual(yield* users.get("nobody"), undefined)
        })
      ))

    it.effect("set then get gives back an equal object, read from the JSON text kvlog holds", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          const value = { _tag: "Success", value: { id: 1, name: "Ada", tags: ["a", null, 2.5], nested: { ok: true } } }
          yield* users.set("1", value, undefined)
          assert.deepStrictEqual(yield* users.get("1"), value)
          assert.strictEqual(yield* store.get("users:1"), JSON.stringify(value))
        })
      ))

    it.effect("set over an existing key replaces its value", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("1", { v: 1 }, undefined)
          yield* users.set("1", { v: 2 }, undefined)
          assert.deepStrictEqual(yield* users.get("1"), { v: 2 })
        })
      ))

    it.effect("getMany gives one result per key, in the keys' order, undefined for the absent ones", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("a", { v: "a" }, undefined)
          yield* users.set("c", { v: "c" }, undefined)
          assert.deepStrictEqual(yield* users.getMany(["c", "b", "a", "c"]), [{ v: "c" }, undefined, { v: "a" }, { v: "c" }])
        })
      ))

    it.effect("setMany writes every entry, and getMany reads them back in order", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          const entries = Array.from({ length: 300 }, (_, i) => [`k${i}`, { i }, undefined] as const)
          yield* users.setMany([entries[0], ...entries.slice(1)])
          const keys = entries.map(([key]) => key)
          const read: ReadonlyArray<object | undefined> = yield* users.getMany([keys[0], ...keys.slice(1)])
          assert.deepStrictEqual(read, entries.map(([, value]) => value))
          assert.strictEqual(yield* store.size, 300)
        })
      ))

    it.effect("setMany of a key given twice keeps its last entry, as a sequence of sets would", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.setMany([["k", { v: 1 }, undefined], ["other", { v: 0 }, undefined], ["k", { v: 2 }, undefined]])
          assert.deepStrictEqual(yield* users.get("k"), { v: 2 })
          yield* users.setMany([["k", { v: 3 }, undefined], ["k", { v: 4 }, Duration.zero]])
          assert.strictEqual(yield* users.get("k"), undefined, "the last entry, already expired, wins")
        })
      ))

    it.effect("remove deletes the key; remove of an absent key succeeds", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("1", { v: 1 }, undefined)
          yield* users.remove("1")
          assert.strictEqual(yield* users.get("1"), undefined)
          yield* users.remove("1")
          yield* users.remove("never set")
          assert.strictEqual(yield* store.size, 0)
        })
      ))

    it.effect("clear removes this store's entries and no other store's", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          const orders = yield* makeStore("orders")
          // More entries than maxWritesInFlight, half of them with a TTL.
          yield* users.setMany([
            ["0", { i: 0 }, ttl(60_000)],
            ...Array.from({ length: 299 }, (_, i) => [`${i + 1}`, { i: i + 1 }, i % 2 === 0 ? undefined : ttl(60_000)] as const)
          ])
          yield* orders.set("1", { order: 1 }, undefined)
          yield* store.put("users", "a kvlog key that is not in the store's namespace")
          yield* users.clear
          assert.strictEqual(yield* users.get("0"), undefined)
          assert.strictEqual(yield* users.get("1"), undefined)
          assert.deepStrictEqual(yield* orders.get("1"), { order: 1 })
          assert.deepStrictEqual([...(yield* store.keys)].sort(), ["orders:1", "users"])
        })
      ))

    it.effect("two stores never share an entry, even when store id and key split the same text differently", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const pairs = [["a:b", "c"], ["a", "b:c"], ["a%3Ab", "c"], ["a%b", "c"]] as const
          for (const [storeId, key] of pairs) yield* (yield* makeStore(storeId)).set(key, { storeId, key }, undefined)
          for (const [storeId, key] of pairs) {
            assert.deepStrictEqual(yield* (yield* makeStore(storeId)).get(key), { storeId, key })
          }
          assert.strictEqual(yield* store.size, pairs.length)
          yield* (yield* makeStore("a")).clear
          assert.strictEqual(yield* (yield* makeStore("a")).get("b:c"), undefined)
          assert.strictEqual(yield* store.size, pairs.length - 1, "clear of store a removed only its own entry")
        })
      ))

    it.effect("two backing stores with the same id see the same entries", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          yield* (yield* makeStore("users")).set("1", { v: 1 }, undefined)
          assert.deepStrictEqual(yield* (yield* makeStore("users")).get("1"), { v: 1 })
        })
      ))
  })

  describe("TTL", () => {
    it.effect("an entry set with a TTL is present one millisecond before its deadline and absent at it", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("1", { v: 1 }, ttl(1_000))
          yield* users.setMany([["2", { v: 2 }, ttl(1_000)]])
          yield* TestClock.adjust(999)
          assert.deepStrictEqual(yield* users.getMany(["1", "2"]), [{ v: 1 }, { v: 2 }])
          yield* TestClock.adjust(1)
          assert.deepStrictEqual(yield* users.getMany(["1", "2"]), [undefined, undefined])
          assert.strictEqual(yield* users.get("1"), undefined)
        })
      ))

    it.effect("the TTL is kvlog's own: the stored key's timeToLive is the entry's TTL", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("1", { v: 1 }, Duration.seconds(90))
          const left = Option.getOrThrow(yield* store.timeToLive("users:1"))
          assert.strictEqual(Duration.toMillis(left), 90_000)
          assert.strictEqual(yield* store.get("users:1"), JSON.stringify({ v: 1 }), "the value is stored without its expiry")
        })
      ))

    it.effect("an entry without a TTL, or with an infinite one, is kept until removed", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("none", { v: 1 }, undefined)
          yield* users.set("infinite", { v: 2 }, Duration.infinity)
          yield* TestClock.adjust(Duration.days(3650))
          assert.deepStrictEqual(yield* users.getMany(["none", "infinite"]), [{ v: 1 }, { v: 2 }])
          assert.strictEqual((yield* store.stats).entriesWithDeadline, 0)
        })
      ))

    it.effect("a TTL of zero or below stores nothing and removes the value the key held", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          for (const expired of [Duration.zero, Duration.millis(-5), Duration.negativeInfinity]) {
            yield* users.set("k", { v: "old" }, undefined)
            yield* users.set("k", { v: "new" }, expired)
            assert.strictEqual(yield* users.get("k"), undefined, Duration.format(expired))
            yield* users.setMany([["fresh", { v: 1 }, expired]])
            assert.strictEqual(yield* users.get("fresh"), undefined)
            assert.strictEqual((yield* store.stats).storedEntries, 0, "nothing is kept in kvlog's memory")
          }
        })
      ))

    it.effect("an expired entry is reclaimed by kvlog's reaper at its deadline, without being read", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("short", { v: 1 }, ttl(50))
          yield* users.set("kept", { v: 2 }, undefined)
          assert.strictEqual((yield* store.stats).storedEntries, 2)
          yield* TestClock.adjust(49)
          assert.strictEqual((yield* store.stats).storedEntries, 2)
          yield* TestClock.adjust(1)
          const stats = yield* store.stats
          assert.strictEqual(stats.storedEntries, 1, "the expired entry is gone from memory")
          assert.strictEqual(stats.reclaimed, 1, "the reaper reclaimed it")
          assert.deepStrictEqual(yield* store.keys, ["users:kept"])
        })
      ))

    it.effect("unlike kvlog's: with Effect's layerBackingKvs over the same kvlog store, the expired entry stays stored until read", () =>
      withKvlogStore(backend, ({ store }) =>
        Effect.gen(function*() {
          const backing = yield* EffectPersistence.BackingPersistence
          const users = yield* backing.make("users")
          yield* users.set("short", { v: 1 }, ttl(50))
          yield* TestClock.adjust(10_000)
          const stats = yield* store.stats
          assert.strictEqual(stats.storedEntries, 1, "the expired entry is still in kvlog's memory")
          assert.strictEqual(stats.reclaimed, 0)
          assert.strictEqual(yield* store.size, 1, "kvlog sees a live key: the expiry is inside the value")
          // Only a read removes it.
          assert.strictEqual(yield* users.get("short"), undefined)
          assert.strictEqual((yield* store.stats).storedEntries, 0)
        }).pipe(
          Effect.scoped,
          Effect.provide(
            EffectPersistence.layerBackingKvs.pipe(
              Layer.provide(Persistence.layerKeyValueStore),
              Layer.provide(Layer.succeed(KeyValueStore.KeyValueStore, store))
            )
          )
        )
      ))
  })

  describe("bad input and foreign values", () => {
    it.effect("a value with no JSON form fails set with PersistenceError; the key keeps its old value", () =>
      withBacking(backend, (makeStore) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* users.set("k", { v: "old" }, undefined)
          const cyclic: Record<string, unknown> = {}
          cyclic.self = cyclic
          const bigint = yield* persistenceError(users.set("k", { n: 1n }, undefined))
          assert.include(bigint.message, `Failed to encode the value of key "k" of store "users" as JSON`)
          assert.include(bigint.message, "BigInt")
          yield* persistenceError(users.set("k", cyclic, undefined))
          assert.deepStrictEqual(yield* users.get("k"), { v: "old" })
        })
      ))

    it.effect("setMany with one bad entry fails with PersistenceError and writes none of them", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          const error = yield* persistenceError(
            users.setMany([["a", { v: 1 }, undefined], ["b", { n: 2n }, undefined], ["c", { v: 3 }, ttl(10)]])
          )
          assert.include(error.message, `key "b"`)
          assert.strictEqual(yield* store.size, 0)
        })
      ))

    it.effect("a key over kvlog's limit once namespaced fails with PersistenceError naming the limit; nothing stored", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          const key = "k".repeat(KeyValueStore.maxKeyLength - "users:".length + 1)
          const error = yield* persistenceError(users.set(key, { v: 1 }, undefined))
          assert.include(error.message, `over the limit of ${KeyValueStore.maxKeyLength}`)
          assert.instanceOf(error.cause, KeyValueStore.InvalidInput)
          assert.isBelow(error.message.length, 500, "the message quotes a long key cut short")
          yield* persistenceError(users.setMany([["ok", { v: 1 }, undefined], [key, { v: 1 }, undefined]]))
          yield* persistenceError(users.get(key))
          yield* persistenceError(users.remove(key))
          assert.strictEqual(yield* store.size, 0)
          yield* users.set(key.slice(1), { v: 1 }, undefined)
          assert.deepStrictEqual(yield* users.get(key.slice(1)), { v: 1 }, "a key at the limit is stored")
        })
      ))

    it.effect("a kvlog key of the store that holds bytes or text that is not a JSON object fails get with PersistenceError", () =>
      withBacking(backend, (makeStore, store) =>
        Effect.gen(function*() {
          const users = yield* makeStore("users")
          yield* store.put("users:bytes", new Uint8Array([123, 125]))
          yield* store.put("users:text", "not json")
          yield* store.put("users:number", "42")
          assert.include((yield* persistenceError(users.get("bytes"))).message, "it holds bytes, not JSON")
          assert.include((yield* persistenceError(users.get("text"))).message, "Failed to parse the value of key")
          assert.include((yield* persistenceError(users.get("number"))).message, "JSON that is not an object")
          yield* persistenceError(users.getMany(["text"]))
        })
      ))
  })
})

// =============================================================================
// Persistence and PersistedCache
// =============================================================================

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String }) {}

class GetUser extends Persistable.Class<{ payload: { id: number } }>()("GetUser", {
  primaryKey: (request) => `GetUser:${request.id}`,
  success: User,
  error: Schema.String
}) {}

class LookupService extends Context.Service<LookupService, { readonly value: string }>()("LookupService") {}

/** A lookup that counts its calls. */
const countingLookup = () => {
  const counter = { calls: 0 }
  const lookup = (request: GetUser) =>
    Effect.sync(() => {
      counter.calls++
      return new User({ id: request.id, name: "John" })
    })
  return { counter, lookup }
}

/** `Persistence` on a fresh kvlog store of kind `backend`, through this module's layers. */
const persistenceLayer = (backend: Backend) =>
  backend === "memory"
    ? Persistence.layerMemory
    : Layer.unwrap(Effect.map(freshPersistenceLogPath, (path) => Persistence.layerLog({ path })))

describe.each(backends)("PersistedCache on kvlog (%s)", (backend) => {
  it.effect("a lookup's result is stored, read back without a new lookup, also by a new cache; setMany and getMany keep successes and failures", () =>
    Effect.gen(function*() {
      const persistence = yield* EffectPersistence.Persistence
      const store = yield* persistence.make({ storeId: "users" })
      const { counter, lookup } = countingLookup()
      const options = { storeId: "users", timeToLive: () => 5_000 }

      const cache = yield* PersistedCache.make(lookup, options)
      assert.deepStrictEqual(yield* cache.get(new GetUser({ id: 1 })), new User({ id: 1, name: "John" }))
      assert.deepStrictEqual(yield* store.get(new GetUser({ id: 1 })), Exit.succeed(new User({ id: 1, name: "John" })))
      assert.strictEqual(counter.calls, 1)
      assert.deepStrictEqual(yield* cache.get(new GetUser({ id: 1 })), new User({ id: 1, name: "John" }))
      assert.strictEqual(counter.calls, 1)

      const second = yield* PersistedCache.make(lookup, options)
      assert.deepStrictEqual(yield* second.get(new GetUser({ id: 1 })), new User({ id: 1, name: "John" }))
      assert.strictEqual(counter.calls, 1, "a new cache finds the result in the store")

      yield* store.setMany([
        [new GetUser({ id: 1 }), Exit.fail("Not found")],
        [new GetUser({ id: 2 }), Exit.succeed(new User({ id: 2, name: "Jane" }))]
      ])
      assert.deepStrictEqual(yield* store.getMany([new GetUser({ id: 1 }), new GetUser({ id: 2 })]), [
        Exit.fail("Not found"),
        Exit.succeed(new User({ id: 2, name: "Jane" }))
      ])
    }).pipe(Effect.scoped, Effect.provide(persistenceLayer(backend))))

  it.effect("PersistedCache with requireServicesAt \"lookup\" takes the lookup's services at get time, and a stored result stays", () =>
    Effect.gen(function*() {
      const cache = yield* PersistedCache.make(
        (request: GetUser) => Effect.map(LookupService, (service) => new User({ id: request.id, name: service.value })),
        { storeId: "require-services-at", timeToLive: () => 5_000, requireServicesAt: "lookup" }
      )
      const getWith = (id: number, value: string) =>
        cache.get(new GetUser({ id })).pipe(Effect.provideService(LookupService, LookupService.of({ value })))
      assert.deepStrictEqual(yield* getWith(1, "first"), new User({ id: 1, name: "first" }))
      assert.deepStrictEqual(yield* getWith(2, "second"), new User({ id: 2, name: "second" }))
      assert.deepStrictEqual(yield* getWith(1, "third"), new User({ id: 1, name: "first" }))
    }).pipe(Effect.scoped, Effect.provide(persistenceLayer(backend))))

  it.effect("a result whose timeToLive is zero is not stored: a new cache looks it up again", () =>
    Effect.gen(function*() {
      const { counter, lookup } = countingLookup()
      const options = { storeId: "users", timeToLive: () => 0 }
      yield* (yield* PersistedCache.make(lookup, options)).get(new GetUser({ id: 1 }))
      yield* (yield* PersistedCache.make(lookup, options)).get(new GetUser({ id: 1 }))
      assert.strictEqual(counter.calls, 2)
    }).pipe(Effect.scoped, Effect.provide(persistenceLayer(backend))))
})

describe("PersistedCache on kvlog's log", () => {
  it.effect("stored results survive a close and reopen of the log: the second process-level cache never calls the lookup", () =>
    Effect.scoped(Effect.gen(function*() {
      const logPath = yield* freshPersistenceLogPath
      const { counter, lookup } = countingLookup()
      const lookUpBoth = Effect.gen(function*() {
        const cache = yield* PersistedCache.make(lookup, { storeId: "users", timeToLive: () => "1 hour" })
        return [yield* cache.get(new GetUser({ id: 1 })), yield* cache.get(new GetUser({ id: 2 }))]
      }).pipe(Effect.scoped, Effect.provide(Persistence.layerLog({ path: logPath })))

      const first = yield* lookUpBoth
      assert.strictEqual(counter.calls, 2)
      const afterReopen = yield* lookUpBoth
      assert.strictEqual(counter.calls, 2, "the reopened log answered both lookups")
      assert.deepStrictEqual(afterReopen, first)
    })))

  it.effect("an expired result leaves kvlog's memory at its deadline and, after compact, the log file", () =>
    Effect.scoped(Effect.gen(function*() {
      const logPath = yield* freshPersistenceLogPath
      const { counter, lookup } = countingLookup()
      const timeToLive = (_exit: unknown, request: GetUser) => request.id === 1 ? Duration.seconds(1) : Duration.hours(1)

      const opened = yield* openPersistenceLog(logPath)
      yield* Effect.gen(function*() {
        const cache = yield* PersistedCache.make(lookup, { storeId: "users", timeToLive })
        yield* cache.get(new GetUser({ id: 1 }))
        yield* cache.get(new GetUser({ id: 2 }))
        assert.strictEqual((yield* opened.store.stats).storedEntries, 2)
        yield* TestClock.adjust(Duration.seconds(1))
        const stats = yield* opened.store.stats
        assert.strictEqual(stats.storedEntries, 1, "the expired result left memory without being read")
        assert.strictEqual(stats.reclaimed, 1)
        assert.strictEqual(stats.log!.records, 2, "until compaction the log still holds its record")
        yield* opened.store.compact
      }).pipe(Effect.scoped, Effect.provide(Persistence.layer), Effect.provideService(KeyValueStore.KeyValueStore, opened.store))
      yield* opened.close

      const file = fs.readFileSync(logPath)
      assert.strictEqual(file.indexOf("GetUser:1"), -1, "the expired result's key is gone from the file")
      assert.notStrictEqual(file.indexOf("GetUser:2"), -1, "the live result's key is in the file")
      const reopened = yield* openPersistenceLog(logPath)
      assert.strictEqual((yield* reopened.store.stats).log!.records, 1)
      assert.deepStrictEqual(yield* reopened.store.keys, ["users:GetUser:2"])
      yield* reopened.close

      const callsBefore = counter.calls
      yield* Effect.gen(function*() {
        const cache = yield* PersistedCache.make(lookup, { storeId: "users", timeToLive })
        yield* cache.get(new GetUser({ id: 1 }))
        yield* cache.get(new GetUser({ id: 2 }))
      }).pipe(Effect.scoped, Effect.provide(Persistence.layerLog({ path: logPath })))
      assert.strictEqual(counter.calls, callsBefore + 1, "only the expired result is looked up again")
    })))
})

describe("BackingPersistence on kvlog's log", () => {
  it.effect("setMany and clear of 300 entries share their syncs: at most a few dozen fdatasyncs, not 300", () =>
    Effect.scoped(Effect.gen(function*() {
      const faults = makeFaultyFileOps()
      const store = yield* KeyValueStore.makeLog({ path: yield* freshPersistenceLogPath, fileOps: faults.ops })
      const backing = Persistence.makeBackingPersistence(store)
      const users = yield* backing.make("users")
      const entries = Array.from({ length: 300 }, (_, i) => [`${i}`, { i }, undefined] as const)
      const syncsBefore = faults.calls.datasync
      yield* users.setMany([entries[0], ...entries.slice(1)])
      const setManySyncs = faults.calls.datasync - syncsBefore
      assert.strictEqual(yield* store.size, 300)
      assert.isAtMost(setManySyncs, 30, `setMany made ${setManySyncs} syncs`)
      yield* users.clear
      const clearSyncs = faults.calls.datasync - syncsBefore - setManySyncs
      assert.strictEqual(yield* store.size, 0)
      assert.isAtMost(clearSyncs, 30, `clear made ${clearSyncs} syncs`)
    })))
})

describe("one kvlog store under several services", () => {
  it.effect("layerKeyValueStore and layer on one kvlog log share its keys", () =>
    Effect.scoped(Effect.gen(function*() {
      const logPath = yield* freshPersistenceLogPath
      const services = Layer.mergeAll(Persistence.layerKeyValueStore, Persistence.layer).pipe(
        Layer.provideMerge(KeyValueStore.layerLog({ path: logPath }))
      )
      yield* Effect.gen(function*() {
        const kv = yield* EffectKeyValueStore.KeyValueStore
        const persistence = yield* EffectPersistence.Persistence
        const store = yield* persistence.make({ storeId: "users" })
        yield* store.set(new GetUser({ id: 1 }), Exit.succeed(new User({ id: 1, name: "Ada" })))
        yield* kv.set("plain", "value")
        assert.deepStrictEqual([...(yield* kv.keys)].sort(), ["plain", "users:GetUser:1"])
        yield* store.clear
        assert.deepStrictEqual(yield* kv.keys, ["plain"], "the Persistence store's clear left the other key")
      }).pipe(Effect.scoped, Effect.provide(services))
    })))
})

// =============================================================================
// The documented example
// =============================================================================

const projectRoot = path.resolve(import.meta.dirname, "..")
const execFile = promisify(childProcess.execFile)

/** The code block that follows `heading` in docs/persistence.md. */
const exampleAfter = (heading: string): string => {
  const doc = fs.readFileSync(path.join(projectRoot, "docs", "persistence.md"), "utf8")
  const start = doc.indexOf(heading)
  assert.isAtLeast(start, 0, `docs/persistence.md has no "${heading}"`)
  const block = /```ts\n([\s\S]*?)```/.exec(doc.slice(start))
  assert.isNotNull(block)
  return block![1]
}

describe("docs/persistence.md", () => {
  it.effect("the PersistedCache example runs on the log and prints that the lookup ran once", () =>
    Effect.scoped(Effect.gen(function*() {
      const example = exampleAfter("## Example: a PersistedCache on kvlog's log")
      const importLine = `import { Persistence } from "kvlog"`
      assert.include(example, importLine)
      // The example imports the package; here it runs on this checkout's source, its
      // other imports resolved through the project's node_modules.
      const directory = yield* tempDirectory("persistence-example")
      fs.symlinkSync(path.join(projectRoot, "node_modules"), path.join(directory, "node_modules"), "dir")
      const file = path.join(directory, "example.ts")
      const source = path.join(projectRoot, "src", "Persistence.ts")
      fs.writeFileSync(file, example.replace(importLine, `import * as Persistence from ${JSON.stringify(source)}`))
      const { stdout } = yield* Effect.promise(() => execFile(nodeForTypeScript(), [file], { timeout: 60_000 }))
      assert.strictEqual(stdout, "Ada Ada, lookups: 1\n")
    })))
})
