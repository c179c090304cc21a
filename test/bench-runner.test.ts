/**
 * The bench runner's own rules: what `--quick` measures and what it leaves
 * out, that only the full run rewrites the tracked report, that the jobs of
 * the quick run that stay in the runner's process report failures and
 * timeouts like a child, that compaction jobs share one prepared log, and
 * what the run prints on stdout and writes to its results folder.
 */
import { assert, describe, it } from "@effect/vitest"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach, vi } from "vitest"
import type { BenchRun, Cell } from "../bench/BenchRun.ts"
import { type BenchOptions, docsReport, parseOptions, runsSubject } from "../bench/cli.ts"
import { runInProcess } from "../bench/InProcessRun.ts"
import { type CompactionJob, type ExpiryJob, type ExpiryResult, type JobResult, resultPrefix, type SeedJob, type SeedResult } from "../bench/jobs.ts"
import { plan, type PlannedJob } from "../bench/plan.ts"
import { alignedTable } from "../bench/report/format.ts"
import { renderRawResults } from "../bench/report/rawResults.ts"
import { renderSeedTablesText } from "../bench/report/seedTablesText.ts"
import type { CompactionRun, CompactionSubject, SubjectRole } from "../bench/subjects/BenchSubject.ts"
import type { SubjectCatalog } from "../bench/subjects/registry.ts"
import { runCompactionJob } from "../bench/suites/compaction.ts"
import { combineExpiryPasses } from "../bench/suites/expiryAccuracy.ts"
import { progress, redirectProgress } from "../bench/suites/progress.ts"

const root = path.resolve(import.meta.dirname, "..")

const options = (argv: ReadonlyArray<string>): BenchOptions => {
  const parsed = parseOptions(argv)
  if (parsed === "help") throw new Error("unexpected --help")
  return parsed
}

/** A subject as the plan and the report see it: an id, a label and a role (no methods are called). */
const subject = (id: string, role: SubjectRole = "peer") => ({ id, label: `label of ${id}`, role, description: "" })

/** Every subject the registry knows, as a catalog with nothing missing. */
const fullCatalog = (): SubjectCatalog => ({
  tables: [
    subject("kvlog-memory", "kvlog"),
    subject("kvlog-promise", "kvlog"),
    subject("kvlog-log-never", "kvlog"),
    subject("kvlog-log-buffered", "kvlog"),
    subject("kvlog-log-always", "kvlog"),
    subject("map", "floor"),
    subject("lru-cache"),
    subject("lru-cache-ttl"),
    subject("ttlcache"),
    subject("effect-kvs")
  ] as unknown as SubjectCatalog["tables"],
  ttl: [subject("kvlog-memory", "kvlog"), subject("ttlcache"), subject("lru-cache-ttl"), subject("map-settimeout")] as never,
  durable: [
    subject("kvlog-log-always", "kvlog"),
    subject("lmdb"),
    subject("classic-level"),
    subject("raw-fdatasync-prealloc", "floor"),
    subject("raw-fdatasync", "floor"),
    subject("raw-fdatasync-async", "floor")
  ] as never,
  replay: [subject("kvlog-log", "kvlog"), subject("lmdb"), subject("classic-level")] as never,
  compaction: [subject("kvlog-log-always", "kvlog"), subject("kvlog-log-never", "kvlog")] as never,
  expiry: [subject("kvlog-memory", "kvlog"), subject("ttlcache"), subject("lru-cache-ttl")] as never,
  missing: []
})

const seedJobs = (jobs: ReadonlyArray<PlannedJob>, values: "short" | "100b" = "short") =>
  jobs.filter((job) => job.suite === "tables" && job.values === values)

const sizesOf = (jobs: ReadonlyArray<PlannedJob>, id: string) =>
  jobs.filter((job) => job.subject === id && job.skip === undefined).map((job) => job.size)

describe("bench command line", () => {
  it("--quick leaves the tracked report alone", () => {
    assert.isUndefined(options(["--quick"]).out)
  })

  it("the full run rewrites docs/benchmarks.md", () => {
    assert.strictEqual(options([]).out, docsReport)
  })

  it("a partial run rewrites no report unless --out names one", () => {
    assert.isUndefined(options(["--sizes", "100k"]).out)
    assert.isUndefined(options(["--suites", "tables"]).out)
    assert.isUndefined(options(["--subjects", "map"]).out)
    assert.isUndefined(options(["--reps", "7"]).out)
    assert.strictEqual(options(["--quick", "--out", "elsewhere/report.md"]).out, "elsewhere/report.md")
  })

  it("--out must name a Markdown file and --results a directory", () => {
    assert.throws(() => parseOptions(["--out", "docs/benchmarks.txt"]), /--out must name a \.md file/)
    assert.throws(() => parseOptions(["--results", " "]), /--results must name a directory/)
  })

  it("every run's folder goes under bench/results unless --results says otherwise", () => {
    assert.strictEqual(options(["--quick"]).resultsRoot, path.join(root, "bench", "results"))
    assert.strictEqual(options(["--quick", "--results", "/tmp/somewhere"]).resultsRoot, "/tmp/somewhere")
  })

  it("--quick keeps what the original library's tables compare and drops the slow log subjects", () => {
    const quick = options(["--quick"])
    for (const id of ["kvlog-memory", "kvlog-log-buffered", "map", "effect-kvs"]) {
      assert.isTrue(runsSubject(quick, "tables", id), id)
    }
    for (const id of ["kvlog-log-never", "kvlog-log-always", "lru-cache-ttl"]) {
      assert.isFalse(runsSubject(quick, "tables", id), id)
    }
    const full = options([])
    for (const id of ["kvlog-log-never", "kvlog-log-always", "lru-cache-ttl", "raw-fdatasync"]) {
      assert.isTrue(runsSubject(full, "tables", id) && runsSubject(full, "durable", id), id)
    }
  })

  it("--subjects chooses the subjects, in --quick too", () => {
    const quick = options(["--quick", "--subjects", "map,kvlog-log-always"])
    assert.isTrue(runsSubject(quick, "tables", "map"))
    assert.isTrue(runsSubject(quick, "tables", "kvlog-log-always"))
    assert.isFalse(runsSubject(quick, "tables", "kvlog-memory"))
  })
})

describe("bench plan", () => {
  it("--quick runs kvlog, its buffered log, Map and Effect's store at 100k and 1M, with medians of 3", () => {
    const jobs = seedJobs(plan(options(["--quick"]), fullCatalog()))
    for (const id of ["kvlog-memory", "kvlog-log-buffered", "map", "effect-kvs"]) {
      assert.deepStrictEqual(sizesOf(jobs, id), [100_000, 1_000_000], id)
    }
    for (const job of jobs) {
      const built = job.job("/work", "/shared")
      assert.strictEqual(built.suite === "tables" ? built.reps : 3, 3)
    }
  })

  it("--quick stops the peers and the Promise API at 100k, saying why", () => {
    const jobs = seedJobs(plan(options(["--quick"]), fullCatalog()))
    for (const id of ["kvlog-promise", "lru-cache", "ttlcache"]) {
      assert.deepStrictEqual(sizesOf(jobs, id), [100_000], id)
      assert.strictEqual(jobs.find((job) => job.subject === id && job.size === 1_000_000)?.skip, "--quick: 100k only")
    }
    assert.deepStrictEqual(sizesOf(jobs, "kvlog-log-never"), [])
    assert.deepStrictEqual(seedJobs(plan(options(["--quick"]), fullCatalog()), "100b"), [])
  })

  it("--quick runs the durable-writes and expiry jobs in the runner's process, every other job in a child", () => {
    const quick = options(["--quick"])
    assert.deepStrictEqual([...quick.inProcessSuites].sort(), ["durable", "expiry"])
    assert.strictEqual(options([]).inProcessSuites.size, 0)
    const durable = plan(quick, fullCatalog()).filter((job) => job.suite === "durable").map((job) => job.subject)
    assert.deepStrictEqual(durable, ["kvlog-log-always", "lmdb", "classic-level", "raw-fdatasync-prealloc"])
  })

  it("the full run measures every subject at every size, the durable fill up to 1M", () => {
    const full = options([])
    const jobs = plan(full, fullCatalog())
    const sizes = [100_000, 500_000, 1_000_000, 5_000_000, 10_000_000]
    for (const { id } of fullCatalog().tables) {
      assert.deepStrictEqual(
        sizesOf(seedJobs(jobs), id),
        id === "kvlog-log-always" ? sizes.filter((size) => size <= 1_000_000) : sizes,
        id
      )
      assert.deepStrictEqual(sizesOf(seedJobs(jobs, "100b"), id), [100_000, 500_000, 1_000_000], id)
    }
    assert.strictEqual(
      seedJobs(jobs).find((job) => job.subject === "kvlog-log-always" && job.size === 5_000_000)?.skip,
      "durable fill capped at 1M"
    )
    const count = (suite: string) => jobs.filter((job) => job.suite === suite).length
    assert.deepStrictEqual(
      [count("ttl"), count("durable"), count("replay"), count("compaction"), count("expiry")],
      [4, 6, 6, 2, 3]
    )
    const ttl = jobs.find((job) => job.suite === "ttl")!
    const replaySizes = jobs.filter((job) => job.suite === "replay").map((job) => job.size)
    assert.deepStrictEqual([ttl.size, full.durableWindowMillis, full.compactionKeys, full.expiryKeys], [
      1_000_000,
      2_000,
      1_000_000,
      100_000
    ])
    assert.deepStrictEqual([...new Set(replaySizes)], [1_000_000, 10_000_000])
  })

  it("the Redis rows run at 100k and 1M keys with short values in the full run, at 100k in --quick, at every size of --sizes", () => {
    const base = fullCatalog()
    const catalog: SubjectCatalog = {
      ...base,
      tables: [...base.tables, subject("kvlog-redis", "kvlog"), subject("redis-client")] as never,
      durable: [...base.durable, subject("kvlog-redis", "kvlog"), subject("redis"), subject("redis-client")] as never
    }
    const full = plan(options([]), catalog)
    for (const id of ["kvlog-redis", "redis-client"]) {
      assert.deepStrictEqual(sizesOf(seedJobs(full), id), [100_000, 1_000_000], id)
      assert.strictEqual(
        seedJobs(full).find((job) => job.subject === id && job.size === 500_000)?.skip,
        "Redis rows: 100k and 1M keys only"
      )
      assert.deepStrictEqual(sizesOf(seedJobs(full, "100b"), id), [], id)
      assert.deepStrictEqual(sizesOf(seedJobs(plan(options(["--quick"]), catalog)), id), [100_000], id)
      assert.deepStrictEqual(sizesOf(seedJobs(plan(options(["--sizes", "20k,200k"]), catalog)), id), [20_000, 200_000], id)
    }
    const durable = (jobs: ReadonlyArray<PlannedJob>) => jobs.filter((job) => job.suite === "durable").map((job) => job.subject)
    assert.includeMembers(durable(full), ["kvlog-log-always", "kvlog-redis", "redis", "redis-client"])
    assert.includeMembers(durable(plan(options(["--quick"]), catalog)), ["kvlog-log-always", "kvlog-redis", "redis"])
  })

  it("the compaction jobs of a run share one directory for the prepared log", () => {
    const jobs = plan(options(["--quick"]), fullCatalog()).filter((job) => job.suite === "compaction")
    assert.strictEqual(jobs.length, 2)
    for (const [index, job] of jobs.entries()) {
      const built = job.job(`/work/${index}`, "/shared") as CompactionJob
      assert.strictEqual(built.preparedLogDir, "/shared")
      assert.strictEqual(built.workDir, `/work/${index}`)
    }
  })
})

describe("the expiry-accuracy job's passes", () => {
  it("run 3 times in every run unless --reps says otherwise, with a time limit that grows with them", () => {
    const expiryPlan = (argv: ReadonlyArray<string>) =>
      plan(options(argv), fullCatalog()).filter((job) => job.suite === "expiry")
    for (const [argv, reps] of [[[], 3], [["--quick"], 3], [["--reps", "5"], 5]] as const) {
      const jobs = expiryPlan(argv)
      assert.isAbove(jobs.length, 0)
      for (const job of jobs) {
        assert.strictEqual((job.job("/work", "/shared") as ExpiryJob).reps, reps, argv.join(" "))
        assert.strictEqual(job.timeoutSeconds, 60 * reps)
      }
    }
  })

  it("combine into medians of the lags, totals of the reads and the worst of the wrong reads' distances", () => {
    const pass = (p99: number, stale: number, maxStale: number, reclaimed: number): ExpiryResult => ({
      suite: "expiry",
      keys: 100,
      reclaimed,
      lagP50Millis: p99 / 10,
      lagP99Millis: p99,
      lagMaxMillis: p99 * 2,
      lagSource: "store",
      unavailableReason: undefined,
      reads: 1_000,
      staleReads: stale,
      maxStaleMillis: maxStale,
      earlyMisses: 0,
      maxEarlyMillis: 0
    })
    const combined = combineExpiryPasses([pass(15, 0, 0, 100), pass(4, 2, 1.5, 99), pass(22, 1, 0.5, 100)])
    assert.strictEqual(combined.reps, 3)
    assert.deepStrictEqual(combined.lagP99ByRep, [15, 4, 22])
    assert.deepStrictEqual([combined.lagP50Millis, combined.lagP99Millis, combined.lagMaxMillis], [1.5, 15, 30])
    assert.deepStrictEqual([combined.reads, combined.staleReads, combined.maxStaleMillis], [3_000, 3, 1.5])
    assert.strictEqual(combined.reclaimed, 99, "the fewest any pass reclaimed")
    const unavailable = { ...pass(0, 0, 0, 0), reclaimed: undefined, lagP50Millis: undefined, lagP99Millis: undefined, lagMaxMillis: undefined }
    const none = combineExpiryPasses([unavailable])
    assert.deepStrictEqual([none.reclaimed, none.lagP99Millis, none.lagP99ByRep], [undefined, undefined, []])
  })
})

const expiryJob: ExpiryJob = {
  suite: "expiry",
  subject: "ttlcache",
  workDir: "/nowhere",
  keys: 10,
  ttlMinMillis: 1,
  ttlMaxMillis: 2
}

describe("jobs in the runner's process", () => {
  it("a job that fails is reported with its message", async () => {
    const outcome = await runInProcess(
      expiryJob,
      { timeoutSeconds: 60, onProgress: () => {} },
      () => Promise.reject(new Error("the store refused to open\nstack…"))
    )
    assert.strictEqual(outcome._tag, "Failed")
    assert.strictEqual(outcome._tag === "Failed" ? outcome.detail : "", "the store refused to open")
  })

  it("a job still running at its time limit is reported as a timeout", { timeout: 10_000 }, async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] })
    try {
      const outcome = runInProcess(expiryJob, { timeoutSeconds: 5, onProgress: () => {} }, () => new Promise(() => {}))
      await vi.advanceTimersByTimeAsync(5_000)
      assert.strictEqual((await outcome)._tag, "Timeout")
    } finally {
      vi.useRealTimers()
    }
  })

  it("its progress lines go to the runner while it runs, and back to stderr after it", async () => {
    const seen: Array<string> = []
    const result = { suite: "expiry" } as JobResult
    const outcome = await runInProcess(expiryJob, { timeoutSeconds: 60, onProgress: (line) => seen.push(line) }, () => {
      progress("put 10 keys")
      return Promise.resolve(result)
    })
    assert.deepStrictEqual(outcome._tag === "Ok" ? outcome.result : undefined, result)
    const written = vi.spyOn(process.stderr, "write").mockImplementation(() => true)
    try {
      progress("a line after the job")
      assert.deepStrictEqual(written.mock.calls.map((call) => call[0]), ["a line after the job\n"])
    } finally {
      written.mockRestore()
    }
    assert.deepStrictEqual(seen, ["put 10 keys"])
  })
})

/** A compaction subject that writes a stand-in log and reports a compaction that kept every key. */
const fakeCompaction = (counts: { prepared: number; measured: number }, failPrepare = false): CompactionSubject => ({
  ...subject("kvlog-log-never", "kvlog"),
  preparedLogKind: "stand-in",
  prepare: (logPath, keys, overwrites) => {
    counts.prepared++
    fs.writeFileSync(logPath, `${keys.length} keys, ${overwrites} overwrites`)
    return failPrepare ? Promise.reject(new Error("killed while preparing")) : Promise.resolve()
  },
  measure: (logPath, { keys }) => {
    counts.measured++
    const bytes = fs.statSync(logPath).size
    const now = performance.now()
    return Promise.resolve({
      report: { recordsBefore: 2 * keys.length, recordsAfter: keys.length, bytesBefore: bytes, bytesAfter: bytes, durationMillis: 1, longestPauseMillis: 0.5 },
      logBefore: { records: 2 * keys.length, bytes },
      logAfter: { records: keys.length, bytes },
      baselineStart: now - 2,
      compactStart: now - 1,
      compactEnd: now,
      sentAt: new Float64Array([now - 1.5, now - 0.5]),
      latencyMillis: new Float64Array([0.1, 0.1]),
      liveKeys: keys.length
    } as CompactionRun)
  }
})

const compactionJob = (workDir: string, preparedLogDir: string): CompactionJob => ({
  suite: "compaction",
  subject: "kvlog-log-never",
  workDir,
  keys: 10,
  overwrites: 10,
  writers: 1,
  valueBytes: 4,
  beforeMillis: 1,
  giveUpAfterMillis: 1_000,
  reps: 1,
  preparedLogDir
})

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-bench-test-"))

describe("compaction's prepared log", () => {
  // The jobs' progress lines, kept out of the test output.
  let restoreProgress: () => void = () => {}
  beforeEach(() => {
    restoreProgress = redirectProgress(() => {})
  })
  afterEach(() => restoreProgress())

  it("the second compaction job of a run compacts a copy of the log the first prepared", async () => {
    const dir = tempDir()
    try {
      fs.mkdirSync(path.join(dir, "a"))
      fs.mkdirSync(path.join(dir, "b"))
      const counts = { prepared: 0, measured: 0 }
      await runCompactionJob(compactionJob(path.join(dir, "a"), dir), fakeCompaction(counts))
      await runCompactionJob(compactionJob(path.join(dir, "b"), dir), fakeCompaction(counts))
      assert.deepStrictEqual(counts, { prepared: 1, measured: 2 })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a log whose preparation failed is prepared again by the next job", async () => {
    const dir = tempDir()
    try {
      fs.mkdirSync(path.join(dir, "a"))
      fs.mkdirSync(path.join(dir, "b"))
      const counts = { prepared: 0, measured: 0 }
      let failure: unknown
      await runCompactionJob(compactionJob(path.join(dir, "a"), dir), fakeCompaction(counts, true)).catch((error) => {
        failure = error
      })
      assert.match(String(failure), /killed while preparing/)
      await runCompactionJob(compactionJob(path.join(dir, "b"), dir), fakeCompaction(counts))
      assert.deepStrictEqual(counts, { prepared: 2, measured: 1 })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

const seedResult = (writeMicros: number, readMicros: number, totalBytesPerKey: number): SeedResult => ({
  suite: "tables",
  writeMicros,
  readMicros,
  storeBytesPerKey: totalBytesPerKey - 50,
  totalBytesPerKey,
  rssBytesPerKey: totalBytesPerKey,
  peakRssBytes: 1e8,
  reads: 100_000,
  reps: 3
})

const seedCell = (subjectId: string, size: number, outcome: Cell["outcome"]): Cell => ({
  suite: "tables",
  subject: subjectId,
  size,
  values: "short",
  outcome
})

/** A --quick run of the original library's tables: two stores measured at 100k, one out of memory and one capped at 1M. */
const quickRun = (): BenchRun => {
  const catalog = fullCatalog()
  return {
    options: options(["--quick", "--suites", "tables"]),
    argv: ["--quick", "--suites", "tables"],
    machine: { cpuModel: "test", cores: 2, memoryGiB: 1, os: "test", node: "v24", v8: "13", packages: [] },
    startedAt: new Date("2026-12-02T01:00:00Z"),
    elapsedSeconds: 90,
    catalog: { ...catalog, tables: catalog.tables.filter((s) => ["kvlog-memory", "map", "lru-cache"].includes(s.id)) },
    cells: [
      seedCell("kvlog-memory", 100_000, { _tag: "Ok", seconds: 2, result: seedResult(0.5, 1, 90) }),
      seedCell("map", 100_000, { _tag: "Ok", seconds: 2, result: seedResult(0.25, 0.2, 80) }),
      seedCell("lru-cache", 100_000, { _tag: "Ok", seconds: 2, result: seedResult(0.4, 0.4, 110) }),
      seedCell("kvlog-memory", 1_000_000, { _tag: "OutOfMemory", seconds: 9, detail: "heap out of memory" }),
      seedCell("map", 1_000_000, { _tag: "Ok", seconds: 5, result: seedResult(0.5, 0.5, 84) }),
      seedCell("lru-cache", 1_000_000, { _tag: "Skipped", reason: "--quick: 100k only" })
    ],
    suiteSeconds: { tables: 20 }
  }
}

const tableLines = (text: string, title: string): Array<string> => {
  const lines = text.split("\n")
  const start = lines.findIndex((line) => line.startsWith(title)) + 2
  const end = lines.findIndex((line, i) => i >= start && !line.startsWith("|"))
  return lines.slice(start, end)
}

describe("the original library's tables on stdout", () => {
  const text = renderSeedTablesText(quickRun())

  it("the write table puts each store beside the published figure: µs, speed-up, bytes per key", () => {
    const rows = tableLines(text, "Write:")
    assert.deepStrictEqual(rows.slice(2).map((row) => row.split("|").map((cell) => cell.trim()).slice(1, -1)), [
      ["100k", "original Python library (published)", "2.71", "", "225", ""],
      ["100k", "label of kvlog-memory", "0.500", "5.43×", "90", "0.40×"],
      ["100k", "label of map", "0.250", "11×", "80", "0.36×"],
      ["100k", "label of lru-cache", "0.400", "6.78×", "110", "0.49×"],
      ["1M", "original Python library (published)", "2.69", "", "166", ""],
      ["1M", "label of kvlog-memory", "OOM", "", "", ""],
      ["1M", "label of map", "0.500", "5.38×", "84", "0.51×"]
    ])
  })

  it("the read table does the same for gets", () => {
    const rows = tableLines(text, "Read:")
    assert.deepStrictEqual(rows.slice(2).map((row) => row.split("|").map((cell) => cell.trim()).slice(1, -1)), [
      ["100k", "original Python library (published)", "4.92", ""],
      ["100k", "label of kvlog-memory", "1.00", "4.92×"],
      ["100k", "label of map", "0.200", "25×"],
      ["100k", "label of lru-cache", "0.400", "12×"],
      ["1M", "original Python library (published)", "5.54", ""],
      ["1M", "label of kvlog-memory", "OOM", ""],
      ["1M", "label of map", "0.500", "11×"]
    ])
  })

  it("a store the plan left out at a size is said once, with the reason", () => {
    assert.include(text, "- label of lru-cache: not at 1M (--quick: 100k only)")
    assert.notInclude(text, "| 1M   | label of lru-cache")
  })

  it("the columns line up in a terminal", () => {
    for (const title of ["Write:", "Read:"]) {
      const widths = new Set(tableLines(text, title).map((line) => line.length))
      assert.strictEqual(widths.size, 1, title)
    }
    const table = alignedTable(["a", "figure"], [["long text", "1"], ["x", "22.5"]])
    assert.deepStrictEqual(table.split("\n"), [
      "| a         | figure |",
      "|-----------|-------:|",
      "| long text |      1 |",
      "| x         |   22.5 |"
    ])
  })
})

describe("raw results", () => {
  it("results.json holds the options as plain JSON, every cell, and the subjects without their methods", () => {
    const run = quickRun()
    const parsed = JSON.parse(renderRawResults(run)) as {
      command: string
      options: { suiteSubjects: { tables: Array<string> }; seedSizeCaps: Record<string, { maxKeys: number }> }
      subjects: { tables: Array<Record<string, unknown>> }
      cells: Array<Cell>
    }
    assert.strictEqual(parsed.command, "npm run bench -- --quick --suites tables")
    assert.include(parsed.options.suiteSubjects.tables, "kvlog-memory")
    assert.strictEqual(parsed.options.seedSizeCaps["lru-cache"]!.maxKeys, 100_000)
    assert.deepStrictEqual(parsed.cells, JSON.parse(JSON.stringify(run.cells)))
    assert.deepStrictEqual(Object.keys(parsed.subjects.tables[0]!).sort(), ["description", "id", "label", "role"])
  })
})

describe("the runner", () => {
  it("a --quick run prints the tables and its results folder, writes the folder, and leaves docs/ alone", () => {
    const results = tempDir()
    const docsBefore = fs.readFileSync(path.join(root, docsReport), "utf8")
    try {
      const run = childProcess.spawnSync(
        process.execPath,
        ["bench/run.ts", "--quick", "--suites", "tables", "--subjects", "map", "--sizes", "2000", "--results", results],
        { cwd: root, encoding: "utf8", timeout: 120_000 }
      )
      assert.strictEqual(run.status, 0, run.stderr)
      const [folder, ...others] = fs.readdirSync(results)
      assert.deepStrictEqual(others, [])
      assert.match(folder!, /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-quick$/)
      assert.deepStrictEqual(fs.readdirSync(path.join(results, folder!)).sort(), [
        "bench-read.svg",
        "bench-write.svg",
        "benchmarks.md",
        "results.json"
      ])
      assert.match(run.stdout, /\| 2k +\| Map +\| +\d/)
      assert.include(run.stdout, `Report, charts and raw results: ${path.join(results, folder!)}/`)
      assert.include(run.stdout, "docs/benchmarks.md and its charts were left alone")
      assert.strictEqual(fs.readFileSync(path.join(root, docsReport), "utf8"), docsBefore)
    } finally {
      fs.rmSync(results, { recursive: true, force: true })
    }
  })
})

describe("the memory column of the shared index", () => {
  it("counts the index's SharedArrayBuffers, which process.memoryUsage() leaves out", () => {
    const workDir = tempDir()
    try {
      const keys = 50_000
      const job: SeedJob = { suite: "tables", subject: "kvlog-memory-shared", workDir, keys, values: "short", reps: 3, readSample: 1_000 }
      const run = childProcess.spawnSync(process.execPath, ["--expose-gc", "bench/child.ts", JSON.stringify(job)], {
        cwd: root,
        encoding: "utf8",
        timeout: 120_000
      })
      assert.strictEqual(run.status, 0, run.stderr)
      const line = run.stdout.split("\n").find((text) => text.startsWith(resultPrefix))
      const result = JSON.parse(line!.slice(resultPrefix.length)) as SeedResult
      // Each `key${i}` → `value${i}` takes a 32-byte record in the arena, a
      // 4-byte entry and at least 4/3 of an 8-byte slot: without the shared
      // bytes, the heap's growth alone is a few bytes a key.
      assert.isAtLeast(result.storeBytesPerKey, 32 + 4 + (8 * 4) / 3)
      assert.isBelow(result.storeBytesPerKey, 120)
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true })
    }
  })
})
