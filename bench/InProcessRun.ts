/**
 * Runs one job inside the runner's own process, for suites that measure no
 * memory and take less time than a child's start-up (loading Effect, kvlog
 * and the native databases). The outcome is a child's: a result, a failure
 * with its message, or a timeout.
 *
 * A job that times out cannot be killed here: it is reported, left to finish
 * in the background, and the runner exits once the report is written.
 */
import type { ChildOutcome } from "./ChildRun.ts"
import type { Job, JobResult } from "./jobs.ts"
import { runJob } from "./runJob.ts"
import { redirectProgress } from "./suites/progress.ts"

export interface InProcessRunOptions {
  readonly timeoutSeconds: number
  /** Called with each progress line of the job. */
  readonly onProgress: (line: string) => void
}

/** Runs `job` here (with `run`, the suites' own runner unless a test gives another) and waits for it to end or time out. */
export const runInProcess = async (
  job: Job,
  options: InProcessRunOptions,
  run: (job: Job) => Promise<JobResult> = runJob
): Promise<ChildOutcome> => {
  const started = performance.now()
  const seconds = () => (performance.now() - started) / 1000
  const restoreProgress = redirectProgress(options.onProgress)
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutSeconds * 1000)
  })
  try {
    const result = await Promise.race([run(job), timedOut])
    if (result === "timeout") return { _tag: "Timeout", seconds: seconds() }
    return { _tag: "Ok", result, seconds: seconds() }
  } catch (error) {
    const detail = error instanceof Error ? error.message.split("\n")[0]! : String(error)
    return { _tag: "Failed", seconds: seconds(), detail: detail.slice(0, 300) }
  } finally {
    clearTimeout(timer)
    restoreProgress()
  }
}
