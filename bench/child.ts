/**
 * The child process of the bench runner: runs one `Job` (one subject, one
 * size) and prints its `JobResult` as one line on stdout. The runner starts
 * it with `--expose-gc` and a large heap; progress goes to stderr.
 *
 * Usage (normally only by `run.ts`): node --expose-gc bench/child.ts '<job JSON>'
 */
import { type Job, type JobResult, resultPrefix } from "./jobs.ts"
import type { SubjectIdentity } from "./subjects/BenchSubject.ts"
import { loadCatalog } from "./subjects/registry.ts"
import { runCompactionJob } from "./suites/compaction.ts"
import { runDurableJob } from "./suites/durableWrites.ts"
import { runExpiryJob } from "./suites/expiryAccuracy.ts"
import { runReplayJob } from "./suites/replay.ts"
import { runSeedJob, runTtlJob } from "./suites/seedTables.ts"

const find = <S extends SubjectIdentity>(subjects: ReadonlyArray<S>, job: Job): S => {
  const subject = subjects.find((candidate) => candidate.id === job.subject)
  if (subject === undefined) throw new Error(`no ${job.suite} subject "${job.subject}" on this machine`)
  return subject
}

const runJob = async (job: Job): Promise<JobResult> => {
  const catalog = await loadCatalog()
  switch (job.suite) {
    case "seed":
      return runSeedJob(job, find(catalog.seed, job))
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
  }
}

const job = JSON.parse(process.argv[2] ?? "null") as Job | null
if (job === null) {
  process.stderr.write("usage: node --expose-gc bench/child.ts '<job JSON>'\n")
  process.exit(2)
}
try {
  const result = await runJob(job)
  process.stdout.write(`${resultPrefix}${JSON.stringify(result)}\n`)
  // Stores that leave timers or handles behind must not keep the child alive.
  process.exit(0)
} catch (error) {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
}
