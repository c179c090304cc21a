/**
 * The bench's suites and targets for the shared index: what the plan runs in
 * the full run and in `--quick` (which leaves the 100M-key store out), the
 * replay row that needs huge pages from its child's start, and which figures
 * each target's verdict reads.
 */
import { assert, describe, it } from "@effect/vitest"
import type { BenchRun, Cell, CellOutcome } from "../bench/BenchRun.ts"
import { type BenchOptions, parseOptions } from "../bench/cli.ts"
import type { JobResult, ReadersResult, ReplayResult, ScaleResult, SeedResult } from "../bench/jobs.ts"
import { plan } from "../bench/plan.ts"
import { renderReport } from "../bench/report/markdown.ts"
import { sharedSection, sharedTargets } from "../bench/report/sharedReport.ts"
import { quickScaleSkip } from "../bench/sharedPlan.ts"
import { hugePagesEnv, kvlogReplaySharedHugePages } from "../bench/subjects/kvlogLog.ts"
import type { SubjectCatalog } from "../bench/subjects/registry.ts"

const options = (argv: ReadonlyArray<string>): BenchOptions => parseOptions(argv) as BenchOptions

const subject = (id: string) => ({ id, label: `label of ${id}`, role: "peer", description: "" })

const catalog = (withShared = true): SubjectCatalog => ({
  tables: [...(withShared ? ["kvlog-memory-shared"] : []), "kvlog-memory", "map"].map(subject),
  ttl: [],
  durable: [],
  replay: [
    subject("kvlog-log"),
    subject("kvlog-log-shared"),
    { ...subject("kvlog-log-shared-hugepages"), childEnv: hugePagesEnv }
  ],
  compaction: [],
  expiry: [],
  missing: []
}) as unknown as SubjectCatalog

const jobsOf = (argv: ReadonlyArray<string>, suite: string, withShared = true) =>
  plan(options(argv), catalog(withShared)).filter((job) => job.suite === suite)

describe("the shared index's suites in the plan", () => {
  it("the full run stores 100M keys and reads from worker threads at 1M keys, each in a child", () => {
    const [scale, ...moreScale] = jobsOf([], "scale")
    assert.deepStrictEqual(moreScale, [])
    assert.strictEqual(scale!.skip, undefined)
    assert.deepStrictEqual(scale!.job("/w", "/s"), {
      suite: "scale",
      subject: "kvlog-memory-shared",
      workDir: "/w",
      keys: 100_000_000,
      reads: 10_000_000
    })
    // A fill and a read-back of 100M keys at a few µs each: the time limit leaves room for both.
    assert.isAtLeast(scale!.timeoutSeconds, 600)
    const [readers] = jobsOf([], "readers")
    assert.deepStrictEqual(readers!.job("/w", "/s"), {
      suite: "readers",
      subject: "kvlog-memory-shared",
      workDir: "/w",
      keys: 1_000_000,
      reads: 1_000_000,
      rounds: 7
    })
    assert.isFalse(options([]).inProcessSuites.has("scale") || options([]).inProcessSuites.has("readers"))
  })

  it("--quick leaves the 100M-key store out, saying why, and still reads from worker threads", () => {
    const scale = jobsOf(["--quick"], "scale")
    assert.deepStrictEqual(scale.map((job) => [job.size, job.skip]), [[100_000_000, quickScaleSkip]])
    const readers = jobsOf(["--quick"], "readers")
    assert.deepStrictEqual(readers.map((job) => [job.size, job.skip]), [[1_000_000, undefined]])
  })

  it("--scale-keys sizes the scale suite (past the 16M of --sizes), and the run no longer stands for the project", () => {
    const small = options(["--suites", "scale", "--scale-keys", "2M"])
    assert.deepStrictEqual([small.scaleKeys, small.scaleReads], [2_000_000, 2_000_000])
    assert.deepStrictEqual(jobsOf(["--scale-keys", "200M"], "scale").map((job) => job.size), [200_000_000])
    assert.strictEqual(options(["--scale-keys", "100M"]).out, undefined)
    assert.throws(() => options(["--scale-keys", "1G"]), /--scale-keys/)
  })

  it("without kvlog's shared store neither suite is planned", () => {
    assert.deepStrictEqual([...jobsOf([], "scale", false), ...jobsOf([], "readers", false)], [])
  })

  it("the huge-pages replay row starts its child with GLIBC_TUNABLES, the plain rows without", () => {
    const replay = jobsOf([], "replay")
    const env = (id: string) => replay.filter((job) => job.subject === id).map((job) => job.env)
    assert.deepStrictEqual(env("kvlog-log-shared-hugepages"), [hugePagesEnv, hugePagesEnv])
    assert.deepStrictEqual(env("kvlog-log-shared"), [undefined, undefined])
    assert.deepStrictEqual(hugePagesEnv, { GLIBC_TUNABLES: "glibc.malloc.hugetlb=1" })
    // --quick's 250k records say nothing of the 10M-record bound it exists for.
    assert.deepStrictEqual(jobsOf(["--quick"], "replay").map((job) => job.subject), ["kvlog-log", "kvlog-log-shared"])
  })

  it("the huge-pages row refuses to measure in a process started without them", async () => {
    const previous = process.env["GLIBC_TUNABLES"]
    delete process.env["GLIBC_TUNABLES"]
    try {
      const row = kvlogReplaySharedHugePages({} as never, (() => {
        throw new Error("must not open a store")
      }) as never)
      const error = await row.openAndScan("/nowhere").then(() => undefined, (cause: Error) => cause)
      assert.match(String(error?.message), /GLIBC_TUNABLES=glibc\.malloc\.hugetlb=1/)
    } finally {
      if (previous !== undefined) process.env["GLIBC_TUNABLES"] = previous
    }
  })
})

const ok = (result: Partial<JobResult>): CellOutcome => ({ _tag: "Ok", result: result as JobResult, seconds: 1 })

const seedCell = (subject: string, keys: number, figures: Partial<SeedResult>): Cell => ({
  suite: "tables",
  subject,
  size: keys,
  values: "short",
  outcome: ok({ suite: "tables", writeMicros: 1, readMicros: 1, storeBytesPerKey: 50, totalBytesPerKey: 90, ...figures })
})

const replayCell = (subject: string, records: number, recordsPerSecond: number): Cell => ({
  suite: "replay",
  subject,
  size: records,
  values: "short",
  outcome: ok({ suite: "replay", records, recordsPerSecond, openMillis: (records * 1000) / recordsPerSecond } as ReplayResult)
})

const runOf = (argv: ReadonlyArray<string>, cells: ReadonlyArray<Cell>): BenchRun =>
  ({ options: options(argv), cells, catalog: catalog() }) as unknown as BenchRun

/** The targets in order: memory, scale, replay, reads, worker reads. */
const targetsOf = (argv: ReadonlyArray<string>, cells: ReadonlyArray<Cell>) => sharedTargets(runOf(argv, cells))

describe("the shared index's targets", () => {
  it("memory at 10M counts keys and values once: the store's own bytes, which hold them, not the strings again", () => {
    const memory = (store: number, total: number) =>
      targetsOf([], [
        seedCell("kvlog-memory-shared", 10_000_000, { storeBytesPerKey: store, totalBytesPerKey: total }),
        seedCell("kvlog-memory", 10_000_000, { totalBytesPerKey: 150 }),
        seedCell("map", 10_000_000, { totalBytesPerKey: 120 })
      ])[0]!
    const reached = memory(52, 96)
    assert.strictEqual(reached.reached, true)
    assert.include(reached.figures, "52 B/key")
    assert.include(reached.figures, "heap index 150, Map 120")
    assert.strictEqual(memory(71, 71).reached, false)
    // Another size's figure does not stand for 10M.
    assert.strictEqual(targetsOf([], [seedCell("kvlog-memory-shared", 5_000_000, { storeBytesPerKey: 40 })])[0]!.reached, undefined)
  })

  it("scale is yes once 100M keys were put and read back, no if the job died there, not measured when left out", () => {
    const scaleCell = (outcome: CellOutcome): Cell => ({ suite: "scale", subject: "kvlog-memory-shared", size: 100_000_000, values: "short", outcome })
    const result: Partial<ScaleResult> = { suite: "scale", keys: 100_000_000, reads: 10_000_000, putMicros: 2.5, getMicros: 3, totalBytesPerKey: 48, peakRssBytes: 6e9 }
    const done = targetsOf([], [scaleCell(ok(result))])[1]!
    assert.strictEqual(done.reached, true)
    assert.include(done.figures, "100M: put 2.50 µs, get 3.00 µs (10M random reads, each checked), 48 B/key")
    assert.strictEqual(targetsOf([], [scaleCell({ _tag: "OutOfMemory", seconds: 9, detail: "heap" })])[1]!.reached, false)
    assert.strictEqual(targetsOf(["--quick"], [scaleCell({ _tag: "Skipped", reason: quickScaleSkip })])[1]!.reached, undefined)
    // A smaller store says nothing of 100M.
    const small = { ...result, keys: 1_000_000 }
    assert.strictEqual(
      targetsOf(["--scale-keys", "1M"], [{ ...scaleCell(ok(small)), size: 1_000_000 }])[1]!.reached,
      undefined
    )
  })

  it("replay at 10M is yes when either shared row reaches 4M records/s, and says which", () => {
    const replay = (plain: number, huge: number) =>
      targetsOf([], [
        replayCell("kvlog-log-shared", 10_000_000, plain),
        replayCell("kvlog-log-shared-hugepages", 10_000_000, huge),
        // The heap index's row and the 1M rows do not count.
        replayCell("kvlog-log", 10_000_000, 9e6),
        replayCell("kvlog-log-shared", 1_000_000, 9e6)
      ])[2]!
    const huge = replay(3e6, 4.5e6)
    assert.strictEqual(huge.reached, true)
    assert.include(huge.figures, "reached by huge pages")
    assert.notInclude(huge.figures, "reached by 4 KiB")
    assert.strictEqual(replay(3e6, 3.9e6).reached, false)
    assert.include(replay(4.1e6, 3.9e6).figures, "reached by 4 KiB pages")
    assert.strictEqual(targetsOf(["--quick"], [replayCell("kvlog-log-shared", 250_000, 9e6)])[2]!.reached, undefined)
  })

  it("reads are judged against the heap index's reads at 1M and 10M, not its writes", () => {
    const reads = (shared1M: number, shared10M: number) =>
      targetsOf([], [
        seedCell("kvlog-memory-shared", 1_000_000, { readMicros: shared1M, writeMicros: 9 }),
        seedCell("kvlog-memory", 1_000_000, { readMicros: 0.4, writeMicros: 0.1 }),
        seedCell("kvlog-memory-shared", 10_000_000, { readMicros: shared10M, writeMicros: 9 }),
        seedCell("kvlog-memory", 10_000_000, { readMicros: 0.8, writeMicros: 0.1 })
      ])[3]!
    assert.strictEqual(reads(0.6, 1.2).reached, true)
    assert.strictEqual(reads(0.61, 1.2).reached, false)
    assert.strictEqual(reads(0.6, 1.21).reached, false)
    assert.include(reads(0.6, 1.2).figures, "10M: 1.20 vs 0.800 µs (1.50×)")
  })

  it("reads measured at one of the two sizes leave the rule unjudged, unless that size already fails it", () => {
    const oneSize = (shared1M: number) =>
      targetsOf([], [
        seedCell("kvlog-memory-shared", 1_000_000, { readMicros: shared1M, writeMicros: 9 }),
        seedCell("kvlog-memory", 1_000_000, { readMicros: 0.4, writeMicros: 0.1 })
      ])[3]!
    assert.strictEqual(oneSize(0.6).reached, undefined)
    assert.include(oneSize(0.6).figures, "1M: 0.600 vs 0.400 µs")
    assert.strictEqual(oneSize(0.61).reached, false)
  })

  it("two worker threads must read 1.7× as many keys per second as one", () => {
    const readers = (one: number, two: number) =>
      targetsOf([], [{
        suite: "readers",
        subject: "kvlog-memory-shared",
        size: 1_000_000,
        values: "short",
        outcome: ok({ suite: "readers", keys: 1_000_000, reads: 1_000_000, oneWorker: one, twoWorkers: two, oneWorkerRounds: [one], twoWorkersRounds: [two] } as ReadersResult)
      }])[4]!
    assert.strictEqual(readers(1e6, 1.7e6).reached, true)
    assert.strictEqual(readers(1e6, 1.69e6).reached, false)
    assert.include(readers(1e6, 1.8e6).figures, "1,800,000 vs 1,000,000 reads/s (1.80×)")
  })

  it("nothing measured, no verdict", () => {
    assert.deepStrictEqual(targetsOf([], []).map((target) => target.reached), Array(5).fill(undefined))
  })
})

describe("the shared index's section of the report", () => {
  it("says why the 100M row has no Map, and shows both replay rows of the shared index", () => {
    const run = runOf([], [
      {
        suite: "scale",
        subject: "kvlog-memory-shared",
        size: 100_000_000,
        values: "short",
        outcome: ok({ suite: "scale", keys: 100_000_000, putMicros: 2.5, getMicros: 3, totalBytesPerKey: 48 })
      },
      replayCell("kvlog-log-shared", 10_000_000, 3e6),
      replayCell("kvlog-log-shared-hugepages", 10_000_000, 4.5e6)
    ])
    const section = sharedSection(run)
    assert.include(section, "a Map holds at most 16,777,216 entries")
    assert.match(section, /\| shared index \| 10M \| 3,000,000 \|/)
    assert.match(section, /\| shared index, huge pages \| 10M \| 4,500,000 \|/)
    // The targets table of the whole report carries the shared index's verdicts.
    const report = renderReport({ ...run, machine: { packages: [] }, startedAt: new Date(0), argv: [], elapsedSeconds: 1 } as unknown as BenchRun)
    assert.include(report, "## The shared index")
    assert.match(report, /100M keys in one store.*\| yes \|/)
  })
})
