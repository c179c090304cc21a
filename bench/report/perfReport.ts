/**
 * The report's part for the cost floor: the per-operation table, the
 * buffered-tail table, and the targets they and the compaction, durable and
 * expiry suites are judged by. Each target is a yes/no with the figures behind
 * it; a target whose figures this run did not measure says so.
 */
import { type BenchRun, findCell } from "../BenchRun.ts"
import type { PerOpResult } from "../jobs.ts"
import { perfSubjectLabel, perOpSubjectIds, tailsWriters } from "../perfPlan.ts"
import { tailsSubjectIds } from "../subjects/kvlogTails.ts"
import { count, grouped, micros, missingText, ratio, resultOf, table } from "./format.ts"

/** One target: the rule, whether this run reached it (`undefined`: not measured), and the figures behind the verdict. */
export interface PerfTarget {
  readonly rule: string
  readonly reached: boolean | undefined
  readonly figures: string
}

const perOp = (run: BenchRun, subject: string, keys: number): PerOpResult | undefined =>
  resultOf(findCell(run, "perop", subject, keys), "perop")

/** Every size of the per-operation table at which kvlog, Effect's store and the Map all have a figure. */
const perOpSizes = (run: BenchRun) =>
  run.options.suites.has("perop")
    ? run.options.perOpSizes.filter((keys) =>
      ["kvlog-memory", "effect-kvs", "map"].every((id) => perOp(run, id, keys) !== undefined)
    )
    : []

const perOpTarget = (run: BenchRun): PerfTarget => {
  const figures: Array<string> = []
  let reached: boolean | undefined
  for (const keys of perOpSizes(run)) {
    const kvlog = perOp(run, "kvlog-memory", keys)!
    const effect = perOp(run, "effect-kvs", keys)!
    const map = perOp(run, "map", keys)!
    const ok = kvlog.getMicros <= effect.getMicros && kvlog.putMicros <= effect.putMicros &&
      kvlog.getMicros <= 2 * map.getMicros && kvlog.putMicros <= 1.5 * map.putMicros
    reached = (reached ?? true) && ok
    figures.push(
      `${count(keys)}: get ${micros(kvlog.getMicros)} µs = ${ratio(kvlog.getMicros / map.getMicros)} Map, ${
        ratio(kvlog.getMicros / effect.getMicros)
      } Effect; put ${micros(kvlog.putMicros)} µs = ${ratio(kvlog.putMicros / map.putMicros)} Map, ${
        ratio(kvlog.putMicros / effect.putMicros)
      } Effect`
    )
  }
  return {
    rule: "per operation through the Effect API (per-operation table, every size): kvlog's get and put cost no more " +
      "than Effect's `layerMemory`, get ≤ 2× and put ≤ 1.5× a raw Map (same run)",
    reached,
    figures: figures.join("; ") || "—"
  }
}

const expiryTarget = (run: BenchRun): PerfTarget => {
  const expiry = resultOf(findCell(run, "expiry", "kvlog-memory", run.options.expiryKeys), "expiry")
  const p99 = expiry?.lagP99Millis
  return {
    rule: `expiry (${count(run.options.expiryKeys)} keys, TTLs over 2 s): reclaim lag p99 ≤ 5 ms and no stale read ` +
      "(one reaper fiber and no timer per key: test/ttl.test.ts)",
    reached: expiry === undefined || p99 === undefined ? undefined : p99 <= 5 && expiry.staleReads === 0,
    figures: expiry === undefined || p99 === undefined
      ? "—"
      : `p99 ${micros(p99)} ms${
        (expiry.lagP99ByRep?.length ?? 0) > 1 ? ` (passes: ${expiry.lagP99ByRep!.map(micros).join(", ")} ms)` : ""
      }, max ${micros(expiry.lagMaxMillis ?? Number.NaN)} ms; ${grouped(expiry.reads)} reads, ${expiry.staleReads} stale`
  }
}

const tailsTarget = (run: BenchRun): PerfTarget => {
  const measured = tailsSubjectIds
    .map((id) => ({ id, result: resultOf(findCell(run, "tails", id, 0), "tails") }))
    .filter((entry) => entry.result !== undefined)
  return {
    rule: `buffered policies (\`acknowledge: "buffered"\`, ${tailsWriters} writers, nothing else running): worst put ≤ 10 ms ` +
      "(median of the windows' worst)",
    reached: measured.length === 0 ? undefined : measured.every((entry) => entry.result!.maxMicros <= 10_000),
    figures: measured.map(({ id, result }) =>
      `${perfSubjectLabel(run.catalog, id).replace(/^kvlog layerLog /, "")}: worst ${micros(result!.maxMicros / 1000)} ms (of all windows ${
        micros(result!.worstMaxMicros / 1000)
      } ms), p99 ${micros(result!.p99Micros)} µs`
    ).join("; ") || "—"
  }
}

const compactionTarget = (run: BenchRun): PerfTarget => {
  const measured = ["kvlog-log-always", "kvlog-log-never"]
    .map((id) => ({ id, result: resultOf(findCell(run, "compaction", id, run.options.compactionKeys), "compaction") }))
    .filter((entry) => entry.result !== undefined && entry.result.unfinished === 0)
  const always = measured.find((entry) => entry.id === "kvlog-log-always")?.result
  const kept = always === undefined ? undefined : always.median.during.writesPerSecond / always.median.before.writesPerSecond
  return {
    rule: "compaction: the store's longest pause ≤ 2 ms under every policy (median of the repetitions), and durable " +
      "(`\"always\"`) writers keep ≥ 0.7× their throughput during it",
    reached: measured.length === 0 || kept === undefined
      ? undefined
      : measured.every((entry) => entry.result!.median.longestPauseMillis <= 2) && kept >= 0.7,
    figures: measured.map(({ id, result }) =>
      `${id.replace(/^kvlog-log-/, "")}: pause ${micros(result!.median.longestPauseMillis)} ms (worst ${
        micros(result!.worstPauseMillis)
      } ms), writers ${ratio(result!.median.during.writesPerSecond / result!.median.before.writesPerSecond)}`
    ).join("; ") || "—"
  }
}

const durableTarget = (run: BenchRun): PerfTarget => {
  const at = (id: string) =>
    resultOf(findCell(run, "durable", id, 0), "durable")?.byWriters.find((entry) => entry.writers === 256)
  const kvlog = at("kvlog-log-always")
  const append = at("raw-fdatasync")
  const prealloc = at("raw-fdatasync-prealloc")
  return {
    rule: "durable writes (`\"always\"`, 256 writers) ≥ 0.8× a raw append + `fdatasync` group-commit loop in Node " +
      "with 256 writers (same run)",
    reached: kvlog === undefined || append === undefined ? undefined : kvlog.writesPerSecond >= 0.8 * append.writesPerSecond,
    figures: kvlog === undefined || append === undefined
      ? "—"
      : `${grouped(kvlog.writesPerSecond)}/s vs ${grouped(append.writesPerSecond)}/s (${
        ratio(kvlog.writesPerSecond / append.writesPerSecond)
      })${
        prealloc === undefined
          ? ""
          : `; the preallocated raw loop: ${grouped(prealloc.writesPerSecond)}/s (${
            ratio(kvlog.writesPerSecond / prealloc.writesPerSecond)
          })`
      }`
  }
}

/** The cost-floor targets, in the order the project set them. */
export const perfTargets = (run: BenchRun): Array<PerfTarget> => [
  perOpTarget(run),
  expiryTarget(run),
  tailsTarget(run),
  compactionTarget(run),
  durableTarget(run)
]

/** The per-operation section: µs per put and get, ratios to Effect's store and the Map, and the collections in the reads. */
export const perOpSection = (run: BenchRun): string => {
  const rows: Array<Array<string>> = []
  for (const keys of run.options.perOpSizes) {
    const map = perOp(run, "map", keys)
    const effect = perOp(run, "effect-kvs", keys)
    for (const id of perOpSubjectIds) {
      const cell = findCell(run, "perop", id, keys)
      if (cell === undefined) continue
      const result = resultOf(cell, "perop")
      if (result === undefined) {
        rows.push([count(keys), perfSubjectLabel(run.catalog, id), missingText(cell), "", "", "", "", "", ""])
        continue
      }
      const vs = (mine: number, theirs: number | undefined) => (theirs === undefined ? "—" : ratio(mine / theirs))
      rows.push([
        count(keys),
        perfSubjectLabel(run.catalog, id),
        micros(result.putMicros),
        micros(result.getMicros),
        vs(result.putMicros, map?.putMicros),
        vs(result.getMicros, map?.getMicros),
        vs(result.putMicros, effect?.putMicros),
        vs(result.getMicros, effect?.getMicros),
        `${micros(result.getGcMillis)} ms (${result.getScavenges} + ${result.getMarkCompacts}) = ${
          ((result.getGcMillis * 100) / ((result.getMicros * result.keys) / 1000)).toFixed(1)
        }%`
      ])
    }
  }
  return `## Per operation through the Effect API: kvlog, Effect's store, a raw Map, and the \`yield*\` floor

Each subject at each size in its own child process; keys \`key\${i}\` and values \`value\${i}\` are built first, and a
warm-up fills and reads up to 100k keys twice. Each of the ${run.options.reps ?? 3} repetitions (after a forced full
collection of the previous one's garbage) opens an empty store, times **one loop putting all N keys**, and at once times
**one loop getting all N keys in a random order** (a seeded permutation): no collection is forced between the two, so
whatever the fill left for the collector lands where a program would meet it. The Effect stores run both loops as
\`yield* store.put(…)\` / \`yield* store.get(…)\` inside one \`Effect.gen\`; the floor runs the Map in that same loop,
each operation one \`yield* Effect.succeed(…)\`. Figures are medians.

- **÷ Map**, **÷ Effect**: against the raw \`Map\` and Effect's \`KeyValueStore.layerMemory\` (\`effect/persistence\`) at
  the same size in this run.
- **GC in the gets**: V8 collections that began during the read loop (median of the repetitions; scavenges +
  mark-compacts), and their share of the loop.

${
    table(
      ["keys", "subject", "put µs", "get µs", "put ÷ Map", "get ÷ Map", "put ÷ Effect", "get ÷ Effect", "GC in the gets"],
      rows,
      2
    )
  }`
}

/** The buffered-tail section. */
export const tailsSection = (run: BenchRun): string => {
  const rows: Array<Array<string>> = []
  for (const id of tailsSubjectIds) {
    const cell = findCell(run, "tails", id, 0)
    if (cell === undefined) continue
    const result = resultOf(cell, "tails")
    rows.push(
      result === undefined
        ? [perfSubjectLabel(run.catalog, id), missingText(cell), "", "", "", "", ""]
        : [
          perfSubjectLabel(run.catalog, id),
          grouped(result.writesPerSecond),
          micros(result.p50Micros),
          micros(result.p99Micros),
          micros(result.maxMicros / 1000),
          micros(result.worstMaxMicros / 1000),
          micros(result.longestGcMillis)
        ]
    )
  }
  return `## Buffered tails: ${tailsWriters} writers, puts acknowledged at once

kvlog's log with \`acknowledge: "buffered"\` and automatic compaction off, in a child process of its own, nothing else
running: after a warm-up window, each of ${run.options.reps ?? 3} windows of ${
    run.options.quick ? 500 : 2_000
  } ms runs ${tailsWriters} writer fibers that each put a fresh key (a 32-byte value), wait for the
acknowledgement and put the next. Such a put waits for no disk: its latency is how long the thread was held elsewhere —
by the writer's hand-over of the buffer to the OS, or by a garbage collection (the longest one in the window is shown
beside). Figures are medians of the windows; **worst of all** is the longest put of any window.

${table(["subject", "puts/s", "p50 µs", "p99 µs", "worst put ms", "worst of all ms", "longest GC ms"], rows)}`
}
