/**
 * Compaction under load for one subject: how long compacting a 1M-key log
 * takes, and the longest pause it imposes on writers.
 *
 * A log of N puts plus as many overwrites (~2 records per key) is prepared
 * once per run (`fsync: "never"`), untimed, and kept for every subject that
 * prepares the same log. Each repetition copies it to a fresh path, opens
 * it with the subject's policy (replay, untimed), starts the writers (each
 * puts a random existing key, waits for the acknowledgement, puts the
 * next), lets them run through a warm-up and a baseline phase, then compacts while they go on, and stops them once
 * `compact` has returned. Two views of the pause:
 *
 * - inside: the store's `longestPauseMillis` (the longest time it held writes
 *   back for the compaction);
 * - outside: the latency of every put sent before the compaction (baseline)
 *   and during it, and the writes acknowledged per second in each phase.
 *
 * Every figure is the median over the repetitions; the worst pause and the
 * longest put during a compaction are kept too. A compaction still running
 * after the job's `giveUpAfterMillis` is interrupted and reported as
 * unfinished, with what the writers saw meanwhile; the job stops there.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { PerformanceObserver } from "node:perf_hooks"
import { makeKeys } from "../dataset.ts"
import type { CompactionJob, CompactionRep, CompactionResult, WriterPhase } from "../jobs.ts"
import { median, percentileOfSorted } from "../stats.ts"
import type { CompactionRun, CompactionSubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** Writers run this long after the store opens before the baseline phase counts. */
const warmupMillis = 300

/** What the writers saw between `from` and `to`: puts sent then (latency), puts acknowledged then (throughput). */
const phase = (run: CompactionRun, from: number, to: number): WriterPhase => {
  const latencies: Array<number> = []
  let acknowledged = 0
  for (let i = 0; i < run.sentAt.length; i++) {
    const sent = run.sentAt[i]!
    const done = sent + run.latencyMillis[i]!
    if (sent >= from && sent < to) latencies.push(run.latencyMillis[i]!)
    if (done >= from && done < to) acknowledged++
  }
  const sorted = Float64Array.from(latencies).sort()
  return {
    writesPerSecond: (acknowledged * 1000) / (to - from),
    p50Micros: percentileOfSorted(sorted, 50) * 1000,
    p99Micros: percentileOfSorted(sorted, 99) * 1000,
    maxMicros: (sorted.at(-1) ?? Number.NaN) * 1000,
    writes: acknowledged
  }
}

const medianOf = <K extends string>(
  items: ReadonlyArray<Readonly<Record<K, number>>>,
  fields: ReadonlyArray<K>
): Record<K, number> =>
  Object.fromEntries(fields.map((field) => [field, median(items.map((item) => item[field]))])) as Record<K, number>

const phaseFields = ["writesPerSecond", "p50Micros", "p99Micros", "maxMicros", "writes"] as const

const describePhase = (name: string, p: WriterPhase) =>
  `${name} ${fmt(p.writesPerSecond)} writes/s, p50 ${fmt(p.p50Micros)} µs, p99 ${fmt(p.p99Micros)} µs, max ${
    fmt(p.maxMicros / 1000)
  } ms`

/** Runs a compaction job. */
export const runCompactionJob = async (job: CompactionJob, subject: CompactionSubject): Promise<CompactionResult> => {
  const keys = makeKeys(0, job.keys)
  const value = "v".repeat(job.valueBytes)
  const prepared = path.join(
    job.preparedLogDir,
    `${subject.preparedLogKind}-${job.keys}-${job.overwrites}-${job.valueBytes}.log`
  )
  if (fs.existsSync(prepared)) {
    progress(`compacting copies of the log an earlier job prepared (${fmt(fs.statSync(prepared).size / 1e6)} MB)`)
  } else {
    const prepareStart = performance.now()
    // Renamed once whole, so a job killed while preparing leaves nothing another would take for a prepared log.
    const partial = path.join(job.workDir, "prepared.log")
    await subject.prepare(partial, keys, job.overwrites, value)
    fs.renameSync(partial, prepared)
    progress(
      `prepared ${job.keys + job.overwrites} records (${fmt(fs.statSync(prepared).size / 1e6)} MB) in ${
        fmt((performance.now() - prepareStart) / 1000)
      } s`
    )
  }
  const reps: Array<CompactionRep> = []
  for (let rep = 1; rep <= job.reps; rep++) {
    const logPath = path.join(job.workDir, `rep${rep}.log`)
    fs.copyFileSync(prepared, logPath)
    const collections: Array<{ readonly start: number; readonly millis: number }> = []
    const gcObserver = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) collections.push({ start: entry.startTime, millis: entry.duration })
    })
    gcObserver.observe({ entryTypes: ["gc"] })
    const run = await subject.measure(logPath, {
      keys,
      value,
      writers: job.writers,
      warmupMillis,
      beforeMillis: job.beforeMillis,
      giveUpAfterMillis: job.giveUpAfterMillis
    })
    // GC entries arrive on a later turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve))
    gcObserver.disconnect()
    const longestGcMillis = Math.max(
      0,
      ...collections.filter((gc) => gc.start >= run.compactStart && gc.start < run.compactEnd).map((gc) => gc.millis)
    )
    fs.rmSync(logPath, { force: true })
    if (run.liveKeys !== job.keys) {
      throw new Error(`${subject.id} holds ${run.liveKeys} keys after compacting, expected ${job.keys}`)
    }
    const measured: CompactionRep = {
      finished: run.report !== undefined,
      ...(run.report ?? {
        recordsBefore: run.logBefore.records,
        recordsAfter: run.logAfter.records,
        bytesBefore: run.logBefore.bytes,
        bytesAfter: run.logAfter.bytes,
        durationMillis: run.compactEnd - run.compactStart,
        longestPauseMillis: 0
      }),
      longestGcMillis,
      before: phase(run, run.baselineStart, run.compactStart),
      during: phase(run, run.compactStart, run.compactEnd),
      liveKeys: run.liveKeys
    }
    reps.push(measured)
    progress(
      `rep ${rep}/${job.reps}: ${
        measured.finished
          ? `${measured.recordsBefore} → ${measured.recordsAfter} records in ${fmt(measured.durationMillis)} ms, ` +
            `longest pause ${fmt(measured.longestPauseMillis)} ms (longest GC meanwhile ${fmt(longestGcMillis)} ms)`
          : `NOT FINISHED after ${fmt(measured.durationMillis)} ms (interrupted); the log grew from ${measured.recordsBefore} ` +
            `to ${measured.recordsAfter} records meanwhile`
      }; ${describePhase("before:", measured.before)}; ${describePhase("during:", measured.during)}`
    )
    ;(globalThis as { gc?: () => void }).gc?.()
    if (!measured.finished) break
  }
  const unfinished = reps.filter((r) => !r.finished).length
  const scalars = medianOf(reps, [
    "recordsBefore",
    "recordsAfter",
    "bytesBefore",
    "bytesAfter",
    "durationMillis",
    "longestPauseMillis",
    "longestGcMillis",
    "liveKeys"
  ])
  return {
    suite: "compaction",
    keys: job.keys,
    writers: job.writers,
    giveUpAfterMillis: job.giveUpAfterMillis,
    unfinished,
    median: unfinished > 0 ? reps.at(-1)! : {
      ...scalars,
      finished: true,
      before: medianOf(reps.map((r) => r.before), phaseFields),
      during: medianOf(reps.map((r) => r.during), phaseFields)
    },
    worstPauseMillis: Math.max(...reps.map((r) => r.longestPauseMillis)),
    worstGcMillis: Math.max(...reps.map((r) => r.longestGcMillis)),
    worstDuringMaxMicros: Math.max(...reps.map((r) => r.during.maxMicros)),
    reps
  }
}
