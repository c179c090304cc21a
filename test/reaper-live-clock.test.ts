/**
 * The reaper on Effect's own clock, where its sleep is one timer of its own
 * rather than a sleep raced against a wake-up signal: still one pending
 * timer however many keys carry a TTL, an earlier deadline still wakes it,
 * and a caller that chains puts through Promises (never letting the event
 * loop turn on its own) does not keep it from its work. Real time, so the
 * assertions are on what happened, never on how fast.
 */
import { assert, describe, it, vi } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scheduler from "effect/Scheduler"
import { KeyValueStore } from "../src/index.ts"
import { PreemptingScheduler } from "../src/testing/ConcurrentHistories.ts"

/**
 * Timers set through `setTimeout` from now until the scope closes, and not yet
 * fired or cleared. Counted through the globals rather than the process's
 * active resources, which the test runner's own timers come and go in.
 */
const trackTimers = Effect.gen(function*() {
  const pending = new Set<unknown>()
  const delays: Array<number> = []
  const { clearTimeout: originalClear, setTimeout: originalSet } = globalThis
  const set = vi.spyOn(globalThis, "setTimeout").mockImplementation(((callback: () => void, millis?: number) => {
    delays.push(millis ?? 0)
    const handle: unknown = originalSet(() => {
      pending.delete(handle)
      callback()
    }, millis)
    pending.add(handle)
    return handle
  }) as typeof setTimeout)
  const clear = vi.spyOn(globalThis, "clearTimeout").mockImplementation(((handle?: NodeJS.Timeout) => {
    pending.delete(handle)
    originalClear(handle)
  }) as typeof clearTimeout)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      set.mockRestore()
      clear.mockRestore()
    })
  )
  return { pending: () => pending.size, delays }
})

/** Sleeps in real time until `condition()` holds, for at most `limitMillis`. */
const waitFor = (condition: () => boolean, limitMillis: number) =>
  Effect.gen(function*() {
    const until = performance.now() + limitMillis
    while (!condition() && performance.now() < until) yield* Effect.sleep(10)
  })

describe("the reaper on Effect's own clock", () => {
  it.live("10,000 keys with distinct TTLs leave one pending timer, and every key is reclaimed once", () =>
    Effect.scoped(Effect.gen(function*() {
      const reclaims = new Map<string, number>()
      const timers = yield* trackTimers
      const store = yield* KeyValueStore.make({ onReclaim: (key) => reclaims.set(key, (reclaims.get(key) ?? 0) + 1) })
      for (let i = 0; i < 10_000; i++) yield* store.put(`k${i}`, "v", { duration: 100 + (i % 997) / 10 })
      // The last earlier deadline cleared the reaper's timer and woke it; it
      // sets the next one on its own turn.
      for (let i = 0; i < 100 && timers.pending() === 0; i++) yield* Effect.yieldNow
      assert.strictEqual(timers.pending(), 1, "one timer, the reaper's")
      yield* waitFor(() => reclaims.size === 10_000, 10_000)
      assert.strictEqual(reclaims.size, 10_000)
      assert.isTrue([...reclaims.values()].every((count) => count === 1))
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 10_000 })
      for (let i = 0; i < 100 && timers.pending() > 0; i++) yield* Effect.yieldNow
      assert.strictEqual(timers.pending(), 0, "no timer once nothing carries a TTL")
    })))

  it.live("a put bringing an earlier deadline clears the reaper's timer and sets one for it", () =>
    Effect.scoped(Effect.gen(function*() {
      const reclaimed: Array<string> = []
      const timers = yield* trackTimers
      const store = yield* KeyValueStore.make({ onReclaim: (key) => reclaimed.push(key) })
      yield* store.put("late", "v", { duration: 60_000 })
      for (let i = 0; i < 100 && timers.pending() === 0; i++) yield* Effect.yieldNow
      assert.strictEqual(timers.pending(), 1, "the reaper sleeps towards the late deadline")
      yield* store.put("early", "v", { duration: 20 })
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      assert.strictEqual(timers.pending(), 1, "its timer was replaced, not joined")
      yield* waitFor(() => reclaimed.length > 0, 5_000)
      assert.deepStrictEqual(reclaimed, ["early"])
      assert.strictEqual((yield* store.stats).storedEntries, 1)
    })))

  it.live("a deadline further away than a Node timer can wait (2^31 - 1 ms, ~24.8 days) sets a timer it can", () =>
    Effect.scoped(Effect.gen(function*() {
      const { delays } = yield* trackTimers
      const store = yield* KeyValueStore.make()
      yield* store.put("month", "v", { duration: "30 days" })
      for (let i = 0; i < 100 && delays.length === 0; i++) yield* Effect.yieldNow
      assert.isAbove(delays.length, 0, "the reaper set its timer")
      assert.isTrue(delays.every((millis) => millis <= 2 ** 31 - 1), `delays: ${delays.join(", ")}`)
      assert.strictEqual(Math.max(...delays), 2 ** 31 - 1, "it waits as long as a timer can")
      assert.strictEqual(yield* store.get("month"), "v")
    })))

  it("puts chained through Promises, which never let the event loop turn by themselves, let the reaper reclaim while they go on", async () => {
    let reclaimed = 0
    const runtime = ManagedRuntime.make(KeyValueStore.layerMemoryWith({ onReclaim: () => reclaimed++ }))
    try {
      const store = await runtime.runPromise(Effect.service(KeyValueStore.KeyValueStore))
      const started = performance.now()
      let reclaimedDuringChain = 0
      // Each put's TTL runs out 1 ms after it: the reaper has work all along.
      for (let i = 0; performance.now() - started < 200; i++) {
        await runtime.runPromise(store.put(`k${i}`, "v", { duration: 1 }))
        reclaimedDuringChain = reclaimed
      }
      assert.isAbove(reclaimedDuringChain, 0, "the reaper ran before the chain ended")
    } finally {
      await runtime.dispose()
    }
  })

  it("an earlier deadline put while the reaper is between choosing its deadline and setting its timer still wakes it", async () => {
    // Fibers preempted at one step in three, at random (a seed per gap),
    // from the first put to the second: for some gaps the second put lands
    // between the reaper's choice of the late deadline and the timer it sets
    // for it. Missing the wake-up there left "early" (20 ms) in memory until
    // the late deadline, a minute on. One step in two would be too often: a
    // preemption at the start of a fiber's run adds a frame that the next
    // step removes, and at even odds the fiber's stack does a random walk
    // whose return can take minutes.
    const missed: Array<number> = []
    for (let gap = 0; gap <= 60; gap++) {
      const reclaimed: Array<string> = []
      const scheduler = new PreemptingScheduler()
      const runtime = ManagedRuntime.make(
        KeyValueStore.layerMemoryWith({ onReclaim: (key) => reclaimed.push(key) }).pipe(
          Layer.provideMerge(Layer.succeed(Scheduler.Scheduler, scheduler))
        )
      )
      try {
        await runtime.runPromise(Effect.gen(function*() {
          const store = yield* KeyValueStore.KeyValueStore
          scheduler.reseed(gap + 1, 3)
          yield* store.put("late", "v", { duration: 60_000 })
          for (let i = 0; i < gap; i++) yield* Effect.yieldNow
          yield* store.put("early", "v", { duration: 20 })
          scheduler.reseed(1, Infinity)
          yield* waitFor(() => reclaimed.length > 0, 500)
        }))
      } finally {
        await runtime.dispose()
      }
      if (reclaimed[0] !== "early") missed.push(gap)
    }
    assert.deepStrictEqual(missed, [], "gaps after which the reaper slept past the early deadline")
  })
})
