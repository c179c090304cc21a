/**
 * The jobs of the per-operation and buffered-tail suites, and the subjects
 * they run: kept apart from `plan.ts` and the registry so that the two
 * suites come and go as one piece.
 */
import type { BenchOptions } from "./cli.ts"
import type { Job, PerOpJob, TailsJob } from "./jobs.ts"
import type { PlannedJob } from "./plan.ts"
import type { BenchSubject } from "./subjects/BenchSubject.ts"
import { loadKvlog } from "./subjects/kvlog.ts"
import { kvlogTailsSubjects, tailsSubjectIds, type TailsSubject } from "./subjects/kvlogTails.ts"
import type { SubjectCatalog } from "./subjects/registry.ts"
import { yieldFloor } from "./subjects/yieldFloor.ts"

/** The per-operation table's columns, in order: kvlog, Effect's own store, the raw `Map`, the `yield*` floor. */
export const perOpSubjectIds: ReadonlyArray<string> = ["kvlog-memory", "effect-kvs", "map", "yield-floor"]

/** Subject ids these suites add to the registry's, for `--subjects`. */
export const perfSubjectIds: ReadonlyArray<string> = ["yield-floor", "kvlog-log-interval-buffered"]

/** Concurrent writers of the buffered-tail table. */
export const tailsWriters = 64

/** The jobs of the two suites that `options` asks for. */
export const planPerfJobs = (
  options: BenchOptions,
  catalog: SubjectCatalog,
  runsSubject: (suite: "perop" | "tails", id: string) => boolean
): Array<PlannedJob> => {
  const jobs: Array<PlannedJob> = []
  const reps = options.reps ?? 3
  if (options.suites.has("perop")) {
    const available = new Set([...catalog.tables.map((subject) => subject.id), yieldFloor.id])
    for (const keys of options.perOpSizes) {
      for (const id of perOpSubjectIds) {
        if (!available.has(id) || !runsSubject("perop", id)) continue
        jobs.push({
          suite: "perop",
          subject: id,
          size: keys,
          values: "short",
          // Building the data, a warm-up, and per repetition a fill and a read of every key.
          timeoutSeconds: options.timeoutSeconds ?? Math.round(120 + (keys * (reps + 1) * 60) / 1e6),
          job: (workDir): PerOpJob => ({ suite: "perop", subject: id, workDir, keys, reps })
        })
      }
    }
  }
  // The log's subjects exist once kvlog's log loads, as for the original library's tables.
  if (options.suites.has("tails") && catalog.tables.some((subject) => subject.id === "kvlog-log-buffered")) {
    const windowMillis = options.quick ? 500 : 2_000
    for (const id of tailsSubjectIds) {
      if (!runsSubject("tails", id)) continue
      jobs.push({
        suite: "tails",
        subject: id,
        size: 0,
        values: "short",
        timeoutSeconds: options.timeoutSeconds ?? Math.round(90 + (reps * windowMillis * 3) / 1000),
        job: (workDir): TailsJob => ({
          suite: "tails",
          subject: id,
          workDir,
          writers: tailsWriters,
          windowMillis,
          reps,
          valueBytes: 32
        })
      })
    }
  }
  return jobs
}

/** The subject of a per-operation job. */
export const perOpSubject = (catalog: SubjectCatalog, job: Job): BenchSubject => {
  const subject = job.subject === yieldFloor.id ? yieldFloor : catalog.tables.find((s) => s.id === job.subject)
  if (subject === undefined) throw new Error(`no perop subject "${job.subject}" on this machine`)
  return subject
}

/** The subject of a tails job. */
export const tailsSubject = async (job: Job): Promise<TailsSubject> => {
  const load = await loadKvlog()
  if (load._tag === "Unavailable") throw new Error(load.reason)
  const subject = kvlogTailsSubjects(load.kvlog).find((s) => s.id === job.subject)
  if (subject === undefined) throw new Error(`no tails subject "${job.subject}"`)
  return subject
}

/** Labels of the subjects of both suites, for the report. */
export const perfSubjectLabel = (catalog: SubjectCatalog, id: string): string =>
  id === yieldFloor.id
    ? yieldFloor.label
    : id === "kvlog-log-buffered"
    ? "kvlog layerLog never, buffered"
    : id === "kvlog-log-interval-buffered"
    ? "kvlog layerLog interval, buffered"
    : catalog.tables.find((subject) => subject.id === id)?.label ?? id
