/**
 * kvlog's in-memory subjects, measured through its public Effect API:
 * `yield* store.put(...)` / `yield* store.get(...)` in one `Effect.gen`, the
 * way a program pays for them.
 *
 * kvlog is loaded with a dynamic `import()`, so the bench still runs (and
 * reports kvlog as unavailable) while `src/` is mid-change and does not load.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type * as Kvlog from "../../src/index.ts"
import type { BenchSubject, DurableStore, ExpiryStore, ExpirySubject, OpenStore, WriterRun } from "./BenchSubject.ts"

/** kvlog's public module, `KeyValueStore` as exported by `src/index.ts`. */
export type KvlogModule = typeof Kvlog.KeyValueStore

/** kvlog's service, as `yield* KeyValueStore.KeyValueStore` gives it. */
export type KvlogService = Kvlog.KeyValueStore.KeyValueStoreService

/** kvlog's service tag, the identifier a kvlog layer provides. */
export type KvlogTag = Kvlog.KeyValueStore.KeyValueStore

/** kvlog's module, or why it could not be loaded. */
export type KvlogLoad =
  | { readonly _tag: "Loaded"; readonly kvlog: KvlogModule }
  | { readonly _tag: "Unavailable"; readonly reason: string }

let loaded: Promise<KvlogLoad> | undefined

/** Loads `src/index.ts` once. */
export const loadKvlog = (): Promise<KvlogLoad> =>
  loaded ??= import("../../src/index.ts").then(
    (module): KvlogLoad => ({ _tag: "Loaded", kvlog: module.KeyValueStore }),
    (error: unknown): KvlogLoad => ({
      _tag: "Unavailable",
      reason: `src/index.ts does not load: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`
    })
  )

/** A kvlog store built from a layer, with the runtime that owns its scope. */
export interface KvlogHandle {
  readonly runtime: ManagedRuntime.ManagedRuntime<KvlogTag, unknown>
  readonly store: KvlogService
}

/** Builds `layer` (timed by the caller if it wants: replay happens here for a log) and takes the store out of it. */
export const openKvlog = async (kvlog: KvlogModule, layer: Layer.Layer<KvlogTag, unknown>): Promise<KvlogHandle> => {
  const runtime = ManagedRuntime.make(layer)
  const store = await runtime.runPromise(Effect.service(kvlog.KeyValueStore))
  return { runtime, store }
}

/**
 * The operations of the original library's tables on a kvlog store: sequential `yield* store.put`
 * in one `Effect.gen`, or, with `writeConcurrency > 1`, that many fibers
 * sharing the keys (for durable stores, whose sequential put is one disk
 * sync each); reads likewise, with `readConcurrency` (for a store over the
 * network, whose sequential get is one round trip each).
 */
export const kvlogOpenStore = ({ runtime, store }: KvlogHandle, writeConcurrency = 1, readConcurrency = 1): OpenStore => ({
  fill: (keys, values, ttlMillis) =>
    runtime.runPromise(Effect.gen(function*() {
      const start = performance.now()
      if (writeConcurrency > 1) {
        let next = 0
        const writer = Effect.gen(function*() {
          for (let i = next++; i < keys.length; i = next++) {
            yield* store.put(keys[i]!, values[i]!, ttlMillis === undefined ? undefined : { duration: ttlMillis[i]! })
          }
        })
        yield* Effect.all(Array.from({ length: writeConcurrency }, () => writer), {
          concurrency: "unbounded",
          discard: true
        })
      } else if (ttlMillis === undefined) {
        for (let i = 0; i < keys.length; i++) yield* store.put(keys[i]!, values[i]!)
      } else {
        for (let i = 0; i < keys.length; i++) yield* store.put(keys[i]!, values[i]!, { duration: ttlMillis[i]! })
      }
      return performance.now() - start
    })),
  read: (keys, order) =>
    runtime.runPromise(Effect.gen(function*() {
      let checksum = 0
      const start = performance.now()
      if (readConcurrency > 1) {
        let next = 0
        const reader = Effect.gen(function*() {
          for (let j = next++; j < order.length; j = next++) {
            const value = yield* store.get(keys[order[j]!]!)
            checksum += value.length
          }
        })
        yield* Effect.all(Array.from({ length: readConcurrency }, () => reader), { concurrency: "unbounded", discard: true })
      } else {
        for (let j = 0; j < order.length; j++) {
          const value = yield* store.get(keys[order[j]!]!)
          checksum += value.length
        }
      }
      return { elapsedMillis: performance.now() - start, checksum }
    })),
  close: () => runtime.dispose()
})

/** kvlog's `layerMemory`. */
export const kvlogMemory = (kvlog: KvlogModule): BenchSubject => ({
  id: "kvlog-memory",
  label: "kvlog layerMemory",
  role: "kvlog",
  description:
    "`KeyValueStore.layerMemory`; `yield* store.put(key, value)` (with `{ duration }` in the TTL-heavy table) and `yield* store.get(key)` in one `Effect.gen`.",
  open: async () => kvlogOpenStore(await openKvlog(kvlog, kvlog.layerMemory))
})

/**
 * kvlog's `layerMemoryWith({ index: "shared" })`: keys and values as bytes
 * in `SharedArrayBuffer`s, which `process.memoryUsage()` does not count (in
 * `external` or anywhere else): the store reports the index's own shared
 * bytes as `externalBytes`, which the memory columns add, as they add a
 * server's memory.
 */
export const kvlogMemoryShared = (kvlog: KvlogModule): BenchSubject => ({
  id: "kvlog-memory-shared",
  label: "kvlog layerMemory, shared index",
  role: "kvlog",
  description:
    "`KeyValueStore.layerMemoryWith({ index: \"shared\" })`; called like layerMemory. Its memory is off V8's heap, in `SharedArrayBuffer`s: its bytes per key add the index's own count of them.",
  open: async () => {
    const handle = await openKvlog(kvlog, kvlog.layerMemoryWith({ index: "shared" }))
    const { sharedIndexOf } = await import("../../src/internal/store/sharedReader.ts")
    const index = sharedIndexOf(handle.store)
    if (index === undefined) throw new Error("kvlog-memory-shared: the store has no shared index to measure")
    return { ...kvlogOpenStore(handle), externalBytes: async () => index.sharedBytes }
  }
})

/** kvlog's `layerMemoryWith({ onReclaim })`: the reaper reports each reclaimed key with its deadline. */
export const kvlogMemoryExpiry = (kvlog: KvlogModule): ExpirySubject => ({
  id: "kvlog-memory",
  label: "kvlog layerMemory",
  role: "kvlog",
  description:
    "`KeyValueStore.layerMemoryWith({ onReclaim })`: lag = `reclaimedAt − deadline` as the reaper reports them; clock `Date.now()` (Effect's default `Clock`, whole ms).",
  clock: () => Date.now(),
  open: async (onReclaim) => {
    if (typeof kvlog.layerMemoryWith !== "function") {
      return { unavailable: "needs `KeyValueStore.layerMemoryWith({ onReclaim })`" }
    }
    const { runtime, store } = await openKvlog(
      kvlog,
      kvlog.layerMemoryWith({ onReclaim: (key, deadline, reclaimedAt) => onReclaim(key, reclaimedAt - deadline) })
    )
    return {
      put: (key, value, ttlMillis) => runtime.runPromise(Effect.asVoid(store.put(key, value, { duration: ttlMillis }))),
      get: (key) =>
        runtime.runPromise(Effect.match(store.get(key), {
          onFailure: () => undefined,
          onSuccess: (value) => (typeof value === "string" ? value : new TextDecoder().decode(value))
        })),
      close: () => runtime.dispose()
    } satisfies ExpiryStore
  }
})

/**
 * The durable-writes loop on a kvlog store: each writer a fiber doing
 * `yield* store.put(key, value)`, the next put once the previous one is
 * acknowledged, until the window closes.
 */
export const kvlogDurableStore = ({ runtime, store }: KvlogHandle, close: () => Promise<void>): DurableStore => ({
  runWriters: (writers, millis, keyPrefix, value) =>
    runtime.runPromise(Effect.gen(function*() {
      const latenciesMillis: Array<number> = []
      const start = performance.now()
      const end = start + millis
      const writer = (writerIndex: number) =>
        Effect.gen(function*() {
          for (let n = 0; performance.now() < end; n++) {
            const sent = performance.now()
            yield* store.put(`${keyPrefix}${writerIndex}:${n}`, value)
            latenciesMillis.push(performance.now() - sent)
          }
        })
      yield* Effect.forEach(Array.from({ length: writers }, (_, i) => i), writer, {
        concurrency: "unbounded",
        discard: true
      })
      return { elapsedMillis: performance.now() - start, latenciesMillis } satisfies WriterRun
    })),
  close
})
