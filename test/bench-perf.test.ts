/**
 * The bench's cost-floor suites: what the per-operation and buffered-tail
 * suites plan at each run size, and how the targets table turns their
 * figures into a yes or a no (or "not measured").
 */
import { assert, describe, it } from "@effect/vitest"
import type { BenchRun, Cell } from "../bench/BenchRun.ts"
import { type BenchOptions, parseOptions } from "../bench/cli.ts"
import type { JobResult, PerOpResult } from "../bench/jobs.ts"
import { plan } from "../bench/plan.ts"
import { perfTargets } from "../bench/report/perfReport.ts"
import { readmeBegin, readmeEnd, renderReadmeBlock, replaceReadmeBlock } from "../bench/report/readme.ts"
import * as fs from "node:fs"
import type { SubjectCatalog } from "../bench/subjects/registry.ts"

const options = (argv: ReadonlyArray<string>): BenchOptions => parseOptions(argv) as BenchOptions

const subject = (id: string) => ({ id, label: `label of ${id}`, role: "peer", description: "" })

const catalog = (): SubjectCatalog => ({
  tables: ["kvlog-memory", "kvlog-log-buffered", "map", "effect-kvs"].map(subject),
  ttl: [],
  durable: [],
  replay: [],
  compaction: [],
  expiry: [],
  missing: []
}) as unknown as SubjectCatalog

const jobsOf = (argv: ReadonlyArray<string>, suite: string) =>
  plan(options(argv), catalog()).filter((job) => job.suite === suite).map((job) => `${job.subject}@${job.size}`)

describe("the per-operation and buffered-tail suites", () => {
  it("the full run measures kvlog, Effect's store, the Map and the yield* floor at 100k, 1M and 10M keys", () => {
    const subjects = ["kvlog-memory", "effect-kvs", "map", "yield-floor"]
    assert.deepStrictEqual(
      jobsOf([], "perop"),
      [100_000, 1_000_000, 10_000_000].flatMap((keys) => subjects.map((id) => `${id}@${keys}`))
    )
    assert.deepStrictEqual(jobsOf(["--quick"], "perop").map((job) => job.split("@")[1]), [
      ...Array(4).fill("100000"),
      ...Array(4).fill("1000000")
    ])
    assert.deepStrictEqual(jobsOf(["--sizes", "20k", "--suites", "perop", "--subjects", "map"], "perop"), ["map@20000"])
  })

  it("the buffered-tail suite runs both buffered policies, once kvlog's log loads", () => {
    assert.deepStrictEqual(jobsOf([], "tails"), ["kvlog-log-buffered@0", "kvlog-log-interval-buffered@0"])
    const withoutLog = { ...catalog(), tables: catalog().tables.filter((s) => s.id !== "kvlog-log-buffered") }
    assert.deepStrictEqual(plan(options([]), withoutLog).filter((job) => job.suite === "tails"), [])
  })

  it("the per-operation target is yes only when kvlog is within every bound at every size, and not measured without figures", () => {
    const run = (figures: Record<string, [number, number]>): BenchRun => {
      const cells: Array<Cell> = Object.entries(figures).map(([id, [putMicros, getMicros]]) => {
        const result: PerOpResult = {
          suite: "perop",
          keys: 100_000,
          putMicros,
          getMicros,
          putGcMillis: 0,
          getGcMillis: 0,
          getScavenges: 0,
          getMarkCompacts: 0,
          reps: []
        }
        return {
          suite: "perop",
          subject: id,
          size: 100_000,
          values: "short",
          outcome: { _tag: "Ok", result: result as JobResult, seconds: 1 }
        }
      })
      return { options: options(["--sizes", "100k"]), cells, catalog: catalog() } as unknown as BenchRun
    }
    const perOp = (figures: Record<string, [number, number]>) => perfTargets(run(figures))[0]!
    assert.strictEqual(perOp({ "kvlog-memory": [0.5, 0.5], "effect-kvs": [0.6, 0.6], map: [0.4, 0.3] }).reached, true)
    // get above 2× the Map.
    assert.strictEqual(perOp({ "kvlog-memory": [0.5, 0.7], "effect-kvs": [0.6, 0.8], map: [0.4, 0.3] }).reached, false)
    // put above Effect's store.
    assert.strictEqual(perOp({ "kvlog-memory": [0.59, 0.5], "effect-kvs": [0.55, 0.6], map: [0.4, 0.3] }).reached, false)
    assert.strictEqual(perOp({ map: [0.4, 0.3] }).reached, undefined)
    assert.strictEqual(perfTargets(run({})).every((target) => target.reached === undefined), true)
  })

  it("a full run's README tables replace what lies between the markers, and nothing else", () => {
    const before = `# title\n\nintro\n${readmeBegin}\nold figures\n${readmeEnd}\n\nafter\n`
    const after = replaceReadmeBlock(before, "| new | figures |")
    assert.strictEqual(after, `# title\n\nintro\n${readmeBegin}\n| new | figures |\n${readmeEnd}\n\nafter\n`)
    assert.strictEqual(replaceReadmeBlock(after, "| new | figures |"), after, "a second run rewrites the same block")
    assert.throws(() => replaceReadmeBlock("# no markers\n", "x"), /must hold/)
    assert.throws(() => replaceReadmeBlock(`${readmeEnd}\n${readmeBegin}\n`, "x"), /must hold/)
    assert.throws(() => replaceReadmeBlock(`${readmeBegin}${readmeEnd}${readmeBegin}${readmeEnd}`, "x"), /must hold/)
    // The project's README holds them, so a full run can write its tables there.
    const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8")
    assert.include(replaceReadmeBlock(readme, "| marker |"), "| marker |")
  })

  it("the README block puts kvlog beside the original library's published figures and gives every target's verdict", () => {
    const cell = (subject: string, writeMicros: number, readMicros: number): Cell => ({
      suite: "tables",
      subject,
      size: 100_000,
      values: "short",
      outcome: {
        _tag: "Ok",
        result: { suite: "tables", writeMicros, readMicros, storeBytesPerKey: 20, totalBytesPerKey: 92, rssBytesPerKey: 0, peakRssBytes: 0, reads: 1, reps: 3 } as JobResult,
        seconds: 1
      }
    }) as unknown as Cell
    const run = {
      options: options(["--sizes", "100k"]),
      cells: [cell("kvlog-memory", 0.5, 1.25), cell("map", 0.25, 0.5)],
      catalog: catalog(),
      startedAt: new Date("2026-12-02T08:00:00Z")
    } as unknown as BenchRun
    const block = renderReadmeBlock(run)
    assert.include(block, "2026-12-02 08:00 UTC")
    // 2.71 µs and 4.92 µs published at 100k: kvlog's write 0.5 µs is 5.43× faster, its read 1.25 µs 3.94×.
    assert.match(block, /\| 100k +\| 2\.71 \/ 4\.92 +\| 0\.500 \/ 1\.25 +\| 0\.250 \/ 0\.500 +\| 225 \/ 92 +\| 5\.43× \/ 3\.94× +\|/)
    assert.include(block, "≥ 5× faster than the original Python library")
  })
})
