/**
 * Number and cell formatting for the report's tables.
 */
import type { Cell } from "../BenchRun.ts"
import type { JobResult } from "../jobs.ts"

/** µs with three significant digits and no exponent. */
export const micros = (value: number): string =>
  !Number.isFinite(value)
    ? "—"
    : value >= 100
    ? value.toFixed(0)
    : value >= 10
    ? value.toFixed(1)
    : value >= 1
    ? value.toFixed(2)
    : value.toFixed(3)

export const bytes = (value: number): string => (Number.isFinite(value) ? value.toFixed(0) : "—")

export const ratio = (value: number): string => (Number.isFinite(value) ? `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}×` : "—")

/** 1234567 → "1,234,567" (thin grouping keeps wide tables readable). */
export const grouped = (value: number): string => Math.round(value).toLocaleString("en-US")

export const megabytes = (bytesValue: number): string => `${(bytesValue / 1e6).toFixed(0)} MB`

export const count = (value: number): string =>
  value >= 1e6 && value % 1e5 === 0 ? `${value / 1e6}M` : value >= 1e3 && value % 100 === 0 ? `${value / 1e3}k` : String(value)

/** The result of a cell that ran, narrowed to one suite's result type. */
export const resultOf = <S extends JobResult["suite"]>(
  cell: Cell | undefined,
  suite: S
): Extract<JobResult, { suite: S }> | undefined =>
  cell?.outcome._tag === "Ok" && cell.outcome.result.suite === suite
    ? (cell.outcome.result as Extract<JobResult, { suite: S }>)
    : undefined

/** What a cell shows when it has no result: why. */
export const missingText = (cell: Cell | undefined): string => {
  if (cell === undefined) return "n/a"
  switch (cell.outcome._tag) {
    case "Ok":
      return "—"
    case "OutOfMemory":
      return "OOM"
    case "Timeout":
      return "timeout"
    case "Failed":
      return "failed"
    case "Skipped":
      return `skipped (${cell.outcome.reason})`
  }
}

/** A Markdown table: the first `textColumns` columns left-aligned, the rest (figures) right-aligned. */
export const table = (
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  textColumns = 1
): string =>
  [
    `| ${headers.join(" | ")} |`,
    `|${headers.map((_, i) => (i < textColumns ? "---" : "---:")).join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

/**
 * A Markdown table padded so that its columns line up in a terminal too: the
 * first `textColumns` columns left-aligned, the rest right-aligned.
 */
export const alignedTable = (
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  textColumns = 1
): string => {
  const widths = headers.map((header, i) => Math.max(3, header.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${widths.map((width, i) => i < textColumns ? (cells[i] ?? "").padEnd(width) : (cells[i] ?? "").padStart(width)).join(" | ")} |`
  return [
    line(headers),
    `|${widths.map((width, i) => (i < textColumns ? "-".repeat(width + 2) : `${"-".repeat(width + 1)}:`)).join("|")}|`,
    ...rows.map(line)
  ].join("\n")
}
