/**
 * Per-key TTL on real time, for a store with a clock of its own (a server
 * that expires keys itself): short real durations, the deadline awaited by
 * asking the store until it answers that the key is gone, and every answer
 * checked against the times it was asked and answered.
 *
 * A put's deadline is set somewhere between its call and its return, by a
 * clock that runs at the same rate as ours. So a read that saw the key must
 * have been called before `putReturned + d`, and one that missed it must
 * have returned after `putCalled + d` — each give or take
 * `toleranceMillis`, for clocks that count in whole milliseconds.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as KeyValueStore from "../../../KeyValueStore.ts"
import { assertKeyNotFound } from "../assertions.ts"
import { type Store, type StoreUnderTest, withStore } from "./StoreUnderTest.ts"

const now = Clock.currentTimeMillis

/** When a put was called and when it returned, by the test's clock. */
interface PutTimes {
  readonly called: number
  readonly returned: number
  readonly millis: number
}

export const timedPut = (store: Store, key: string, value: string, millis: number) =>
  Effect.gen(function*() {
    const called = yield* now
    yield* store.put(key, value, { duration: millis })
    const returned = yield* now
    return { called, returned, millis } satisfies PutTimes
  })

/**
 * Asks `get(key)` again and again until the store answers `KeyNotFound`, and
 * checks each answer against the put's times: the value while it may still
 * be live, `KeyNotFound` only once it may be gone. Gives up, failing, once
 * the key outlives its deadline by `patienceMillis`. Returns when the miss
 * came back. Each ask yields to the event loop first, so timers and I/O run.
 */
export const awaitExpiry = (sut: StoreUnderTest, store: Store, key: string, value: string, put: PutTimes) =>
  Effect.gen(function*() {
    const { patienceMillis, toleranceMillis } = sut.live
    let reads = 0
    while (true) {
      yield* Effect.yieldNow
      const called = yield* now
      const exit = yield* Effect.exit(store.get(key))
      const returned = yield* now
      reads++
      if (Exit.isSuccess(exit)) {
        assert.strictEqual(exit.value, value)
        if (called >= put.returned + put.millis + toleranceMillis) {
          assert.fail(
            `${key} was still readable by a get called ${called - put.returned} ms after its put returned, ` +
              `with a duration of ${put.millis} ms`
          )
        }
        if (returned > put.returned + put.millis + patienceMillis) {
          assert.fail(`gave up waiting for ${key} to expire after ${reads} reads`)
        }
        continue
      }
      yield* assertKeyNotFound(exit, key)
      if (returned <= put.called + put.millis - toleranceMillis) {
        assert.fail(
          `${key} was gone for a get that returned ${returned - put.called} ms after its put was called, ` +
            `with a duration of ${put.millis} ms`
        )
      }
      return returned
    }
  })

export const ttlOnLiveClockSection = (sut: StoreUnderTest): void => {
  const store = <A, E, R>(test: (store: Store) => Effect.Effect<A, E, R>) => withStore(sut, test)
  const d = sut.live.durationMillis
  // Each test waits for one deadline or two, polling: a few times `d`, and
  // the patience, bound it.
  const timeout = 30_000 + 4 * (d + sut.live.patienceMillis)

  describe(`TTL on real time (durations of ${d} ms)`, () => {
    it.live("a key put with a duration is readable until its deadline, then gone for every read", () =>
      store((store) =>
        Effect.gen(function*() {
          yield* store.put("kept", "forever")
          const put = yield* timedPut(store, "k", "v", d)
          const left = yield* store.timeToLive("k")
          assert.isTrue(Option.isSome(left))
          assert.isAtMost(Duration.toMillis(Option.getOrThrow(left)), d)
          assert.isTrue(yield* store.has("k"))
          yield* awaitExpiry(sut, store, "k", "v", put)
          yield* assertKeyNotFound(store.get("k"), "k")
          assert.isFalse(yield* store.has("k"))
          yield* assertKeyNotFound(store.timeToLive("k"), "k")
          assert.strictEqual(yield* store.size, 1)
          assert.deepStrictEqual(yield* store.keys, ["kept"])
          assert.deepStrictEqual(yield* store.timeToLive("kept"), Option.none())
        })), timeout)

    it.live("overwriting a key with a longer duration moves its deadline past the first one", () =>
      store((store) =>
        Effect.gen(function*() {
          // `witness` shares the first deadline: its expiry shows that deadline has passed.
          const witness = yield* timedPut(store, "witness", "w", d)
          yield* store.put("k", "first", { duration: d })
          const second = yield* timedPut(store, "k", "second", 4 * d)
          yield* awaitExpiry(sut, store, "witness", "w", witness)
          const called = yield* now
          const exit = yield* Effect.exit(store.get("k"))
          // Only a read surely before the second deadline can be held to seeing the key.
          if (called < second.returned + second.millis - sut.live.toleranceMillis) {
            assert.deepStrictEqual(exit, Exit.succeed<KeyValueStore.Value>("second"))
          }
          yield* awaitExpiry(sut, store, "k", "second", second)
        })), timeout)

    it.live("a put without a duration clears the key's deadline", () =>
      store((store) =>
        Effect.gen(function*() {
          const witness = yield* timedPut(store, "witness", "w", d)
          yield* store.put("k", "with ttl", { duration: d })
          yield* store.put("k", "kept")
          assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
          yield* awaitExpiry(sut, store, "witness", "w", witness)
          assert.strictEqual(yield* store.get("k"), "kept")
          assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
        })), timeout)

    it.live("deleting an expired key fails with KeyNotFound, and it stays gone", () =>
      store((store) =>
        Effect.gen(function*() {
          const put = yield* timedPut(store, "k", "v", d)
          yield* awaitExpiry(sut, store, "k", "v", put)
          yield* assertKeyNotFound(store.delete("k"), "k")
          yield* assertKeyNotFound(store.get("k"), "k")
          yield* store.put("k", "again")
          assert.strictEqual(yield* store.get("k"), "again")
        })), timeout)
  })
}
