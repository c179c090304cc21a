/**
 * Exact per-key TTL, driven by `TestClock`: a key put at `t` with duration `d`
 * is readable while `now < t + d` and gone from `t + d` on — the contract
 * suite's TTL clauses on `layerMemory`, then the same rule seen by reads
 * alone, with the reaper stalled; the reaper gives back the memory of
 * expired keys in deadline order, with one fiber and at most one pending
 * timer however many keys carry a TTL, and stops when the store's scope
 * closes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../src/index.ts"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import { durationCases } from "../src/testing/internal/contract/ttlOnTestClock.ts"
import {
  awaitCondition,
  makeFiberCounter,
  makeSleepCountingClock,
  makeStalledClock
} from "./support/RuntimeCounters.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

/** The time every test puts its keys at, so that `t` is not the epoch. */
const t = 1_000

const atT = TestClock.adjust(t)

const testClock = TestClock.testClockWith(Effect.succeed)

const now = Clock.currentTimeMillis

contractSuite("KeyValueStore.layerMemory", () => KeyValueStore.layerMemory, { sections: ["ttl"] })

/**
 * A store on the test's `TestClock` whose reaper never wakes (its clock's
 * sleeps never end), so expired entries stay in memory.
 */
const makeStalledStore = () =>
  Effect.flatMap(testClock, (clock) => KeyValueStore.make().pipe(Effect.provideService(Clock.Clock, makeStalledClock(clock))))

describe("a key put at t with duration d is readable before t + d and gone from t + d, by reads alone", () => {
  // The contract suite checks this with the reaper running, which reclaims
  // the key at its deadline; with it stalled, the reads alone must see the deadline.
  it.effect.each(durationCases)("duration $label, reaper stalled: get succeeds at t+d−1 ms and fails with KeyNotFound at t+d", ({ d, input }) =>
    Effect.gen(function*() {
      const store = yield* makeStalledStore()
      yield* atT
      yield* store.put("k", "v", { duration: input })
      yield* TestClock.adjust(d - 1)
      assert.strictEqual(yield* now, t + d - 1)
      assert.strictEqual(yield* store.get("k"), "v")
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* now, t + d)
      yield* assertKeyNotFound(store.get("k"), "k")
      assert.strictEqual((yield* store.stats).storedEntries, 1)
      yield* TestClock.adjust(1)
      yield* assertKeyNotFound(store.get("k"), "k")
    }))
})

describe("expired keys are invisible before the reaper reclaims them", () => {
  it.effect("delete of an expired key the reaper has not reclaimed yet fails with KeyNotFound and drops the entry", () =>
    Effect.gen(function*() {
      const store = yield* makeStalledStore()
      yield* atT
      yield* store.put("k", "v", { duration: 10 })
      yield* TestClock.adjust(10)
      assert.strictEqual((yield* store.stats).storedEntries, 1, "the reaper has not run")
      yield* assertKeyNotFound(store.delete("k"), "k")
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 0 })
    }))

  it.effect("has, size, keys, entries, timeToLive and get leave out an expired key before the reaper reclaims it", () =>
    Effect.gen(function*() {
      const store = yield* makeStalledStore()
      yield* atT
      yield* store.put("kept", "a")
      yield* store.put("expiring", "b", { duration: 10 })
      yield* store.put("later", "c", { duration: 20 })
      yield* TestClock.adjust(10)
      assert.strictEqual((yield* store.stats).storedEntries, 3, "the expired entry is still stored")

      assert.isFalse(yield* store.has("expiring"))
      assert.isTrue(yield* store.has("later"))
      assert.strictEqual(yield* store.size, 2)
      assert.deepStrictEqual(yield* store.keys, ["kept", "later"])
      assert.deepStrictEqual(yield* Stream.runCollect(store.entries), [["kept", "a"], ["later", "c"]])
      yield* assertKeyNotFound(store.timeToLive("expiring"), "expiring")
      assert.deepStrictEqual(yield* store.timeToLive("later"), Option.some(Duration.millis(10)))
      yield* assertKeyNotFound(store.get("expiring"), "expiring")
    }))
})

describe("the reaper", () => {
  it.effect("reclaims a mass expiry larger than one reclaim batch", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      const count = 5_000
      yield* atT
      for (let i = 0; i < count; i++) yield* store.put(`k${i}`, "v", { duration: 10 })
      yield* store.put("kept", "v", { duration: 11 })
      yield* TestClock.adjust(10)
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 1, entriesWithDeadline: 1, reclaimed: count })
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("reclaims in deadline order, each entry at its deadline, and never a deleted or overwritten one", () => {
    const reclaims: Array<{ key: string; deadline: number; reclaimedAt: number }> = []
    return Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      yield* atT
      // Put in an order unrelated to the deadlines.
      yield* store.put("e", "v", { duration: 50 })
      yield* store.put("a", "v", { duration: 10 })
      yield* store.put("deleted", "v", { duration: 5 })
      yield* store.put("d", "v", { duration: 40 })
      yield* store.put("y", "v", { duration: 15 })
      yield* store.put("b", "v", { duration: 20 })
      yield* store.put("c", "v", { duration: 30 })
      yield* store.delete("deleted")
      yield* store.put("y", "v", { duration: 35 })
      yield* TestClock.adjust(100)
      assert.deepStrictEqual(reclaims, [
        { key: "a", deadline: t + 10, reclaimedAt: t + 10 },
        { key: "b", deadline: t + 20, reclaimedAt: t + 20 },
        { key: "c", deadline: t + 30, reclaimedAt: t + 30 },
        { key: "y", deadline: t + 35, reclaimedAt: t + 35 },
        { key: "d", deadline: t + 40, reclaimedAt: t + 40 },
        { key: "e", deadline: t + 50, reclaimedAt: t + 50 }
      ])
    }).pipe(
      Effect.provide(KeyValueStore.layerMemoryWith({
        onReclaim: (key, deadline, reclaimedAt) => reclaims.push({ key, deadline, reclaimedAt })
      }))
    )
  })

  it.effect("wakes early when a put brings in an earlier deadline than the one it sleeps towards", () =>
    Effect.gen(function*() {
      const clock = makeSleepCountingClock(yield* testClock)
      const reclaimed: Array<string> = []
      const store = yield* KeyValueStore.make({ onReclaim: (key) => reclaimed.push(key) }).pipe(
        Effect.provideService(Clock.Clock, clock)
      )
      yield* store.put("late", "v", { duration: 1_000 })
      yield* awaitCondition("the reaper sleeps 1000 ms", () => sameNumbers(clock.sleepDurationsInFlight(), [1_000]))
      yield* store.put("early", "v", { duration: 10 })
      yield* TestClock.adjust(10)
      assert.deepStrictEqual(reclaimed, ["early"])
      assert.strictEqual((yield* store.stats).storedEntries, 1)
      assert.deepStrictEqual(clock.sleepDurationsInFlight(), [990], "one timer, towards the remaining deadline")
    }))

  it.effect("stays asleep when a put brings in a later deadline than the one it sleeps towards", () =>
    Effect.gen(function*() {
      const clock = makeSleepCountingClock(yield* testClock)
      const store = yield* KeyValueStore.make().pipe(Effect.provideService(Clock.Clock, clock))
      yield* store.put("early", "v", { duration: 10 })
      yield* awaitCondition("the reaper sleeps 10 ms", () => sameNumbers(clock.sleepDurationsInFlight(), [10]))
      const sleepsStarted = clock.sleepsStarted()
      yield* store.put("late", "v", { duration: 1_000 })
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      assert.strictEqual(clock.sleepsStarted(), sleepsStarted)
      assert.deepStrictEqual(clock.sleepDurationsInFlight(), [10])
    }))

  it.effect("closing the layer's scope interrupts the reaper", () =>
    Effect.gen(function*() {
      const fibers = makeFiberCounter()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(KeyValueStore.layerMemory, scope).pipe(
        Effect.provideService(Metric.FiberRuntimeMetrics, fibers)
      )
      const store = Context.get(context, KeyValueStore.KeyValueStore)
      yield* store.put("k", "v", { duration: 10 })
      yield* Effect.yieldNow
      assert.isAbove(fibers.active(), 0, "the reaper runs while the scope is open")
      assert.strictEqual(fibers.interrupted(), 0)

      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(fibers.active(), 0, "no fiber of the store outlives its scope")
      assert.isAbove(fibers.interrupted(), 0)

      yield* TestClock.adjust(10)
      assert.strictEqual((yield* store.stats).reclaimed, 0, "nothing reclaims entries once the scope is closed")
    }))

  it.effect(
    "1,000,000 keys with distinct TTLs leave the number of fibers and of pending timers constant",
    () => {
      // The whole test runs under the counters, so that a fiber or a timer
      // started anywhere (by the store, or by a put on the caller's fiber) counts.
      const fibers = makeFiberCounter()
      return Effect.flatMap(testClock, (inner) => {
        const clock = makeSleepCountingClock(inner)
        return Effect.gen(function*() {
          const store = yield* KeyValueStore.make()
          // One key with a TTL: the reaper sleeps towards its deadline.
          yield* store.put("first", "v", { duration: 2_000 })
          yield* awaitCondition("the reaper sleeps 2000 ms", () =>
            sameNumbers(clock.sleepDurationsInFlight(), [2_000]))
          const fibersWithOneKey = fibers.active()
          assert.isAbove(fibersWithOneKey, 0)

          // A million more, with distinct TTLs in [1000, 2000) ms (steps of
          // 1/1024 ms, exact in binary), put in an order unrelated to them.
          const count = 1_000_000
          const ttlOf = (i: number) => 1_000 + i / 1_024
          for (let j = 0; j < count; j++) {
            const i = (j * 7_919) % count
            yield* store.put(`k${i}`, "v", { duration: ttlOf(i) })
          }
          yield* awaitCondition("the reaper sleeps towards the earliest deadline", () =>
            sameNumbers(clock.sleepDurationsInFlight(), [1_000]))
          assert.strictEqual(fibers.active(), fibersWithOneKey)
          assert.strictEqual(clock.sleepsInFlight(), 1)
          assert.deepStrictEqual(yield* store.stats, {
            storedEntries: count + 1,
            entriesWithDeadline: count + 1,
            reclaimed: 0
          })

          // Past half the deadlines: those at or before 1500 ms are keys 0..512000.
          yield* TestClock.adjust(1_500)
          const reclaimed = 512_001
          assert.deepStrictEqual(yield* store.stats, {
            storedEntries: count + 1 - reclaimed,
            entriesWithDeadline: count + 1 - reclaimed,
            reclaimed
          })
          assert.deepStrictEqual(
            clock.sleepDurationsInFlight(),
            [Math.ceil(ttlOf(reclaimed) - 1_500)],
            "one timer, towards the next deadline"
          )
          assert.strictEqual(fibers.active(), fibersWithOneKey)
        }).pipe(
          Effect.provideService(Clock.Clock, clock),
          Effect.provideService(Metric.FiberRuntimeMetrics, fibers)
        )
      })
    },
    60_000
  )
})

const sameNumbers = (actual: ReadonlyArray<number>, expected: ReadonlyArray<number>): boolean =>
  actual.length === expected.length && actual.every((n, i) => n === expected[i])
