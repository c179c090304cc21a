/**
 * kvlog's Promise API (`kvlog/promise`) as a subject of the original
 * library's tables: the same in-memory store as `kvlog-memory`, opened with
 * `openMemory()` and driven the way code outside Effect calls it, one
 * `await store.put(...)` / `await store.get(...)` at a time in a plain
 * `async` loop. Beside `kvlog-memory` it shows what a call through a
 * Promise costs.
 *
 * `src/promise.ts` is loaded with a dynamic `import()`, like kvlog itself in
 * `kvlog.ts`, so the bench still runs (and reports this subject as
 * unavailable) while the module is mid-change and does not load.
 */
import type * as KvlogPromise from "../../src/promise.ts"
import type { BenchSubject } from "./BenchSubject.ts"

/** The module `kvlog/promise`, as exported by `src/promise.ts`. */
export type KvlogPromiseModule = typeof KvlogPromise

/** The module, or why it could not be loaded. */
export type KvlogPromiseLoad =
  | { readonly _tag: "Loaded"; readonly kvlogPromise: KvlogPromiseModule }
  | { readonly _tag: "Unavailable"; readonly reason: string }

let loaded: Promise<KvlogPromiseLoad> | undefined

/** Loads `src/promise.ts` once. */
export const loadKvlogPromise = (): Promise<KvlogPromiseLoad> =>
  loaded ??= import("../../src/promise.ts").then(
    (module): KvlogPromiseLoad => ({ _tag: "Loaded", kvlogPromise: module }),
    (error: unknown): KvlogPromiseLoad => ({
      _tag: "Unavailable",
      reason: `src/promise.ts does not load: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`
    })
  )

/** `openMemory()` from `kvlog/promise`. */
export const kvlogPromiseMemory = (kvlogPromise: KvlogPromiseModule): BenchSubject => ({
  id: "kvlog-promise",
  label: "kvlog/promise openMemory",
  role: "kvlog",
  description:
    "`openMemory()` from `kvlog/promise`; `await store.put(key, value)` (with `{ duration }` in the TTL-heavy table) and `await store.get(key)` in a plain `async` loop.",
  open: async () => {
    const store = await kvlogPromise.openMemory()
    return {
      fill: async (keys, values, ttlMillis) => {
        const start = performance.now()
        if (ttlMillis === undefined) {
          for (let i = 0; i < keys.length; i++) await store.put(keys[i]!, values[i]!)
        } else {
          for (let i = 0; i < keys.length; i++) await store.put(keys[i]!, values[i]!, { duration: ttlMillis[i]! })
        }
        return performance.now() - start
      },
      read: async (keys, order) => {
        let checksum = 0
        const start = performance.now()
        for (let j = 0; j < order.length; j++) {
          try {
            checksum += (await store.get(keys[order[j]!]!)).length
          } catch (error) {
            if (!(error instanceof kvlogPromise.KeyNotFound)) throw error
            checksum -= 1
          }
        }
        return { elapsedMillis: performance.now() - start, checksum }
      },
      close: () => store.close()
    }
  }
})
