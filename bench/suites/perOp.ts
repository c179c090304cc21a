/**
 * The per-operation table: what one `get` and one `put` cost through each
 * store's API, at 100k, 1M and 10M keys, measured the way an independent
 * harness would: each subject and size in a child process of its own, one
 * loop putting all N keys into an empty store, then at once one loop getting
 * all N in a random order (a permutation), no collection forced between the
 * two; medians of the repetitions.
 *
 * The original library's tables (`seedTables.ts`) differ on purpose: they
 * force two full collections between the fill and the reads (to measure
 * memory) and read at most 1M keys. Both figures stand; this one is closer
 * to a program that writes and then reads. It also records the garbage
 * collections that began in each loop, so that their share of the time is
 * a measurement, not a guess.
 */
import { constants, PerformanceObserver } from "node:perf_hooks"
import { makeKeys, makeValues, randomReadOrder } from "../dataset.ts"
import type { PerOpJob, PerOpRep, PerOpResult } from "../jobs.ts"
import { forceFullGc } from "../MemoryProbe.ts"
import { median } from "../stats.ts"
import type { BenchSubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** Keys of the warm-up run, which compiles the measured code. */
const warmUpKeys = 100_000

interface Collection {
  readonly start: number
  readonly millis: number
  readonly kind: number
}

const within = (collections: ReadonlyArray<Collection>, from: number, to: number) =>
  collections.filter((gc) => gc.start >= from && gc.start < to)

const totalMillis = (collections: ReadonlyArray<Collection>) => collections.reduce((sum, gc) => sum + gc.millis, 0)

/** Runs a per-operation job. */
export const runPerOpJob = async (job: PerOpJob, subject: BenchSubject): Promise<PerOpResult> => {
  const keys = makeKeys(0, job.keys)
  const values = makeValues(0, job.keys, "short")
  const order = randomReadOrder(job.keys, job.keys)
  let expected = 0
  for (let j = 0; j < order.length; j++) expected += values[order[j]!]!.length
  progress(`data ready: ${job.keys} keys`)

  const warm = Math.min(warmUpKeys, job.keys)
  const warmOrder = randomReadOrder(warm, warm, 1)
  for (let round = 0; round < 2; round++) {
    const store = await subject.open({ capacity: warm, workDir: job.workDir })
    await store.fill(keys.slice(0, warm), values.slice(0, warm))
    await store.read(keys, warmOrder)
    await store.close()
  }

  const collections: Array<Collection> = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { readonly detail?: { readonly kind?: number } }).detail?.kind ?? 0
      collections.push({ start: entry.startTime, millis: entry.duration, kind })
    }
  })
  observer.observe({ entryTypes: ["gc"] })
  const reps: Array<PerOpRep> = []
  try {
    for (let rep = 1; rep <= job.reps; rep++) {
      // The previous repetition's store is garbage now: collect it before, not during, this one.
      forceFullGc()
      const store = await subject.open({ capacity: job.keys, workDir: job.workDir })
      const putFrom = performance.now()
      const putMillis = await store.fill(keys, values)
      const putTo = performance.now()
      const read = await store.read(keys, order)
      const getTo = performance.now()
      await store.close()
      if (read.checksum !== expected) {
        throw new Error(`${subject.id} read wrong values: checksum ${read.checksum}, expected ${expected}`)
      }
      // Collection entries arrive on a later turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve))
      const duringGets = within(collections, putTo, getTo)
      const measured: PerOpRep = {
        putMicros: (putMillis * 1000) / job.keys,
        getMicros: (read.elapsedMillis * 1000) / job.keys,
        putGcMillis: totalMillis(within(collections, putFrom, putTo)),
        getGcMillis: totalMillis(duringGets),
        getScavenges: duringGets.filter((gc) => gc.kind === constants.NODE_PERFORMANCE_GC_MINOR).length,
        getMarkCompacts: duringGets.filter((gc) => gc.kind === constants.NODE_PERFORMANCE_GC_MAJOR).length
      }
      reps.push(measured)
      progress(
        `rep ${rep}/${job.reps}: put ${fmt(measured.putMicros)} µs/op (GC ${fmt(measured.putGcMillis)} ms), ` +
          `get ${fmt(measured.getMicros)} µs/op (GC ${fmt(measured.getGcMillis)} ms: ${measured.getScavenges} scavenges, ` +
          `${measured.getMarkCompacts} mark-compacts, of ${fmt(read.elapsedMillis)} ms)`
      )
    }
  } finally {
    observer.disconnect()
  }
  const of = (field: keyof PerOpRep) => median(reps.map((r) => r[field]))
  return {
    suite: "perop",
    keys: job.keys,
    putMicros: of("putMicros"),
    getMicros: of("getMicros"),
    putGcMillis: of("putGcMillis"),
    getGcMillis: of("getGcMillis"),
    getScavenges: of("getScavenges"),
    getMarkCompacts: of("getMarkCompacts"),
    reps
  }
}
