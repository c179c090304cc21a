/**
 * kvlog's log-backed subjects: `layerLog` with `fsync: "never"` and
 * `"always"` in the seed's tables, `"always"` in the durable-writes table,
 * and replay on open.
 *
 * The registry adds them only when `KeyValueStore.layerLog` exists at run
 * time (`kvlogLogLayer`), so the bench ran before the log landed and still
 * runs on a checkout without it.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as path from "node:path"
import type { BenchSubject, DurableSubject, ReplaySubject, WriterRun } from "./BenchSubject.ts"
import { type KvlogModule, type KvlogTag, kvlogOpenStore, openKvlog } from "./kvlog.ts"

/** The options of `layerLog` the bench sets. */
export interface KvlogLogOptions {
  readonly path: string
  readonly fsync: "always" | "interval" | "never"
}

/** A log-backed kvlog layer. */
export type KvlogLogLayer = (options: KvlogLogOptions) => Layer.Layer<KvlogTag, unknown>

/** kvlog's `layerLog`, or `undefined` on a kvlog without it. */
export const kvlogLogLayer = (kvlog: KvlogModule): KvlogLogLayer | undefined =>
  "layerLog" in kvlog && typeof kvlog.layerLog === "function" ? (options) => kvlog.layerLog(options) : undefined

/** Concurrent fibers filling a `"always"` store in the seed's write table (one fiber would measure one `fdatasync` per put). */
export const alwaysFillConcurrency = 256

/** `layerLog` with `fsync: "never"` or `"always"`, as a seed-table subject. */
export const kvlogLogSubject = (kvlog: KvlogModule, layerLog: KvlogLogLayer, fsync: "never" | "always"): BenchSubject => ({
  id: `kvlog-log-${fsync}`,
  label: `kvlog layerLog ${fsync}`,
  role: "kvlog",
  description: fsync === "never"
    ? "`KeyValueStore.layerLog({ path, fsync: \"never\" })` on a fresh file under the OS temp dir; called like layerMemory."
    : `\`KeyValueStore.layerLog({ path, fsync: "always" })\`; writes from ${alwaysFillConcurrency} fibers sharing the keys (µs/op = elapsed ÷ N), reads as layerMemory.`,
  open: async ({ workDir }) =>
    kvlogOpenStore(
      await openKvlog(kvlog, layerLog({ path: path.join(workDir, `kvlog-${fsync}-${Date.now()}.log`), fsync })),
      fsync === "always" ? alwaysFillConcurrency : 1
    )
})

/** `layerLog` with `fsync: "always"` as a durable-writes subject: writers are fibers. */
export const kvlogAlwaysDurable = (kvlog: KvlogModule, layerLog: KvlogLogLayer): DurableSubject => ({
  id: "kvlog-log-always",
  label: "kvlog layerLog always",
  role: "kvlog",
  description: "`layerLog({ path, fsync: \"always\" })`; each writer a fiber doing `yield* store.put(key, value)` in a loop.",
  durability: "group commit: one write + `fdatasync` per batch of pending puts, applied to the index once synced",
  open: async (workDir) => {
    const { runtime, store } = await openKvlog(kvlog, layerLog({ path: path.join(workDir, "kvlog-always.log"), fsync: "always" }))
    return {
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
      close: () => runtime.dispose()
    }
  }
})

/** Replaying a kvlog log on open: the layer is built (the log replayed), then `size` counts the keys. */
export const kvlogReplay = (kvlog: KvlogModule, layerLog: KvlogLogLayer): ReplaySubject => ({
  id: "kvlog-log",
  label: "kvlog layerLog (replay on open)",
  role: "kvlog",
  description: "written with `fsync: \"never\"` and closed; timed: building `layerLog({ path, fsync: \"never\" })` (replay) and `size`.",
  write: async (workDir, records) => {
    const { runtime, store } = await openKvlog(kvlog, layerLog({ path: path.join(workDir, "kvlog.log"), fsync: "never" }))
    await runtime.runPromise(Effect.gen(function*() {
      for (let i = 0; i < records; i++) yield* store.put(`key${i}`, `value${i}`)
    }))
    await runtime.dispose()
  },
  openAndScan: async (workDir) => {
    const { runtime, store } = await openKvlog(kvlog, layerLog({ path: path.join(workDir, "kvlog.log"), fsync: "never" }))
    const records = await runtime.runPromise(store.size)
    return { records, close: () => runtime.dispose() }
  }
})
