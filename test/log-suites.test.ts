/**
 * The core issue's suites, run against the log-backed store: concurrent
 * histories on `layerLog` are linearizable (under "always", where a write is
 * visible only once durable, and under "never", where it is applied at once),
 * and the TTL rules hold exactly as they do in memory.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Duration from "effect/Duration"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../src/index.ts"
import { linearizabilitySuite } from "./support/concurrentHistories.ts"
import { freshLogPath } from "./support/logHarness.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

/** A log-backed store on a log of its own in a fresh temporary directory, removed with the layer. */
const freshLogLayer = (fsync: "always" | "interval" | "never"): Layer.Layer<KeyValueStore.KeyValueStore, KeyValueStore.LogOpenError> =>
  Layer.unwrap(Effect.map(freshLogPath(`suite-${fsync}`), (path) => KeyValueStore.layerLog({ path, fsync })))

linearizabilitySuite("KeyValueStore.layerLog({ fsync: \"always\" }) is linearizable", freshLogLayer("always"))
linearizabilitySuite("KeyValueStore.layerLog({ fsync: \"never\" }) is linearizable", freshLogLayer("never"))

/** The time every test puts its keys at, so that `t` is not the epoch. */
const t = 1_000

describe.each(["always", "interval", "never"] as const)("TTL on layerLog({ fsync: \"%s\" })", (fsync) => {
  const withStore = <A, E>(body: (store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      yield* TestClock.adjust(t)
      return yield* body(yield* KeyValueStore.KeyValueStore)
    }).pipe(Effect.provide(freshLogLayer(fsync)))

  it.effect("a key put at t with duration d is readable at t+d−1 and gone from t+d", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "v", { duration: 100 })
        yield* TestClock.adjust(99)
        assert.strictEqual(yield* store.get("k"), "v")
        assert.isTrue(yield* store.has("k"))
        assert.deepStrictEqual(yield* store.timeToLive("k"), Option.some(Duration.millis(1)))
        yield* TestClock.adjust(1)
        yield* assertKeyNotFound(store.get("k"), "k")
        assert.isFalse(yield* store.has("k"))
        yield* assertKeyNotFound(store.timeToLive("k"), "k")
        assert.strictEqual(yield* store.size, 0)
        assert.deepStrictEqual(yield* store.keys, [])
      })))

  it.effect("overwriting a key with a duration resets its deadline to the new put's time + d", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "first", { duration: 100 })
        yield* TestClock.adjust(50)
        yield* store.put("k", "second", { duration: 100 })
        yield* TestClock.adjust(99)
        assert.strictEqual(yield* store.get("k"), "second")
        yield* TestClock.adjust(1)
        yield* assertKeyNotFound(store.get("k"), "k")
      })))

  it.effect("a put without a duration clears the key's deadline", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "first", { duration: 100 })
        yield* TestClock.adjust(10)
        yield* store.put("k", "kept")
        assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
        yield* TestClock.adjust(1_000_000)
        assert.strictEqual(yield* store.get("k"), "kept")
      })))

  it.effect("deleting an expired key fails with KeyNotFound, and it stays gone", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("k", "v", { duration: 5 })
        yield* TestClock.adjust(5)
        yield* assertKeyNotFound(store.delete("k"), "k")
        yield* assertKeyNotFound(store.get("k"), "k")
        yield* store.put("k", "again")
        assert.strictEqual(yield* store.get("k"), "again")
      })))

  it.effect("the reaper reclaims expired entries at their deadline", () =>
    withStore((store) =>
      Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* store.put(`k${i}`, "v", { duration: 10 + i })
        yield* TestClock.adjust(15)
        const stats = yield* store.stats
        assert.strictEqual(stats.storedEntries, 4)
        assert.strictEqual(stats.reclaimed, 6)
        assert.strictEqual(yield* store.size, 4)
      })))
})
