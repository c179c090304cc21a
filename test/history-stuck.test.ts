/**
 * A store history that never finishes fails the check at once, naming the
 * program, the scheduler's seed and the preemption, rather than running into
 * the test's time limit, which says nothing about which history hung.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { KeyValueStore } from "../src/index.ts"
import { checkStoreHistories } from "../src/testing/ConcurrentHistories.ts"

/** layerMemory, except that a delete of "b" never returns: every history begins by deleting it. */
const hangingLayer = () =>
  Layer.effect(
    KeyValueStore.KeyValueStore,
    Effect.map(KeyValueStore.make(), (store): KeyValueStore.KeyValueStoreService => ({
      ...store,
      delete: (key) => (key === "b" ? Effect.never : store.delete(key))
    }))
  )

describe("a store history that never finishes", () => {
  it("fails the check within its deadline, with the program, seed and preemption", async () => {
    const started = performance.now()
    const failure = await checkStoreHistories(hangingLayer, 20, { stuckAfterMillis: 300 }).then(
      () => undefined,
      (error: unknown) => error
    )
    assert.instanceOf(failure, Error)
    const message = `${(failure as Error).message}\n${String(((failure as Error).cause as Error | undefined)?.message)}`
    assert.match(message, /a history did not finish within 300 ms \(preemption every \w+ steps, scheduler seed -?\d+\): \S/)
    assert.isBelow(performance.now() - started, 20_000, "one deadline, not one per run fast-check made to shrink")
  })

  it("a store that finishes every history passes as before", async () => {
    const totals = await checkStoreHistories(() => KeyValueStore.layerMemory, 20, { stuckAfterMillis: 30_000 })
    assert.strictEqual(totals.histories, 20)
  })
})
