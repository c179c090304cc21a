/**
 * The example of docs/testing.md: a store whose `delete` checks that the key
 * is there, yields, then deletes — so two deletes of one key can both
 * succeed. The concurrent-history property finds it, fast-check shrinks the
 * program, and the counterexample it reports is a handful of operations on
 * one key with the reason no order explains them. The same property passes
 * on the store the broken one wraps.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { KeyValueStore } from "../src/index.ts"
import { ConcurrentHistories, Linearizability } from "../src/testing/index.ts"

/** kvlog's in-memory store, with a `delete` that checks and acts in two steps. */
const brokenDelete = (store: KeyValueStore.KeyValueStoreService): KeyValueStore.KeyValueStoreService => ({
  ...store,
  delete: (key) =>
    Effect.flatMap(store.has(key), (present) =>
      present
        // Another fiber runs here, and may find the key still present.
        ? Effect.andThen(Effect.yieldNow, Effect.ignore(store.delete(key)))
        : Effect.fail(new KeyValueStore.KeyNotFound({ key })))
})

const brokenLayer = Layer.effect(KeyValueStore.KeyValueStore, Effect.map(KeyValueStore.make(), brokenDelete))

const shape: ConcurrentHistories.ProgramShape = {
  fibers: { min: 2, max: 6 },
  stepsPerFiber: { min: 1, max: 10 },
  keys: 2
}

/** The property's rejection, or `undefined` if it passed. */
const failureOf = (run: Promise<unknown>): Promise<unknown> => run.then(() => undefined, (error: unknown) => error)

describe("a store whose delete is not atomic", () => {
  // fast-check's scheduler picks the interleaving and its random seed is fixed, so
  // the run, its shrinking and the counterexample are the same every time.
  const seed = 42

  it("the scheduled property finds two deletes of one key that both succeed, shrunk to at most 4 operations", async () => {
    const error = await failureOf(
      ConcurrentHistories.checkScheduledHistories(() => brokenLayer, { shape, replay: { seed } })
    )
    assert.instanceOf(error, Linearizability.NotLinearizable)
    const { found, verdict } = error
    assert.isAtMost(verdict.history.length, 4, error.message)
    const succeeded = verdict.history.filter((entry) => entry.op._tag === "delete" && entry.outcome._tag === "ok")
    assert.isAtLeast(succeeded.length, 2, "two deletes that both succeeded are in the counterexample")
    assert.strictEqual(verdict.blocked.op._tag, "delete")
    assert.match(verdict.reason, /delete\(".*"\) -> ok cannot be seen when the key is absent/)
    assert.isDefined(found, "the counterexample says how fast-check found it")
    assert.isAbove(found!.shrinks, 0, "fast-check shrank the first failing program")
    assert.match(error.message, /^found after \d+ runs?, shrunk \d+ times? by fast-check \(replay with \{ seed: 42, path: "[\d:]+" \}\)/)
    assert.include(error.message, "history (by call time):")
    assert.include(error.message, "why: ")
  })

  it("replaying the reported seed and path fails again, with a counterexample of the same operations", async () => {
    const first = await failureOf(ConcurrentHistories.checkScheduledHistories(() => brokenLayer, { shape, replay: { seed } }))
    assert.instanceOf(first, Linearizability.NotLinearizable)
    const replay = { seed, path: first.found!.path }
    const again = await failureOf(ConcurrentHistories.checkScheduledHistories(() => brokenLayer, { shape, replay }))
    assert.instanceOf(again, Linearizability.NotLinearizable)
    const operations = (error: Linearizability.NotLinearizable) =>
      error.verdict.history.map((entry) => `${entry.op._tag} ${entry.outcome._tag}`).sort()
    assert.deepStrictEqual(operations(again), operations(first))
  })

  it("the property with real pauses finds it too", async () => {
    const error = await failureOf(ConcurrentHistories.checkHistoriesWithPauses(() => brokenLayer, { shape }))
    assert.instanceOf(error, Linearizability.NotLinearizable)
    // Real pauses choose the interleaving, so the operation the checker cannot
    // place may be the second delete or a later get; what every counterexample
    // holds is the bug itself: two deletes of one key that both succeeded.
    const succeeded = error.verdict.history.filter((entry) => entry.op._tag === "delete" && entry.outcome._tag === "ok")
    const keys = succeeded.map((entry) => (entry.op as { readonly key: string }).key)
    assert.isTrue(keys.some((key, i) => keys.indexOf(key) !== i), error.message)
  })

  it("the same properties pass on the in-memory store the broken one wraps", async () => {
    const scheduled = await ConcurrentHistories.checkScheduledHistories(() => KeyValueStore.layerMemory, {
      shape,
      replay: { seed }
    })
    assert.strictEqual(scheduled.runs, 200)
    const paused = await ConcurrentHistories.checkHistoriesWithPauses(() => KeyValueStore.layerMemory, { shape, runs: 100 })
    assert.strictEqual(paused.runs, 100)
    assert.isAbove(scheduled.withOverlap + paused.withOverlap, 0, "operations on one key overlapped")
  })
})
