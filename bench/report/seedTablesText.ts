/**
 * The original Python library's two tables as this run measured them, for
 * stdout at the end of a run: writes with the memory per key, and reads.
 * One row per store and key count, the library's published figure first at
 * each size, so that the tables stay narrow enough for a terminal and read
 * as Markdown too.
 */
import { type BenchRun, findCell } from "../BenchRun.ts"
import type { SeedResult } from "../jobs.ts"
import { seedFigureAt } from "../seedFigures.ts"
import { alignedTable, bytes, count, micros, missingText, ratio, resultOf } from "./format.ts"
import { columnsOf } from "./markdown.ts"

const originalLabel = "original Python library (published)"

/** A store's row at one size: its result, or why it has none. */
interface StoreRow {
  readonly label: string
  readonly result: SeedResult | undefined
  readonly missing: string
}

/** The stores measured at `keys`; those the plan left out at that size are listed once below the tables instead. */
const storeRows = (run: BenchRun, keys: number): Array<StoreRow> =>
  columnsOf(run, "tables").flatMap((column) => {
    const cell = findCell(run, "tables", column.id, keys)
    if (cell?.outcome._tag === "Skipped") return []
    return [{ label: column.label, result: resultOf(cell, "tables"), missing: missingText(cell) }]
  })

/** Stores the plan left out at some size, and why: said once below the tables rather than in every row. */
const skippedNote = (run: BenchRun): Array<string> => {
  const notes: Array<string> = []
  for (const column of columnsOf(run, "tables")) {
    const skipped = run.options.sizes.flatMap((keys) => {
      const outcome = findCell(run, "tables", column.id, keys)?.outcome
      return outcome?._tag === "Skipped" ? [{ keys, reason: outcome.reason }] : []
    })
    if (skipped.length > 0) {
      notes.push(`${column.label}: not at ${skipped.map((s) => count(s.keys)).join(", ")} (${skipped[0]!.reason})`)
    }
    if (column.role === "missing") {
      const reason = run.catalog.missing.find((m) => m.suite === "tables" && m.id === column.id)?.reason ?? "n/a"
      notes.push(`${column.label}: not measured (${reason})`)
    }
  }
  return notes
}

const writeTable = (run: BenchRun): string => {
  const rows: Array<Array<string>> = []
  for (const keys of run.options.sizes) {
    const figure = seedFigureAt(keys)
    const originalBytes = figure === undefined ? undefined : figure.memoryBytes / keys
    if (figure !== undefined) rows.push([count(keys), originalLabel, micros(figure.writeMicros), "", bytes(originalBytes!), ""])
    for (const row of storeRows(run, keys)) {
      if (row.result === undefined) {
        rows.push([count(keys), row.label, row.missing, "", "", ""])
        continue
      }
      rows.push([
        count(keys),
        row.label,
        micros(row.result.writeMicros),
        figure === undefined ? "" : ratio(figure.writeMicros / row.result.writeMicros),
        bytes(row.result.totalBytesPerKey),
        originalBytes === undefined ? "" : ratio(row.result.totalBytesPerKey / originalBytes)
      ])
    }
  }
  return alignedTable(["keys", "store", "µs per put", "faster than original", "bytes per key", "of original's memory"], rows, 2)
}

const readTable = (run: BenchRun): string => {
  const rows: Array<Array<string>> = []
  for (const keys of run.options.sizes) {
    const figure = seedFigureAt(keys)
    if (figure !== undefined) rows.push([count(keys), originalLabel, micros(figure.readMicros), ""])
    for (const row of storeRows(run, keys)) {
      rows.push(
        row.result === undefined
          ? [count(keys), row.label, row.missing, ""]
          : [
            count(keys),
            row.label,
            micros(row.result.readMicros),
            figure === undefined ? "" : ratio(figure.readMicros / row.result.readMicros)
          ]
      )
    }
  }
  return alignedTable(["keys", "store", "µs per get", "faster than original"], rows, 2)
}

/** The two tables with a short preface and what was left out; empty when the run did not measure them. */
export const renderSeedTablesText = (run: BenchRun): string => {
  if (!run.options.suites.has("tables")) return ""
  const command = `npm run bench${run.argv.length > 0 ? ` -- ${run.argv.join(" ")}` : ""}`
  const reps = run.options.reps === undefined ? "5 repetitions up to 1M keys, 3 above" : `${run.options.reps} repetitions`
  const notes = skippedNote(run)
  return `
The original Python library's tables, measured by \`${command}\` (${
    run.startedAt.toISOString().slice(0, 16).replace("T", " ")
  } UTC)
Medians of ${reps}. Bytes per key count the key and value strings, as the original's memory figure does.
The original's figures were published from another machine: a reference, not a measurement here.

Write: µs per put, and memory

${writeTable(run)}

Read: µs per get, ${count(run.options.readSample)} keys (at most N) in a random order

${readTable(run)}
${notes.length === 0 ? "" : `\n${notes.map((note) => `- ${note}`).join("\n")}\n`}`
}
