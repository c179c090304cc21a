/**
 * The jobs of the shared index's own suites: one store of 100M keys (scale),
 * and reads from one and two worker threads (readers). Both run only the
 * shared index, in a child process each; kept apart from `plan.ts` so that
 * the two suites come and go as one piece.
 */
import { type BenchOptions, runsSubject } from "./cli.ts"
import type { Job, ReadersJob, ScaleJob } from "./jobs.ts"
import type { PlannedJob } from "./plan.ts"
import type { SubjectCatalog } from "./subjects/registry.ts"

/** The one subject of both suites: the table subject of the same store. */
export const sharedSubjectId = "kvlog-memory-shared"

/** Why `--quick` plans the scale suite's cell without running it. */
export const quickScaleSkip = "--quick: left out (a fill and read-back of minutes; the full run measures it)"

export const planSharedJobs = (options: BenchOptions, catalog: SubjectCatalog): Array<PlannedJob> => {
  const jobs: Array<PlannedJob> = []
  // The subject exists when kvlog loads; without it the tables say why.
  if (!catalog.tables.some((subject) => subject.id === sharedSubjectId)) return jobs
  if (options.suites.has("scale") && runsSubject(options, "scale", sharedSubjectId)) {
    const keys = options.scaleKeys
    jobs.push({
      ...(options.quick ? { skip: quickScaleSkip } : {}),
      suite: "scale",
      subject: sharedSubjectId,
      size: keys,
      values: "short",
      // Start-up, then 2.5–4 µs a put and a few µs a checked get on this machine, with room for a busier one.
      timeoutSeconds: options.timeoutSeconds ?? Math.round(120 + (keys * 8 + options.scaleReads * 10) / 1e6),
      job: (workDir): ScaleJob => ({ suite: "scale", subject: sharedSubjectId, workDir, keys, reads: options.scaleReads })
    })
  }
  if (options.suites.has("readers") && runsSubject(options, "readers", sharedSubjectId)) {
    const { readersKeys: keys, readersReads: reads, readersRounds: rounds } = options
    jobs.push({
      suite: "readers",
      subject: sharedSubjectId,
      size: keys,
      values: "short",
      // The fill, then per round 3 threads' reads (one, then two) at up to ~5 µs a read, each thread's start-up.
      timeoutSeconds: options.timeoutSeconds ?? Math.round(120 + (keys * 5) / 1e6 + rounds * ((3 * reads * 5) / 1e6 + 3)),
      job: (workDir): ReadersJob => ({ suite: "readers", subject: sharedSubjectId, workDir, keys, reads, rounds })
    })
  }
  return jobs
}

/** The subject id check of a shared-index job (both suites run the one store). */
export const checkSharedSubject = (job: Job): void => {
  if (job.subject !== sharedSubjectId) throw new Error(`no ${job.suite} subject "${job.subject}" (only ${sharedSubjectId})`)
}
