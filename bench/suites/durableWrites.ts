/**
 * Durable writes for one subject: after a short warm-up, timed windows at
 * each writer count, every write acknowledged only once on disk; throughput
 * and latency percentiles per window, medians over the repetitions.
 */
import type { DurableJob, DurableResult, DurableWriters } from "../jobs.ts"
import { median, percentileOfSorted, sortedCopy } from "../stats.ts"
import type { DurableSubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** Runs a durable-writes job. */
export const runDurableJob = async (job: DurableJob, subject: DurableSubject): Promise<DurableResult> => {
  const value = "v".repeat(job.valueBytes)
  const store = await subject.open(job.workDir)
  try {
    await store.runWriters(1, 200, "warm-1:", value)
    await store.runWriters(Math.max(...job.writerCounts), 200, "warm-n:", value)
    const byWriters: Array<DurableWriters> = []
    for (const writers of job.writerCounts) {
      const windows: Array<DurableWriters> = []
      for (let rep = 1; rep <= job.reps; rep++) {
        const run = await store.runWriters(writers, job.windowMillis, `w${writers}r${rep}:`, value)
        const sorted = sortedCopy(run.latenciesMillis)
        const window: DurableWriters = {
          writers,
          writesPerSecond: (sorted.length * 1000) / run.elapsedMillis,
          p50Micros: percentileOfSorted(sorted, 50) * 1000,
          p99Micros: percentileOfSorted(sorted, 99) * 1000,
          writes: sorted.length
        }
        windows.push(window)
        progress(
          `${writers} writer(s), rep ${rep}/${job.reps}: ${fmt(window.writesPerSecond)} writes/s, ` +
            `p50 ${fmt(window.p50Micros)} µs, p99 ${fmt(window.p99Micros)} µs`
        )
      }
      const medianThroughput = median(windows.map((window) => window.writesPerSecond))
      // The percentiles of the window whose throughput is closest to the median.
      const typical = windows.reduce((best, window) =>
        Math.abs(window.writesPerSecond - medianThroughput) < Math.abs(best.writesPerSecond - medianThroughput)
          ? window
          : best
      )
      byWriters.push({ ...typical, writesPerSecond: medianThroughput })
    }
    return { suite: "durable", byWriters }
  } finally {
    await store.close()
  }
}
