/**
 * The subjects of the buffered-tail table: kvlog's log with
 * `acknowledge: "buffered"`, under `fsync: "never"` and `"interval"`, written
 * by concurrent writer fibers, automatic compaction off so that nothing but
 * the writers and the log's own writer runs.
 */
import * as Effect from "effect/Effect"
import * as path from "node:path"
import { SampleBuffer } from "../stats.ts"
import type { SubjectIdentity } from "./BenchSubject.ts"
import { type KvlogModule, openKvlog } from "./kvlog.ts"

/** Latencies (milliseconds) of every put of one timed window. */
export interface TailsRun {
  readonly elapsedMillis: number
  readonly latenciesMillis: Float64Array
}

/** An open store under a tail measurement. */
export interface TailsStore {
  /** Puts every key once, in one loop (untimed): the index has all its keys before any window. */
  readonly prefill: (keys: ReadonlyArray<string>, value: string) => Promise<void>
  /**
   * Runs `writers` writer fibers until `millis` have passed; writer `w` puts
   * `keys[w]`, `keys[w + writers]`, … round and round, each put once the
   * previous one is acknowledged. The keys are built beforehand, so the
   * writers allocate nothing of their own.
   */
  readonly runWriters: (writers: number, millis: number, keys: ReadonlyArray<string>, value: string) => Promise<TailsRun>
  readonly close: () => Promise<void>
}

/** A store under a tail measurement. */
export interface TailsSubject extends SubjectIdentity {
  readonly open: (workDir: string) => Promise<TailsStore>
}

export const tailsSubjectIds: ReadonlyArray<string> = ["kvlog-log-buffered", "kvlog-log-interval-buffered"]

const bufferedLog = (kvlog: KvlogModule, fsync: "never" | "interval"): TailsSubject => ({
  id: fsync === "never" ? "kvlog-log-buffered" : "kvlog-log-interval-buffered",
  label: `kvlog layerLog ${fsync}, buffered`,
  role: "kvlog",
  description:
    `\`KeyValueStore.layerLog({ path, fsync: "${fsync}", acknowledge: "buffered", compaction: { auto: false } })\`; ` +
    "each writer a fiber doing `yield* store.put(key, value)` over its own share of the prefilled keys, in a loop.",
  open: async (workDir) => {
    const { runtime, store } = await openKvlog(
      kvlog,
      kvlog.layerLog({
        path: path.join(workDir, `kvlog-${fsync}-buffered.log`),
        fsync,
        acknowledge: "buffered",
        compaction: { auto: false }
      })
    )
    // One buffer for every window, made before the first: allocating tens
    // of megabytes inside a window brought a full collection into it.
    let latencies = new SampleBuffer(1)
    return {
      prefill: (keys, value) =>
        runtime.runPromise(Effect.gen(function*() {
          for (let i = 0; i < keys.length; i++) yield* store.put(keys[i]!, value)
        })),
      runWriters: (writers, millis, keys, value) =>
        runtime.runPromise(Effect.gen(function*() {
          // Room for 4 million puts a second: the buffer never grows inside the window.
          const capacity = Math.ceil(millis * 4_000)
          if (latencies.capacity < capacity) latencies = new SampleBuffer(capacity)
          latencies.clear()
          const start = performance.now()
          const end = start + millis
          const writer = (writerIndex: number) =>
            Effect.gen(function*() {
              for (let i = writerIndex; performance.now() < end; i += writers) {
                if (i >= keys.length) i = writerIndex
                const sent = performance.now()
                yield* store.put(keys[i]!, value)
                latencies.push(performance.now() - sent)
              }
            })
          yield* Effect.forEach(Array.from({ length: writers }, (_, i) => i), writer, {
            concurrency: "unbounded",
            discard: true
          })
          const elapsedMillis = performance.now() - start
          return { elapsedMillis, latenciesMillis: latencies.contents().slice() } satisfies TailsRun
        })),
      close: () => runtime.dispose()
    }
  }
})

/** Both buffered policies. */
export const kvlogTailsSubjects = (kvlog: KvlogModule): ReadonlyArray<TailsSubject> => [
  bufferedLog(kvlog, "never"),
  bufferedLog(kvlog, "interval")
]
