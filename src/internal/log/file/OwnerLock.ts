/**
 * One process owns a log. Node has no `flock`, so ownership is a lock file
 * beside the log (`<log>.lock`), created with `O_EXCL` and holding the owner's
 * pid and, on Linux, that process's start time; a lock file whose process
 * is no longer running is stale (its owner crashed) and is taken over. The
 * start time tells a reused pid from the owner: in a container, a restarted
 * program often gets the pid its crashed predecessor had. Within one process
 * a registry of open paths refuses a second open before the file system is
 * even asked.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const openInThisProcess = new Set<string>()

export type OwnerLockResult =
  | { readonly _tag: "Acquired"; readonly release: () => void }
  | { readonly _tag: "Locked"; readonly owner: string }

/**
 * A process's start time (clock ticks since boot, field 22 of
 * `/proc/<pid>/stat`), `undefined` where there is no `/proc`, `null` if no
 * such process runs.
 */
const startTimeOf = (pid: number): string | undefined | null => {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT" || code === "ESRCH") return fs.existsSync("/proc/self/stat") ? null : undefined
    return undefined
  }
  // The command name (field 2) is in parentheses and may hold spaces.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

const ownStartTime = startTimeOf(process.pid) ?? undefined

const isRunning = (pid: number, startTime: string | undefined): boolean => {
  const current = startTimeOf(pid)
  if (current === null) return false
  if (current !== undefined && startTime !== undefined) return current === startTime
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it runs, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const lockPathOf = (logPath: string): string => `${logPath}.lock`

export const acquireOwnerLock = (logPath: string): OwnerLockResult => {
  const key = path.resolve(logPath)
  if (openInThisProcess.has(key)) return { _tag: "Locked", owner: `this process (pid ${process.pid})` }
  const lockPath = lockPathOf(key)
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lockPath, "wx", 0o600)
      try {
        fs.writeSync(fd, `${process.pid} ${ownStartTime ?? ""}\n`)
      } finally {
        fs.closeSync(fd)
      }
      openInThisProcess.add(key)
      return {
        _tag: "Acquired",
        release: () => {
          openInThisProcess.delete(key)
          try {
            fs.unlinkSync(lockPath)
          } catch {
            // Already gone: nothing to release.
          }
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    let ownerPid = NaN
    let ownerStartTime: string | undefined
    try {
      const [pid, startTime] = fs.readFileSync(lockPath, "utf8").trim().split(" ")
      ownerPid = Number.parseInt(pid, 10)
      ownerStartTime = startTime === "" ? undefined : startTime
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue
      throw error
    }
    // A pid that runs (and is not ours: our own opens are in the registry)
    // owns the log. An unreadable or dead pid means a crashed owner.
    if (Number.isInteger(ownerPid) && ownerPid !== process.pid && isRunning(ownerPid, ownerStartTime)) {
      return { _tag: "Locked", owner: `process ${ownerPid}` }
    }
    try {
      fs.unlinkSync(lockPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    }
  }
  return { _tag: "Locked", owner: "another process (the lock file keeps changing hands)" }
}
