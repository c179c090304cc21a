/**
 * Expiry accuracy for one subject: N keys with TTLs spread uniformly over a
 * couple of seconds; then, until every key is reclaimed, a reader probes the
 * keys whose deadline has just passed or is about to, plus random ones.
 *
 * Every time is taken on the subject's own clock (the one its deadlines use).
 *
 * - Reclaim lag: when the store removes an expired key, how long after its
 *   deadline (p50/p99/max), as the store reports it or, for stores that only
 *   say which key went, `now − (time the put returned + ttl)` (the latest the
 *   deadline can be, so the lag is never overstated).
 * - Stale reads: a read that began at or after `(put returned) + ttl` — at or
 *   after the deadline whatever the clock read during the put — and still got
 *   the value. Early misses: a read that ended before `(put began) + ttl` and
 *   found nothing. Both are counted with their worst distance to the deadline.
 */
import { uniformTtls } from "../dataset.ts"
import type { ExpiryJob, ExpiryResult } from "../jobs.ts"
import { median, percentileOfSorted, sortedCopy } from "../stats.ts"
import type { ExpirySubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** How long past the last deadline the runner waits for reclaims. */
const graceMillis = 10_000

/** Keys probed on each side of the deadline cursor per round. */
const probesAroundDeadline = 8

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * The keys' indices in deadline order, to the millisecond (a counting sort:
 * one pass, a few milliseconds for 100k keys). Deadlines keep falling while
 * this runs, and the store can reclaim nothing while the runner holds the
 * thread: a comparison sort of 100k keys held it ~50 ms, which showed as
 * reclaim lag of up to 50 ms on the keys whose deadlines fell meanwhile.
 */
const orderByDeadline = (deadlines: Float64Array): Uint32Array => {
  let first = Infinity
  let last = -Infinity
  for (const deadline of deadlines) {
    if (deadline < first) first = deadline
    if (deadline > last) last = deadline
  }
  const buckets = new Uint32Array(Math.floor(last - first) + 2)
  for (const deadline of deadlines) buckets[Math.floor(deadline - first) + 1]!++
  for (let i = 1; i < buckets.length; i++) buckets[i]! += buckets[i - 1]!
  const order = new Uint32Array(deadlines.length)
  for (let i = 0; i < deadlines.length; i++) order[buckets[Math.floor(deadlines[i]! - first)]!++] = i
  return order
}

/**
 * Runs an expiry-accuracy job: `job.reps` passes (default 1), each on a fresh
 * store; lag percentiles are medians over the passes, reads and wrong reads
 * totals, worst distances the worst.
 */
export const runExpiryJob = async (job: ExpiryJob, subject: ExpirySubject): Promise<ExpiryResult> => {
  const passes: Array<ExpiryResult> = []
  const reps = job.reps ?? 1
  for (let rep = 0; rep < reps; rep++) {
    const pass = await runExpiryPass(job, subject)
    if (reps > 1) progress(`pass ${rep + 1}/${reps}: lag p99 ${fmt(pass.lagP99Millis ?? Number.NaN)} ms`)
    passes.push(pass)
    // A subject that cannot report reclaims says so the same way every time.
    if (pass.lagP99Millis === undefined) break
  }
  return combineExpiryPasses(passes)
}

/**
 * One result for several passes: lag percentiles are medians over the passes
 * that measured them, reads and wrong reads totals, worst distances the worst,
 * and `reclaimed` the fewest any pass saw.
 */
export const combineExpiryPasses = (passes: ReadonlyArray<ExpiryResult>): ExpiryResult => {
  const first = passes[0]!
  const medianOf = (pick: (pass: ExpiryResult) => number | undefined) => {
    const values = passes.map(pick).filter((value): value is number => value !== undefined)
    return values.length === 0 ? undefined : median(values)
  }
  const sum = (pick: (pass: ExpiryResult) => number) => passes.reduce((total, pass) => total + pick(pass), 0)
  const worst = (pick: (pass: ExpiryResult) => number) => Math.max(...passes.map(pick))
  return {
    ...first,
    reps: passes.length,
    lagP99ByRep: passes.flatMap((pass) => (pass.lagP99Millis === undefined ? [] : [pass.lagP99Millis])),
    reclaimed: first.reclaimed === undefined ? undefined : Math.min(...passes.map((pass) => pass.reclaimed ?? 0)),
    lagP50Millis: medianOf((pass) => pass.lagP50Millis),
    lagP99Millis: medianOf((pass) => pass.lagP99Millis),
    lagMaxMillis: medianOf((pass) => pass.lagMaxMillis),
    reads: sum((pass) => pass.reads),
    staleReads: sum((pass) => pass.staleReads),
    maxStaleMillis: worst((pass) => pass.maxStaleMillis),
    earlyMisses: sum((pass) => pass.earlyMisses),
    maxEarlyMillis: worst((pass) => pass.maxEarlyMillis)
  }
}

/** One pass of an expiry-accuracy job, on a store of its own. */
const runExpiryPass = async (job: ExpiryJob, subject: ExpirySubject): Promise<ExpiryResult> => {
  const count = job.keys
  const now = subject.clock
  const ttls = uniformTtls(count, job.ttlMinMillis, job.ttlMaxMillis, 11)
  const earliestDeadline = new Float64Array(count)
  const latestDeadline = new Float64Array(count)
  const lags = new Float64Array(count).fill(Number.NaN)
  let reclaimed = 0
  let reportedByStore = false

  const opened = await subject.open((key, reportedLagMillis) => {
    const index = Number(key.slice(3))
    if (!(index >= 0 && index < count) || !Number.isNaN(lags[index]!)) return
    reclaimed++
    if (reportedLagMillis !== undefined) reportedByStore = true
    lags[index] = reportedLagMillis ?? now() - latestDeadline[index]!
  })
  if ("unavailable" in opened) {
    return {
      suite: "expiry",
      keys: count,
      reclaimed: undefined,
      lagP50Millis: undefined,
      lagP99Millis: undefined,
      lagMaxMillis: undefined,
      lagSource: "none",
      unavailableReason: opened.unavailable,
      reads: 0,
      staleReads: 0,
      maxStaleMillis: 0,
      earlyMisses: 0,
      maxEarlyMillis: 0
    }
  }

  let reads = 0
  let staleReads = 0
  let maxStaleMillis = 0
  let earlyMisses = 0
  let maxEarlyMillis = 0
  const probe = async (index: number) => {
    const started = now()
    const value = await opened.get(`key${index}`)
    const ended = now()
    reads++
    if (value !== undefined && started >= latestDeadline[index]!) {
      staleReads++
      maxStaleMillis = Math.max(maxStaleMillis, started - latestDeadline[index]!)
    }
    if (value === undefined && ended < earliestDeadline[index]!) {
      earlyMisses++
      maxEarlyMillis = Math.max(maxEarlyMillis, earliestDeadline[index]! - ended)
    }
  }

  for (let i = 0; i < count; i++) {
    const before = now()
    await opened.put(`key${i}`, `value${i}`, ttls[i]!)
    const after = now()
    earliestDeadline[i] = before + ttls[i]!
    latestDeadline[i] = after + ttls[i]!
    if (i % 1024 === 0) await yieldToEventLoop()
  }
  progress(`put ${count} keys; probing until all are reclaimed`)

  await yieldToEventLoop()
  const byDeadline = orderByDeadline(latestDeadline)
  const lastDeadline = latestDeadline[byDeadline[count - 1]!]!
  await yieldToEventLoop()
  let cursor = 0
  let random = 12345
  while (reclaimed < count && now() < lastDeadline + graceMillis) {
    const at = now()
    while (cursor < count && latestDeadline[byDeadline[cursor]!]! <= at) cursor++
    for (let k = 1; k <= probesAroundDeadline; k++) {
      if (cursor - k >= 0) await probe(byDeadline[cursor - k]!)
      if (cursor + k - 1 < count) await probe(byDeadline[cursor + k - 1]!)
    }
    random = (random * 1103515245 + 12345) % 2147483648
    await probe(random % count)
    await yieldToEventLoop()
  }
  // Every key once more, after the last deadline.
  for (let i = 0; i < count; i++) await probe(i)
  await opened.close()

  const observed = sortedCopy(lags.filter((lag) => !Number.isNaN(lag)))
  progress(
    `reclaimed ${reclaimed}/${count}; lag p50 ${fmt(percentileOfSorted(observed, 50))} ms, ` +
      `max ${fmt(observed.at(-1) ?? Number.NaN)} ms; ${reads} reads, ${staleReads} stale, ${earlyMisses} early`
  )
  return {
    suite: "expiry",
    keys: count,
    reclaimed,
    lagP50Millis: percentileOfSorted(observed, 50),
    lagP99Millis: percentileOfSorted(observed, 99),
    lagMaxMillis: observed.at(-1),
    lagSource: reportedByStore ? "store" : "runner",
    unavailableReason: undefined,
    reads,
    staleReads,
    maxStaleMillis,
    earlyMisses,
    maxEarlyMillis
  }
}
