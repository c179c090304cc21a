/**
 * kvlog's log-backed subjects: `layerLog` with `fsync: "never"` and
 * `"always"` in the original library's tables, `"always"` in the durable-writes table,
 * replay on open, and `makeLog` compacted under load with either policy.
 *
 * The registry adds them only when `KeyValueStore.layerLog` exists at run
 * time (`kvlogLogLayer`), so the bench ran before the log landed and still
 * runs on a checkout without it.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Layer from "effect/Layer"
import * as path from "node:path"
import { SampleBuffer } from "../stats.ts"
import type {
  BenchSubject,
  CompactionRun,
  CompactionSubject,
  DurableSubject,
  ReplaySubject
} from "./BenchSubject.ts"
import {
  kvlogDurableStore,
  type KvlogModule,
  type KvlogService,
  type KvlogTag,
  kvlogOpenStore,
  openKvlog
} from "./kvlog.ts"

/** The options of `layerLog` the bench sets. */
export interface KvlogLogOptions {
  readonly path: string
  readonly index?: "heap" | "shared"
  readonly fsync: "always" | "interval" | "never"
  readonly acknowledge?: "written" | "buffered"
}

/** A log-backed kvlog layer. */
export type KvlogLogLayer = (options: KvlogLogOptions) => Layer.Layer<KvlogTag, unknown>

/** kvlog's `layerLog`, or `undefined` on a kvlog without it. */
export const kvlogLogLayer = (kvlog: KvlogModule): KvlogLogLayer | undefined =>
  "layerLog" in kvlog && typeof kvlog.layerLog === "function" ? (options) => kvlog.layerLog(options) : undefined

/** Concurrent fibers filling a `"always"` store in the original library's write table (one fiber would measure one `fdatasync` per put). */
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

/**
 * `layerLog` with `fsync: "never"` and `acknowledge: "buffered"`, as a
 * seed-table subject: a put is acknowledged once in the process's buffer,
 * not once written to the OS.
 */
export const kvlogBufferedSubject = (kvlog: KvlogModule, layerLog: KvlogLogLayer): BenchSubject => ({
  id: "kvlog-log-buffered",
  label: "kvlog layerLog never, buffered",
  role: "kvlog",
  description:
    "`KeyValueStore.layerLog({ path, fsync: \"never\", acknowledge: \"buffered\" })` on a fresh file under the OS temp dir; called like layerMemory.",
  open: async ({ workDir }) =>
    kvlogOpenStore(
      await openKvlog(
        kvlog,
        layerLog({ path: path.join(workDir, `kvlog-buffered-${Date.now()}.log`), fsync: "never", acknowledge: "buffered" })
      ),
      1
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
    const handle = await openKvlog(kvlog, layerLog({ path: path.join(workDir, "kvlog-always.log"), fsync: "always" }))
    return kvlogDurableStore(handle, () => handle.runtime.dispose())
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

/** The same replay into the shared index: records go from the log to the arena as bytes. */
export const kvlogReplayShared = (kvlog: KvlogModule, layerLog: KvlogLogLayer): ReplaySubject => ({
  ...kvlogReplay(kvlog, layerLog),
  id: "kvlog-log-shared",
  label: "kvlog layerLog, shared index (replay on open)",
  description:
    "written with `fsync: \"never\"` and closed; timed: building `layerLog({ path, fsync: \"never\", index: \"shared\" })` (replay, no string made per record) and `size`.",
  openAndScan: async (workDir) => {
    const { runtime, store } = await openKvlog(
      kvlog,
      layerLog({ path: path.join(workDir, "kvlog.log"), fsync: "never", index: "shared" })
    )
    const records = await runtime.runPromise(store.size)
    return { records, close: () => runtime.dispose() }
  }
})

/**
 * glibc's malloc asking for transparent huge pages (`madvise`) for the large
 * blocks it maps, the shared index's segments among them. It is read once, as
 * the process starts: hence a child of its own.
 */
export const hugePagesEnv: Readonly<Record<string, string>> = { GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" }

/**
 * The shared index's replay again, in a process started with transparent huge
 * pages: on this VM the first write to each fresh 4 KiB page costs a page
 * fault dear enough to cap replay into fresh memory near 3M records/s, and a
 * 2 MiB page takes one fault where 4 KiB pages take 512.
 */
export const kvlogReplaySharedHugePages = (kvlog: KvlogModule, layerLog: KvlogLogLayer): ReplaySubject => {
  const shared = kvlogReplayShared(kvlog, layerLog)
  return {
    ...shared,
    id: "kvlog-log-shared-hugepages",
    label: "kvlog layerLog, shared index, huge pages (replay on open)",
    description: `${shared.description} In a child process started with \`GLIBC_TUNABLES=glibc.malloc.hugetlb=1\` (transparent huge pages for malloc's large blocks).`,
    childEnv: hugePagesEnv,
    openAndScan: (workDir) => {
      // Run without the variable (in the runner's process, or by hand) it would measure the row above under this row's name.
      if (process.env["GLIBC_TUNABLES"] !== hugePagesEnv["GLIBC_TUNABLES"]) {
        return Promise.reject(new Error(`needs a process started with GLIBC_TUNABLES=${hugePagesEnv["GLIBC_TUNABLES"]}`))
      }
      return shared.openAndScan(workDir)
    }
  }
}

/** A store with automatic compaction off, built by `makeLog` in the scope of `use`. */
const withLog = <A>(
  kvlog: KvlogModule,
  options: { readonly path: string; readonly fsync: "always" | "never" },
  use: (store: KvlogService) => Effect.Effect<A, unknown>
): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(
    kvlog.makeLog({ ...options, compaction: { auto: false } }),
    use
  )))

/** `store.compact` on a ~2-records-per-key log while writer fibers keep putting, with `fsync` as given. */
export const kvlogCompaction = (kvlog: KvlogModule, fsync: "always" | "never"): CompactionSubject => ({
  id: `kvlog-log-${fsync}`,
  label: `kvlog makeLog ${fsync}`,
  role: "kvlog",
  description: `\`KeyValueStore.makeLog({ path, fsync: "${fsync}", compaction: { auto: false } })\` on a copy of the prepared log; writers are fibers doing \`yield* store.put(key, value)\` in a loop, and \`yield* store.compact\` runs in another fiber beside them.`,
  // Every policy compacts a log prepared the same way: with "never", one batch per put.
  preparedLogKind: "kvlog-never",
  prepare: (logPath, keys, overwrites, value) =>
    withLog(kvlog, { path: logPath, fsync: "never" }, (store) =>
      Effect.gen(function*() {
        const overwrite = `${value.slice(1)}!`
        for (let i = 0; i < keys.length; i++) yield* store.put(keys[i]!, value)
        for (let i = 0; i < overwrites; i++) yield* store.put(keys[i % keys.length]!, overwrite)
      })),
  measure: (logPath, { keys, value, writers, warmupMillis, beforeMillis, giveUpAfterMillis }) =>
    withLog(kvlog, { path: logPath, fsync }, (store) =>
      Effect.gen(function*() {
        // Replay leaves garbage behind: collect it now rather than in the middle of a phase.
        ;(globalThis as { gc?: () => void }).gc?.()
        const sentAt = new SampleBuffer()
        const latencyMillis = new SampleBuffer()
        let stopping = false
        const writer = (writerIndex: number) =>
          Effect.gen(function*() {
            // xorshift32, a different stream per writer.
            let state = (Math.imul(writerIndex + 1, 2654435761) >>> 0) || 1
            while (!stopping) {
              state ^= state << 13
              state ^= state >>> 17
              state ^= state << 5
              state >>>= 0
              const key = keys[state % keys.length]!
              const sent = performance.now()
              yield* store.put(key, value)
              latencyMillis.push(performance.now() - sent)
              sentAt.push(sent)
            }
          })
        const started = performance.now()
        const logNow = Effect.map(store.stats, (stats) => ({
          records: stats.log?.records ?? Number.NaN,
          bytes: stats.log?.fileBytes ?? Number.NaN
        }))
        const compaction = Effect.gen(function*() {
          yield* Effect.sleep(warmupMillis + beforeMillis)
          const logBefore = yield* logNow
          const compactStart = performance.now()
          const finished = yield* Effect.timeoutOption(store.compact, giveUpAfterMillis)
          const compactEnd = performance.now()
          stopping = true
          return { logBefore, compactStart, compactEnd, finished: Option.isSome(finished) }
        })
        const [{ logBefore, compactStart, compactEnd, finished }] = yield* Effect.all([
          compaction,
          Effect.forEach(Array.from({ length: writers }, (_, i) => i), writer, { concurrency: "unbounded", discard: true })
        ], { concurrency: 2 })
        const report = finished ? (yield* store.stats).log?.lastCompaction : undefined
        if (finished && report === undefined) {
          return yield* Effect.die(new Error("compact returned, but stats.log.lastCompaction is empty"))
        }
        const logAfter = yield* logNow
        const liveKeys = yield* store.size
        return {
          report,
          logBefore,
          logAfter,
          baselineStart: started + warmupMillis,
          compactStart,
          compactEnd,
          sentAt: sentAt.contents(),
          latencyMillis: latencyMillis.contents(),
          liveKeys
        } satisfies CompactionRun
      }))
})
