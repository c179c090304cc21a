/**
 * The bench runner: `npm run bench [-- options]` (see `--help`).
 *
 * Plans one job per (suite, subject, size) and runs them one at a time (the
 * machine has two cores and other work on it), each in a child process of
 * its own except the suites the options keep in this one; reports progress
 * on stderr. At the end it writes the run's report, charts and raw results
 * to `bench/results/<start time>/`, prints the original library's two tables
 * and that folder's path on stdout, and, after a full run (or with `--out`),
 * rewrites `docs/benchmarks.md` (or the `--out` file) and its two charts; a
 * full run also rewrites the README's figures.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { BenchRun, Cell, CellOutcome } from "./BenchRun.ts"
import { type ChildOutcome, killRunningChild, runChild } from "./ChildRun.ts"
import { type BenchOptions, docsReport, helpText, parseOptions } from "./cli.ts"
import { runInProcess } from "./InProcessRun.ts"
import type { SuiteName } from "./jobs.ts"
import { describeMachine } from "./machine.ts"
import { plan, type PlannedJob } from "./plan.ts"
import { count as formatCount } from "./report/format.ts"
import { renderReport } from "./report/markdown.ts"
import { renderRawResults } from "./report/rawResults.ts"
import { renderSeedTablesText } from "./report/seedTablesText.ts"
import { renderTargetsText } from "./report/targetsText.ts"
import { renderChart } from "./report/svg.ts"
import { renderReadmeBlock, replaceReadmeBlock } from "./report/readme.ts"
import { loadCatalog } from "./subjects/registry.ts"
import { redisServerVersion } from "./subjects/redis.ts"

const clock = (seconds: number): string => {
  const whole = Math.floor(seconds)
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`
}

const describeOutcome = (outcome: CellOutcome): string => {
  switch (outcome._tag) {
    case "Ok":
      return `done in ${outcome.seconds.toFixed(1)} s`
    case "OutOfMemory":
      return `OUT OF MEMORY after ${outcome.seconds.toFixed(1)} s (${outcome.detail})`
    case "Timeout":
      return `TIMEOUT after ${outcome.seconds.toFixed(1)} s`
    case "Failed":
      return `FAILED after ${outcome.seconds.toFixed(1)} s: ${outcome.detail}`
    case "Skipped":
      return `skipped: ${outcome.reason}`
  }
}

/** A subject that ran out of memory or time at a size is not tried at larger ones. */
const earlierFailure = (cells: ReadonlyArray<Cell>, planned: PlannedJob): string | undefined => {
  if (planned.suite !== "tables" && planned.suite !== "replay" && planned.suite !== "perop") return undefined
  const failed = cells.find((cell) =>
    cell.suite === planned.suite && cell.subject === planned.subject && cell.values === planned.values &&
    cell.size < planned.size && (cell.outcome._tag === "OutOfMemory" || cell.outcome._tag === "Timeout")
  )
  if (failed === undefined) return undefined
  return `${failed.outcome._tag === "Timeout" ? "timeout" : "OOM"} at ${formatCount(failed.size)}`
}

/** A new folder for this run's files: its start time, to the second (a suffix if two runs share it). */
const makeResultsDir = (resultsRoot: string, startedAt: Date, quick: boolean): string => {
  const stamp = `${startedAt.toISOString().slice(0, 19).replace(/:/g, "-")}Z${quick ? "-quick" : ""}`
  fs.mkdirSync(resultsRoot, { recursive: true })
  for (let attempt = 1;; attempt++) {
    const dir = path.join(resultsRoot, attempt === 1 ? stamp : `${stamp}-${attempt}`)
    try {
      fs.mkdirSync(dir)
      return dir
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
  }
}

/** Writes the report with its two charts beside it; returns the files written. */
const writeReport = (run: BenchRun, reportPath: string): Array<string> => {
  const dir = path.dirname(reportPath)
  fs.mkdirSync(dir, { recursive: true })
  const files: Array<[string, string]> = [
    [reportPath, renderReport(run)],
    [path.join(dir, "bench-write.svg"), renderChart(run, "write")],
    [path.join(dir, "bench-read.svg"), renderChart(run, "read")]
  ]
  for (const [file, text] of files) fs.writeFileSync(file, text)
  return files.map(([file]) => file)
}

const main = async (): Promise<void> => {
  const argv = process.argv.slice(2)
  let parsed: BenchOptions | "help"
  try {
    parsed = parseOptions(argv)
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\nSee: npm run bench -- --help\n`)
    process.exitCode = 2
    return
  }
  if (parsed === "help") {
    process.stdout.write(`${helpText}\n`)
    return
  }
  const options = parsed
  const startedAt = new Date()
  const started = performance.now()
  const elapsed = () => (performance.now() - started) / 1000
  const say = (line: string) => process.stderr.write(`[${clock(elapsed())}] ${line}\n`)
  // Paths inside the working directory are shown relative to it, others in full.
  const relative = (file: string) => {
    const inside = path.relative(process.cwd(), file)
    return inside.startsWith("..") || path.isAbsolute(inside) ? file : inside || "."
  }

  // A full run that could not write the README's tables at its end would
  // leave them from another run than the report: refuse before measuring.
  if (options.out === docsReport) replaceReadmeBlock(fs.readFileSync("README.md", "utf8"), "")

  const catalog = await loadCatalog()
  for (const missing of catalog.missing) {
    if (options.suites.has(missing.suite)) say(`not measured (${missing.suite}): ${missing.label}: ${missing.reason}`)
  }
  const jobs = plan(options, catalog)
  say(`${jobs.length} jobs planned${options.out === undefined ? "" : `; report: ${options.out}`}`)

  const workRoot = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-bench-"))
  const sharedDir = path.join(workRoot, "shared")
  fs.mkdirSync(sharedDir)
  const cleanUp = () => fs.rmSync(workRoot, { recursive: true, force: true })
  const onSignal = (signal: NodeJS.Signals) => {
    killRunningChild()
    cleanUp()
    process.stderr.write(`\ninterrupted (${signal}); nothing written\n`)
    process.exit(130)
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)

  const cells: Array<Cell> = []
  const suiteSeconds: Partial<Record<SuiteName, number>> = {}
  try {
    for (const [index, planned] of jobs.entries()) {
      const inProcess = options.inProcessSuites.has(planned.suite) && planned.env === undefined
      const what = `${planned.suite} ${index + 1}/${jobs.length}: ${planned.subject}` +
        (planned.size > 0 ? `, ${formatCount(planned.size)}` : "") +
        (planned.suite === "tables" ? ` keys, ${planned.values === "short" ? "value${i}" : "100-byte values"}` : "")
      const skipReason = planned.skip ?? earlierFailure(cells, planned)
      let outcome: CellOutcome
      if (skipReason !== undefined) {
        outcome = { _tag: "Skipped", reason: skipReason }
      } else {
        say(`${what}${inProcess ? " (in the runner's process)" : ""} …`)
        const workDir = path.join(workRoot, `${index}-${planned.suite}-${planned.subject}`)
        fs.mkdirSync(workDir, { recursive: true })
        let lastLine = performance.now()
        const heartbeat = setInterval(() => {
          if (performance.now() - lastLine > 30_000) {
            say(`  … ${planned.subject} still running`)
            lastLine = performance.now()
          }
        }, 5_000)
        const runOptions = {
          timeoutSeconds: planned.timeoutSeconds,
          onProgress: (line: string) => {
            lastLine = performance.now()
            process.stderr.write(`          │ ${line}\n`)
          }
        }
        const job = planned.job(workDir, sharedDir)
        const child: ChildOutcome = inProcess
          ? await runInProcess(job, runOptions)
          : await runChild(job, { ...runOptions, maxOldSpaceMb: options.maxOldSpaceMb, env: planned.env })
        clearInterval(heartbeat)
        fs.rmSync(workDir, { recursive: true, force: true })
        outcome = child
        suiteSeconds[planned.suite] = (suiteSeconds[planned.suite] ?? 0) + child.seconds
      }
      say(`${skipReason === undefined ? "  " : `${what}: `}${describeOutcome(outcome)}`)
      cells.push({ suite: planned.suite, subject: planned.subject, size: planned.size, values: planned.values, outcome })
    }
  } finally {
    cleanUp()
  }

  const run: BenchRun = {
    options,
    argv,
    machine: describeMachine(redisServerVersion()),
    startedAt,
    elapsedSeconds: elapsed(),
    catalog,
    cells,
    suiteSeconds
  }
  const resultsDir = makeResultsDir(options.resultsRoot, startedAt, options.quick)
  const written = writeReport(run, path.join(resultsDir, "benchmarks.md"))
  fs.writeFileSync(path.join(resultsDir, "results.json"), renderRawResults(run))
  say(`wrote ${[...written, path.join(resultsDir, "results.json")].map(relative).join(", ")}`)
  const docs = options.out === undefined ? [] : writeReport(run, options.out)
  // The README's tables come from the run that rewrote the docs' report, and only from it.
  if (options.out === docsReport) {
    fs.writeFileSync("README.md", replaceReadmeBlock(fs.readFileSync("README.md", "utf8"), renderReadmeBlock(run)))
    docs.push("README.md")
  }
  if (docs.length > 0) say(`wrote ${docs.map(relative).join(", ")}`)
  say(`total ${clock(elapsed())}`)

  const where = [
    `Report, charts and raw results: ${relative(resultsDir)}/`,
    docs.length > 0
      ? `Rewritten: ${docs.map(relative).join(", ")}`
      : "docs/benchmarks.md and its charts were left alone (only the full run, npm run bench, rewrites them)."
  ]
  process.stdout.write(`${renderSeedTablesText(run)}${renderTargetsText(run)}\n${where.join("\n")}\n`)
}

await main()
// A job that timed out inside this process may still hold timers or handles: end once stdout is flushed.
process.stdout.write("", () => process.exit())
