/**
 * The runner's command line: `npm run bench -- [options]`, and what
 * `--quick` leaves out of the full run.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { type SuiteName, suiteNames } from "./jobs.ts"
import { count as formatCount } from "./report/format.ts"
import { perfSubjectIds } from "./perfPlan.ts"
import { knownSubjectIds } from "./subjects/registry.ts"

/** A subject of the original library's tables that runs only up to a size, or only at some sizes, and why. */
export interface SizeCap {
  readonly maxKeys: number
  /** The only sizes it runs at (within `maxKeys`), if not all. */
  readonly sizes?: ReadonlyArray<number> | undefined
  /** Whether it leaves out the 100-byte-value variant. */
  readonly shortValuesOnly?: boolean | undefined
  readonly reason: string
}

/** What a run measures and where it writes. */
export interface BenchOptions {
  readonly quick: boolean
  readonly sizes: ReadonlyArray<number>
  /** Sizes at which the 100-byte-value variant of the original library's tables runs. */
  readonly wideValueSizes: ReadonlyArray<number>
  /** Subjects of the 100-byte-value variant (`undefined`: all). */
  readonly wideValueSubjects: ReadonlySet<string> | undefined
  /**
   * Subjects of the original library's tables that stop at a size. kvlog
   * layerLog "always" is one in every run: one sync per batch of 256 puts
   * makes its fill ~10× slower than the in-memory subjects, and the
   * durable-writes table measures it properly.
   */
  readonly seedSizeCaps: ReadonlyMap<string, SizeCap>
  /** `--subjects` (`undefined`: every subject). */
  readonly subjects: ReadonlySet<string> | undefined
  /** The subjects a suite keeps in `--quick` unless `--subjects` names others (a suite not listed keeps all of them). */
  readonly suiteSubjects: Readonly<Partial<Record<SuiteName, ReadonlySet<string>>>>
  readonly suites: ReadonlySet<SuiteName>
  /** `undefined`: the defaults per size (see `repsFor` in run.ts). */
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
  /**
   * Suites whose jobs run inside the runner's process instead of a child of
   * their own: jobs that measure no memory, where a child's start-up (loading
   * Effect, kvlog and the native databases) costs more than the job.
   */
  readonly inProcessSuites: ReadonlySet<SuiteName>
  /** `undefined`: scaled to the job (see `scaledTimeout` in run.ts). */
  readonly timeoutSeconds: number | undefined
  readonly maxOldSpaceMb: number
  /**
   * The report to rewrite, with the two charts beside it: `docs/benchmarks.md`
   * after a full run, `--out` if given, otherwise none (the run's results
   * folder has its own copy).
   */
  readonly out: string | undefined
  /** Where the run's own folder (`<start time>/`) is made: `bench/results` unless `--results` says otherwise. */
  readonly resultsRoot: string
  /** Key counts of the per-operation table: `--sizes` if given, else 100k, 1M and 10M (`--quick`: 100k and 1M). */
  readonly perOpSizes: ReadonlyArray<number>
  /**
   * Keys of the shared index's scale suite: 100M (`--scale-keys` to try
   * another count); `--quick` leaves the suite out, as it takes minutes.
   */
  readonly scaleKeys: number
  /**
   * Random reads of the scale suite, each checked (at most its keys): reading
   * all 100M back took over 6 minutes beside a 7-minute fill on this shared
   * machine, past the suite's 10-minute budget, and 10M reads give the µs
   * per get as well.
   */
  readonly scaleReads: number
  /** Keys in the store the worker threads read, reads per thread per round, and rounds of each thread count. */
  readonly readersKeys: number
  readonly readersReads: number
  readonly readersRounds: number
}

/** Parses `100k`, `1M`, `2.5m`, `500000`. */
export const parseCount = (text: string): number => {
  const match = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text.trim())
  if (match === null) throw new Error(`not a count: "${text}" (expected e.g. 100k, 1M, 500000)`)
  const unit = match[2]!.toLowerCase()
  const count = Math.round(Number(match[1]) * (unit === "k" ? 1e3 : unit === "m" ? 1e6 : 1))
  if (count < 1 || count > 16_000_000) throw new Error(`count out of range (1 … 16M): "${text}"`)
  return count
}

/** The shared index's scale target: 100M keys in one store. */
export const scaleTargetKeys = 100_000_000

const list = (text: string): Array<string> => text.split(",").map((item) => item.trim()).filter((item) => item !== "")

/** The report a full run rewrites. */
export const docsReport = "docs/benchmarks.md"

/** Where every run's folder goes by default (gitignored). */
const defaultResultsRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), "results")

/**
 * Subjects of the original library's tables that `--quick` keeps. Left out:
 * kvlog layerLog acknowledged once written (one write per put, ~20× slower
 * than the rest) and "always" (the durable-writes table measures it), and
 * lru-cache with TTL (never the fastest peer).
 */
const quickSeedSubjects = [
  "kvlog-memory",
  "kvlog-memory-shared",
  "kvlog-promise",
  "kvlog-log-buffered",
  "map",
  "lru-cache",
  "ttlcache",
  "effect-kvs",
  "kvlog-redis",
  "redis-client"
]
/**
 * Of those, the ones that stop at 100k in `--quick`; kvlog layerMemory, its
 * log acknowledged once buffered, `Map` and Effect's own store make the
 * comparison at 1M.
 */
const quickSmallOnly = ["kvlog-promise", "lru-cache", "ttlcache", "kvlog-redis", "redis-client"]
/**
 * The Redis rows of the original library's tables: a round trip to a server
 * per operation makes them the slowest cells, so a full run measures them
 * at 100k and 1M keys only, with the original library's short values.
 */
export const redisSeedSubjects: ReadonlyArray<string> = ["kvlog-redis", "redis-client"]
const redisSeedSizes = [100_000, 1_000_000]
/** The TTL-heavy subjects `--quick` keeps: kvlog, the fastest TTL peer, and the timer-per-key baseline. */
const quickTtlSubjects = ["kvlog-memory", "ttlcache", "map-settimeout"]
/** The durable subjects `--quick` keeps: the fastest raw loop stands for the physical limit. */
const quickDurableSubjects = ["kvlog-log-always", "lmdb", "classic-level", "redis", "kvlog-redis", "raw-fdatasync-prealloc"]

/**
 * The replay subjects `--quick` keeps: all but the huge-pages row, which
 * exists for the 10M-record target (page faults on fresh memory bound replay
 * there) and would only add a child and a log to write at 250k.
 */
const quickReplaySubjects = ["kvlog-log", "kvlog-log-shared", "lmdb", "classic-level"]

/** Whether a run measures `subject` in `suite`: those `--subjects` names, otherwise those `--quick` keeps (or all). */
export const runsSubject = (options: BenchOptions, suite: SuiteName, subject: string): boolean =>
  options.subjects !== undefined
    ? options.subjects.has(subject)
    : (options.suiteSubjects[suite]?.has(subject) ?? true)

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
      out: { type: "string" },
      results: { type: "string" },
      "scale-keys": { type: "string" },
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
    if (!knownSubjectIds.includes(id) && !perfSubjectIds.includes(id)) {
      throw new Error(`unknown subject "${id}"; known: ${[...knownSubjectIds, ...perfSubjectIds].join(", ")}`)
    }
  }
  let scaleKeys = scaleTargetKeys
  if (values["scale-keys"] !== undefined) {
    // Past the 16M of `parseCount`: this suite exists to go where a Map cannot.
    const match = /^(\d+)([kKmM]?)$/.exec(values["scale-keys"].trim())
    scaleKeys = match === null ? Number.NaN : Number(match[1]) * (match[2] === "" ? 1 : /k/i.test(match[2]!) ? 1e3 : 1e6)
    if (!(scaleKeys >= 1 && scaleKeys <= 400_000_000)) throw new Error(`--scale-keys must be a count from 1 to 400M: "${values["scale-keys"]}"`)
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
  if (values.out !== undefined && !values.out.endsWith(".md")) throw new Error(`--out must name a .md file: "${values.out}"`)
  if (values.results !== undefined && values.results.trim() === "") throw new Error(`--results must name a directory`)
  // Only a run of every suite, subject and size with the default repetitions stands for the project.
  const complete = !quick && values.sizes === undefined && subjects === undefined && values.suites === undefined &&
    values.reps === undefined && values["scale-keys"] === undefined
  const alwaysFillMaxKeys = quick ? 100_000 : 1_000_000
  const seedSizeCaps = new Map<string, SizeCap>([
    ["kvlog-log-always", { maxKeys: alwaysFillMaxKeys, reason: `durable fill capped at ${formatCount(alwaysFillMaxKeys)}` }],
    // With sizes of one's own (--sizes), the Redis rows run at every one of them.
    ...redisSeedSubjects.map((id): [string, SizeCap] => [id, {
      maxKeys: values.sizes === undefined ? Math.max(...redisSeedSizes) : Infinity,
      sizes: values.sizes === undefined ? redisSeedSizes : undefined,
      shortValuesOnly: true,
      reason: `Redis rows: ${redisSeedSizes.map(formatCount).join(" and ")} keys only`
    }]),
    ...(quick ? quickSmallOnly.map((id): [string, SizeCap] => [id, { maxKeys: 100_000, reason: "--quick: 100k only" }]) : [])
  ])
  return {
    quick,
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    wideValueSizes: quick ? [] : sizes.filter((size) => size <= 1_000_000),
    wideValueSubjects: undefined,
    seedSizeCaps,
    subjects,
    suiteSubjects: quick
      ? {
        tables: new Set(quickSeedSubjects),
        ttl: new Set(quickTtlSubjects),
        durable: new Set(quickDurableSubjects),
        replay: new Set(quickReplaySubjects)
      }
      : {},
    suites,
    reps,
    readSample: quick ? 200_000 : 1_000_000,
    ttlKeys: quick ? 100_000 : 1_000_000,
    durableWindowMillis: quick ? 300 : 2_000,
    // kvlog writes these logs with one batch per put, as a program awaiting each put does: ~20 µs a record.
    replayRecords: quick ? [250_000] : [1_000_000, 10_000_000],
    compactionKeys: quick ? 250_000 : 1_000_000,
    compactionWriters: 64,
    compactionReps: values.reps === undefined && quick ? 1 : reps ?? 3,
    compactionBeforeMillis: quick ? 500 : 2_000,
    compactionGiveUpMillis: quick ? 6_000 : 30_000,
    expiryKeys: quick ? 20_000 : 100_000,
    inProcessSuites: new Set<SuiteName>(quick ? ["durable", "expiry"] : []),
    timeoutSeconds,
    maxOldSpaceMb,
    out: values.out ?? (complete ? docsReport : undefined),
    resultsRoot: values.results ?? defaultResultsRoot,
    perOpSizes: values.sizes === undefined
      ? quick ? [100_000, 1_000_000] : [100_000, 1_000_000, 10_000_000]
      : [...new Set(sizes)].sort((a, b) => a - b),
    scaleKeys,
    scaleReads: Math.min(scaleKeys, 10_000_000),
    readersKeys: 1_000_000,
    readersReads: quick ? 200_000 : 1_000_000,
    readersRounds: quick ? 3 : 7
  }
}

const fullOptions = parseOptions([]) as BenchOptions
const quickOptions = parseOptions(["--quick"]) as BenchOptions

/** `a, b and c`. */
const ids = (items: Iterable<string>) => {
  const all = [...items]
  return all.length <= 1 ? all.join("") : `${all.slice(0, -1).join(", ")} and ${all.at(-1)}`
}
const counts = (items: ReadonlyArray<number>) => ids(items.map(formatCount))
const suiteTitles: Record<SuiteName, string> = {
  tables: "original library's tables",
  ttl: "TTL-heavy",
  durable: "durable-writes",
  replay: "replay",
  compaction: "compaction",
  expiry: "expiry-accuracy",
  perop: "per-operation",
  tails: "buffered-tail",
  scale: "shared-index scale",
  readers: "worker-thread reads"
}
const seconds = (millis: number) => `${millis / 1000} s`

/**
 * What `--quick` measures, against the full run, one line per suite: for
 * `--help` and the report's header, from the options themselves so that
 * neither can drift from what runs.
 */
export const quickPlan: ReadonlyArray<string> = [
  `the original library's tables at ${counts(quickOptions.sizes)} keys, medians of ${quickOptions.reps} repetitions, ` +
  `${formatCount(quickOptions.readSample)} random reads each: ` +
  `${ids(quickSeedSubjects.filter((id) => !quickSmallOnly.includes(id)))} at every size, ${ids(quickSmallOnly)} at 100k ` +
  `(full run: every subject at ${counts(fullOptions.sizes)} keys, medians of 5 up to 1M and 3 above, ` +
  `${formatCount(fullOptions.readSample)} reads, and 100-byte values up to 1M)`,
  `TTL-heavy: ${ids(quickTtlSubjects)}, ${formatCount(quickOptions.ttlKeys)} keys ` +
  `(full run: every subject, ${formatCount(fullOptions.ttlKeys)})`,
  `durable writes: ${ids(quickDurableSubjects)}, 3 windows of ${seconds(quickOptions.durableWindowMillis)} per writer count ` +
  `(full run: every subject, windows of ${seconds(fullOptions.durableWindowMillis)})`,
  `replay: ${ids(quickReplaySubjects)}, ${counts(quickOptions.replayRecords)} records (full run: every subject, the ` +
  `shared index also with huge pages, ${counts(fullOptions.replayRecords)})`,
  `compaction: a ${formatCount(quickOptions.compactionKeys)}-key log, ${quickOptions.compactionReps} repetition per policy, ` +
  `baseline ${seconds(quickOptions.compactionBeforeMillis)}, given up after ${seconds(quickOptions.compactionGiveUpMillis)} ` +
  `(full run: ${formatCount(fullOptions.compactionKeys)} keys, ${fullOptions.compactionReps} repetitions, ` +
  `${seconds(fullOptions.compactionBeforeMillis)}, ${seconds(fullOptions.compactionGiveUpMillis)})`,
  `expiry accuracy: ${formatCount(quickOptions.expiryKeys)} keys, 3 passes (full run: ${formatCount(fullOptions.expiryKeys)})`,
  `per operation: kvlog, Effect's store, Map and the \`yield*\` floor at ${counts(quickOptions.perOpSizes)} keys ` +
  `(full run: ${counts(fullOptions.perOpSizes)}); buffered tails: windows of 0.5 s (full run: 2 s)`,
  `the shared index: reads from 1 and 2 worker threads over ${formatCount(quickOptions.readersKeys)} keys, ` +
  `${quickOptions.readersRounds} rounds of ${formatCount(quickOptions.readersReads)} reads per thread (full run: ` +
  `${fullOptions.readersRounds} rounds of ${formatCount(fullOptions.readersReads)}); the ${formatCount(fullOptions.scaleKeys)}-key ` +
  `store is left out (full run: one fill and read-back, several minutes)`,
  `the ${ids([...quickOptions.inProcessSuites].map((suite) => suiteTitles[suite]))} jobs run inside the runner's process (they measure no memory, and a ` +
  `child's start-up would cost more than they do); every other job runs in a child of its own, as in the full run`
]

/** `text` as lines of at most `width` characters, the first after `first`, the others after `rest`. */
const wrap = (text: string, width: number, first: string, rest: string): string => {
  const lines: Array<string> = []
  let line = first
  for (const word of text.split(" ")) {
    if (line.length + word.length + 1 > width && line.trim() !== "") {
      lines.push(line.trimEnd())
      line = rest
    }
    line += `${word} `
  }
  return [...lines, line.trimEnd()].join("\n")
}

export const helpText = `kvlog bench runner: the original Python library's tables and the peers, side by side.

Usage: npm run bench -- [options]

  --quick             about 2 minutes; leaves docs/ alone (see below)
  --sizes LIST        key counts for the original library's tables, e.g. 100k,500k,1M,5M,10M (the default)
  --subjects LIST     only these subjects (ids below), in every suite that has them; with --quick,
                      these instead of the subjects it keeps (at its sizes)
  --suites LIST       only these suites: ${suiteNames.join(", ")} (default: all)
  --reps N            repetitions per measurement (at least 3; default 5 up to 1M keys, 3 above;
                      --quick: 3, and 1 for the compaction suite)
  --timeout SECONDS   time limit of one job (default: scaled to the job)
  --scale-keys COUNT  keys of the shared index's scale suite (default 100M; up to 400M)
  --heap-mb MB        --max-old-space-size of each child process (default 12288)
  --out FILE.md       also rewrite this report, with bench-read.svg and bench-write.svg beside it
                      (default: ${docsReport} after a full run, none otherwise)
  --results DIR       make this run's folder under DIR instead of bench/results
  --help              this text

Every run writes its report, charts and raw results (results.json) to a folder of its own,
bench/results/<start time>/, prints the original library's two tables on stdout beside the
published figures, and ends with the folder's path. Progress goes to stderr. Only the full run
(npm run bench, no --quick, --sizes, --subjects, --suites, --reps or --scale-keys) rewrites ${docsReport},
its two charts, and the figures in README.md (between its two bench markers).

--quick measures:
${quickPlan.map((line) => wrap(line, 100, "  - ", "    ")).join("\n")}

${wrap(`Subjects: ${[...knownSubjectIds, ...perfSubjectIds].join(", ")}`, 100, "", "  ")}
(kvlog's subjects appear when src/ loads; its log subjects once KeyValueStore.layerLog exists;
redis when redis-server is on PATH.)`
