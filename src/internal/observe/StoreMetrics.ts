/**
 * A store's metrics. The hot paths only bump plain numbers here (a `get`
 * costs one increment more); Effect's `Metric` series are registered once,
 * at open, with hooks that read these numbers whenever the metrics are read
 * (`Metric.value`, `Metric.snapshot`, an exporter). Pushing each operation
 * through `Metric.update` instead would look the series up in the registry
 * every time, several times the cost of the operation it counts.
 */
import type * as Context from "effect/Context"
import * as Metric from "effect/Metric"

/** Buckets, in milliseconds, of the reclaim lag, fsync latency and compaction pause histograms. */
export const millisBoundaries: ReadonlyArray<number> = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000]

/** Buckets, in records, of the batch size histogram. */
export const batchBoundaries: ReadonlyArray<number> = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536]

/** A histogram kept in plain numbers, read as Effect's `HistogramState`. */
export class LiveHistogram {
  readonly boundaries: ReadonlyArray<number>
  private readonly counts: Float64Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE

  constructor(boundaries: ReadonlyArray<number>) {
    this.boundaries = boundaries
    this.counts = new Float64Array(boundaries.length)
  }

  observe(value: number): void {
    const boundaries = this.boundaries
    // Few buckets, and observations are per batch or per reclaimed entry, not per read: a scan is enough.
    for (let i = 0; i < boundaries.length; i++) {
      if (value <= boundaries[i]) {
        this.counts[i]++
        break
      }
    }
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }

  state(): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulative = 0
    for (let i = 0; i < this.boundaries.length; i++) {
      cumulative += this.counts[i]
      buckets.push([this.boundaries[i], cumulative])
    }
    return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
  }
}

/** What a store counts as it runs. */
export class StoreCounters {
  hits = 0
  misses = 0
  puts = 0
  deletes = 0
  clears = 0
  compactions = 0
  readonly reclaimLagMillis = new LiveHistogram(millisBoundaries)
  readonly batchRecords = new LiveHistogram(batchBoundaries)
  readonly fsyncMillis = new LiveHistogram(millisBoundaries)
  readonly compactionPauseMillis = new LiveHistogram(millisBoundaries)
}

/** The store's metric series, each carrying the attribute `store` = the store's name. */
export const storeMetrics = (name: string) => {
  const attributes = { store: name }
  const counter = (id: string, description: string) =>
    Metric.counter(id, { description, attributes, incremental: true })
  const histogram = (id: string, description: string, boundaries: ReadonlyArray<number>) =>
    Metric.histogram(id, { description, attributes, boundaries })
  return {
    hits: counter("kvlog_get_hits", "gets that found a live key"),
    misses: counter("kvlog_get_misses", "gets that found no live key (absent, deleted or expired)"),
    puts: counter("kvlog_puts", "puts applied to the store (for a log: made durable under its fsync policy)"),
    deletes: counter("kvlog_deletes", "deletes that removed a live key"),
    clears: counter("kvlog_clears", "clear operations"),
    expirations: counter("kvlog_expirations", "expired entries reclaimed by the reaper"),
    reclaimLag: histogram(
      "kvlog_reclaim_lag_ms",
      "how long after its deadline the reaper reclaimed an expired entry, in milliseconds",
      millisBoundaries
    ),
    liveKeys: Metric.gauge("kvlog_live_keys", { description: "live keys (expired ones not counted)", attributes }),
    logBytes: Metric.gauge("kvlog_log_bytes", { description: "bytes of whole batches in the log file", attributes }),
    logRecords: Metric.gauge("kvlog_log_records", { description: "records in the log file, live or superseded", attributes }),
    batchRecords: histogram("kvlog_log_batch_records", "records per batch written to the log", batchBoundaries),
    fsyncLatency: histogram("kvlog_log_fsync_ms", "fdatasync calls of the log, in milliseconds", millisBoundaries),
    compactions: counter("kvlog_log_compactions", "log compactions completed, manual or automatic"),
    compactionPause: histogram(
      "kvlog_log_compaction_pause_ms",
      "the longest stretch each compaction made writes wait, in milliseconds",
      millisBoundaries
    )
  } as const
}

export type StoreMetricSet = ReturnType<typeof storeMetrics>

/** What the gauges read, besides the counters. */
export interface GaugeSources {
  readonly liveKeys: () => number
  readonly expirations: () => number
  readonly log?: { readonly bytes: () => number; readonly records: () => number } | undefined
}

/**
 * Registers the store's series in the registry of `context`; returns what
 * removes them again, when the store closes. The log's series are
 * registered only for a log-backed store.
 */
export const registerStoreMetrics = (
  context: Context.Context<never>,
  name: string,
  counters: StoreCounters,
  sources: GaugeSources
): () => void => {
  const metrics = storeMetrics(name)
  const registrations: Array<Metric.Registration> = []
  const ignore = () => {}
  const register = <Input, State>(metric: Metric.Metric<Input, State>, get: () => State) => {
    registrations.push(Metric.registerUnsafe(metric, context, { get, update: ignore, modify: ignore }))
  }
  const counter = (count: () => number) => () => ({ count: count(), incremental: true })
  register(metrics.hits, counter(() => counters.hits))
  register(metrics.misses, counter(() => counters.misses))
  register(metrics.puts, counter(() => counters.puts))
  register(metrics.deletes, counter(() => counters.deletes))
  register(metrics.clears, counter(() => counters.clears))
  register(metrics.expirations, counter(sources.expirations))
  register(metrics.reclaimLag, () => counters.reclaimLagMillis.state())
  register(metrics.liveKeys, () => ({ value: sources.liveKeys() }))
  const log = sources.log
  if (log !== undefined) {
    register(metrics.logBytes, () => ({ value: log.bytes() }))
    register(metrics.logRecords, () => ({ value: log.records() }))
    register(metrics.batchRecords, () => counters.batchRecords.state())
    register(metrics.fsyncLatency, () => counters.fsyncMillis.state())
    register(metrics.compactions, counter(() => counters.compactions))
    register(metrics.compactionPause, () => counters.compactionPauseMillis.state())
  }
  return () => {
    for (const registration of registrations) registration.remove()
  }
}
