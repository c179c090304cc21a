/**
 * How fast a log replays on open, in records per second: the whole open
 * (`makeLog`, which replays the log into a fresh index, then `size`), for
 * each index, and the reading and checking alone (`replayFile` into a visitor
 * that keeps nothing), which is the floor of any index.
 *
 *   node bench/replaySpeed.ts [--records 2000000] [--per-batch 1] [--reps 5] [--index heap,shared] [--dir DIR]
 *
 * The log holds `key${i}` → `value${i}` for i below `--records`, written
 * `--per-batch` records a batch (1, the default, is what a program awaiting
 * each put writes: the worst case for replay, a batch header per record). It
 * is written once, straight through the record encoder (the same bytes the
 * store's writer makes), and kept under `--dir` for later runs. The file is
 * in the page cache: this is a warm open. Every figure is the median of
 * `--reps` repetitions. After the shared index's opens comes the cost of
 * first writing to as many fresh bytes as it holds, without replaying
 * anything: the floor that page faults put under replay on this machine.
 *
 * Each figure also gives the process's CPU time over the same interval, user
 * and system (medians, in ms): on a machine shared with other work, wall time
 * alone cannot tell a slower replay from one that waited for a core (wall
 * well above user + system). With transparent huge pages
 * (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`) system time is mostly the page
 * faults of the index's fresh memory; with 4 KiB pages in this VM, much of
 * each fault is spent in the host and shows up as user time instead (the
 * first touch of 513 MB: ~1 s user beside ~1–2.5 s system, vs ~0.07 s user
 * with huge pages).
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { fileHeaderLength } from "../src/internal/log/format/LogFormat.ts"
import { encodeFileHeader, newSalt, RecordEncoder } from "../src/internal/log/format/LogRecord.ts"
import { replayFile } from "../src/internal/log/format/LogReplay.ts"
import type { RecordVisitor } from "../src/internal/log/format/LogScanner.ts"
import { sharedIndexOf } from "../src/internal/store/sharedReader.ts"

const argument = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1]! : fallback
}
const records = Number(argument("records", "2000000"))
const perBatch = Number(argument("per-batch", "1"))
const reps = Number(argument("reps", "5"))
const kinds = argument("index", "heap,shared").split(",").filter((kind) => kind !== "") as Array<"heap" | "shared">
const dir = argument("dir", path.join(os.tmpdir(), "kvlog-replay-bench"))
if (!(Number.isInteger(records) && records > 0)) throw new Error(`--records must be a positive integer`)
if (!(Number.isInteger(perBatch) && perBatch > 0)) throw new Error(`--per-batch must be a positive integer`)
if (!(Number.isInteger(reps) && reps >= 3)) throw new Error(`--reps must be an integer ≥ 3 (a median of fewer is not one)`)

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

/** Writes the log as the store's writer would: one sealed batch per `perBatch` records, sequences from 0. */
const writeLog = (filePath: string): void => {
  const temporary = `${filePath}.partial`
  const fd = fs.openSync(temporary, "w")
  const salt = newSalt()
  const out = Buffer.allocUnsafeSlow(4 * 1024 * 1024)
  let filled = 0
  let end = 0
  const flush = () => {
    fs.writeSync(fd, out, 0, filled, end)
    end += filled
    filled = 0
  }
  const put = (bytes: Uint8Array) => {
    if (filled + bytes.length > out.length) flush()
    out.set(bytes, filled)
    filled += bytes.length
  }
  put(encodeFileHeader(salt))
  const encoder = new RecordEncoder()
  let sequence = 0
  for (let i = 0; i < records;) {
    for (const stop = Math.min(records, i + perBatch); i < stop; i++) encoder.appendPut(`key${i}`, `value${i}`, Infinity)
    // Written with `fsync: "never"`: nothing past the header was ever synced.
    put(encoder.seal(sequence++, salt, fileHeaderLength))
    encoder.reset()
  }
  flush()
  fs.closeSync(fd)
  fs.renameSync(temporary, filePath)
}

fs.mkdirSync(dir, { recursive: true })
const logPath = path.join(dir, `replay-${records}-${perBatch}.log`)
if (!fs.existsSync(logPath)) {
  const start = performance.now()
  writeLog(logPath)
  console.error(`wrote ${logPath} in ${((performance.now() - start) / 1000).toFixed(1)} s`)
}
const logBytes = fs.statSync(logPath).size
// Warm the page cache, as the bench's replay suite does by writing the log just before.
fs.readFileSync(logPath)

/** Wall time of a run with the CPU time it took (user and system, ms). */
interface Timing {
  readonly millis: number
  readonly user: number
  readonly system: number
}

/** Times `run` in wall and CPU time. */
const timed = async (run: () => unknown): Promise<Timing> => {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run()
  const millis = performance.now() - start
  const used = process.cpuUsage(cpu)
  return { millis, user: used.user / 1000, system: used.system / 1000 }
}

/** Reading, checksums and decoding with a visitor that keeps nothing: what replay costs before any index. */
const scanOnly = (): void => {
  let seen = 0
  const visitor: RecordVisitor = {
    put: () => {
      seen++
    },
    delete: () => {
      seen++
    },
    bytes: {
      put: () => {
        seen++
      },
      delete: () => {
        seen++
      }
    }
  }
  const fd = fs.openSync(logPath, "r")
  try {
    const result = replayFile(
      (buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
      logBytes,
      visitor,
      { onCorruption: "fail" }
    )
    if (result._tag !== "Ok" || result.records !== records || seen !== records) {
      throw new Error(`the scan saw ${seen} records (${result._tag}), expected ${records}`)
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** The shared index's bytes after the last open into it. */
let sharedBytes = 0

/** Opening the log into a fresh `kind` index and counting its keys. */
const open = (kind: "heap" | "shared"): Promise<Timing> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const cpu = process.cpuUsage()
    const start = performance.now()
    const store = yield* KeyValueStore.makeLog({ path: logPath, fsync: "never", index: kind, compaction: { auto: false } })
    const size = yield* store.size
    const millis = performance.now() - start
    const used = process.cpuUsage(cpu)
    if (size !== records) throw new Error(`${kind}: ${size} keys after replay, expected ${records}`)
    if (kind === "shared") sharedBytes = sharedIndexOf(store)!.sharedBytes
    return { millis, user: used.user / 1000, system: used.system / 1000 }
  })))

/**
 * The first write to each 4 KiB page of as many fresh bytes as the shared
 * index holds: every index pays it once per page it fills, and where a page
 * fault is dear (~20 µs in this VM) it bounds replay whatever the index does.
 */
const touchFresh = (bytes: number): void => {
  const memory = new Uint8Array(new SharedArrayBuffer(bytes))
  for (let at = 0; at < bytes; at += 4096) memory[at] = 1
}

const report = (what: string, timings: ReadonlyArray<Timing>) => {
  const millis = timings.map((timing) => timing.millis)
  const best = median(millis)
  console.log(JSON.stringify({
    what,
    records,
    perBatch,
    logMB: Number((logBytes / 1e6).toFixed(1)),
    reps,
    recordsPerSecond: Math.round((records * 1000) / best),
    millis: Number(best.toFixed(1)),
    userMillis: Math.round(median(timings.map((timing) => timing.user))),
    systemMillis: Math.round(median(timings.map((timing) => timing.system))),
    rounds: millis.map((m) => Math.round((records * 1000) / m))
  }))
}

const scans: Array<Timing> = []
for (let rep = 0; rep < reps; rep++) scans.push(await timed(scanOnly))
report("scan (no index)", scans)
for (const kind of kinds) {
  const opens: Array<Timing> = []
  for (let rep = 0; rep < reps; rep++) opens.push(await open(kind))
  report(`open, ${kind} index`, opens)
}
if (sharedBytes > 0) {
  const touches: Array<Timing> = []
  for (let rep = 0; rep < reps; rep++) touches.push(await timed(() => touchFresh(sharedBytes)))
  report(`first touch of the shared index's ${(sharedBytes / 1e6).toFixed(0)} MB (no replay)`, touches)
}
