/**
 * The protocol between the runner and its child processes: a `Job` goes in
 * as JSON on the command line, a `JobResult` comes back as one line on
 * stdout prefixed with `resultPrefix`. Everything else a child prints goes
 * to stderr, as progress.
 */
import type { CompactionReport } from "../src/KeyValueStore.ts"
import type { ValueShape } from "./dataset.ts"

/** The line prefix that marks a child's result on stdout. */
export const resultPrefix = "BENCH_RESULT "

/** The suites at the end of this file: the cost floor, per operation through the Effect API, and the tail of buffered puts. */
export type PerfSuiteName = "perop" | "tails"

export const perfSuiteNames: ReadonlyArray<PerfSuiteName> = ["perop", "tails"]

/** The suites of the shared index alone (bench/suites/sharedScale.ts, sharedReaders.ts): 100M keys, and reads from worker threads. */
export type SharedSuiteName = "scale" | "readers"

export const sharedSuiteNames: ReadonlyArray<SharedSuiteName> = ["scale", "readers"]

/** The measurements the runner can make, one table (or group of tables) each. */
export type SuiteName = "tables" | "ttl" | "durable" | "replay" | "compaction" | "expiry" | PerfSuiteName | SharedSuiteName

export const suiteNames: ReadonlyArray<SuiteName> = [
  "tables",
  "ttl",
  "durable",
  "replay",
  "compaction",
  "expiry",
  ...perfSuiteNames,
  ...sharedSuiteNames
]

/** Fields of every job. */
interface JobBase {
  readonly subject: string
  /** A private directory for the child's files; the runner removes it afterwards. */
  readonly workDir: string
}

/** One column cell of the original library's tables: put N keys, read a random sample, measure memory. */
export interface SeedJob extends JobBase {
  readonly suite: "tables"
  readonly keys: number
  readonly values: ValueShape
  readonly reps: number
  /** Reads per repetition: `min(keys, readSample)` keys in random order. */
  readonly readSample: number
}

/** One row of the TTL-heavy table: put N keys with their own TTL. */
export interface TtlJob extends JobBase {
  readonly suite: "ttl"
  readonly keys: number
  readonly reps: number
  readonly ttlMinMillis: number
  readonly ttlMaxMillis: number
}

/** One row group of the durable-writes table: timed windows at each writer count. */
export interface DurableJob extends JobBase {
  readonly suite: "durable"
  readonly writerCounts: ReadonlyArray<number>
  readonly windowMillis: number
  readonly reps: number
  readonly valueBytes: number
}

/** One cell of the replay table. */
export interface ReplayJob extends JobBase {
  readonly suite: "replay"
  readonly records: number
  readonly reps: number
}

/**
 * One row of the compaction table: a log of `keys` puts plus `overwrites`
 * more over the same keys, compacted while `writers` fibers keep putting.
 */
export interface CompactionJob extends JobBase {
  readonly suite: "compaction"
  readonly keys: number
  readonly overwrites: number
  readonly writers: number
  readonly valueBytes: number
  /** Writers run this long (after a warm-up) before the compaction starts: the baseline. */
  readonly beforeMillis: number
  /** A compaction still running after this long is interrupted and reported as unfinished. */
  readonly giveUpAfterMillis: number
  readonly reps: number
  /**
   * A directory that outlives the job, where the prepared log is kept for the
   * run's other compaction jobs that prepare the same log (preparing a 1M-key
   * log takes longer than measuring its compaction).
   */
  readonly preparedLogDir: string
}

/** One row of the expiry-accuracy table. */
export interface ExpiryJob extends JobBase {
  readonly suite: "expiry"
  readonly keys: number
  readonly ttlMinMillis: number
  readonly ttlMaxMillis: number
  /** Passes, each with a fresh store; the lags are medians over them (default 1). */
  readonly reps?: number
}

export type Job =
  | SeedJob
  | TtlJob
  | DurableJob
  | ReplayJob
  | CompactionJob
  | ExpiryJob
  | PerOpJob
  | TailsJob
  | ScaleJob
  | ReadersJob

/** Medians over the repetitions of a seed-table job. */
export interface SeedResult {
  readonly suite: "tables"
  readonly writeMicros: number
  readonly readMicros: number
  /** The store's own overhead: heap + off-heap growth over the fill, strings prebuilt, ÷ N. */
  readonly storeBytesPerKey: number
  /** `storeBytesPerKey` plus the bytes of the key and value strings (what the original library's figure counts). */
  readonly totalBytesPerKey: number
  /** RSS growth over the first timed fill ÷ N (strings prebuilt). */
  readonly rssBytesPerKey: number
  readonly peakRssBytes: number
  readonly reads: number
  readonly reps: number
}

export interface TtlResult {
  readonly suite: "ttl"
  readonly putMicros: number
  readonly storeBytesPerKey: number
  readonly totalBytesPerKey: number
  readonly peakRssBytes: number
  readonly reps: number
}

/** Medians over the repetitions at one writer count. */
export interface DurableWriters {
  readonly writers: number
  readonly writesPerSecond: number
  /** Latency percentiles of the repetition whose throughput is the median. */
  readonly p50Micros: number
  readonly p99Micros: number
  readonly writes: number
}

export interface DurableResult {
  readonly suite: "durable"
  readonly byWriters: ReadonlyArray<DurableWriters>
}

export interface ReplayResult {
  readonly suite: "replay"
  readonly records: number
  readonly openMillis: number
  readonly recordsPerSecond: number
  readonly logBytes: number
  readonly reps: number
}

/** What the writers saw in one phase (before the compaction, or during it). */
export interface WriterPhase {
  /** Puts acknowledged in the phase ÷ its length. */
  readonly writesPerSecond: number
  /** Latency percentiles of the puts sent in the phase. */
  readonly p50Micros: number
  readonly p99Micros: number
  readonly maxMicros: number
  readonly writes: number
}

/**
 * One compaction, measured from inside (the store's report) and outside (the
 * writers). Unfinished, the report's fields describe the old log when it was
 * given up, the duration runs until then, and the pause is 0.
 */
export interface CompactionRep extends CompactionReport {
  /** Whether `compact` returned before the job's `giveUpAfterMillis` (otherwise it was interrupted). */
  readonly finished: boolean
  /**
   * The longest V8 garbage collection that began while the compaction ran
   * (0 if none): it stops every fiber, so a compaction step it lands in is
   * that much longer.
   */
  readonly longestGcMillis: number
  readonly before: WriterPhase
  readonly during: WriterPhase
  /** Live keys after the compaction (must equal the job's `keys`). */
  readonly liveKeys: number
}

/**
 * Every repetition, and the median of each figure over them. A repetition
 * that did not finish ends the job (another would not either): then
 * `median` is that repetition.
 */
export interface CompactionResult {
  readonly suite: "compaction"
  readonly keys: number
  readonly writers: number
  readonly giveUpAfterMillis: number
  /** Repetitions whose compaction was given up (0 or 1). */
  readonly unfinished: number
  readonly median: CompactionRep
  /** The worst of the repetitions: longest store pause and longest put during the compaction. */
  readonly worstPauseMillis: number
  readonly worstGcMillis: number
  readonly worstDuringMaxMicros: number
  readonly reps: ReadonlyArray<CompactionRep>
}

/**
 * One expiry job: with several passes, the lag percentiles are medians over
 * the passes and the read counts are totals (the worst distances the worst).
 */
export interface ExpiryResult {
  readonly suite: "expiry"
  readonly keys: number
  /** Passes measured (1 in results written before passes were repeated). */
  readonly reps?: number
  /** Each pass's lag p99, in the order run. */
  readonly lagP99ByRep?: ReadonlyArray<number>
  /** `undefined` when the subject has no way to report reclaims. */
  readonly reclaimed: number | undefined
  readonly lagP50Millis: number | undefined
  readonly lagP99Millis: number | undefined
  readonly lagMaxMillis: number | undefined
  /** Where the lag comes from: the store's own report, or the runner's clock. */
  readonly lagSource: "store" | "runner" | "none"
  readonly unavailableReason: string | undefined
  readonly reads: number
  /** Reads that started at or after the key's deadline and still returned its value. */
  readonly staleReads: number
  /** How long past the deadline the latest stale read began (ms; 0 when none). */
  readonly maxStaleMillis: number
  /** Reads that ended before the key's deadline and found no value. */
  readonly earlyMisses: number
  /** How long before the deadline the earliest early miss ended (ms; 0 when none). */
  readonly maxEarlyMillis: number
}

export type JobResult =
  | SeedResult
  | TtlResult
  | DurableResult
  | ReplayResult
  | CompactionResult
  | ExpiryResult
  | PerOpResult
  | TailsResult
  | ScaleResult
  | ReadersResult

// =============================================================================
// The per-operation and buffered-tail suites (bench/suites/perOp.ts, bufferedTails.ts)
// =============================================================================

/**
 * One subject at one size of the per-operation table: in one loop, put all
 * N keys into an empty store, then at once get all N in a random order (a
 * permutation); no collection forced between the two.
 */
export interface PerOpJob extends JobBase {
  readonly suite: "perop"
  readonly keys: number
  readonly reps: number
}

/** What one repetition of a per-operation job measured. */
export interface PerOpRep {
  readonly putMicros: number
  readonly getMicros: number
  /** V8 collections that began during each loop, and the milliseconds they took. */
  readonly putGcMillis: number
  readonly getGcMillis: number
  readonly getScavenges: number
  readonly getMarkCompacts: number
}

/** Medians over the repetitions, and every repetition. */
export interface PerOpResult extends PerOpRep {
  readonly suite: "perop"
  readonly keys: number
  readonly reps: ReadonlyArray<PerOpRep>
}

/** Concurrent writers on a store that acknowledges at once (`acknowledge: "buffered"`): the latency of every put. */
export interface TailsJob extends JobBase {
  readonly suite: "tails"
  readonly writers: number
  readonly windowMillis: number
  readonly reps: number
  readonly valueBytes: number
}

/** One timed window of a tails job. */
export interface TailsWindow {
  readonly writesPerSecond: number
  readonly p50Micros: number
  readonly p99Micros: number
  readonly maxMicros: number
  /** The longest V8 collection that began in the window (it stops every writer alike). */
  readonly longestGcMillis: number
}

/** Medians over the windows, the worst window's worst put, and every window. */
export interface TailsResult extends TailsWindow {
  readonly suite: "tails"
  readonly writers: number
  readonly worstMaxMicros: number
  readonly windows: ReadonlyArray<TailsWindow>
}

// =============================================================================
// The shared index's suites (bench/suites/sharedScale.ts, sharedReaders.ts)
// =============================================================================

/**
 * One store with the shared index holding `keys` keys (`key${i}` →
 * `value${i}`): a fill in key order, then `reads` keys read back in a random
 * order (a sample, with repeats), each value checked. One repetition: at 100M
 * keys a second fill would double a suite that already takes minutes, and the
 * figures are per-operation means over millions of operations.
 */
export interface ScaleJob extends JobBase {
  readonly suite: "scale"
  readonly keys: number
  readonly reads: number
}

export interface ScaleResult {
  readonly suite: "scale"
  readonly keys: number
  readonly reads: number
  readonly putMicros: number
  readonly getMicros: number
  /** Growth of V8's heap and off-heap memory over the fill, plus the index's own `SharedArrayBuffer`s, ÷ N. */
  readonly totalBytesPerKey: number
  /** The index's `SharedArrayBuffer`s alone ÷ N. */
  readonly sharedBytesPerKey: number
  readonly rssBytesPerKey: number
  readonly peakRssBytes: number
}

/**
 * A store with the shared index holding `keys` keys, read by one and then by
 * two worker threads (`KeyValueStore.layerSharedReader`), each thread reading
 * `reads` keys in one random order, all threads started together; `rounds`
 * rounds of each count.
 */
export interface ReadersJob extends JobBase {
  readonly suite: "readers"
  readonly keys: number
  readonly reads: number
  readonly rounds: number
}

export interface ReadersResult {
  readonly suite: "readers"
  readonly keys: number
  readonly reads: number
  /** Median aggregate reads per second (all threads' reads ÷ the slowest thread's time), by thread count. */
  readonly oneWorker: number
  readonly twoWorkers: number
  /** Every round, in the order run. */
  readonly oneWorkerRounds: ReadonlyArray<number>
  readonly twoWorkersRounds: ReadonlyArray<number>
}
