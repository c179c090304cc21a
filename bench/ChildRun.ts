/**
 * Runs one job in its own Node process (the same Node binary as the runner,
 * with `--expose-gc` and a large heap), forwards its progress, enforces a
 * time limit, and tells a result from a crash, an out-of-memory death and a
 * timeout — so that a subject that fails at a size is reported, not dropped.
 */
import { spawn } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type Job, type JobResult, resultPrefix } from "./jobs.ts"

/** How a child run ended. */
export type ChildOutcome =
  | { readonly _tag: "Ok"; readonly result: JobResult; readonly seconds: number }
  | { readonly _tag: "OutOfMemory"; readonly seconds: number; readonly detail: string }
  | { readonly _tag: "Timeout"; readonly seconds: number }
  | { readonly _tag: "Failed"; readonly seconds: number; readonly detail: string }

export interface ChildRunOptions {
  readonly timeoutSeconds: number
  readonly maxOldSpaceMb: number
  /** Variables the child starts with besides the runner's own (some, like `GLIBC_TUNABLES`, count only at start-up). */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** Called with each line the child prints on stderr. */
  readonly onProgress: (line: string) => void
}

const childEntry = path.join(path.dirname(fileURLToPath(import.meta.url)), "child.ts")

/**
 * V8's code cache for the modules every child loads (Effect, kvlog, the
 * databases' bindings), kept across children and runs: a small job took
 * 1.5–2.9 s with it and 3.1–3.7 s without on this shared machine. It caches
 * compiled code, not optimised code, so each job's warm-up still does what
 * it did.
 */
const compileCache = process.env["NODE_COMPILE_CACHE"] ?? path.join(os.tmpdir(), "kvlog-bench-compile-cache")

/** The child process running now, so an interrupted runner can stop it. */
let running: { readonly pid: number } | undefined

/** Kills the running child's whole process group (it may have started e.g. `redis-server`). */
export const killRunningChild = (): void => {
  if (running === undefined) return
  try {
    process.kill(-running.pid, "SIGKILL")
  } catch {
    // Already gone.
  }
}

const outOfMemoryPattern = /heap out of memory|Reached heap limit|Allocation failed|ENOMEM|Cannot allocate memory/i

/** Runs `job` in a child process and waits for it to end. */
export const runChild = (job: Job, options: ChildRunOptions): Promise<ChildOutcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const seconds = () => (performance.now() - started) / 1000
    const child = spawn(
      process.execPath,
      ["--expose-gc", `--max-old-space-size=${options.maxOldSpaceMb}`, childEntry, JSON.stringify(job)],
      // Its own process group, so a timeout can kill whatever it started too.
      { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_COMPILE_CACHE: compileCache, ...options.env } }
    )
    if (child.pid !== undefined) running = { pid: child.pid }
    let stdout = ""
    let stderrTail = ""
    let partialLine = ""
    let timedOut = false
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-8192)
      const lines = (partialLine + chunk).split("\n")
      partialLine = lines.pop() ?? ""
      for (const line of lines) options.onProgress(line)
    })
    const timer = setTimeout(() => {
      timedOut = true
      killRunningChild()
    }, options.timeoutSeconds * 1000)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      running = undefined
      if (partialLine !== "") options.onProgress(partialLine)
      const resultLine = stdout.split("\n").find((line) => line.startsWith(resultPrefix))
      if (resultLine !== undefined && code === 0) {
        resolve({ _tag: "Ok", result: JSON.parse(resultLine.slice(resultPrefix.length)) as JobResult, seconds: seconds() })
      } else if (timedOut) {
        resolve({ _tag: "Timeout", seconds: seconds() })
      } else if (outOfMemoryPattern.test(stderrTail) || signal === "SIGKILL") {
        // V8 aborts with "heap out of memory"; the kernel's OOM killer sends SIGKILL.
        resolve({ _tag: "OutOfMemory", seconds: seconds(), detail: lastLine(stderrTail) || `signal ${signal}` })
      } else {
        resolve({
          _tag: "Failed",
          seconds: seconds(),
          detail: lastLine(stderrTail) || `exit code ${code}, signal ${signal}`
        })
      }
    })
  })

const lastLine = (text: string): string => {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "")
  const errorLine = lines.find((line) => /FATAL ERROR|out of memory/i.test(line)) ??
    lines.find((line) => /Error|error:/.test(line))
  return (errorLine ?? lines.at(-1) ?? "").slice(0, 300)
}
