/**
 * Runs one `Job` in the current process and resolves with its result: what a
 * child process does (`child.ts`), and what the runner does itself for the
 * suites it keeps in its own process (`InProcessRun.ts`).
 */
import type { Job, JobResult } from "./jobs.ts"
import { perOpSubject, tailsSubject } from "./perfPlan.ts"
import type { SubjectIdentity } from "./subjects/BenchSubject.ts"
import { loadCatalog } from "./subjects/registry.ts"
import { runCompactionJob } from "./suites/compaction.ts"
import { runDurableJob } from "./suites/durableWrites.ts"
import { runTailsJob } from "./suites/bufferedTails.ts"
import { runExpiryJob } from "./suites/expiryAccuracy.ts"
import { runPerOpJob } from "./suites/perOp.ts"
import { runReplayJob } from "./suites/replay.ts"
import { runSeedJob, runTtlJob } from "./suites/seedTables.ts"
import { checkSharedSubject } from "./sharedPlan.ts"

const find = <S extends SubjectIdentity>(subjects: ReadonlyArray<S>, job: Job): S => {
  const subject = subjects.find((candidate) => candidate.id === job.subject)
  if (subject === undefined) throw new Error(`no ${job.suite} subject "${job.subject}" on this machine`)
  return subject
}

/** Runs `job` against its subject from this process's catalog. */
export const runJob = async (job: Job): Promise<JobResult> => {
  const catalog = await loadCatalog()
  switch (job.suite) {
    case "tables":
      return runSeedJob(job, find(catalog.tables, job))
    case "ttl":
      return runTtlJob(job, find(catalog.ttl, job))
    case "durable":
      return runDurableJob(job, find(catalog.durable, job))
    case "replay":
      return runReplayJob(job, find(catalog.replay, job))
    case "compaction":
      return runCompactionJob(job, find(catalog.compaction, job))
    case "expiry":
      return runExpiryJob(job, find(catalog.expiry, job))
    case "perop":
      return runPerOpJob(job, perOpSubject(catalog, job))
    case "tails":
      return runTailsJob(job, await tailsSubject(job))
    // Imported here, not above: they load src/ directly, and a catalog without kvlog must still run the other suites.
    case "scale":
      checkSharedSubject(job)
      return (await import("./suites/sharedScale.ts")).runScaleJob(job)
    case "readers":
      checkSharedSubject(job)
      return (await import("./suites/sharedReaders.ts")).runReadersJob(job)
  }
}
