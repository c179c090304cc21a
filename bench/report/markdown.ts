/**
 * Renders the report of one run (`docs/benchmarks.md` after a full run, and
 * `benchmarks.md` in every run's results folder): machine, method, the
 * project's targets, and every table, each cell either a figure or the reason
 * there is none.
 */
import { type BenchRun, type Cell, findCell } from "../BenchRun.ts"
import { docsReport, quickPlan, runsSubject } from "../cli.ts"
import type { ValueShape } from "../dataset.ts"
import type { DurableWriters, PerfSuiteName, SeedResult, SharedSuiteName, SuiteName, WriterPhase } from "../jobs.ts"
import { seedFigureAt } from "../seedFigures.ts"
import type { SubjectIdentity, SubjectRole } from "../subjects/BenchSubject.ts"
import { alwaysFillConcurrency } from "../subjects/kvlogLog.ts"
import { rawFlavourIds } from "../subjects/rawAppend.ts"
import { bytes, count, grouped, megabytes, micros, missingText, ratio, resultOf, table } from "./format.ts"
import { perfTargets, perOpSection, tailsSection } from "./perfReport.ts"
import { hasSharedSection, sharedSection, sharedTargets } from "./sharedReport.ts"

/** The suites whose subjects the registry's catalog lists (the cost-floor suites keep theirs in `perfPlan.ts`, the shared index's in `sharedPlan.ts`). */
type CatalogSuite = Exclude<SuiteName, PerfSuiteName | SharedSuiteName>

/** A column or row of a table: a subject that ran, or one that could not. */
export interface Column {
  readonly id: string
  readonly label: string
  readonly role: SubjectRole | "missing"
}

/** The subjects of a suite in table order: those measured, then those that could not be. */
export const columnsOf = (run: BenchRun, suite: CatalogSuite, values: ValueShape = "short"): Array<Column> => {
  const wanted = (id: string) =>
    runsSubject(run.options, suite, id) &&
    (suite !== "tables" || values === "short" || run.options.wideValueSubjects === undefined ||
      run.options.wideValueSubjects.has(id))
  const measured: ReadonlyArray<SubjectIdentity> = run.catalog[suite]
  return [
    ...measured.filter((subject) => wanted(subject.id)).map(({ id, label, role }) => ({ id, label, role })),
    ...run.catalog.missing
      .filter((missing) => missing.suite === suite && wanted(missing.id))
      .map(({ id, label }): Column => ({ id, label, role: "missing" }))
  ]
}

const primaryKvlog = "kvlog-memory"

const seedResult = (run: BenchRun, subject: string, keys: number, values: ValueShape): SeedResult | undefined =>
  resultOf(findCell(run, "tables", subject, keys, values), "tables")

/** The fastest peer (role "peer") at a size by `metric`. */
const bestPeer = (
  run: BenchRun,
  keys: number,
  values: ValueShape,
  metric: (result: SeedResult) => number
): { readonly label: string; readonly value: number } | undefined => {
  let best: { label: string; value: number } | undefined
  for (const column of columnsOf(run, "tables", values)) {
    if (column.role !== "peer") continue
    const result = seedResult(run, column.id, keys, values)
    if (result !== undefined && (best === undefined || metric(result) < best.value)) {
      best = { label: column.label, value: metric(result) }
    }
  }
  return best
}

const seedSizes = (run: BenchRun, values: ValueShape) =>
  values === "short" ? run.options.sizes : run.options.wideValueSizes

/** A µs/op table of the original library's suite: sizes down, subjects across, its figure and kvlog's ratios beside. */
const timingTable = (run: BenchRun, values: ValueShape, which: "write" | "read"): string => {
  const metric = (result: SeedResult) => (which === "write" ? result.writeMicros : result.readMicros)
  const columns = columnsOf(run, "tables", values)
  const withSeed = values === "short"
  const headers = [
    "keys",
    ...(withSeed ? ["original (published, other machine)"] : []),
    ...columns.map((column) => column.label),
    ...(withSeed ? ["original ÷ kvlog"] : []),
    "kvlog ÷ Map",
    "kvlog ÷ best peer"
  ]
  const rows = seedSizes(run, values).map((keys) => {
    const figure = seedFigureAt(keys)
    const kvlog = seedResult(run, primaryKvlog, keys, values)
    const map = seedResult(run, "map", keys, values)
    const peer = bestPeer(run, keys, values, metric)
    const cells = columns.map((column) => {
      const cell = findCell(run, "tables", column.id, keys, values)
      const result = resultOf(cell, "tables")
      return result === undefined ? missingText(cell) : micros(metric(result))
    })
    return [
      count(keys),
      ...(withSeed ? [figure === undefined ? "—" : micros(which === "write" ? figure.writeMicros : figure.readMicros)] : []),
      ...cells,
      ...(withSeed
        ? [figure === undefined || kvlog === undefined
          ? "—"
          : ratio((which === "write" ? figure.writeMicros : figure.readMicros) / metric(kvlog))]
        : []),
      kvlog === undefined || map === undefined ? "—" : ratio(metric(kvlog) / metric(map)),
      kvlog === undefined || peer === undefined ? "—" : `${ratio(metric(kvlog) / peer.value)} (${peer.label})`
    ]
  })
  return table(headers, rows)
}

/** A bytes-per-key table of the original library's suite. */
const memoryTable = (run: BenchRun, values: ValueShape, which: "total" | "store" | "rss"): string => {
  const columns = columnsOf(run, "tables", values)
  const withSeed = values === "short" && which === "total"
  const headers = [
    "keys",
    ...(withSeed ? ["original (published, other machine)"] : []),
    ...columns.map((column) => column.label),
    ...(withSeed ? ["kvlog ÷ original"] : [])
  ]
  const rows = seedSizes(run, values).map((keys) => {
    const figure = seedFigureAt(keys)
    const seedBytes = figure === undefined ? undefined : figure.memoryBytes / keys
    const cells = columns.map((column) => {
      const cell = findCell(run, "tables", column.id, keys, values)
      const result = resultOf(cell, "tables")
      if (result === undefined) return missingText(cell)
      switch (which) {
        case "total":
          return bytes(result.totalBytesPerKey)
        case "store":
          return bytes(result.storeBytesPerKey)
        case "rss":
          return `${bytes(result.rssBytesPerKey)} (${megabytes(result.peakRssBytes)})`
      }
    })
    const kvlog = seedResult(run, primaryKvlog, keys, values)
    return [
      count(keys),
      ...(withSeed ? [seedBytes === undefined ? "—" : bytes(seedBytes)] : []),
      ...cells,
      ...(withSeed
        ? [seedBytes === undefined || kvlog === undefined ? "—" : ratio(kvlog.totalBytesPerKey / seedBytes)]
        : [])
    ]
  })
  return table(headers, rows)
}

/** A durable subject's figures at a writer count, if it ran. */
const durableAt = (run: BenchRun, subject: string, writers: number): DurableWriters | undefined =>
  resultOf(findCell(run, "durable", subject, 0), "durable")?.byWriters.find((entry) => entry.writers === writers)

/** The physical limit at a writer count: the fastest raw flavour (append or preallocated) in this run. */
const physicalLimit = (
  run: BenchRun,
  writers: number
): { readonly label: string; readonly writesPerSecond: number } | undefined => {
  let best: { label: string; writesPerSecond: number } | undefined
  for (const id of rawFlavourIds) {
    const entry = durableAt(run, id, writers)
    if (entry !== undefined && (best === undefined || entry.writesPerSecond > best.writesPerSecond)) {
      best = {
        label: run.catalog.durable.find((subject) => subject.id === id)?.label ?? id,
        writesPerSecond: entry.writesPerSecond
      }
    }
  }
  return best
}

/** The longest write pause (the store's own figure, worst repetition) that counts as "a few milliseconds". */
const fewMillis = 5

/** One target of the project: the rule, whether this run reached it, and the figures behind the verdict. */
export interface Target {
  readonly rule: string
  readonly reached: boolean | undefined
  readonly figures: string
}

export const verdict = (reached: boolean | undefined) => (reached === undefined ? "not measured" : reached ? "yes" : "**no**")

/** Every target of the project, the cost-floor ones, then the shared index's: for the report and the runner's stdout. */
export const allTargets = (run: BenchRun): Array<Target> => [...targets(run), ...perfTargets(run), ...sharedTargets(run)]

const targets = (run: BenchRun): Array<Target> => {
  const result: Array<Target> = []
  // ≥ 5× faster than the original library at every size, reads and writes.
  const speedups: Array<string> = []
  let fastEnough: boolean | undefined
  for (const keys of run.options.sizes) {
    const figure = seedFigureAt(keys)
    const kvlog = seedResult(run, primaryKvlog, keys, "short")
    if (figure === undefined || kvlog === undefined) continue
    const write = figure.writeMicros / kvlog.writeMicros
    const read = figure.readMicros / kvlog.readMicros
    speedups.push(`${count(keys)}: write ${ratio(write)}, read ${ratio(read)}`)
    fastEnough = (fastEnough ?? true) && write >= 5 && read >= 5
  }
  result.push({
    rule: "kvlog layerMemory ≥ 5× faster than the original Python library's published µs, reads and writes, at every size",
    reached: fastEnough,
    figures: speedups.join("; ") || "—"
  })
  const kvlog1M = seedResult(run, primaryKvlog, 1_000_000, "short")
  const map1M = seedResult(run, "map", 1_000_000, "short")
  const readRatio = kvlog1M && map1M ? kvlog1M.readMicros / map1M.readMicros : undefined
  const writeRatio = kvlog1M && map1M ? kvlog1M.writeMicros / map1M.writeMicros : undefined
  result.push({
    rule: "at 1M keys, read ≤ 4× and write ≤ 3× a raw Map (same run)",
    reached: readRatio === undefined || writeRatio === undefined ? undefined : readRatio <= 4 && writeRatio <= 3,
    figures: readRatio === undefined || writeRatio === undefined
      ? "—"
      : `read ${ratio(readRatio)}, write ${ratio(writeRatio)}`
  })
  const memory: Array<string> = []
  let leanEnough: boolean | undefined
  for (const keys of run.options.sizes) {
    const figure = seedFigureAt(keys)
    const kvlog = seedResult(run, primaryKvlog, keys, "short")
    if (figure === undefined || kvlog === undefined) continue
    memory.push(`${count(keys)}: ${bytes(kvlog.totalBytesPerKey)} vs ${bytes(figure.memoryBytes / keys)} B/key`)
    leanEnough = (leanEnough ?? true) && kvlog.totalBytesPerKey <= figure.memoryBytes / keys
  }
  result.push({
    rule: "memory (keys and values counted) ≤ the original library's bytes/key at every size",
    reached: leanEnough,
    figures: memory.join("; ") || "—"
  })
  const durable = (subject: string, writers: number) => durableAt(run, subject, writers)
  const always256 = durable("kvlog-log-always", 256)
  const lmdb256 = durable("lmdb", 256)
  const level256 = durable("classic-level", 256)
  result.push({
    rule: "durable puts (`\"always\"`, 256 writers) ≥ 100k/s, ahead of lmdb and classic-level",
    reached: always256 === undefined
      ? undefined
      : always256.writesPerSecond >= 100_000 &&
        (lmdb256 === undefined || always256.writesPerSecond > lmdb256.writesPerSecond) &&
        (level256 === undefined || always256.writesPerSecond > level256.writesPerSecond),
    figures: always256 === undefined
      ? "—"
      : `${grouped(always256.writesPerSecond)}/s (lmdb ${lmdb256 ? grouped(lmdb256.writesPerSecond) : "—"}/s, classic-level ${
        level256 ? grouped(level256.writesPerSecond) : "—"
      }/s)`
  })
  const always1 = durable("kvlog-log-always", 1)
  const raw1 = physicalLimit(run, 1)
  result.push({
    rule: "one writer (`\"always\"`) within 25% of the fastest raw write + fdatasync loop",
    reached: always1 === undefined || raw1 === undefined
      ? undefined
      : always1.writesPerSecond >= 0.75 * raw1.writesPerSecond,
    figures: always1 === undefined || raw1 === undefined
      ? "—"
      : `${grouped(always1.writesPerSecond)}/s vs ${grouped(raw1.writesPerSecond)}/s, ${raw1.label} (${
        ratio(always1.writesPerSecond / raw1.writesPerSecond)
      })`
  })
  const replays = run.options.replayRecords
    .map((records) => ({ records, result: resultOf(findCell(run, "replay", "kvlog-log", records), "replay") }))
    .filter((entry) => entry.result !== undefined)
  result.push({
    rule: "replay ≥ 1M records/s",
    reached: replays.length === 0 ? undefined : replays.every((entry) => entry.result!.recordsPerSecond >= 1e6),
    figures: replays.map((entry) => `${count(entry.records)}: ${grouped(entry.result!.recordsPerSecond)}/s`).join("; ") ||
      "—"
  })
  const compactions = columnsOf(run, "compaction")
    .map((column) => ({
      column,
      result: resultOf(findCell(run, "compaction", column.id, run.options.compactionKeys), "compaction")
    }))
    .filter((entry) => entry.result !== undefined)
  result.push({
    rule: `compaction of a ${count(run.options.compactionKeys)}-key log with writes going on: its time, and no write pause ` +
      `longer than a few ms (here: the store's longest pause ≤ ${fewMillis} ms in every repetition)`,
    reached: compactions.length === 0
      ? undefined
      : compactions.every((entry) => entry.result!.unfinished === 0 && entry.result!.worstPauseMillis <= fewMillis),
    figures: compactions.map(({ column, result }) =>
      `${column.label.replace(/^kvlog makeLog /, "")}: ${
        result!.unfinished > 0
          ? `did not finish within ${(result!.giveUpAfterMillis / 1000).toFixed(0)} s`
          : `${(result!.median.durationMillis / 1000).toFixed(2)} s, pause ${micros(result!.worstPauseMillis)} ms (store)`
      }, longest put during it ${micros(result!.worstDuringMaxMicros / 1000)} ms`
    ).join("; ") || "—"
  })
  const buffered1M = seedResult(run, "kvlog-log-buffered", 1_000_000, "short")
  const never1M = seedResult(run, "kvlog-log-never", 1_000_000, "short")
  result.push({
    rule: "`\"never\"`, `acknowledge: \"buffered\"` puts within 2× of layerMemory (1M keys)",
    reached: buffered1M === undefined || kvlog1M === undefined
      ? undefined
      : buffered1M.writeMicros <= 2 * kvlog1M.writeMicros,
    figures: buffered1M === undefined || kvlog1M === undefined
      ? "—"
      : `${ratio(buffered1M.writeMicros / kvlog1M.writeMicros)} (acknowledged once written to the OS: ${
        never1M === undefined ? "not measured in this run" : ratio(never1M.writeMicros / kvlog1M.writeMicros)
      })`
  })
  const expiry = resultOf(findCell(run, "expiry", primaryKvlog, run.options.expiryKeys), "expiry")
  result.push({
    rule: "no read sees an expired value (expiry accuracy)",
    reached: expiry === undefined ? undefined : expiry.staleReads === 0,
    figures: expiry === undefined ? "—" : `${grouped(expiry.reads)} reads, ${expiry.staleReads} stale`
  })
  return result
}

const seedSection = (run: BenchRun): string => {
  const parts: Array<string> = []
  const alwaysCap = run.options.seedSizeCaps.get("kvlog-log-always")
  const sizeNotes: Array<string> = []
  if (runsSubject(run.options, "tables", "kvlog-log-always")) {
    sizeNotes.push(`- kvlog layerLog \`always\` writes from ${alwaysFillConcurrency} fibers sharing the keys (a single fiber would measure one
  \`fdatasync\` per put: see the durable-writes table); its µs/op is elapsed ÷ N.${
      alwaysCap === undefined
        ? ""
        : ` It runs up to
  ${count(alwaysCap.maxKeys)} keys only (a durable fill is ~10× slower than an in-memory one).`
    }`)
  }
  for (const [id, cap] of run.options.seedSizeCaps) {
    if (id !== "kvlog-log-always" && runsSubject(run.options, "tables", id)) {
      sizeNotes.push(`- \`${id}\` runs up to ${count(cap.maxKeys)} keys only in this run.`)
    }
  }
  parts.push(`## 1. The original library's tables

Each subject at each size in its own child process (\`node --expose-gc --max-old-space-size=${run.options.maxOldSpaceMb}\`).
Keys \`key\${i}\` and values \`value\${i}\` are built before any timing; a warm-up fills and reads up to
100k keys twice; then each of the repetitions (${
    run.options.reps === undefined ? "5 up to 1M keys, 3 above" : String(run.options.reps)
  }) measures the memory (after a forced full GC), opens an empty store, times **one loop putting all N keys**
(for Effect stores: \`yield* store.put(…)\` inside one \`Effect.gen\`, the cost a program pays), measures the memory
again, then times one loop reading **min(N, ${count(run.options.readSample)}) keys in a random order** (seeded, the same for every
subject), and checks every value read. Figures are **medians** of the repetitions. Strings are flat, as if read
from a socket or a file (V8 keeps a concatenation of 13 characters or more as a costlier "cons string").

- **write / read µs/op**: loop time ÷ operations.
- **store overhead B/key**: growth of V8's heap plus off-heap memory (\`heapUsed + external\`: typed arrays
  count) between forced full GCs before and after the fill, ÷ N; the key and value strings existed before, so
  they are not counted.
- **total B/key**: store overhead plus the bytes of one key and one value string (heap growth over building an
  evenly spaced sample of 100k of them, array slots excluded) — what a program that builds its strings and puts
  them pays, and what the original library's "memory usage" counts.
- **RSS**: RSS growth over the first timed fill ÷ N, and the child's peak RSS in brackets.
- The original library's figures are **published numbers from another machine** (a Python store): a reference, not a
  measurement. \`original ÷ kvlog\` is how many times faster kvlog layerMemory is than those numbers.
- \`kvlog ÷ Map\` and \`kvlog ÷ best peer\` compare kvlog layerMemory with a raw \`Map\` and with the fastest of
  the libraries (role "peer" below) in this run; under 1× kvlog is faster.
${sizeNotes.join("\n")}

![µs per write against the number of keys](bench-write.svg)

![µs per read against the number of keys](bench-read.svg)

### Writes, µs/op (\`key\${i}\` → \`value\${i}\`)

${timingTable(run, "short", "write")}

### Reads, µs/op, random order

${timingTable(run, "short", "read")}

### Memory, total bytes per key (keys and values counted, as the original library's figure)

${memoryTable(run, "short", "total")}

### Memory, store overhead bytes per key (strings prebuilt, not counted)

${memoryTable(run, "short", "store")}

### Memory, RSS growth bytes per key (peak RSS of the child)

${memoryTable(run, "short", "rss")}`)
  if (run.options.wideValueSizes.length > 0) {
    const subjects = run.options.wideValueSubjects === undefined
      ? "every subject"
      : [...run.options.wideValueSubjects].map((id) => `\`${id}\``).join(" and ")
    parts.push(`### 100-byte values

The same method with each value padded with \`.\` to 100 bytes (flat strings), for ${subjects} at ${
      run.options.wideValueSizes.map(count).join(", ")
    } keys.

#### Writes, µs/op

${timingTable(run, "100b", "write")}

#### Reads, µs/op

${timingTable(run, "100b", "read")}

#### Total bytes per key

${memoryTable(run, "100b", "total")}

#### Store overhead bytes per key

${memoryTable(run, "100b", "store")}`)
  }
  return parts.join("\n\n")
}

const ttlSection = (run: BenchRun): string => {
  const rows = columnsOf(run, "ttl").map((column) => {
    const cell = findCell(run, "ttl", column.id, run.options.ttlKeys)
    const result = resultOf(cell, "ttl")
    if (result === undefined) return [column.label, missingText(cell), "", "", ""]
    return [
      column.label,
      micros(result.putMicros),
      bytes(result.storeBytesPerKey),
      bytes(result.totalBytesPerKey),
      megabytes(result.peakRssBytes)
    ]
  })
  return `## 2. TTL-heavy: ${count(run.options.ttlKeys)} keys, each with its own TTL (uniform in 1–60 s)

Same method as the original library's write table (keys, values and TTLs built first; medians of the repetitions), every put
carrying the key's own TTL. Memory is measured right after the fill: a store whose puts yield to the event loop
(kvlog) may already have reclaimed the few keys whose 1 s TTL ran out during the fill.

${table(["subject", "put µs/op", "store B/key", "total B/key", "peak RSS"], rows)}`
}

const durableSection = (run: BenchRun): string => {
  const columns = columnsOf(run, "durable")
  const rawInRun = rawFlavourIds.filter((id) => runsSubject(run.options, "durable", id))
  const limit = (writers: number) => physicalLimit(run, writers)?.writesPerSecond
  const rows: Array<Array<string>> = []
  for (const column of columns) {
    const cell = findCell(run, "durable", column.id, 0)
    const result = resultOf(cell, "durable")
    if (result === undefined) {
      rows.push([column.label, cell === undefined && column.role === "missing" ? reasonFor(run, "durable", column.id) : missingText(cell), "", "", "", ""])
      continue
    }
    for (const entry of result.byWriters) {
      const physical = limit(entry.writers)
      rows.push([
        column.label,
        String(entry.writers),
        grouped(entry.writesPerSecond),
        micros(entry.p50Micros),
        micros(entry.p99Micros),
        physical === undefined ? "—" : ratio(entry.writesPerSecond / physical)
      ])
    }
  }
  const durability = run.catalog.durable.map((subject) => `- **${subject.label}**: ${subject.durability}.`).join("\n")
  return `## 3. Durable writes: 32-byte values, acknowledged only once on disk

${
    run.options.inProcessSuites.has("durable")
      ? "Each subject in turn inside the runner's process"
      : "Each subject in its own child process"
  }, files under the OS temp dir. After a short warm-up, each writer count runs
${run.options.reps ?? 3} timed windows of ${run.options.durableWindowMillis} ms; every writer puts a fresh key, waits for
the acknowledgement, and puts the next. Throughput is the median over the windows; p50/p99 latency come from the
window whose throughput is the median.

${
    rawInRun.length === rawFlavourIds.length
      ? `\`÷ limit\` compares with the physical limit of the disk and Node at the same writer count: the **fastest of the
three raw group-commit loops** in this run (no index, no framing, no checksums). Two of them append to the file, so
each \`fdatasync\` also commits the file's new size; the third preallocates as kvlog's log does (1 MiB of zeros
written ahead of the records, each batch written at its position), so its \`fdatasync\` has only data to commit.
The append rows stay in the table to show what preallocation buys.`
      : `\`÷ limit\` compares with the physical limit of the disk and Node at the same writer count: the fastest raw
group-commit loop in this run (${
        rawInRun.map((id) => `\`${id}\``).join(", ") || "none"
      }; no index, no framing, no checksums). The full run adds the
two loops that append to the file instead of preallocating, to show what preallocation buys.`
  }

${table(["subject", "writers", "writes/s", "p50 µs", "p99 µs", "÷ limit"], rows)}

What "on disk" means for each:

${durability}`
}

const reasonFor = (run: BenchRun, suite: CatalogSuite, id: string): string =>
  run.catalog.missing.find((missing) => missing.suite === suite && missing.id === id)?.reason ?? "n/a"

const replaySection = (run: BenchRun): string => {
  const rows: Array<Array<string>> = []
  for (const column of columnsOf(run, "replay")) {
    for (const records of run.options.replayRecords) {
      const cell = findCell(run, "replay", column.id, records)
      const result = resultOf(cell, "replay")
      rows.push(
        result === undefined
          ? [column.label, count(records), column.role === "missing" ? reasonFor(run, "replay", column.id) : missingText(cell), "", "", ""]
          : [
            column.label,
            count(records),
            (result.openMillis / 1000).toFixed(2),
            grouped(result.recordsPerSecond),
            megabytes(result.logBytes),
            String(result.reps)
          ]
      )
    }
  }
  return `## 4. Replay: opening ${run.options.replayRecords.map(count).join(" and ")} records

Each subject writes \`key\${i}\` → \`value\${i}\` (untimed, then closed), then the timed part opens the data and
visits every record: kvlog replays its log into the index on open (the layer is built, then \`size\`); lmdb and
classic-level open and scan everything. The files were just written, so they are in the page cache: a warm open.
Median of the repetitions shown.

${table(["subject", "records", "open + scan (s)", "records/s", "on disk", "reps"], rows)}`
}

const compactionSection = (run: BenchRun): string => {
  const columns = columnsOf(run, "compaction")
  const keys = run.options.compactionKeys
  const reps = run.options.compactionReps
  const summary: Array<Array<string>> = []
  const writers: Array<Array<string>> = []
  for (const column of columns) {
    const cell = findCell(run, "compaction", column.id, keys)
    const result = resultOf(cell, "compaction")
    if (result === undefined) {
      const why = column.role === "missing" ? reasonFor(run, "compaction", column.id) : missingText(cell)
      summary.push([column.label, why, "", "", "", "", ""])
      writers.push([column.label, why, "", "", "", "", ""])
      continue
    }
    const m = result.median
    const givenUp = result.unfinished > 0
    summary.push([
      column.label,
      String(result.reps.length),
      `${grouped(m.recordsBefore)} → ${grouped(m.recordsAfter)}${givenUp ? " (old log, when given up)" : ""}`,
      `${megabytes(m.bytesBefore)} → ${megabytes(m.bytesAfter)}`,
      givenUp
        ? `**did not finish** in ${(result.giveUpAfterMillis / 1000).toFixed(0)} s (interrupted)`
        : (m.durationMillis / 1000).toFixed(2),
      givenUp ? "—" : micros(m.longestPauseMillis),
      givenUp ? "—" : micros(result.worstPauseMillis),
      micros(m.longestGcMillis),
      micros(result.worstGcMillis)
    ])
    const row = (name: string, p: WriterPhase, vsBefore: string) => [
      column.label,
      name,
      grouped(p.writesPerSecond),
      vsBefore,
      micros(p.p50Micros),
      micros(p.p99Micros),
      micros(p.maxMicros / 1000)
    ]
    writers.push(row("before", m.before, "1.00×"))
    writers.push(row(
      givenUp ? "during (until given up)" : "during",
      m.during,
      ratio(m.during.writesPerSecond / m.before.writesPerSecond)
    ))
  }
  return `## 5. Compaction: a ${count(keys)}-key log with ~2 records per key, compacted while ${run.options.compactionWriters} writers put

How long compaction of a large log takes, and the longest pause it imposes on writers. Each policy in its own
child process: a log of ${count(keys)} puts (\`key\${i}\` → a 32-byte value) followed by ${count(keys)} overwrites is
written once per run with \`fsync: "never"\`, one put at a time (untimed), and every policy compacts copies of it; ${
    reps === 1 ? "the one repetition" : `each of the ${reps} repetitions`
  } copies it, opens the copy with
\`KeyValueStore.makeLog({ path, fsync, compaction: { auto: false } })\` (replay untimed, then a forced GC),
starts ${run.options.compactionWriters} writer fibers that each put a random existing key, wait for the
acknowledgement and put the next, lets them run ${
    run.options.compactionBeforeMillis / 1000
  } s after a 0.3 s warm-up (the **before** phase), then runs \`store.compact\`
in another fiber while they go on (the **during** phase), and stops them once it returns.

- **records / bytes before → after**, **compaction s** and the **longest pause**: the store's own report
  (\`stats.log.lastCompaction\`); records before include what the writers added before the compaction began, and
  records after the writes made during it. The pause is the longest synchronous stretch of the compaction (a
  walk or copy turn, or the switch to the new file), during which no writer runs; the worst repetition is shown
  beside the median.
- **longest GC**: the longest V8 garbage collection that began while the compaction ran (a \`PerformanceObserver\`
  of \`gc\` entries in the bench process). A collection stops every fiber, so a compaction turn it lands in is
  that much longer: a pause well above the turn's 1 ms beside a GC of about its size is the collector's.
- **writers**, measured from the outside: the latency of every put *sent* in the phase (p50, p99, max) and the
  puts *acknowledged* in it per second. The compaction's walk runs on the same thread as the writers, so it
  shows here even where the store holds nothing back.
- A compaction still running after ${
    (run.options.compactionGiveUpMillis / 1000).toFixed(0)
  } s is interrupted (the store then discards its \`.compact\` file) and reported as
  **did not finish**, with the old log's size at that moment and what the writers saw meanwhile; no further
  repetition is run.
- After each compaction the store must hold exactly ${count(keys)} keys. ${
    reps === 1
      ? "One repetition per policy (as in \`--quick\`): single figures, not medians."
      : `Medians of the ${reps} repetitions.`
  }

${
    table(
      [
        "subject",
        "reps",
        "records before → after",
        "bytes before → after",
        "compaction s",
        "longest pause ms",
        "worst pause ms",
        "longest GC ms",
        "worst GC ms"
      ],
      summary
    )
  }

${table(["subject", "phase", "writes/s", "÷ before", "p50 µs", "p99 µs", "max ms"], writers, 2)}`
}

const expirySection = (run: BenchRun): string => {
  const rows = columnsOf(run, "expiry").map((column) => {
    const cell = findCell(run, "expiry", column.id, run.options.expiryKeys)
    const result = resultOf(cell, "expiry")
    if (result === undefined) {
      return [
        column.label,
        column.role === "missing" ? reasonFor(run, "expiry", column.id) : missingText(cell),
        "",
        "",
        "",
        "",
        "",
        "",
        ""
      ]
    }
    const lag = (value: number | undefined) => (value === undefined ? "—" : micros(value))
    const wrong = (reads: number, worstMillis: number) => (reads === 0 ? "0" : `${grouped(reads)} (≤ ${micros(worstMillis)} ms)`)
    return [
      column.label,
      result.reclaimed === undefined
        ? result.unavailableReason ?? "—"
        : `${grouped(result.reclaimed)} / ${grouped(result.keys)}`,
      lag(result.lagP50Millis),
      lag(result.lagP99Millis),
      lag(result.lagMaxMillis),
      result.lagSource,
      grouped(result.reads),
      wrong(result.staleReads, result.maxStaleMillis),
      wrong(result.earlyMisses, result.maxEarlyMillis)
    ]
  })
  return `## 6. Expiry accuracy: ${count(run.options.expiryKeys)} keys, TTLs uniform in 1–2000 ms

${
    run.options.inProcessSuites.has("expiry") ? "Each subject in turn inside the runner's process. " : ""
  }Every key gets its own TTL; then, until every key is reclaimed (or 10 s past the last deadline), a reader probes
the keys whose deadline has just passed or is about to, plus random ones, and finally reads every key once more.
Each subject runs ${run.options.reps ?? 3} such passes, each on a fresh store: the lag figures are medians over the
passes, the reads and wrong reads their totals.
Each store is judged on its own clock (kvlog: Effect's \`Clock\`, \`Date.now()\` in whole ms; the caches:
\`performance.now()\`).

- **reclaim lag**: how long after its deadline the store removed the key (ms). "store": as the store reports it
  (kvlog's \`onReclaim(key, deadline, reclaimedAt)\`); "runner": time of the store's dispose callback − (time
  its put returned + TTL), the latest the deadline can be. A negative lag is a key removed before its deadline.
- **stale reads**: reads that began at or after (put returned + TTL) — at or after the deadline — and still
  returned the value, with the worst distance past the deadline. **early misses**: reads that ended before
  (put began + TTL) and found nothing, with the worst distance before it. Both must be 0 for exact TTL.

${
    table(
      ["subject", "reclaimed", "lag p50 ms", "lag p99 ms", "lag max ms", "lag from", "reads", "stale reads", "early misses"],
      rows
    )
  }`
}

const subjectsSection = (run: BenchRun): string => {
  const groups: Array<[string, CatalogSuite]> = [
    ["The original library's tables", "tables"],
    ["TTL-heavy", "ttl"],
    ["Durable writes", "durable"],
    ["Replay", "replay"],
    ["Compaction", "compaction"],
    ["Expiry accuracy", "expiry"]
  ]
  const parts = groups
    .filter(([, suite]) => run.options.suites.has(suite))
    .map(([title, suite]) => {
      const lines = (run.catalog[suite] as ReadonlyArray<SubjectIdentity>).map((subject) =>
        `- **${subject.label}** (\`${subject.id}\`, ${subject.role}): ${subject.description}`
      )
      return `### ${title}\n\n${lines.join("\n")}`
    })
  const missing = run.catalog.missing
    .filter((entry) => run.options.suites.has(entry.suite))
    .map((entry) => `- ${entry.suite}: **${entry.label}** — ${entry.reason}`)
  return `## Subjects

${parts.join("\n\n")}

${missing.length === 0 ? "Every subject was available." : `### Not measured in this run\n\n${missing.join("\n")}`}`
}

/** What went wrong in the cells without a figure, for whoever reads the tables. */
const failuresSection = (failures: ReadonlyArray<Cell>): string => {
  const lines = failures.map((cell) => {
    const where = `${cell.suite} · ${cell.subject}${cell.size > 0 ? ` · ${count(cell.size)}` : ""}${
      cell.suite === "tables" && cell.values === "100b" ? " · 100-byte values" : ""
    }`
    const outcome = cell.outcome
    const what = outcome._tag === "Timeout"
      ? `timeout after ${outcome.seconds.toFixed(0)} s`
      : outcome._tag === "OutOfMemory"
      ? `out of memory after ${outcome.seconds.toFixed(0)} s: ${outcome.detail}`
      : outcome._tag === "Failed"
      ? `failed after ${outcome.seconds.toFixed(0)} s: ${outcome.detail}`
      : ""
    return `- ${where}: ${what.replace(/\|/g, "\\|")}`
  })
  return `## Measurements without a figure

${lines.join("\n")}`
}

const clock = (seconds: number) => `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`

/** The whole report. */
export const renderReport = (run: BenchRun): string => {
  const { machine } = run
  const command = `npm run bench${run.argv.length > 0 ? ` -- ${run.argv.join(" ")}` : ""}`
  const failures = run.cells.filter((cell: Cell) => cell.outcome._tag !== "Ok" && cell.outcome._tag !== "Skipped")
  const sections: Array<string> = [
    `# Benchmarks

Generated by \`${command}\` on ${run.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC; the run took
${clock(run.elapsedSeconds)}.${
      run.options.quick ? "\nA `--quick` run: fewer subjects, sizes and repetitions (see [Reproduce](#reproduce))." : ""
    }

The full run (\`npm run bench\`) rewrites \`${docsReport}\`, its two charts and the README's figures: do not edit them by hand. Every
run, \`--quick\` included, writes its report, charts and raw \`results.json\` to a folder of its own,
\`bench/results/<start time>/\`.

The machine is shared and noisy: every figure is a median, and the comparisons that hold are the **ratios within
one run**, not absolute figures across runs.${
      failures.length > 0
        ? `\n\n${failures.length} of ${run.cells.length} measurements ran out of memory or time, or failed: the tables say which.`
        : ""
    }

## Machine

${
      table(["CPU", "cores", "memory", "OS", "Node", "V8"], [[
        machine.cpuModel,
        String(machine.cores),
        `${machine.memoryGiB} GiB`,
        machine.os,
        machine.node,
        machine.v8
      ]], 6)
    }

Packages measured: ${machine.packages.map((name) => `\`${name}\``).join(", ")}.

## Reproduce

\`\`\`sh
npm ci && npm run bench -- --quick   # about 2 minutes; prints the original library's tables
npm run bench                        # the full run: every subject, 100k … 10M keys; rewrites ${docsReport}
npm run bench -- --help              # --sizes, --subjects, --suites, --reps, --out, …
\`\`\`

Both print the original library's two tables on stdout beside its published figures, and end with the path of
the run's results folder. \`--quick\` is the check to run after a change; it leaves \`docs/\` alone and measures:

${quickPlan.map((line) => `- ${line}`).join("\n")}

## Targets

Goals the project set for the bench and the log; goals, not test assertions.

${table(
      ["target", "reached", "this run"],
      allTargets(run).map((target) => [target.rule, verdict(target.reached), target.figures]),
      3
    )}`
  ]
  if (run.options.suites.has("tables")) sections.push(seedSection(run))
  if (run.options.suites.has("ttl")) sections.push(ttlSection(run))
  if (run.options.suites.has("durable")) sections.push(durableSection(run))
  if (run.options.suites.has("replay")) sections.push(replaySection(run))
  if (run.options.suites.has("compaction")) sections.push(compactionSection(run))
  if (run.options.suites.has("expiry")) sections.push(expirySection(run))
  if (run.options.suites.has("perop")) sections.push(perOpSection(run))
  if (run.options.suites.has("tails")) sections.push(tailsSection(run))
  if (hasSharedSection(run)) sections.push(sharedSection(run))
  sections.push(subjectsSection(run))
  if (failures.length > 0) sections.push(failuresSection(failures))
  return `${sections.join("\n\n")}\n`
}
