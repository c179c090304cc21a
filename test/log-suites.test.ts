/**
 * The store's suites, run against the log-backed store: concurrent histories
 * on `layerLog` are linearizable under every fsync policy — histories of
 * get, put and delete on a fresh log each, and histories built to take the
 * read/write lock's slow path (entries streams held open while batches wait
 * to be applied, compactions and clears running concurrently, random
 * preemption) on one log per batch — and the TTL rules hold exactly as they
 * do in memory.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Duration from "effect/Duration"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../src/index.ts"
import {
  formatStoreHistoryTotals,
  linearizabilitySuite,
  type StoreHistoryTotals,
  storeHistoriesFor,
  storeHistoriesTest
} from "./support/concurrentHistories.ts"
import { freshLogPath } from "./support/logHarness.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

/** A log-backed store on a log of its own in a fresh temporary directory, removed with the layer. */
const freshLogLayer = (
  fsync: "always" | "interval" | "never",
  acknowledge: "written" | "buffered" = "written"
): Layer.Layer<KeyValueStore.KeyValueStore, KeyValueStore.LogOpenError> =>
  Layer.unwrap(Effect.map(freshLogPath(`suite-${fsync}`), (path) => KeyValueStore.layerLog({ path, fsync, acknowledge })))

// A fresh log per history costs its open and close: these suites run fewer
// histories than in memory; the store histories below run thousands.
linearizabilitySuite("KeyValueStore.layerLog({ fsync: \"always\" }) is linearizable", freshLogLayer("always"), { numRuns: 40 })
linearizabilitySuite("KeyValueStore.layerLog({ fsync: \"never\" }) is linearizable", freshLogLayer("never"), { numRuns: 40 })
linearizabilitySuite(
  "KeyValueStore.layerLog({ fsync: \"never\", acknowledge: \"buffered\" }) is linearizable",
  freshLogLayer("never", "buffered"),
  { numRuns: 40 }
)

const totals: Record<string, StoreHistoryTotals> = {}
for (const fsync of ["always", "interval", "never"] as const) {
  storeHistoriesTest(
    `KeyValueStore.layerLog({ fsync: "${fsync}" })`,
    freshLogLayer(fsync),
    { histories: storeHistoriesFor(fsync), maintenanceWeight: 1 },
    (layerTotals) => totals[`layerLog/${fsync}`] = layerTotals
  )
}
// The buffering writer, beyond the 10,000 histories split among the layers above.
storeHistoriesTest(
  `KeyValueStore.layerLog({ fsync: "interval", acknowledge: "buffered" })`,
  freshLogLayer("interval", "buffered"),
  { histories: storeHistoriesFor("interval") / 3, maintenanceWeight: 1 },
  (layerTotals) => totals["layerLog/interval/buffered"] = layerTotals
)
afterAll(() => {
  if (Object.keys(totals).length > 0) console.log(formatStoreHistoryTotals(totals))
})

/** The time every test puts its keys at, so that `t` is not the epoch. */
const t = 1_000

describe.each([
  { fsync: "always", acknowledge: "written" },
  { fsync: "interval", acknowledge: "written" },
  { fsync: "never", acknowledge: "written" },
  { fsync: "never", acknowledge: "buffered" }
] as const)("TTL on layerLog({ fsync: \"$fsync\", acknowledge: \"$acknowledge\" })", ({ acknowledge, fsync }) => {
  const withStore = <A, E>(body: (store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      yield* TestClock.adjust(t)
      return yield* body(yield* KeyValueStore.KeyValueStore)
    }).pipe(Effect.provide(freshLogLayer(fsync, acknowledge)))

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
