/**
 * Exact per-key TTL on a `TestClock`: a key put at `t` with duration `d` is
 * readable while `now < t + d` and gone from `t + d` on, by every read; an
 * overwrite sets a new deadline or clears it; with `supportsStats`, the
 * store reclaims expired entries at their deadline.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { TestClock } from "effect/testing"
import type * as KeyValueStore from "../../../KeyValueStore.ts"
import { assertKeyNotFound } from "../assertions.ts"
import { type Store, type StoreUnderTest, withStore } from "./StoreUnderTest.ts"

/** The time every test puts its keys at, so that `t` is not the epoch. */
const t = 1_000

const atT = TestClock.adjust(t)

const now = Clock.currentTimeMillis

/** The counts of `stats` the contract speaks of (a store may report more). */
const counts = (stats: KeyValueStore.StoreStats) => ({
  storedEntries: stats.storedEntries,
  entriesWithDeadline: stats.entriesWithDeadline,
  reclaimed: stats.reclaimed
})

/** Every form a duration can take, with the milliseconds it stands for. */
export const durationCases: ReadonlyArray<{ readonly input: Duration.Input; readonly d: number; readonly label: string }> = [
  { input: 100, d: 100, label: "100 (a number: milliseconds)" },
  { input: "2 seconds", d: 2_000, label: "\"2 seconds\"" },
  { input: "15 millis", d: 15, label: "\"15 millis\"" },
  { input: Duration.minutes(1), d: 60_000, label: "Duration.minutes(1)" },
  { input: { seconds: 3 }, d: 3_000, label: "{ seconds: 3 }" },
  { input: BigInt(7_000_000), d: 7, label: "7_000_000n (nanoseconds)" }
]

export const ttlOnTestClockSection = (sut: StoreUnderTest): void => {
  const store = <A, E, R>(test: (store: Store) => Effect.Effect<A, E, R>) => withStore(sut, test)
  const stats = sut.supportsStats

  describe("a key put at t with duration d is readable before t + d and gone from t + d", () => {
    it.effect.each(durationCases)("duration $label: every read sees the key at t+d−1 ms and none sees it from t+d", ({ d, input }) =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "v", { duration: input })
          yield* TestClock.adjust(d - 1)
          assert.strictEqual(yield* now, t + d - 1)
          assert.strictEqual(yield* store.get("k"), "v")
          assert.isTrue(yield* store.has("k"))
          assert.deepStrictEqual(yield* store.timeToLive("k"), Option.some(Duration.millis(1)))
          yield* TestClock.adjust(1)
          assert.strictEqual(yield* now, t + d)
          yield* assertKeyNotFound(store.get("k"), "k")
          assert.isFalse(yield* store.has("k"))
          yield* assertKeyNotFound(store.timeToLive("k"), "k")
          assert.strictEqual(yield* store.size, 0)
          assert.deepStrictEqual(yield* store.keys, [])
          if (stats) assert.strictEqual((yield* store.stats).storedEntries, 0, "reclaimed at its deadline")
          yield* TestClock.adjust(1)
          yield* assertKeyNotFound(store.get("k"), "k")
        })))

    it.effect("fractional duration 2.5 ms: readable at t+2 and t+2.25 ms, gone at t+2.5 ms", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "v", { duration: 2.5 })
          yield* TestClock.adjust(2)
          assert.strictEqual(yield* store.get("k"), "v")
          yield* TestClock.adjust(0.25)
          assert.strictEqual(yield* store.get("k"), "v")
          yield* TestClock.adjust(0.25)
          assert.strictEqual(yield* now, t + 2.5)
          yield* assertKeyNotFound(store.get("k"), "k")
        })))

    it.effect("sub-millisecond duration \"500 micros\": readable at t+0.25 ms, gone at t+0.5 ms", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "v", { duration: "500 micros" })
          assert.strictEqual(yield* store.get("k"), "v")
          yield* TestClock.adjust(0.25)
          assert.strictEqual(yield* store.get("k"), "v")
          yield* TestClock.adjust(0.25)
          assert.strictEqual(yield* now, t + 0.5)
          yield* assertKeyNotFound(store.get("k"), "k")
        })))

    it.effect("a duration below the clock's float precision near today's epoch is readable at t and gone just after", () =>
      // The clock is set before the store opens: a store with a periodic
      // timer (a log's interval sync) would wake once per period on the way.
      Effect.andThen(
        TestClock.setTime(1_764_000_000_000),
        store((store) =>
          Effect.gen(function*() {
            yield* store.put("k", "v", { duration: Duration.nanos(1n) })
            assert.strictEqual(yield* store.get("k"), "v")
            yield* TestClock.adjust(1)
            yield* assertKeyNotFound(store.get("k"), "k")
          }))
      ))

    if (stats) {
      it.effect("a fractional deadline is reclaimed within 1 ms of it, and the key is never readable after it", () =>
        store((store) =>
          Effect.gen(function*() {
            yield* atT
            yield* store.put("k", "v", { duration: 2.5 })
            yield* TestClock.adjust(2.5)
            yield* assertKeyNotFound(store.get("k"), "k")
            yield* TestClock.adjust(0.5)
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 1 })
          })))
    }
  })

  describe("overwriting and clearing a TTL", () => {
    it.effect("overwriting a key with a duration resets its deadline to the new put's time + d", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "first", { duration: 100 })
          yield* TestClock.adjust(50)
          yield* store.put("k", "second", { duration: 100 })
          // Past the first deadline (t+100), before the second (t+150).
          yield* TestClock.adjust(60)
          assert.strictEqual(yield* store.get("k"), "second")
          yield* TestClock.adjust(39)
          assert.strictEqual(yield* store.get("k"), "second")
          yield* TestClock.adjust(1)
          yield* assertKeyNotFound(store.get("k"), "k")
        })))

    it.effect("overwriting a key with a shorter duration brings its deadline in", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("other", "o", { duration: 30 })
          yield* store.put("k", "first", { duration: 1_000 })
          yield* store.put("k", "second", { duration: 10 })
          yield* TestClock.adjust(9)
          assert.strictEqual(yield* store.get("k"), "second")
          yield* TestClock.adjust(1)
          yield* assertKeyNotFound(store.get("k"), "k")
          if (stats) {
            assert.strictEqual((yield* store.stats).storedEntries, 1, "the reaper reclaimed k at its new deadline")
          }
          assert.strictEqual(yield* store.get("other"), "o")
        })))

    it.effect.each([
      { label: "no options", options: undefined },
      { label: "{}", options: {} },
      { label: "{ duration: Duration.infinity }", options: { duration: Duration.infinity } },
      { label: "{ duration: Infinity }", options: { duration: Infinity } },
      { label: "{ duration: \"Infinity\" }", options: { duration: "Infinity" as const } }
    ])("put with $label clears an earlier TTL: the key outlives the old deadline", ({ options }) =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "with ttl", { duration: 100 })
          yield* store.put("k", "kept", options)
          assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
          yield* TestClock.adjust(Duration.days(10_000))
          assert.strictEqual(yield* store.get("k"), "kept")
          assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
          if (stats) {
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 1, entriesWithDeadline: 0, reclaimed: 0 })
          }
        })))

    it.effect("a key put without TTL can be given one by a later put", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "forever")
          yield* store.put("k", "for a while", { duration: 20 })
          yield* TestClock.adjust(19)
          assert.strictEqual(yield* store.get("k"), "for a while")
          yield* TestClock.adjust(1)
          yield* assertKeyNotFound(store.get("k"), "k")
        })))

    it.effect("a deadline does not outlive clear: a key put again after clear lives by its new TTL", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("b", "2", { duration: 10 })
          yield* store.clear
          yield* store.put("b", "again", { duration: 20 })
          yield* TestClock.adjust(10)
          assert.strictEqual(yield* store.get("b"), "again", "the old deadline of b died with clear")
          yield* TestClock.adjust(10)
          yield* assertKeyNotFound(store.get("b"), "b")
        })))
  })

  describe("expired keys and timeToLive", () => {
    it.effect("deleting an expired key fails with KeyNotFound, and it stays gone", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* atT
          yield* store.put("k", "v", { duration: 5 })
          yield* TestClock.adjust(5)
          yield* assertKeyNotFound(store.delete("k"), "k")
          yield* assertKeyNotFound(store.get("k"), "k")
          yield* store.put("k", "again")
          assert.strictEqual(yield* store.get("k"), "again")
        })))

    it.effect("timeToLive is the time left for a key with a TTL", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("ttl", "v", { duration: 100 })
          yield* TestClock.adjust(30)
          const left = yield* store.timeToLive("ttl")
          assert.isTrue(Option.isSome(left))
          assert.strictEqual(Duration.toMillis(Option.getOrThrow(left)), 70)
          yield* TestClock.adjust(69)
          assert.strictEqual(Duration.toMillis(Option.getOrThrow(yield* store.timeToLive("ttl"))), 1)
        })))

    it.effect("timeToLive fails with KeyNotFound for an expired key", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("expired", "v", { duration: 10 })
          yield* TestClock.adjust(10)
          yield* assertKeyNotFound(store.timeToLive("expired"), "expired")
        })))
  })

  if (stats) {
    describe("stats and the reclaiming of expired entries", () => {
      it.effect("stats counts stored entries, those with a deadline, and those reclaimed", () =>
        store((store) =>
          Effect.gen(function*() {
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 0 })
            yield* store.put("a", "1")
            yield* store.put("b", "2", { duration: 10 })
            yield* store.put("c", "3", { duration: 20 })
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 3, entriesWithDeadline: 2, reclaimed: 0 })
            yield* TestClock.adjust(10)
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 2, entriesWithDeadline: 1, reclaimed: 1 })
            yield* store.delete("c")
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 1, entriesWithDeadline: 0, reclaimed: 1 })
          })))

      it.effect("expired entries are reclaimed: stats.storedEntries falls and stats.reclaimed rises as time passes", () =>
        store((store) =>
          Effect.gen(function*() {
            yield* atT
            yield* store.put("kept", "v")
            yield* store.put("a", "v", { duration: 10 })
            yield* store.put("b", "v", { duration: 20 })
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 3, entriesWithDeadline: 2, reclaimed: 0 })
            yield* TestClock.adjust(10)
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 2, entriesWithDeadline: 1, reclaimed: 1 })
            yield* TestClock.adjust(10)
            assert.deepStrictEqual(counts(yield* store.stats), { storedEntries: 1, entriesWithDeadline: 0, reclaimed: 2 })
            assert.deepStrictEqual(yield* store.keys, ["kept"])
          })))

      it.effect("ten keys with deadlines 1 ms apart: those past their deadline are reclaimed, the others kept", () =>
        store((store) =>
          Effect.gen(function*() {
            yield* atT
            for (let i = 0; i < 10; i++) yield* store.put(`k${i}`, "v", { duration: 10 + i })
            yield* TestClock.adjust(15)
            const after = yield* store.stats
            assert.strictEqual(after.storedEntries, 4)
            assert.strictEqual(after.reclaimed, 6)
            assert.strictEqual(yield* store.size, 4)
          })))
    })
  }
}
