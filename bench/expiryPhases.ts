/**
 * The expiry-accuracy job of `npm run bench` (100k keys, TTLs uniform in
 * 1–2000 ms) run in this process, with the reclaim lag split by when the
 * reclaim happened: while the runner was still putting keys (a chain of
 * awaited puts, which lets the event loop turn only every 1024 puts), or
 * after. Also lists the event loop's longest stalls, since a stall of the
 * thread delays every reclaim that falls in it.
 *
 *   node_modules/.bin/node --expose-gc --max-old-space-size=12288 bench/expiryPhases.ts [keys]
 *
 * (the flags the bench's child processes run with: the size of V8's young
 * generation, and so its collections, follows the heap limit).
 */
import { median, percentileOfSorted, sortedCopy } from "./stats.ts"
import { kvlogMemoryExpiry, loadKvlog } from "./subjects/kvlog.ts"
import type { ExpirySubject } from "./subjects/BenchSubject.ts"
import { runExpiryJob } from "./suites/expiryAccuracy.ts"

const keys = Number(process.argv[2] ?? 100_000)
const load = await loadKvlog()
if (load._tag === "Unavailable") throw new Error(load.reason)
const kvlog = kvlogMemoryExpiry(load.kvlog)

const reclaims: Array<{ readonly at: number; readonly lag: number }> = []
let lastPut = 0
const stalls: Array<{ readonly at: number; readonly millis: number }> = []
let lastTick = performance.now()
const ticker = setInterval(() => {
  const now = performance.now()
  if (now - lastTick > 5) stalls.push({ at: lastTick, millis: now - lastTick })
  lastTick = now
}, 1)

const subject: ExpirySubject = {
  ...kvlog,
  open: async (onReclaim) => {
    const opened = await kvlog.open((key, lag) => {
      reclaims.push({ at: performance.now(), lag: lag ?? Number.NaN })
      onReclaim(key, lag)
    })
    if ("unavailable" in opened) return opened
    return {
      ...opened,
      put: async (key, value, ttl) => {
        await opened.put(key, value, ttl)
        lastPut = performance.now()
      }
    }
  }
}

const result = await runExpiryJob(
  { suite: "expiry", subject: kvlog.id, workDir: "/nowhere", keys, ttlMinMillis: 1, ttlMaxMillis: 2_000 },
  subject
)
clearInterval(ticker)

const describe = (name: string, lags: Array<number>) => {
  const sorted = sortedCopy(lags)
  return `| ${name} | ${lags.length} | ${percentileOfSorted(sorted, 50)} | ${percentileOfSorted(sorted, 99)} | ${sorted.at(-1)} |`
}
console.log(`${keys} keys: lag p99 ${result.lagP99Millis} ms, max ${result.lagMaxMillis} ms, ${result.staleReads} stale reads`)
console.log("| reclaimed | count | p50 ms | p99 ms | max ms |")
console.log("|---|---:|---:|---:|---:|")
console.log(describe("while the runner puts", reclaims.filter((r) => r.at <= lastPut).map((r) => r.lag)))
console.log(describe("after the last put", reclaims.filter((r) => r.at > lastPut).map((r) => r.lag)))
const longest = [...stalls].sort((a, b) => b.millis - a.millis).slice(0, 8)
console.log(
  `event loop stalls > 5 ms: ${stalls.length} (median ${median(stalls.map((s) => s.millis)).toFixed(0)} ms); longest: ${
    longest.map((s) => `${s.millis.toFixed(0)} ms at ${(s.at - lastPut).toFixed(0)} ms from the last put`).join(", ")
  }`
)
