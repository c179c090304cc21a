/**
 * The report's part for the shared index (`index: "shared"`): its targets,
 * each a yes/no with the figures behind it, and one section gathering its
 * figures from the original library's tables, the replay suite, and its two
 * own suites (100M keys; reads from worker threads).
 */
import { type BenchRun, findCell } from "../BenchRun.ts"
import { scaleTargetKeys } from "../cli.ts"
import type { ReplayResult, SeedResult } from "../jobs.ts"
import { sharedSubjectId } from "../sharedPlan.ts"
import { bytes, count, grouped, megabytes, micros, missingText, ratio, resultOf, table } from "./format.ts"

export interface SharedTarget {
  readonly rule: string
  readonly reached: boolean | undefined
  readonly figures: string
}

/** The most bytes per key the shared index may take at 10M keys. */
export const sharedBytesTarget = 70
/** Reads from the main thread: at most this many times the heap index's. */
export const sharedReadTarget = 1.5
/** Two worker threads read at least this many times as fast as one. */
export const readersTarget = 1.7
/** Records per second the shared index's replay of a 10M-record log reaches. */
export const replayTarget = 4_000_000
/** V8's limit on a Map's entries (2^24), why the scale table has no Map row. */
export const mapEntryLimit = 2 ** 24

/** The replay rows of the shared index, in table order. */
export const sharedReplayIds: ReadonlyArray<string> = ["kvlog-log-shared", "kvlog-log-shared-hugepages"]

const seed = (run: BenchRun, subject: string, keys: number): SeedResult | undefined =>
  resultOf(findCell(run, "tables", subject, keys), "tables")

/**
 * The shared index's bytes per key with keys and values counted once. The
 * tables' total column adds the bytes of the caller's key and value strings
 * to every store's own growth, because a heap store keeps those very
 * strings; the shared index copies them into its arena as bytes and keeps no
 * reference to them, so its own growth (the store column) already counts
 * them, and adding the strings would count them twice.
 */
export const sharedBytesPerKey = (result: SeedResult): number => result.storeBytesPerKey

const memoryTarget = (run: BenchRun): SharedTarget => {
  const keys = 10_000_000
  const shared = seed(run, sharedSubjectId, keys)
  const heap = seed(run, "kvlog-memory", keys)
  const map = seed(run, "map", keys)
  return {
    rule: `shared index: memory ≤ ${sharedBytesTarget} bytes per key at 10M keys, keys and values counted (the original ` +
      "library's tables, `key${i}` → `value${i}`), beside the heap index and a Map",
    reached: shared === undefined ? undefined : sharedBytesPerKey(shared) <= sharedBytesTarget,
    figures: shared === undefined
      ? "—"
      : `${bytes(sharedBytesPerKey(shared))} B/key (its arena holds the keys and values; with the caller's strings ` +
        `counted too, as the table's total does: ${bytes(shared.totalBytesPerKey)}); heap index ${
          heap === undefined ? "—" : bytes(heap.totalBytesPerKey)
        }, Map ${map === undefined ? "—" : bytes(map.totalBytesPerKey)} B/key (total)`
  }
}

const scaleTarget = (run: BenchRun): SharedTarget => {
  const cell = findCell(run, "scale", sharedSubjectId, run.options.scaleKeys)
  const result = resultOf(cell, "scale")
  const failed = cell !== undefined && cell.outcome._tag !== "Ok" && cell.outcome._tag !== "Skipped"
  return {
    rule: `shared index: ${count(scaleTargetKeys)} keys in one store, put and read back (a Map cannot: at most ` +
      `${grouped(mapEntryLimit)} entries)`,
    // A size below the target is a figure, not a verdict; a crash at the target is a no.
    reached: run.options.scaleKeys < scaleTargetKeys
      ? undefined
      : result !== undefined
      ? true
      : failed
      ? false
      : undefined,
    figures: result !== undefined
      ? `${count(result.keys)}: put ${micros(result.putMicros)} µs, get ${micros(result.getMicros)} µs (${
        count(result.reads)
      } random reads, each checked), ${
        bytes(result.totalBytesPerKey)
      } B/key, peak RSS ${megabytes(result.peakRssBytes)}`
      : failed
      ? `${count(run.options.scaleKeys)}: ${missingText(cell)}`
      : "—"
  }
}

/** The replay figures of the shared index's rows at `records`, those that ran. */
const sharedReplays = (run: BenchRun, records: number) =>
  sharedReplayIds
    .map((id) => ({
      id,
      label: run.catalog.replay.find((subject) => subject.id === id)?.label ?? id,
      result: resultOf(findCell(run, "replay", id, records), "replay") as ReplayResult | undefined
    }))
    .filter((entry) => entry.result !== undefined)

const replayTargetOf = (run: BenchRun): SharedTarget => {
  const records = 10_000_000
  const measured = run.options.replayRecords.includes(records) ? sharedReplays(run, records) : []
  const reaching = measured.filter((entry) => entry.result!.recordsPerSecond >= replayTarget)
  return {
    rule: `shared index: replay of a 10M-record log ≥ ${grouped(replayTarget)} records/s (either row: 4 KiB pages, or ` +
      "huge pages)",
    reached: measured.length === 0 ? undefined : reaching.length > 0,
    figures: measured.length === 0
      ? "—"
      : `${
        measured.map((entry) => `${entry.id === "kvlog-log-shared" ? "4 KiB pages" : "huge pages"} ${grouped(entry.result!.recordsPerSecond)}/s`)
          .join(", ")
      }${
        reaching.length === 0
          ? ""
          : `; reached by ${reaching.map((entry) => (entry.id === "kvlog-log-shared" ? "4 KiB pages" : "huge pages")).join(" and ")}`
      }`
  }
}

const readTarget = (run: BenchRun): SharedTarget => {
  const figures: Array<string> = []
  const sizes = [1_000_000, 10_000_000]
  let within = 0
  for (const keys of sizes) {
    const shared = seed(run, sharedSubjectId, keys)
    const heap = seed(run, "kvlog-memory", keys)
    if (shared === undefined || heap === undefined) continue
    const ratioToHeap = shared.readMicros / heap.readMicros
    if (ratioToHeap <= sharedReadTarget) within++
    figures.push(`${count(keys)}: ${micros(shared.readMicros)} vs ${micros(heap.readMicros)} µs (${ratio(ratioToHeap)})`)
  }
  // The rule names both sizes: one missing leaves it unjudged, unless the other already fails it.
  const reached = within === sizes.length ? true : figures.length > within ? false : undefined
  return {
    rule: `shared index: reads from the main thread at 1M and 10M keys ≤ ${sharedReadTarget}× the heap index's (the ` +
      "original library's tables, same run)",
    reached,
    figures: figures.join("; ") || "—"
  }
}

const readersTargetOf = (run: BenchRun): SharedTarget => {
  const result = resultOf(findCell(run, "readers", sharedSubjectId, run.options.readersKeys), "readers")
  return {
    rule: `shared index: two worker threads read ≥ ${readersTarget}× as many keys per second as one ` +
      `(${count(run.options.readersKeys)} keys, medians of the rounds)`,
    reached: result === undefined ? undefined : result.twoWorkers >= readersTarget * result.oneWorker,
    figures: result === undefined
      ? "—"
      : `${grouped(result.twoWorkers)} vs ${grouped(result.oneWorker)} reads/s (${ratio(result.twoWorkers / result.oneWorker)})`
  }
}

/** The shared index's targets, in the order the project set them. */
export const sharedTargets = (run: BenchRun): Array<SharedTarget> => [
  memoryTarget(run),
  scaleTarget(run),
  replayTargetOf(run),
  readTarget(run),
  readersTargetOf(run)
]

/** Whether the run measured anything this section shows. */
export const hasSharedSection = (run: BenchRun): boolean =>
  ["tables", "replay", "scale", "readers"].some((suite) => run.options.suites.has(suite as never))

/** The shared index's section: its figures beside the heap index's and the Map's, from every suite that measures it. */
export const sharedSection = (run: BenchRun): string => {
  const missing = (value: number | undefined, show: (value: number) => string) => (value === undefined ? "—" : show(value))
  const storeRows = run.options.suites.has("tables")
    ? run.options.sizes.map((keys) => {
      const shared = seed(run, sharedSubjectId, keys)
      const heap = seed(run, "kvlog-memory", keys)
      const map = seed(run, "map", keys)
      if (shared === undefined) return [count(keys), missingText(findCell(run, "tables", sharedSubjectId, keys)), "", "", "", "", "", "", "", ""]
      return [
        count(keys),
        micros(shared.writeMicros),
        micros(shared.readMicros),
        missing(heap?.readMicros, micros),
        heap === undefined ? "—" : ratio(shared.readMicros / heap.readMicros),
        missing(map?.readMicros, micros),
        bytes(sharedBytesPerKey(shared)),
        bytes(shared.totalBytesPerKey),
        missing(heap?.totalBytesPerKey, bytes),
        missing(map?.totalBytesPerKey, bytes)
      ]
    })
    : []
  const scaleCell = findCell(run, "scale", sharedSubjectId, run.options.scaleKeys)
  if (scaleCell !== undefined) {
    const scale = resultOf(scaleCell, "scale")
    // Only past V8's limit is the Map's absence a fact about the Map.
    const noMap = run.options.scaleKeys > mapEntryLimit ? `a Map holds at most ${grouped(mapEntryLimit)} entries` : "not measured"
    storeRows.push(
      scale === undefined
        ? [count(run.options.scaleKeys), missingText(scaleCell), "", "", "", noMap, "", "", "not measured", noMap]
        : [
          `${count(scale.keys)} (own suite)`,
          micros(scale.putMicros),
          micros(scale.getMicros),
          "not measured",
          "—",
          noMap,
          bytes(scale.totalBytesPerKey),
          "—",
          "not measured",
          noMap
        ]
    )
  }
  const replayRows: Array<Array<string>> = []
  if (run.options.suites.has("replay")) {
    for (const records of run.options.replayRecords) {
      for (const id of ["kvlog-log", ...sharedReplayIds]) {
        const cell = findCell(run, "replay", id, records)
        if (cell === undefined) continue
        const result = resultOf(cell, "replay")
        const label = id === "kvlog-log" ? "heap index" : id === "kvlog-log-shared" ? "shared index" : "shared index, huge pages"
        replayRows.push(
          result === undefined
            ? [label, count(records), missingText(cell), ""]
            : [label, count(records), grouped(result.recordsPerSecond), (result.openMillis / 1000).toFixed(2)]
        )
      }
    }
  }
  const readersCell = findCell(run, "readers", sharedSubjectId, run.options.readersKeys)
  const readers = resultOf(readersCell, "readers")
  const readersRows = readersCell === undefined
    ? []
    : readers === undefined
    ? [[missingText(readersCell), "", "", ""]]
    : [[
      grouped(readers.oneWorker),
      grouped(readers.twoWorkers),
      ratio(readers.twoWorkers / readers.oneWorker),
      readers.oneWorkerRounds.map((one, i) => ratio(readers.twoWorkersRounds[i]! / one)).join(", ")
    ]]
  const parts = [`## The shared index: keys and values as bytes in SharedArrayBuffers

\`index: "shared"\` beside the heap index (kvlog layerMemory) and a Map. Its targets are in the table of targets above.`]
  if (storeRows.length > 0) {
    parts.push(`### Puts, gets and memory

From the original library's tables (same run, same method), and the shared index's own suite at ${
      count(run.options.scaleKeys)
    } keys: one store filled in key order (keys made as they are put), then ${
      count(run.options.scaleReads)
    } random keys read back, each value checked, and its size
checked; one repetition, in a child process of its own.

- **shared B/key**: the store's own growth, its \`SharedArrayBuffer\`s counted (which \`process.memoryUsage()\` leaves
  out). Its arena holds every key and value as bytes and it keeps no reference to the caller's strings, so this counts
  keys and values once. **shared B/key, table's total** adds the caller's strings as the table does for every store
  (a heap store keeps those strings): for the shared index that counts them twice.
- **heap** and **Map** bytes are the table's total (store + the strings it keeps).

${
      table(
        [
          "keys",
          "shared put µs",
          "shared get µs",
          "heap get µs",
          "get shared ÷ heap",
          "Map get µs",
          "shared B/key",
          "shared B/key, table's total",
          "heap B/key",
          "Map B/key"
        ],
        storeRows
      )
    }`)
  }
  if (replayRows.length > 0) {
    parts.push(`### Replay on open

The rows of the replay table for the heap and the shared index, and the shared index again in a child process started
with \`GLIBC_TUNABLES=glibc.malloc.hugetlb=1\`: glibc then asks for transparent huge pages for its large blocks, the
arena's segments among them. On this VM the first write to each fresh 4 KiB page costs a page fault dear enough to
bound replay into fresh memory; a 2 MiB page takes one fault where 4 KiB pages take 512.

${table(["index", "records", "records/s", "open + scan (s)"], replayRows, 2)}`)
  }
  if (readersRows.length > 0) {
    parts.push(`### Reads from worker threads

A store of ${count(run.options.readersKeys)} keys in a child process's main thread, shared with worker threads
(\`KeyValueStore.shareWithWorker\` → \`layerSharedReader\`); each thread reads the same ${
      count(run.options.readersReads)
    } keys in a random order through the Effect API. The threads start together once all are ready; a round's figure is
every thread's reads ÷ the slowest thread's time. ${run.options.readersRounds} rounds, one thread and two alternating,
so that other load on the machine falls on both alike; medians.

${table(["1 thread, reads/s", "2 threads, reads/s", "2 ÷ 1", "2 ÷ 1 by round"], readersRows, 0)}`)
  }
  return parts.join("\n\n")
}
