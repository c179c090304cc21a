/**
 * Opening a log-backed store: take ownership of the log, replay it into a
 * fresh index, cut off a torn tail, then start the writer for the chosen
 * `fsync` policy, the compactor, and the finalizer that flushes and syncs
 * everything pending when the scope closes.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { KeyValueStoreService, LogOpenError, LogOptions } from "../../KeyValueStore.ts"
import { InvalidInput, LogCorrupted, LogLocked, StorageError } from "../errors.ts"
import { type Committer, makeCore, makeService, type StoreCore } from "../store/makeStore.ts"
import { startBufferedAppender } from "./write/BufferedAppender.ts"
import { makeCompactor } from "./compaction/Compactor.ts"
import { startGroupCommit } from "./write/GroupCommit.ts"
import { directoryOf, type FileOps, LogFile, nodeFileOps, syncDirectory, writeFully } from "./file/LogFile.ts"
import { encodeHeader, headerLength } from "./format/LogFormat.ts"
import { replayFile } from "./format/LogReplay.ts"
import type { RecordVisitor } from "./format/LogScanner.ts"
import { acquireOwnerLock } from "./file/OwnerLock.ts"

export type FsyncPolicy = NonNullable<LogOptions["fsync"]>

export const defaultCompactionFactor = 2
export const defaultCompactionMinRecords = 100_000
export const defaultFsyncIntervalMillis = 1000

const checkOptions = (options: LogOptions): InvalidInput | undefined => {
  const bad = (message: string) => new InvalidInput({ message })
  if (typeof options.path !== "string" || options.path.length === 0) return bad("path must be a non-empty string")
  const fsync = options.fsync
  if (fsync !== undefined && fsync !== "always" && fsync !== "interval" && fsync !== "never") {
    return bad(`fsync must be "always", "interval" or "never", got ${JSON.stringify(fsync)}`)
  }
  const interval = options.fsyncIntervalMillis
  if (interval !== undefined && !(typeof interval === "number" && Number.isFinite(interval) && interval > 0)) {
    return bad(`fsyncIntervalMillis must be a positive finite number, got ${String(interval)}`)
  }
  const onCorruption = options.onCorruption
  if (onCorruption !== undefined && onCorruption !== "fail" && onCorruption !== "truncate") {
    return bad(`onCorruption must be "fail" or "truncate", got ${JSON.stringify(onCorruption)}`)
  }
  const factor = options.compaction?.factor
  if (factor !== undefined && !(typeof factor === "number" && factor > 1)) {
    return bad(`compaction.factor must be a number above 1, got ${String(factor)}`)
  }
  const minRecords = options.compaction?.minRecords
  if (minRecords !== undefined && !(Number.isInteger(minRecords) && minRecords >= 0)) {
    return bad(`compaction.minRecords must be a non-negative integer, got ${String(minRecords)}`)
  }
  return undefined
}

/** Creates an empty log (just a header) so that it appears whole or not at all. */
const createLog = (path: string, ops: FileOps): void => {
  const temporary = `${path}.new`
  const fd = fs.openSync(temporary, "w", 0o600)
  try {
    writeFully(ops, fd, encodeHeader(), 0)
    ops.datasync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(temporary, path)
  syncDirectory(directoryOf(path))
}

/**
 * Where the log really is. Errors name the path as the caller spelled it, but
 * the files are reached through this one: absolute, because compaction
 * renames files long after the open, when the working directory may have
 * changed; with symlinks resolved, because a rename over a symlink would
 * replace the link instead of the log, and so that every spelling of one log
 * finds the same owner lock.
 */
const realLogPath = (path: string): string => {
  const absolute = nodePath.resolve(path)
  try {
    return fs.realpathSync(absolute)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    return nodePath.join(fs.realpathSync(nodePath.dirname(absolute)), nodePath.basename(absolute))
  }
}

const removeIfPresent = (path: string): void => {
  try {
    fs.unlinkSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
  }
}

/**
 * Applies replayed records to the index. Expiry is judged against the time
 * the replay started (a key that expires during the replay is still never
 * read: reads check deadlines themselves); the reaper learns the earliest
 * deadline once the replay is done.
 */
const replayInto = (core: StoreCore): RecordVisitor => {
  const { index } = core
  const now = core.clock.currentTimeMillisUnsafe()
  return {
    put: (key, value, deadline) => {
      if (deadline > now) index.set(key, value, deadline)
      else index.removeLive(key, now)
    },
    delete: (key) => {
      index.removeLive(key, now)
    },
    // Each doubling of the index re-places every key so far: make room at
    // once. A log of many overwrites over-reserves; `trim` gives it back.
    expect: (records) => index.reserve(records)
  }
}

const io = <A>(what: string, f: () => A): Effect.Effect<A, StorageError> =>
  Effect.try({
    try: f,
    catch: (error) =>
      new StorageError({ message: `${what}: ${error instanceof Error ? error.message : String(error)}`, cause: error })
  })

export const makeLog = (options: LogOptions): Effect.Effect<KeyValueStoreService, LogOpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = checkOptions(options)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    const path = options.path
    const filePath = yield* io(`resolving ${path}`, () => realLogPath(path))
    const ops = options.fileOps ?? nodeFileOps
    const policy = options.fsync ?? "always"

    const owner = yield* io(`taking ownership of ${path}`, () => acquireOwnerLock(filePath))
    if (owner._tag === "Locked") return yield* Effect.fail(new LogLocked({ path, owner: owner.owner }))
    yield* Effect.addFinalizer(() => Effect.sync(owner.release))

    const core = yield* makeCore(options)

    // Open and replay. A leftover `.compact` file is a compaction that never
    // got to its rename: the log itself is whole without it.
    const fd = yield* io(`opening ${path}`, () => {
      removeIfPresent(`${filePath}.compact`)
      removeIfPresent(`${filePath}.new`)
      if (!fs.existsSync(filePath)) createLog(filePath, ops)
      return fs.openSync(filePath, "r+")
    })
    // Closes the log last, after the writer fibers are stopped (finalizers
    // run last added, first run) — or at once if the open fails below.
    let file: LogFile | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => file === undefined ? fs.closeSync(fd) : file.close()))

    const replayed = yield* io(`replaying ${path}`, () =>
      replayFile(fd, fs.fstatSync(fd).size, replayInto(core), { onCorruption: options.onCorruption ?? "fail" }))
    if (replayed._tag !== "Ok") {
      return yield* Effect.fail(
        new LogCorrupted({
          path,
          offset: replayed._tag === "Corrupt" ? replayed.offset : 0,
          reason: replayed.reason
        })
      )
    }
    const dropped = replayed.tornTail ?? replayed.truncated
    if (dropped !== undefined) {
      yield* Effect.logWarning(
        replayed.tornTail !== undefined
          ? `kvlog: dropped a torn tail of ${path} at byte offset ${dropped.offset} (${dropped.reason}): a crash cut the last write short; nothing acknowledged under fsync "always" was in it`
          : `kvlog: truncated ${path} at byte offset ${dropped.offset} (${dropped.reason}), as onCorruption: "truncate" asks; the records after it are lost`
      )
    }
    const end = replayed.validEnd === 0 ? headerLength : replayed.validEnd
    yield* io(`repairing ${path}`, () => {
      if (replayed.validEnd === 0) writeFully(ops, fd, encodeHeader(), 0)
      if (fs.fstatSync(fd).size !== end) {
        ops.truncate(fd, end)
        ops.datasync(fd)
      }
    })
    core.index.trim()
    core.reaper.scheduled(core.index.deadlines.peekDeadline())

    const log = new LogFile(filePath, fd, end, replayed.records, ops)
    file = log
    const logMutex = Semaphore.makeUnsafe(1)
    const maintenance = Semaphore.makeUnsafe(1)

    // Automatic compaction: once the log holds `factor` times more records
    // than there are entries (and at least `minRecords`), a daemon fiber
    // rewrites it. Checked after every write, at the cost of a comparison.
    const auto = options.compaction?.auto ?? true
    const factor = options.compaction?.factor ?? defaultCompactionFactor
    const minRecords = options.compaction?.minRecords ?? defaultCompactionMinRecords
    let wantCompaction: (() => void) | undefined
    let nextCheck = minRecords
    const afterWrite = () => {
      if (log.records < nextCheck || wantCompaction === undefined) return
      const live = core.index.storedSize
      if (log.records > factor * Math.max(live, minRecords / factor)) {
        nextCheck = Infinity
        wantCompaction()
      } else {
        nextCheck = Math.max(minRecords, Math.ceil(factor * live) + 1)
      }
    }

    let flushBuffered: () => StorageError | undefined = () => undefined
    let committer: Pick<Committer, "put" | "delete">
    let drain: Effect.Effect<void> = Effect.void
    let rejectQueued: (error: StorageError) => void = () => {}
    let writesWaiting: () => boolean = () => false
    if (policy === "always") {
      const groupCommit = yield* startGroupCommit(core, log, logMutex, afterWrite)
      writesWaiting = groupCommit.activeSinceLastAsked
      drain = groupCommit.drain
      rejectQueued = groupCommit.rejectQueued
      committer = {
        put: (key, value, stored, deadline) => Effect.as(groupCommit.submit(key, stored, deadline), value),
        delete: (key) => groupCommit.submit(key, undefined, Infinity)
      }
    } else {
      const appender = yield* startBufferedAppender(core, log, {
        syncEveryMillis: policy === "interval" ? options.fsyncIntervalMillis ?? defaultFsyncIntervalMillis : undefined,
        afterWrite
      })
      flushBuffered = appender.flush
      committer = { put: appender.put, delete: appender.delete }
    }

    const compactor = makeCompactor(core, log, { logMutex, maintenance, flushBuffered, writesWaiting })
    if (auto) {
      // A request made before the daemon first waits is kept, not lost.
      let pending = false
      let wake: (() => void) | undefined
      const daemon = Effect.gen(function*() {
        while (true) {
          if (!pending) {
            yield* Effect.callback<void>((resume) => {
              wake = () => resume(Effect.void)
            })
          }
          pending = false
          wake = undefined
          const result = yield* Effect.exit(compactor.compact)
          if (Exit.isFailure(result)) yield* Effect.logWarning("kvlog: automatic compaction failed", result.cause)
          nextCheck = log.records + Math.max(minRecords, core.index.storedSize)
        }
      })
      yield* Effect.forkScoped(daemon)
      wantCompaction = () => {
        pending = true
        wake?.()
      }
    }

    // Runs before the fibers above are interrupted (finalizers run last
    // added, first run): commit what is queued, flush, sync and cut off the
    // zeros written ahead (a closed log ends at its last record), then refuse
    // writes — in one step with the flush, so none lands in between. The
    // file is closed by the finalizer registered when it was opened.
    yield* Effect.addFinalizer(() =>
      maintenance.withPermits(1)(logMutex.withPermits(1)(Effect.flatMap(drain, () =>
        Effect.suspend(() => {
          const error = flushBuffered() ?? log.sync() ?? log.trim()
          log.refuseWrites()
          rejectQueued(log.refusal()!)
          return error === undefined
            ? Effect.void
            : Effect.logWarning(`kvlog: closing ${path}: ${error.message}`)
        }))))
    )

    return makeService(core, {
      put: committer.put,
      delete: committer.delete,
      clear: compactor.clear,
      writeStatus: Effect.sync(() => log.writeStatus),
      compact: Effect.asVoid(compactor.compact)
    }, () => ({
      fileBytes: log.end,
      records: log.records,
      lastCompaction: compactor.lastReport()
    }))
  })
