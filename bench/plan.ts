/**
 * What a run does: every job, suite by suite, with its time limit, or the
 * reason the plan itself rules the cell out (a size cap of `--quick` or of
 * the durable fill).
 */
import { type BenchOptions, redisSeedSubjects, runsSubject } from "./cli.ts"
import type { ValueShape } from "./dataset.ts"
import type { Job, SuiteName } from "./jobs.ts"
import { planPerfJobs } from "./perfPlan.ts"
import { planSharedJobs } from "./sharedPlan.ts"
import type { SubjectCatalog } from "./subjects/registry.ts"

/** A job to run, with where its result goes in the tables. */
export interface PlannedJob {
  readonly suite: SuiteName
  readonly subject: string
  readonly size: number
  readonly values: ValueShape
  /** The job, given its private work directory and the run's shared one. */
  readonly job: (workDir: string, sharedDir: string) => Job
  readonly timeoutSeconds: number
  /** Set when the plan itself rules the cell out: why. */
  readonly skip?: string
  /** Environment the job's child process must start with; such a job never runs in the runner's process. */
  readonly env?: Readonly<Record<string, string>>
}

/** Default repetitions: 5 up to 1M keys, 3 above (always ≥ 3, so every figure is a median). */
const repsFor = (options: BenchOptions, keys: number): number => options.reps ?? (keys <= 1_000_000 ? 5 : 3)

/** A generous time limit: a fixed start-up allowance plus a per-key budget (µs) for every fill. */
const scaledTimeout = (options: BenchOptions, baseSeconds: number, keys: number, fills: number, microsPerKey: number) =>
  options.timeoutSeconds ?? Math.round(baseSeconds + (keys * fills * microsPerKey) / 1e6)

/** Every job of the run, in order: suite by suite, smaller sizes first. */
export const plan = (options: BenchOptions, catalog: SubjectCatalog): Array<PlannedJob> => {
  const wanted = (suite: SuiteName) => (subject: { readonly id: string }) => runsSubject(options, suite, subject.id)
  const jobs: Array<PlannedJob> = []
  if (options.suites.has("tables")) {
    for (const values of ["short", "100b"] as const) {
      const sizes = values === "short" ? options.sizes : options.wideValueSizes
      for (const keys of sizes) {
        for (const subject of catalog.tables.filter(wanted("tables"))) {
          if (values === "100b" && options.wideValueSubjects !== undefined && !options.wideValueSubjects.has(subject.id)) {
            continue
          }
          const cap = options.seedSizeCaps.get(subject.id)
          if (values === "100b" && cap?.shortValuesOnly === true) continue
          const reps = repsFor(options, keys)
          const capped = cap !== undefined && (keys > cap.maxKeys || (cap.sizes !== undefined && !cap.sizes.includes(keys)))
          jobs.push({
            ...(capped ? { skip: cap.reason } : {}),
            suite: "tables",
            subject: subject.id,
            size: keys,
            values,
            // A round trip per operation: the Redis rows get four times the time per key.
            timeoutSeconds: scaledTimeout(options, 90, keys, reps + 2, redisSeedSubjects.includes(subject.id) ? 80 : 20),
            job: (workDir) => ({
              suite: "tables",
              subject: subject.id,
              workDir,
              keys,
              values,
              reps,
              readSample: options.readSample
            })
          })
        }
      }
    }
  }
  if (options.suites.has("ttl")) {
    const keys = options.ttlKeys
    const reps = repsFor(options, keys)
    for (const subject of catalog.ttl.filter(wanted("ttl"))) {
      jobs.push({
        suite: "ttl",
        subject: subject.id,
        size: keys,
        values: "short",
        timeoutSeconds: scaledTimeout(options, 90, keys, reps + 2, 20),
        job: (workDir) => ({ suite: "ttl", subject: subject.id, workDir, keys, reps, ttlMinMillis: 1_000, ttlMaxMillis: 60_000 })
      })
    }
  }
  if (options.suites.has("durable")) {
    const reps = options.reps ?? 3
    const writerCounts = [1, 256]
    for (const subject of catalog.durable.filter(wanted("durable"))) {
      jobs.push({
        suite: "durable",
        subject: subject.id,
        size: 0,
        values: "short",
        timeoutSeconds: options.timeoutSeconds ??
          Math.round(90 + (writerCounts.length * reps * options.durableWindowMillis * 3) / 1000),
        job: (workDir) => ({
          suite: "durable",
          subject: subject.id,
          workDir,
          writerCounts,
          windowMillis: options.durableWindowMillis,
          reps,
          valueBytes: 32
        })
      })
    }
  }
  if (options.suites.has("replay")) {
    for (const records of options.replayRecords) {
      // The replay target is stated at 10M records: a median there too.
      const reps = options.reps ?? 3
      for (const subject of catalog.replay.filter(wanted("replay"))) {
        jobs.push({
          ...(subject.childEnv === undefined ? {} : { env: subject.childEnv }),
          suite: "replay",
          subject: subject.id,
          size: records,
          values: "short",
          timeoutSeconds: scaledTimeout(options, 90, records, reps + 3, 20),
          job: (workDir) => ({ suite: "replay", subject: subject.id, workDir, records, reps })
        })
      }
    }
  }
  if (options.suites.has("compaction")) {
    const keys = options.compactionKeys
    const reps = options.compactionReps
    for (const subject of catalog.compaction.filter(wanted("compaction"))) {
      jobs.push({
        suite: "compaction",
        subject: subject.id,
        size: keys,
        values: "short",
        // The fill, then per repetition a replay of 2N records, the baseline and the compaction (given up after a limit).
        timeoutSeconds: scaledTimeout(
          options,
          90 + (reps * (options.compactionBeforeMillis + options.compactionGiveUpMillis)) / 1000,
          keys,
          2 + 4 * reps,
          10
        ),
        job: (workDir, sharedDir) => ({
          suite: "compaction",
          subject: subject.id,
          workDir,
          preparedLogDir: sharedDir,
          keys,
          overwrites: keys,
          writers: options.compactionWriters,
          valueBytes: 32,
          beforeMillis: options.compactionBeforeMillis,
          giveUpAfterMillis: options.compactionGiveUpMillis,
          reps
        })
      })
    }
  }
  if (options.suites.has("expiry")) {
    const reps = options.reps ?? 3
    for (const subject of catalog.expiry.filter(wanted("expiry"))) {
      jobs.push({
        suite: "expiry",
        subject: subject.id,
        size: options.expiryKeys,
        values: "short",
        // Each pass: the fill, ~2 s of deadlines, and up to 10 s of grace.
        timeoutSeconds: options.timeoutSeconds ?? 60 * reps,
        job: (workDir) => ({
          suite: "expiry",
          subject: subject.id,
          workDir,
          keys: options.expiryKeys,
          ttlMinMillis: 1,
          ttlMaxMillis: 2_000,
          reps
        })
      })
    }
  }
  jobs.push(...planPerfJobs(options, catalog, (suite, id) => runsSubject(options, suite, id)))
  jobs.push(...planSharedJobs(options, catalog))
  return jobs
}

