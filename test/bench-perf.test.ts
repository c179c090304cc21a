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
})
