/**
 * What every section of the contract suite shares: the layer under test with
 * the suite's options resolved, a fresh store per test, and what a client can
 * observe of a store.
 */
import { assert, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as KeyValueStore from "../../../KeyValueStore.ts"
import type { MakeLayer } from "../../ConcurrentHistories.ts"

export type Store = KeyValueStore.KeyValueStoreService

/** The suite's options, checked and with their defaults. */
export interface StoreUnderTest {
  readonly makeLayer: MakeLayer
  readonly clock: "test" | "live"
  readonly supportsCompact: boolean
  readonly supportsStats: boolean
  readonly limits: { readonly maxKeyLength: number; readonly maxValueLength: number }
  readonly live: { readonly durationMillis: number; readonly toleranceMillis: number; readonly patienceMillis: number }
}

/** `it.effect` on the test clock (a `TestClock` per test), `it.live` on the live one. */
export const testOn = (sut: StoreUnderTest) => sut.clock === "test" ? it.effect : it.live

/**
 * Runs `test` against a fresh store built from the layer, within the test (so
 * on the test's `TestClock`, with the test clock). A store that does not
 * start empty cannot be held to the contract's counts: that fails at once.
 */
export const withStore = <A, E, R>(
  sut: StoreUnderTest,
  test: (store: Store) => Effect.Effect<A, E, R>
): Effect.Effect<A, unknown, Exclude<R, KeyValueStore.KeyValueStore>> =>
  Effect.gen(function*() {
    const store = yield* KeyValueStore.KeyValueStore
    const size = yield* store.size
    if (size !== 0) {
      return assert.fail(`each build of the layer must give an empty store, this one holds ${size} keys`)
    }
    return yield* test(store)
  }).pipe(Effect.provide(sut.makeLayer()))

/**
 * A duration for a key that must not expire during a test that does not move
 * time: `millis` on the test clock (it only moves when told), an hour on the
 * live one.
 */
export const living = (sut: StoreUnderTest, millis: number): Duration.Input =>
  sut.clock === "test" ? millis : Duration.hours(1)

/**
 * What a client can observe of the store, to compare before and after a
 * rejected call: every entry, each key's time to live (on the live clock,
 * whether it has one: the time left moves), the size, and with
 * `supportsStats` the diagnostics.
 */
export const observe = (sut: StoreUnderTest, store: Store) =>
  Effect.gen(function*() {
    const entries = yield* Stream.runCollect(store.entries)
    entries.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    const timesToLive = yield* Effect.forEach(entries, ([key]) => store.timeToLive(key))
    return {
      entries: entries.map(([key, value]) => [key, typeof value === "string" ? value : Array.from(value)]),
      timesToLive: timesToLive.map((left) =>
        sut.clock === "test" ? Option.map(left, Duration.toMillis) : Option.isSome(left) ? "some" : "none"
      ),
      size: yield* store.size,
      stats: sut.supportsStats ? yield* store.stats : undefined
    }
  })

/** Calls the store's operation `name` with arguments its type does not allow, as untyped callers can. */
export const untyped = (store: Store, name: "get" | "put" | "delete" | "has" | "timeToLive", ...args: Array<unknown>) =>
  (store[name] as (...args: Array<unknown>) => Effect.Effect<unknown, unknown>)(...args)
