/**
 * One process owns a log. Node has no `flock`, so ownership is a lock file
 * beside the log (`<log>.lock`), created with `O_EXCL` and holding the owner's
 * pid; a lock file whose pid is no longer running is stale (its owner
 * crashed) and is taken over. Within one process a registry of open paths
 * refuses a second open before the file system is even asked.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const openInThisProcess = new Set<string>()

export type OwnerLockResult =
  | { readonly _tag: "Acquired"; readonly release: () => void }
  | { readonly _tag: "Locked"; readonly owner: string }

const isRunning = (pid: number): boolean => {
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
        fs.writeSync(fd, `${process.pid}\n`)
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
    try {
      ownerPid = Number.parseInt(fs.readFileSync(lockPath, "utf8"), 10)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue
      throw error
    }
    // A pid that runs (and is not ours: our own opens are in the registry)
    // owns the log. An unreadable or dead pid means a crashed owner.
    if (Number.isInteger(ownerPid) && ownerPid !== process.pid && isRunning(ownerPid)) {
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
