/**
 * The tail of puts acknowledged at once (`acknowledge: "buffered"`): with
 * nothing else running, `writers` fibers each put a key, wait for the
 * acknowledgement and put the next, for timed windows, over a key set put
 * once beforehand (so that the index does not grow during a window: its
 * growth is a stall of its own, which the original library's tables
 * measure as part of a fill). Such a put waits for
 * no disk, so its latency is how long the main thread was held elsewhere:
 * by the log writer's `write()` (which the kernel may throttle), or by a
 * garbage collection, reported beside it.
 */
import { PerformanceObserver } from "node:perf_hooks"
import { makeKeys } from "../dataset.ts"
import type { TailsJob, TailsResult, TailsWindow } from "../jobs.ts"
import { median, percentileOfSorted, sortedCopy } from "../stats.ts"
import type { TailsSubject } from "../subjects/kvlogTails.ts"
import { fmt, progress } from "./progress.ts"

/** Keys the writers share: 4096 per writer at 64 writers. */
export const tailsKeys = 262_144

/** Runs a tails job. */
export const runTailsJob = async (job: TailsJob, subject: TailsSubject): Promise<TailsResult> => {
  const value = "v".repeat(job.valueBytes)
  const keys = makeKeys(0, tailsKeys)
  const collections: Array<{ readonly start: number; readonly millis: number }> = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) collections.push({ start: entry.startTime, millis: entry.duration })
  })
  observer.observe({ entryTypes: ["gc"] })
  const store = await subject.open(job.workDir)
  const windows: Array<TailsWindow> = []
  try {
    await store.prefill(keys, value)
    // A warm-up window as long as the measured ones (the latency buffer is sized then, not inside a window).
    await store.runWriters(job.writers, job.windowMillis, keys, value)
    for (let rep = 1; rep <= job.reps; rep++) {
      const from = performance.now()
      const run = await store.runWriters(job.writers, job.windowMillis, keys, value)
      const to = performance.now()
      await new Promise((resolve) => setImmediate(resolve))
      const sorted = sortedCopy(run.latenciesMillis)
      const window: TailsWindow = {
        writesPerSecond: (sorted.length * 1000) / run.elapsedMillis,
        p50Micros: percentileOfSorted(sorted, 50) * 1000,
        p99Micros: percentileOfSorted(sorted, 99) * 1000,
        maxMicros: (sorted.at(-1) ?? Number.NaN) * 1000,
        longestGcMillis: Math.max(0, ...collections.filter((gc) => gc.start >= from && gc.start < to).map((gc) => gc.millis))
      }
      windows.push(window)
      progress(
        `${job.writers} writers, window ${rep}/${job.reps}: ${fmt(window.writesPerSecond)} puts/s, p50 ${
          fmt(window.p50Micros)
        } µs, p99 ${fmt(window.p99Micros)} µs, max ${fmt(window.maxMicros / 1000)} ms (longest GC ${
          fmt(window.longestGcMillis)
        } ms)`
      )
    }
  } finally {
    observer.disconnect()
    await store.close()
  }
  const of = (field: keyof TailsWindow) => median(windows.map((w) => w[field]))
  return {
    suite: "tails",
    writers: job.writers,
    writesPerSecond: of("writesPerSecond"),
    p50Micros: of("p50Micros"),
    p99Micros: of("p99Micros"),
    maxMicros: of("maxMicros"),
    longestGcMillis: of("longestGcMillis"),
    worstMaxMicros: Math.max(...windows.map((w) => w.maxMicros)),
    windows
  }
}
