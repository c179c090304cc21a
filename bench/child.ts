/**
 * The child process of the bench runner: runs one `Job` (one subject, one
 * size) and prints its `JobResult` as one line on stdout. The runner starts
 * it with `--expose-gc` and a large heap; progress goes to stderr.
 *
 * Usage (normally only by `run.ts`): node --expose-gc bench/child.ts '<job JSON>'
 */
import { type Job, resultPrefix } from "./jobs.ts"
import { runJob } from "./runJob.ts"

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
