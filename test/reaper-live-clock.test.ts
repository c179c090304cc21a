/**
 * The reaper on Effect's own clock, where its sleep is one timer of its own
 * rather than a sleep raced against a wake-up signal: still one pending
 * timer however many keys carry a TTL, an earlier deadline still wakes it,
 * and a caller that chains puts through Promises (never letting the event
 * loop turn on its own) does not keep it from its work. Real time, so the
 * assertions are on what happened, never on how fast.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { KeyValueStore } from "../src/index.ts"

/** Timers pending in this process (the test's own included: compare before and after). */
const pendingTimers = () => process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length

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
      const store = yield* KeyValueStore.make({ onReclaim: (key) => reclaims.set(key, (reclaims.get(key) ?? 0) + 1) })
      const before = pendingTimers()
      for (let i = 0; i < 10_000; i++) yield* store.put(`k${i}`, "v", { duration: 100 + (i % 997) / 10 })
      assert.strictEqual(pendingTimers() - before, 1, "one timer, the reaper's")
      yield* waitFor(() => reclaims.size === 10_000, 10_000)
      assert.strictEqual(reclaims.size, 10_000)
      assert.isTrue([...reclaims.values()].every((count) => count === 1))
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 10_000 })
      assert.strictEqual(pendingTimers() - before, 0, "no timer once nothing carries a TTL")
    })))

  it.live("a put bringing an earlier deadline clears the reaper's timer and sets one for it", () =>
    Effect.scoped(Effect.gen(function*() {
      const reclaimed: Array<string> = []
      const store = yield* KeyValueStore.make({ onReclaim: (key) => reclaimed.push(key) })
      const before = pendingTimers()
      yield* store.put("late", "v", { duration: 60_000 })
      for (let i = 0; i < 100 && pendingTimers() === before; i++) yield* Effect.yieldNow
      assert.strictEqual(pendingTimers() - before, 1, "the reaper sleeps towards the late deadline")
      yield* store.put("early", "v", { duration: 20 })
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      assert.strictEqual(pendingTimers() - before, 1, "its timer was replaced, not joined")
      yield* waitFor(() => reclaimed.length > 0, 5_000)
      assert.deepStrictEqual(reclaimed, ["early"])
      assert.strictEqual((yield* store.stats).storedEntries, 1)
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
})
