// An interruption that lands at any point of a lock acquisition (here: at the
// scheduler yield after 2048 ops, placed by padding) must never leave the lock held.
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { ReadWriteLock } from "../src/internal/lock/ReadWriteLock.ts"

it.effect("an interrupted lock acquisition never leaves the lock held", () =>
  Effect.gen(function*() {
    const leaks: Array<string> = []
    for (const mode of ["read", "write"] as const) {
      for (let padding = 990; padding < 1020; padding++) {
        const lock = new ReadWriteLock()
        // `padding` × (flatMap + sync) first, so the fiber's 2048th op (where the
        // scheduler makes it yield) falls at a chosen point of the acquisition.
        let pad: Effect.Effect<void> = Effect.void
        for (let i = 0; i < padding; i++) pad = Effect.flatMap(pad, () => Effect.sync(() => {}))
        const body = mode === "write" ? lock.withWrite(Effect.never) : lock.withRead(Effect.never)
        const fiber = yield* Effect.forkChild(Effect.andThen(pad, body), { startImmediately: true })
        yield* Fiber.interrupt(fiber)
        const state = lock.snapshot()
        if (state.readers !== 0 || state.writer || state.writersWaiting !== 0) {
          leaks.push(`${mode}, padding ${padding}: ${JSON.stringify(state)}`)
        }
      }
    }
    assert.deepStrictEqual(leaks, [])
  }))
