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
import { percentileOfSorted, sortedCopy } from "../stats.ts"
import type { ExpirySubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** How long past the last deadline the runner waits for reclaims. */
const graceMillis = 10_000

/** Keys probed on each side of the deadline cursor per round. */
const probesAroundDeadline = 8

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Runs an expiry-accuracy job. */
export const runExpiryJob = async (job: ExpiryJob, subject: ExpirySubject): Promise<ExpiryResult> => {
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

  const byDeadline = Array.from({ length: count }, (_, i) => i).sort((a, b) => latestDeadline[a]! - latestDeadline[b]!)
  const lastDeadline = latestDeadline[byDeadline[count - 1]!]!
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
