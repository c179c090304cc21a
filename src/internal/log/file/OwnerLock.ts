/**
 * One thread owns a log. Node has no `flock`, so ownership is a lock file
 * beside the log (`<log>.lock`) naming its owner:
 *
 * ```text
 * <pid> <process start> <threadId> <tid> <thread start> <isolate token>
 * ```
 *
 * The owner is an isolate (the main thread or one worker thread), not a
 * process: a worker's store and the main thread's store are two writers. An
 * isolate cannot see another isolate's memory, so the one place every isolate
 * of a process shares is the kernel's table of threads: each isolate runs on
 * an OS thread of its own (`/proc/thread-self`) that lives exactly as long as
 * it, so a lock is live while its thread runs, whichever process or isolate
 * asks. Start times (field 22 of `/proc/<pid>/stat` and of
 * `/proc/<pid>/task/<tid>/stat`) tell a reused pid or tid from the owner: in a
 * container, a restarted program often gets the pid its crashed predecessor
 * had. The random token marks this isolate's own locks, which its registry of
 * open paths accounts for; a lock with this token that the registry does not
 * hold is a leftover. Without `/proc`, only the pid can be checked: a lock
 * naming this process but another isolate then counts as live.
 *
 * A lock file never exists without its owner's name: the name is written and
 * synced to a temporary file, which `link` gives the lock's name — failing
 * with EEXIST, where a rename would replace. A stale lock (its owner gone) is
 * removed only by the holder of `<log>.lock.takeover`, claimed the same way,
 * and only if the lock is still the very file judged stale (same inode, same
 * contents); nothing else deletes another's lock file while it is there, so
 * of several openers racing over one stale lock, one removes it and whoever
 * links first afterwards owns the log. A takeover guard whose owner died is
 * itself stale, and removed under `<log>.lock.takeover.takeover`.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as workerThreads from "node:worker_threads"

export type OwnerLockResult =
  | { readonly _tag: "Acquired"; readonly release: () => void }
  | { readonly _tag: "Locked"; readonly owner: string }

/** Paths this isolate holds: a second open is refused before the file system is asked. */
const openInThisIsolate = new Set<string>()

const isolateToken = crypto.randomBytes(8).toString("hex")

/**
 * The start time (clock ticks since boot, field 22) in a `/proc` stat file;
 * `null` if no such process or thread runs, `undefined` if that cannot be
 * told (no `/proc`, or not allowed to look).
 */
const startTimeIn = (statPath: string): string | undefined | null => {
  let stat: string
  try {
    stat = fs.readFileSync(statPath, "utf8")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT" || code === "ESRCH") return fs.existsSync("/proc/self/stat") ? null : undefined
    return undefined
  }
  // The command name (field 2) is in parentheses and may hold spaces.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

/** The OS thread this isolate runs on (sync calls run on the calling thread). */
const ownThreadId = ((): string | undefined => {
  try {
    return fs.readlinkSync("/proc/thread-self").split("/")[2]
  } catch {
    return undefined
  }
})()

interface Owner {
  readonly pid: number
  readonly processStart: string | undefined
  /** `worker_threads.threadId`: 0 for the main thread. */
  readonly threadId: number | undefined
  readonly tid: string | undefined
  readonly threadStart: string | undefined
  readonly token: string | undefined
}

const orUndefined = (field: string | undefined): string | undefined =>
  field === undefined || field === "" || field === "-" ? undefined : field

const ownLine = [
  process.pid,
  startTimeIn(`/proc/${process.pid}/stat`) ?? "-",
  workerThreads.threadId,
  ownThreadId ?? "-",
  (ownThreadId === undefined ? undefined : startTimeIn(`/proc/${process.pid}/task/${ownThreadId}/stat`)) ?? "-",
  isolateToken
].join(" ") + "\n"

/**
 * The owner a lock file names, `undefined` if it names none. Locks written
 * before threads were named hold just `<pid> <process start>`.
 */
const parseOwner = (contents: string): Owner | undefined => {
  if (!contents.endsWith("\n")) return undefined
  const fields = contents.slice(0, -1).split(" ")
  if (fields.length !== 2 && fields.length !== 6) return undefined
  if (!/^[1-9][0-9]*$/.test(fields[0])) return undefined
  const threadId = fields.length === 6 ? Number.parseInt(fields[2], 10) : undefined
  return {
    pid: Number(fields[0]),
    processStart: orUndefined(fields[1]),
    threadId: Number.isInteger(threadId) ? threadId : undefined,
    tid: orUndefined(fields[3]),
    threadStart: orUndefined(fields[4]),
    token: orUndefined(fields[5])
  }
}

const processRuns = (pid: number, startTime: string | undefined): boolean => {
  const current = startTimeIn(`/proc/${pid}/stat`)
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

/** Whether the isolate a lock file names still runs; `false` for a lock file naming no one. */
const ownerRuns = (owner: Owner | undefined): boolean => {
  if (owner === undefined) return false
  // This isolate's own locks are in its registry: one that is not, is a leftover.
  if (owner.pid === process.pid && owner.token === isolateToken) return false
  if (!processRuns(owner.pid, owner.processStart)) return false
  if (owner.tid === undefined) return true
  const threadStart = startTimeIn(`/proc/${owner.pid}/task/${owner.tid}/stat`)
  if (threadStart === null) return false
  return threadStart === undefined || owner.threadStart === undefined || threadStart === owner.threadStart
}

const describeOwner = (owner: Owner): string => {
  const thread = owner.threadId === undefined || owner.threadId === 0 ? undefined : `worker thread ${owner.threadId}`
  if (owner.pid !== process.pid) return thread === undefined ? `process ${owner.pid}` : `${thread} of process ${owner.pid}`
  return `${thread ?? "the main thread"} of this process (pid ${process.pid})`
}

/** A lock file as read: which file (a later file at the same path is another) and what it says. */
interface Seen {
  readonly dev: number
  readonly ino: number
  readonly contents: string
}

/**
 * Reads `file`; `undefined` if nothing is there. A symlink is never followed:
 * the store makes none, so one found here names no owner, like an empty file.
 */
const look = (file: string): Seen | undefined => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT") return undefined
    if (code !== "ELOOP") throw error
    try {
      const { dev, ino } = fs.lstatSync(file)
      return { dev, ino, contents: "" }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
      throw error
    }
  }
  try {
    const { dev, ino } = fs.fstatSync(fd)
    return { dev, ino, contents: fs.readFileSync(fd, "utf8") }
  } finally {
    fs.closeSync(fd)
  }
}

const sameFile = (a: Seen, b: Seen): boolean => a.dev === b.dev && a.ino === b.ino && a.contents === b.contents

const unlinkIfPresent = (file: string): void => {
  try {
    fs.unlinkSync(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
  }
}

/** Creates a file holding this isolate's name beside `lockPath`, synced, under a name no one else uses. */
const writeOwnName = (lockPath: string): string => {
  const temporary = `${lockPath}.${crypto.randomBytes(8).toString("hex")}.tmp`
  const fd = fs.openSync(
    temporary,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0),
    0o600
  )
  try {
    fs.writeSync(fd, ownLine)
    fs.fdatasyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  return temporary
}

const takeoverGuardOf = (file: string): string => `${file}.takeover`

/** Guards of guards: a level is needed only when a taker died holding the level above. */
const maxGuardDepth = 3

/**
 * Gives `named` (a file holding this isolate's name) the name `file`, taking
 * over a stale file there. `undefined` once `file` is ours; else who holds it.
 */
const claim = (file: string, named: string, depth: number): string | undefined => {
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      fs.linkSync(named, file)
      return undefined
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    const seen = look(file)
    if (seen === undefined) continue
    const owner = parseOwner(seen.contents)
    if (ownerRuns(owner)) return describeOwner(owner!)
    if (depth >= maxGuardDepth) return `another opener (${file} is held by a process that died)`
    const guard = takeoverGuardOf(file)
    const taker = claim(guard, named, depth + 1)
    // Another opener is taking the stale file over: it will own it.
    if (taker !== undefined) return taker
    try {
      // Only the guard's holder removes a stale file, so what is here now
      // stays here until this unlink.
      const now = look(file)
      if (now !== undefined && sameFile(now, seen)) fs.unlinkSync(file)
    } finally {
      unlinkIfPresent(guard)
    }
  }
  return "another process (the lock file keeps changing hands)"
}

/**
 * Removes a takeover guard left by a taker that died, once the lock is ours:
 * the stale lock it was for is gone, so nobody needs it.
 */
const removeLeftoverGuard = (lockPath: string, named: string): void => {
  const guard = takeoverGuardOf(lockPath)
  try {
    if (look(guard) !== undefined && claim(guard, named, 1) === undefined) unlinkIfPresent(guard)
  } catch {
    // Tidying only: the lock is ours either way.
  }
}

export const acquireOwnerLock = (logPath: string): OwnerLockResult => {
  const key = path.resolve(logPath)
  if (openInThisIsolate.has(key)) return { _tag: "Locked", owner: `this process (pid ${process.pid})` }
  const lockPath = `${key}.lock`
  const named = writeOwnName(lockPath)
  try {
    const owner = claim(lockPath, named, 0)
    if (owner !== undefined) return { _tag: "Locked", owner }
    removeLeftoverGuard(lockPath, named)
  } finally {
    unlinkIfPresent(named)
  }
  openInThisIsolate.add(key)
  return {
    _tag: "Acquired",
    release: () => {
      openInThisIsolate.delete(key)
      try {
        // Still ours (nobody removes a live lock): checked all the same,
        // so that a lock file replaced by hand is not deleted.
        if (look(lockPath)?.contents === ownLine) fs.unlinkSync(lockPath)
      } catch {
        // Already gone, or unreadable: nothing of ours to release.
      }
    }
  }
}
