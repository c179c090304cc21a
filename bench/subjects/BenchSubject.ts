/**
 * What a benchmark subject is: a store the runner can open, fill, read and
 * close, measured the way its users call it (Effect stores through
 * `yield*` inside one `Effect.gen`, the others through their plain methods).
 *
 * Each suite has its own kind of subject: in-memory stores for the original
 * library's tables and the TTL-heavy table, durable stores for acknowledged writes,
 * logs that can be replayed, and stores whose expiry can be watched.
 */
import type { KeyValueStore } from "../../src/index.ts"

/** Where a subject stands in the comparison. */
export type SubjectRole =
  /** kvlog itself. */
  | "kvlog"
  /** The floor: a raw data structure with no store around it. */
  | "floor"
  /** A library users would pick instead of kvlog. */
  | "peer"
  /** The simplest thing a user could write instead (e.g. a timer per key). */
  | "baseline"

/** What every subject has. */
export interface SubjectIdentity {
  /** The name on the command line (`--subjects`) and in the results. */
  readonly id: string
  /** The name in the tables. */
  readonly label: string
  readonly role: SubjectRole
  /** One line for the method section: how it is configured and called. */
  readonly description: string
}

/** How an in-memory store is opened. */
export interface OpenOptions {
  /** The number of keys the run will put (stores that need a bound get it). */
  readonly capacity: number
  /** A private directory for stores that write files; removed after the run. */
  readonly workDir: string
}

/** Elapsed time and a checksum of what was read (to prove the reads happened and returned the right values). */
export interface ReadTiming {
  readonly elapsedMillis: number
  /** The sum of the lengths of the values read; a missing key counts -1. */
  readonly checksum: number
}

/** An open in-memory store. */
export interface OpenStore {
  /**
   * Puts `keys[i] → values[i]` for every `i`, in order, in one loop, with
   * `ttlMillis[i]` as the key's TTL when given; resolves with the loop's
   * elapsed milliseconds.
   */
  readonly fill: (
    keys: ReadonlyArray<string>,
    values: ReadonlyArray<string>,
    ttlMillis?: Float64Array
  ) => Promise<number>
  /** Gets `keys[order[j]]` for every `j`, in one loop. */
  readonly read: (keys: ReadonlyArray<string>, order: Uint32Array) => Promise<ReadTiming>
  /** Releases the store (timers, fibers, files). */
  readonly close: () => Promise<void>
  /**
   * For a store whose data `process.memoryUsage()` cannot see (in a server,
   * or in `SharedArrayBuffer`s): the bytes it holds for it now. Read before
   * and after the fill, its growth is added to the store's bytes per key.
   */
  readonly externalBytes?: () => Promise<number>
}

/** A subject of the original library's tables and of the TTL-heavy table. */
export interface BenchSubject extends SubjectIdentity {
  readonly open: (options: OpenOptions) => Promise<OpenStore>
}

/** Latencies (milliseconds) of every acknowledged write of one timed window. */
export interface WriterRun {
  readonly elapsedMillis: number
  readonly latenciesMillis: ArrayLike<number>
}

/** An open durable store: every write it acknowledges is on disk. */
export interface DurableStore {
  /**
   * Runs `writers` concurrent writers until `millis` have passed; each writes
   * fresh keys (`${keyPrefix}${writer}:${n}`) with `value`, one at a time,
   * starting the next write once the previous one is acknowledged.
   */
  readonly runWriters: (writers: number, millis: number, keyPrefix: string, value: string) => Promise<WriterRun>
  readonly close: () => Promise<void>
}

/** A subject of the durable-writes table. */
export interface DurableSubject extends SubjectIdentity {
  /** How this subject makes a write durable (shown in the table's notes). */
  readonly durability: string
  readonly open: (workDir: string) => Promise<DurableStore>
}

/** A store just opened and scanned by a replay subject. */
export interface ScannedStore {
  readonly records: number
  readonly close: () => Promise<void>
}

/** A subject of the replay table: writes a data set, then times opening it and visiting every record. */
export interface ReplaySubject extends SubjectIdentity {
  /** Writes `key${i}` → `value${i}` for `i < records` under `workDir`, then closes (untimed). */
  readonly write: (workDir: string, records: number) => Promise<void>
  /**
   * Opens what `write` left and visits every live record; resolves once done
   * with the count it saw and a way to close the store (not timed).
   */
  readonly openAndScan: (workDir: string) => Promise<ScannedStore>
  /** Environment the job's child process must start with (the runner sets it; the subject checks it). */
  readonly childEnv?: Readonly<Record<string, string>>
}

/** The raw samples of one compaction under load; `performance.now()` milliseconds throughout. */
export interface CompactionRun {
  /**
   * What the store reported (`stats.log.lastCompaction`); `undefined` when
   * the compaction had not finished after `giveUpAfterMillis` and was
   * interrupted.
   */
  readonly report: KeyValueStore.CompactionReport | undefined
  /** The log (`stats.log`) just before `compact` was called, and once it returned or was given up. */
  readonly logBefore: { readonly records: number; readonly bytes: number }
  readonly logAfter: { readonly records: number; readonly bytes: number }
  /** When the baseline phase starts (writers started, warm-up over). */
  readonly baselineStart: number
  /** When `compact` was called, and when it returned or was given up. */
  readonly compactStart: number
  readonly compactEnd: number
  /** Every put: when it was sent, and its latency. */
  readonly sentAt: Float64Array
  readonly latencyMillis: Float64Array
  /** Live keys once the compaction is over. */
  readonly liveKeys: number
}

/** A subject of the compaction table: a log that can be compacted while writers go on. */
export interface CompactionSubject extends SubjectIdentity {
  /**
   * Subjects whose `prepare` writes the same log name the same kind here, so
   * that a run prepares it once and each of them compacts a copy.
   */
  readonly preparedLogKind: string
  /**
   * Writes `keys[i] → value` for every key, then `overwrites` more puts over
   * the same keys in order, to a new log at `logPath` (quickly, untimed), and closes it.
   */
  readonly prepare: (logPath: string, keys: ReadonlyArray<string>, overwrites: number, value: string) => Promise<void>
  /**
   * Opens the log at `logPath` with the subject's policy and automatic
   * compaction off; starts `writers` writers putting `value` under random
   * keys of `keys`; after `warmupMillis + beforeMillis` compacts (giving up,
   * by interrupting it, after `giveUpAfterMillis`), and stops the writers once
   * the compaction is over; then closes the store.
   */
  readonly measure: (
    logPath: string,
    options: {
      readonly keys: ReadonlyArray<string>
      readonly value: string
      readonly writers: number
      readonly warmupMillis: number
      readonly beforeMillis: number
      readonly giveUpAfterMillis: number
    }
  ) => Promise<CompactionRun>
}

/** An open store under expiry observation. */
export interface ExpiryStore {
  readonly put: (key: string, value: string, ttlMillis: number) => Promise<void>
  /** The value read, or `undefined` when the store says the key is gone. */
  readonly get: (key: string) => Promise<string | undefined>
  readonly close: () => Promise<void>
}

/** A subject of the expiry-accuracy table. */
export interface ExpirySubject extends SubjectIdentity {
  /**
   * The clock the store computes deadlines with, in ms (`Date.now` for
   * Effect's default `Clock`, `performance.now` for the caches): each store is
   * judged on its own clock.
   */
  readonly clock: () => number
  /**
   * Opens a store that calls `onReclaim(key)` when it removes an expired key
   * (with the lag past the deadline when the store reports it; otherwise the
   * runner measures it), or resolves with the reason it cannot (e.g. a hook
   * that has not landed).
   */
  readonly open: (
    onReclaim: (key: string, reportedLagMillis?: number) => void
  ) => Promise<ExpiryStore | { readonly unavailable: string }>
}
