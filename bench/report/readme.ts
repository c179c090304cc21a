/**
 * The README's benchmark tables, rewritten by every full run between two
 * markers so that they can only ever be the figures of the run that wrote
 * `docs/benchmarks.md` beside them.
 */
import { type BenchRun, findCell } from "../BenchRun.ts"
import { seedFigureAt } from "../seedFigures.ts"
import { bytes, count, micros, ratio, resultOf, table } from "./format.ts"
import { allTargets, verdict } from "./markdown.ts"

export const readmeBegin = "<!-- bench:begin (written by npm run bench; do not edit by hand) -->"
export const readmeEnd = "<!-- bench:end -->"

/** `text` with what lies between the two markers replaced by `block`; an error if the markers are not there once each, in order. */
export const replaceReadmeBlock = (text: string, block: string): string => {
  const begin = text.indexOf(readmeBegin)
  const end = text.indexOf(readmeEnd)
  if (begin < 0 || end < 0 || end < begin || text.indexOf(readmeBegin, begin + 1) >= 0 || text.indexOf(readmeEnd, end + 1) >= 0) {
    throw new Error(`the README must hold "${readmeBegin}" and then "${readmeEnd}", once each`)
  }
  return `${text.slice(0, begin + readmeBegin.length)}\n${block.trim()}\n${text.slice(end)}`
}

const seed = (run: BenchRun, subject: string, keys: number) =>
  resultOf(findCell(run, "tables", subject, keys, "short"), "tables")

/** The block: kvlog beside the original library's published figures and a `Map`, then every target with its verdict. */
export const renderReadmeBlock = (run: BenchRun): string => {
  const rows: Array<Array<string>> = []
  for (const keys of run.options.sizes) {
    const published = seedFigureAt(keys)
    const kvlog = seed(run, "kvlog-memory", keys)
    if (published === undefined || kvlog === undefined) continue
    const map = seed(run, "map", keys)
    rows.push([
      count(keys),
      `${micros(published.writeMicros)} / ${micros(published.readMicros)}`,
      `${micros(kvlog.writeMicros)} / ${micros(kvlog.readMicros)}`,
      map === undefined ? "—" : `${micros(map.writeMicros)} / ${micros(map.readMicros)}`,
      `${bytes(published.memoryBytes / keys)} / ${bytes(kvlog.totalBytesPerKey)}`,
      `${ratio(published.writeMicros / kvlog.writeMicros)} / ${ratio(published.readMicros / kvlog.readMicros)}`
    ])
  }
  const date = run.startedAt.toISOString().slice(0, 16).replace("T", " ")
  return `From the full run of ${date} UTC on this project's 2-core machine (medians; the method, every other store
and every other table are in [docs/benchmarks.md](docs/benchmarks.md)):

${
    table(
      [
        "keys",
        "original Python library, µs write / read (published)",
        "kvlog layerMemory, µs write / read",
        "Map, µs write / read",
        "bytes per key, original / kvlog",
        "kvlog faster, write / read"
      ],
      rows
    )
  }

The goals the project set itself, and whether this run reached them:

${table(["target", "reached", "this run"], allTargets(run).map((target) => [target.rule, verdict(target.reached), target.figures]), 3)}`
}
