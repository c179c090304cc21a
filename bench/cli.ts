/**
 * The runner's command line: `npm run bench -- [options]`.
 */
import { parseArgs } from "node:util"
import { type SuiteName, suiteNames } from "./jobs.ts"
import { knownSubjectIds } from "./subjects/registry.ts"

/** What a run measures and where it writes. */
export interface BenchOptions {
  readonly quick: boolean
  readonly sizes: ReadonlyArray<number>
  /** Sizes at which the 100-byte-value variant of the original library's tables runs. */
  readonly wideValueSizes: ReadonlyArray<number>
  /** Subjects of the 100-byte-value variant (`undefined`: all). */
  readonly wideValueSubjects: ReadonlySet<string> | undefined
  /**
   * The largest size at which kvlog layerLog "always" fills a store in the
   * original library's tables: one sync per batch of 256 puts makes it ~10× slower than
   * the in-memory subjects, and the durable-writes table measures it properly.
   */
  readonly alwaysFillMaxKeys: number
  /** `undefined`: every subject. */
  readonly subjects: ReadonlySet<string> | undefined
  readonly suites: ReadonlySet<SuiteName>
  /** `undefined`: the defaults per size (see `repsFor`). */
  readonly reps: number | undefined
  /** Reads per repetition in the original library's tables (at most N). */
  readonly readSample: number
  readonly ttlKeys: number
  readonly durableWindowMillis: number
  readonly replayRecords: ReadonlyArray<number>
  /** Live keys of the compacted log (it holds about twice as many records). */
  readonly compactionKeys: number
  readonly compactionWriters: number
  /** Repetitions of the compaction (`--reps` if given). */
  readonly compactionReps: number
  /** The writers' baseline phase before each compaction. */
  readonly compactionBeforeMillis: number
  /** A compaction still running after this long is interrupted and reported as unfinished. */
  readonly compactionGiveUpMillis: number
  readonly expiryKeys: number
  /** `undefined`: scaled to the job (see `timeoutFor` in run.ts). */
  readonly timeoutSeconds: number | undefined
  readonly maxOldSpaceMb: number
  readonly out: string
}

export const helpText = `kvlog bench runner: the original Python library's tables and the peers, side by side.

Usage: npm run bench -- [options]

  --quick             sizes 100k and 1M, 3 repetitions (1 compaction per policy), shorter windows,
                      100-byte values only for kvlog and Map at 100k (about 3 minutes)
  --sizes LIST        key counts for the original library's tables, e.g. 100k,500k,1M,5M,10M (the default)
  --subjects LIST     only these subjects (ids below), in every suite that has them
  --suites LIST       only these suites: ${suiteNames.join(", ")} (default: all)
  --reps N            repetitions per measurement (at least 3; default 5 up to 1M keys, 3 above;
                      --quick: 3, and 1 for the compaction suite)
  --timeout SECONDS   time limit of one child process (default: scaled to the job)
  --heap-mb MB        --max-old-space-size of each child process (default 12288)
  --out FILE          the report to write (default docs/benchmarks.md); the charts go beside it
                      as bench-read.svg and bench-write.svg
  --help              this text

Subjects: ${knownSubjectIds.join(", ")}
(kvlog's subjects appear when src/ loads; its log subjects once KeyValueStore.layerLog exists;
redis when redis-server is on PATH.)

Each (subject, size) runs in its own child process; progress goes to stderr.`

/** Parses `100k`, `1M`, `2.5m`, `500000`. */
export const parseCount = (text: string): number => {
  const match = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text.trim())
  if (match === null) throw new Error(`not a count: "${text}" (expected e.g. 100k, 1M, 500000)`)
  const unit = match[2]!.toLowerCase()
  const count = Math.round(Number(match[1]) * (unit === "k" ? 1e3 : unit === "m" ? 1e6 : 1))
  if (count < 1 || count > 16_000_000) throw new Error(`count out of range (1 … 16M): "${text}"`)
  return count
}

const list = (text: string): Array<string> => text.split(",").map((item) => item.trim()).filter((item) => item !== "")

/** Parses the command line; throws with a message that says what was expected. */
export const parseOptions = (argv: ReadonlyArray<string>): BenchOptions | "help" => {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: "boolean", default: false },
      sizes: { type: "string" },
      subjects: { type: "string" },
      suites: { type: "string" },
      reps: { type: "string" },
      timeout: { type: "string" },
      "heap-mb": { type: "string" },
      out: { type: "string", default: "docs/benchmarks.md" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return "help"
  const quick = values.quick
  const sizes = values.sizes === undefined
    ? quick ? [100_000, 1_000_000] : [100_000, 500_000, 1_000_000, 5_000_000, 10_000_000]
    : list(values.sizes).map(parseCount)
  const subjects = values.subjects === undefined ? undefined : new Set(list(values.subjects))
  for (const id of subjects ?? []) {
    if (!knownSubjectIds.includes(id)) throw new Error(`unknown subject "${id}"; known: ${knownSubjectIds.join(", ")}`)
  }
  const suites = new Set(values.suites === undefined ? suiteNames : list(values.suites)) as Set<SuiteName>
  for (const suite of suites) {
    if (!suiteNames.includes(suite)) throw new Error(`unknown suite "${suite}"; known: ${suiteNames.join(", ")}`)
  }
  const reps = values.reps === undefined ? (quick ? 3 : undefined) : Number(values.reps)
  if (reps !== undefined && !(Number.isInteger(reps) && reps >= 3)) {
    throw new Error(`--reps must be an integer ≥ 3 (medians of fewer are not medians): "${values.reps}"`)
  }
  const timeoutSeconds = values.timeout === undefined ? undefined : Number(values.timeout)
  if (timeoutSeconds !== undefined && !(timeoutSeconds > 0)) throw new Error(`--timeout must be positive seconds`)
  const maxOldSpaceMb = values["heap-mb"] === undefined ? 12_288 : Number(values["heap-mb"])
  if (!(Number.isInteger(maxOldSpaceMb) && maxOldSpaceMb >= 256)) throw new Error(`--heap-mb must be an integer ≥ 256`)
  return {
    quick,
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    wideValueSizes: quick ? sizes.filter((size) => size <= 100_000) : sizes.filter((size) => size <= 1_000_000),
    wideValueSubjects: quick ? new Set(["kvlog-memory", "map"]) : undefined,
    alwaysFillMaxKeys: quick ? 100_000 : 1_000_000,
    subjects,
    suites,
    reps,
    readSample: quick ? 200_000 : 1_000_000,
    ttlKeys: 1_000_000,
    durableWindowMillis: quick ? 500 : 2_000,
    replayRecords: quick ? [1_000_000] : [1_000_000, 10_000_000],
    compactionKeys: 1_000_000,
    compactionWriters: 64,
    // One repetition in --quick (a compaction job is a 1M-key fill and a 2M-record replay per repetition).
    compactionReps: values.reps === undefined && quick ? 1 : reps ?? 3,
    compactionBeforeMillis: quick ? 500 : 2_000,
    compactionGiveUpMillis: quick ? 6_000 : 30_000,
    expiryKeys: 100_000,
    timeoutSeconds,
    maxOldSpaceMb,
    out: values.out
  }
}
