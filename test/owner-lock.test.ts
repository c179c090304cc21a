/**
 * One thread owns a log, against worker threads of the same process and
 * against processes racing over a stale lock. The children run
 * `test/fixtures/owner-lock-child.ts` under a Node that strips types, so
 * their worker threads load the store's sources as they are.
 */
import * as Effect from "effect/Effect"
import * as childProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { nodeForTypeScript, spawnLineChild, stateOfLog } from "./support/logHarness.ts"

const childScript = path.resolve(import.meta.dirname, "fixtures/owner-lock-child.ts")
const projectRoot = path.resolve(import.meta.dirname, "..")

let directory = ""
beforeAll(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-owner-lock-"))
})
afterAll(() => {
  fs.rmSync(directory, { recursive: true, force: true })
})

/** A pid that ran and has exited. */
const deadPid = (): number => {
  const exited = childProcess.spawnSync("true")
  return exited.pid
}

const startTimeOf = (pid: number): string => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

/** Files beside the log other than the log itself and `keep`. */
const leftovers = (logPath: string, keep: ReadonlyArray<string> = []): Array<string> =>
  fs.readdirSync(path.dirname(logPath)).filter((name) =>
    name.startsWith(`${path.basename(logPath)}.`) && !keep.includes(name)
  )

/** A whole owner line: pid, process start, threadId, tid, thread start, token. */
const ownerLine = /^[1-9][0-9]* [0-9-]+ [0-9]+ [0-9-]+ [0-9-]+ [0-9a-f]{16}\n$/

describe("one thread owns a log", () => {
  it(
    "a worker thread is refused with LogLocked while the main thread holds the log and vice versa; a worker that ends without closing leaves a lock that is taken over, its acknowledged puts kept",
    async () => {
      const logPath = path.join(directory, "threads.log")
      const child = spawnLineChild(childScript, ["threads", logPath])
      const exit = await child.closed
      assert.strictEqual(exit.code, 0, exit.stderr)
      assert.strictEqual(child.lines.at(-1), "done")
      const steps = child.lines.slice(0, -1).map((line) => JSON.parse(line) as Record<string, unknown>)
      const pid = child.pid
      assert.deepStrictEqual(steps, [
        { step: "worker-while-main-holds", tag: "LogLocked", owner: `the main thread of this process (pid ${pid})` },
        { step: "worker-holds", tag: "Acquired", acknowledged: 50 },
        { step: "main-while-worker-holds", tag: "LogLocked", owner: `worker thread 2 of this process (pid ${pid})` },
        { step: "worker-while-worker-holds", tag: "LogLocked", owner: `worker thread 2 of this process (pid ${pid})` },
        { step: "worker-closed", tag: "Closed" },
        { step: "main-after-worker-closed", tag: "Acquired", keys: 50 },
        { step: "worker-holds", tag: "Acquired", acknowledged: 50 },
        { step: "worker-terminated", lockFileLeft: true },
        { step: "main-after-worker-terminated", tag: "Acquired", keys: 50 }
      ])
      const state = await Effect.runPromise(stateOfLog(logPath))
      assert.strictEqual(state.get("main"), "s:1")
      for (let i = 0; i < 50; i++) {
        assert.strictEqual(state.get(`w${i}`), `s:v${i}`)
        assert.strictEqual(state.get(`t${i}`), `s:v${i}`)
      }
      assert.deepStrictEqual(leftovers(logPath), [], "lock, takeover guard or temporary files left beside the log")
    },
    60_000
  )
})

// =============================================================================
// Racing processes
// =============================================================================

interface RaceChild {
  readonly pid: number
  readonly send: (line: string) => void
  readonly lines: Array<string>
  /** Resolves once the child has printed `line` `count` times in all. */
  readonly printed: (line: string, count: number) => Promise<void>
  readonly closed: Promise<{ code: number | null; stderr: string }>
}

const spawnRaceChild = (logPath: string, reportPath: string): RaceChild => {
  const child = childProcess.spawn(nodeForTypeScript(), [childScript, "race", logPath, reportPath], {
    cwd: projectRoot,
    stdio: ["pipe", "pipe", "pipe"]
  })
  const lines: Array<string> = []
  const waiters: Array<{ line: string; count: number; resolve: () => void; reject: (e: Error) => void }> = []
  const countOf = (line: string) => lines.filter((l) => l === line).length
  let stderr = ""
  let partial = ""
  child.stdout.setEncoding("utf8")
  child.stdout.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n")
    partial = parts.pop()!
    lines.push(...parts)
    for (let i = 0; i < waiters.length; i++) {
      if (countOf(waiters[i].line) >= waiters[i].count) {
        waiters[i].resolve()
        waiters.splice(i--, 1)
      }
    }
  })
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk
  })
  const closed = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on("close", (code) => {
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(`child exited (${code}); stderr:\n${stderr}`))
      resolve({ code, stderr })
    })
  })
  return {
    pid: child.pid!,
    lines,
    send: (line) => {
      child.stdin.write(line + "\n")
      if (line === "end") child.stdin.end()
    },
    printed: (line, count) =>
      countOf(line) >= count ? Promise.resolve() : new Promise((resolve, reject) => waiters.push({ line, count, resolve, reject })),
    closed
  }
}

describe("racing openers", () => {
  it(
    "of eight processes opening a log with a stale lock at once, exactly one owns it, round after round; the others get LogLocked",
    async () => {
      const logPath = path.join(directory, "race.log")
      const reportPath = path.join(directory, "race.report")
      fs.writeFileSync(reportPath, "")
      const children = Array.from({ length: 8 }, () => spawnRaceChild(logPath, reportPath))
      const pids = new Set(children.map((child) => String(child.pid)))
      const rounds = 4
      // A stale lock as a crash leaves it: naming a dead pid (this version's
      // line, or the older `<pid> <start>`), or a reused pid with another
      // start time, or empty.
      const staleLocks = [
        () => `${deadPid()} 123 0 ${deadPid()} 123 ${crypto.randomBytes(8).toString("hex")}\n`,
        () => `${deadPid()} 4567\n`,
        () => `1 ${Number(startTimeOf(1)) + 12345} 0 1 ${Number(startTimeOf(1)) + 12345} 0123456789abcdef\n`,
        () => ""
      ]
      const winners: Array<string> = []
      let reported = 0
      for (let round = 1; round <= rounds; round++) {
        const stale = staleLocks[round % staleLocks.length]()
        fs.writeFileSync(`${logPath}.lock`, stale)
        for (const child of children) child.send("go")
        await Promise.all(children.map((child) => child.printed("reported", round)))
        const lines = fs.readFileSync(reportPath, "utf8").split("\n").slice(reported, -1)
        reported += lines.length
        assert.strictEqual(lines.length, children.length, `round ${round}: ${lines.join("; ")}`)
        const won = lines.filter((line) => line.startsWith("won "))
        assert.strictEqual(won.length, 1, `round ${round} (stale lock ${JSON.stringify(stale)}): ${lines.join("; ")}`)
        const winner = won[0].split(" ")[1]
        winners.push(winner)
        for (const line of lines.filter((line) => !line.startsWith("won "))) {
          const match = /^locked (\d+) process (\d+)$/.exec(line)
          assert.isNotNull(match, `round ${round}: ${line}`)
          assert.isTrue(pids.has(match![2]) && match![2] !== match![1], `round ${round}: ${line} names no other racer`)
        }
        const lock = fs.readFileSync(`${logPath}.lock`, "utf8")
        assert.match(lock, ownerLine)
        assert.strictEqual(lock.split(" ")[0], winner, `round ${round}: the lock file names another process than the winner`)
        for (const child of children) child.send("release")
        await Promise.all(children.map((child) => child.printed("released", round)))
        assert.deepStrictEqual(leftovers(logPath), [], `round ${round}: files left beside the log`)
      }
      for (const child of children) child.send("end")
      for (const child of children) assert.strictEqual((await child.closed).code, 0, (await child.closed).stderr)
      const state = await Effect.runPromise(stateOfLog(logPath))
      assert.deepStrictEqual(
        Array.from({ length: rounds }, (_, i): string | undefined => state.get(`round${i + 1}`)),
        winners.map((pid) => `s:${pid}`),
        "each round's winner wrote to the log"
      )
    },
    90_000
  )

  it(
    "a lock file is never seen empty or partial: a reader polling it while another process takes and releases the lock sees only whole owner lines",
    async () => {
      const logPath = path.join(directory, "churn.log")
      const doneMarker = path.join(directory, "churn.done")
      const child = childProcess.spawn(nodeForTypeScript(), [childScript, "churn", logPath, "400", doneMarker], {
        cwd: projectRoot,
        stdio: ["ignore", "ignore", "pipe"]
      })
      let stderr = ""
      child.stderr.setEncoding("utf8")
      child.stderr.on("data", (chunk: string) => {
        stderr += chunk
      })
      const closed = new Promise<number | null>((resolve) => child.on("close", resolve))
      // A synchronous loop: the reader polls as fast as it can, and stops when
      // the churner says it is done (or has long failed).
      const deadline = Date.now() + 60_000
      let whole = 0
      const partial: Array<string> = []
      while (!fs.existsSync(doneMarker) && Date.now() < deadline && child.exitCode === null) {
        let contents: string
        try {
          contents = fs.readFileSync(`${logPath}.lock`, "utf8")
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") continue
          throw error
        }
        if (ownerLine.test(contents)) whole++
        else partial.push(contents)
      }
      assert.strictEqual(await closed, 0, stderr)
      assert.isTrue(fs.existsSync(doneMarker), "the churner finished")
      assert.deepStrictEqual(partial.slice(0, 5), [], `${partial.length} partial reads`)
      assert.isAbove(whole, 100, "the reader saw the lock held only a few times: the test proved little")
    },
    90_000
  )
})
