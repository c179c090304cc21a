/**
 * The floor of the per-operation table: a raw `Map` read and written inside
 * the same `Effect.gen` loop as the Effect stores, each operation one
 * `yield* Effect.succeed(…)`. The cheapest effect there is to yield, around
 * the same work a `Map` does: what any store measured through that loop
 * pays before it does anything of its own.
 */
import * as Effect from "effect/Effect"
import type { BenchSubject, OpenStore } from "./BenchSubject.ts"

export const yieldFloor: BenchSubject = {
  id: "yield-floor",
  label: "`yield*` floor (Map in Effect.gen)",
  role: "floor",
  description:
    "a raw `Map` inside the Effect stores' loop: `yield* Effect.succeed(map.set(key, value))` / `yield* Effect.succeed(map.get(key))` in one `Effect.gen` (the value is computed when the effect is built, so no effect runs lazily).",
  open: () => {
    const map = new Map<string, string>()
    return Promise.resolve<OpenStore>({
      fill: (keys, values) =>
        Effect.runPromise(Effect.gen(function*() {
          const start = performance.now()
          for (let i = 0; i < keys.length; i++) yield* Effect.succeed(map.set(keys[i]!, values[i]!))
          return performance.now() - start
        })),
      read: (keys, order) =>
        Effect.runPromise(Effect.gen(function*() {
          let checksum = 0
          const start = performance.now()
          for (let j = 0; j < order.length; j++) {
            const value = yield* Effect.succeed(map.get(keys[order[j]!]!))
            checksum += value === undefined ? -1 : value.length
          }
          return { elapsedMillis: performance.now() - start, checksum }
        })),
      close: () => {
        map.clear()
        return Promise.resolve()
      }
    })
  }
}
