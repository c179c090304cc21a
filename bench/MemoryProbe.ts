/**
 * Memory measurements for a child process started with `--expose-gc`.
 *
 * A store's footprint is the growth of the JavaScript heap plus off-heap
 * buffers (typed arrays live there) between two forced full collections.
 * RSS is reported beside it, as the operating system sees the process.
 */

/** A snapshot of the process's memory after a forced full collection. */
export interface MemorySnapshot {
  /** V8 heap in use plus memory held outside it by typed arrays and buffers, in bytes. */
  readonly liveBytes: number
  /** Resident set size, in bytes. */
  readonly rssBytes: number
}

/** Runs two full garbage collections (the second collects what the first's finalizers freed). */
export const forceFullGc = (): void => {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error("the bench child must run with --expose-gc")
  gc()
  gc()
}

/** Collects garbage, then measures. */
export const snapshot = (): MemorySnapshot => {
  forceFullGc()
  const usage = process.memoryUsage()
  return { liveBytes: usage.heapUsed + usage.external, rssBytes: usage.rss }
}

/** Bytes per key between two snapshots. */
export const bytesPerKey = (before: MemorySnapshot, after: MemorySnapshot, keys: number) => ({
  liveBytesPerKey: (after.liveBytes - before.liveBytes) / keys,
  rssBytesPerKey: (after.rssBytes - before.rssBytes) / keys
})

/** The most memory the process has held resident so far, in bytes. */
export const peakRssBytes = (): number => process.resourceUsage().maxRSS * 1024
