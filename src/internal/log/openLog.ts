/**
 * Opening a log-backed store: take ownership of the log, replay it into a
 * fresh index, cut off a torn tail (keeping a copy of its bytes beside the
 * log), then start the writer for the chosen `fsync` policy, the compactor,
 * and the finalizer that flushes and syncs everything pending when the scope
 * closes.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { KeyValueStoreService, LogOpenError, LogOptions } from "../../KeyValueStore.ts"
import { InvalidInput, LogCorrupted, LogLocked, StorageError } from "../errors.ts"
import { SharedIndexFull } from "../index/shared/SharedIndex.ts"
import { checkIndexOption } from "../validate.ts"
import { applyDelete, applyDeleteBytes, applyPut, applyPutBytes } from "../store/applyWrite.ts"
import { compactIndex, makeCore, makeService, publishMetrics, type StoreCore } from "../store/makeStore.ts"
import { startCompactor } from "./compaction/Compactor.ts"
import { directoryOf, type FileOps, readFully, removeIfPresent, withDefaults, writeFully } from "./file/FileOps.ts"
import { emptyLogState, LogFile } from "./file/LogFile.ts"
import { acquireOwnerLock } from "./file/OwnerLock.ts"
import { encodeFileHeader, newSalt } from "./format/LogFormat.ts"
import { replayFile } from "./format/LogReplay.ts"
import type { RecordVisitor } from "./format/LogScanner.ts"
import { startBufferedWriter } from "./write/BufferedWriter.ts"
import { type FsyncPolicy, startLogWriter } from "./write/LogWriter.ts"

export type { FsyncPolicy }

export const defaultCompactionFactor = 2
export const defaultCompactionMinRecords = 100_000
export const defaultFsyncIntervalMillis = 1000

const checkOptions = (options: LogOptions): InvalidInput | undefined => {
  const bad = (message: string) => new InvalidInput({ message })
  if (typeof options !== "object" || options === null) {
    return bad(`options must be an object with a path, got ${options === null ? "null" : typeof options}`)
  }
  if (typeof options.path !== "string" || options.path.length === 0) return bad("path must be a non-empty string")
  const name = options.name
  if (name !== undefined && !(typeof name === "string" && name.length > 0)) {
    return bad(`name must be a non-empty string, got ${typeof name === "string" ? '""' : String(name)}`)
  }
  if (options.onReclaim !== undefined && typeof options.onReclaim !== "function") {
    return bad(`onReclaim must be a function, got ${typeof options.onReclaim}`)
  }
  const index = checkIndexOption(options.index)
  if (index !== undefined) return index
  const fsync = options.fsync
  if (fsync !== undefined && fsync !== "always" && fsync !== "interval" && fsync !== "never") {
    return bad(`fsync must be "always", "interval" or "never", got ${JSON.stringify(fsync)}`)
  }
  const interval = options.fsyncIntervalMillis
  if (interval !== undefined && !(typeof interval === "number" && Number.isFinite(interval) && interval > 0)) {
    return bad(`fsyncIntervalMillis must be a positive finite number, got ${String(interval)}`)
  }
  const acknowledge = options.acknowledge
  if (acknowledge !== undefined && acknowledge !== "written" && acknowledge !== "buffered") {
    return bad(`acknowledge must be "written" or "buffered", got ${JSON.stringify(acknowledge)}`)
  }
  if (acknowledge === "buffered" && (fsync === undefined || fsync === "always")) {
    return bad(`acknowledge: "buffered" needs fsync "interval" or "never": under "always" a write is acknowledged once synced`)
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

/**
 * Creates an empty log (just a header) so that it appears whole or not at
 * all: written under a temporary name, synced, renamed into place, and the
 * rename made durable.
 */
const createLog = (filePath: string, ops: FileOps): void => {
  const temporary = `${filePath}.new`
  removeIfPresent(ops, temporary)
  const fd = ops.createExclusive(temporary)
  try {
    writeFully(ops, fd, encodeFileHeader(newSalt()), 0)
    ops.datasync(fd)
  } finally {
    ops.close(fd)
  }
  ops.rename(temporary, filePath)
  ops.syncDirectory(directoryOf(filePath))
}

/**
 * Where the log really is. Errors name the path as the caller spelled it, but
 * the files are reached through this one: absolute, because compaction
 * renames files long after the open, when the working directory may have
 * changed; with symlinks resolved, because a rename over a symlink would
 * replace the link instead of the log, and so that every spelling of one log
 * finds the same owner lock.
 */
export const realLogPath = (path: string): string => {
  const absolute = nodePath.resolve(path)
  try {
    return fs.realpathSync(absolute)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    return nodePath.join(fs.realpathSync(nodePath.dirname(absolute)), nodePath.basename(absolute))
  }
}

/**
 * Applies replayed records to the index, through the same step as a live
 * write. Expiry is judged against the time the replay started (a key that
 * expires during the replay is still never read: reads check deadlines
 * themselves).
 */
const replayInto = (core: StoreCore): RecordVisitor => {
  const now = core.clock.currentTimeMillisUnsafe()
  return {
    put: (key, value, deadline) => applyPut(core, key, value, deadline, 0, now),
    delete: (key) => {
      applyDelete(core, key, now)
    },
    // Each doubling of the index re-places every key so far: make room at
    // once. A log of many overwrites over-reserves; `trim` gives it back.
    expect: (records) => core.index.reserve(records),
    // An index that stores bytes takes the records as bytes: no string per record.
    bytes: core.index.setBytes === undefined ? undefined : {
      put: (buf, keyAt, keyLength, valueAt, valueLength, valueIsBytes, deadline) =>
        applyPutBytes(core, buf, keyAt, keyLength, valueAt, valueLength, valueIsBytes, deadline, now),
      delete: (buf, keyAt, keyLength) => applyDeleteBytes(core, buf, keyAt, keyLength, now),
      lookAhead: core.index.lookAheadBytes === undefined
        ? undefined
        : (buf, keyAt, keyLength) => core.index.lookAheadBytes!(buf, keyAt, keyLength)
    }
  }
}

/**
 * Copies the bytes `[from, to)` of the log, about to be cut off, into a file
 * beside it, so that what replay could not use is never destroyed: a torn
 * write and a damaged last batch look alike, and only a person can tell.
 */
export const keepDropped = (ops: FileOps, fd: number, filePath: string, from: number, to: number): string => {
  const copyPath = `${filePath}.dropped-${from}-${Date.now()}`
  const copy = ops.createExclusive(copyPath)
  try {
    const chunk = new Uint8Array(Math.min(to - from, 1024 * 1024))
    for (let at = from; at < to;) {
      const read = readFully(ops, fd, chunk, 0, Math.min(chunk.length, to - at), at)
      if (read === 0) break
      writeFully(ops, copy, read === chunk.length ? chunk : chunk.subarray(0, read), at - from)
      at += read
    }
    ops.datasync(copy)
  } finally {
    ops.close(copy)
  }
  ops.syncDirectory(directoryOf(filePath))
  return copyPath
}

const io = <A>(what: string, f: () => A): Effect.Effect<A, StorageError> =>
  Effect.try({
    try: f,
    catch: (error) =>
      new StorageError({ message: `${what}: ${error instanceof Error ? error.message : String(error)}`, cause: error })
  })

export const makeLog = (options: LogOptions): Effect.Effect<KeyValueStoreService, LogOpenError, Scope.Scope> =>
  Effect.withSpan(openLog(options), "kvlog.open", {
    attributes: { "kvlog.store.kind": "log", "kvlog.log.path": String(options?.path) }
  })

const openLog = (options: LogOptions): Effect.Effect<KeyValueStoreService, LogOpenError, Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = checkOptions(options)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    const path = options.path
    const filePath = yield* io(`resolving ${path}`, () => realLogPath(path))
    const ops = withDefaults(options.fileOps)
    const policy: FsyncPolicy = options.fsync ?? "always"

    // Ownership and its release in one step: no interruption between the two
    // can leak the lock.
    const owner = yield* Effect.acquireRelease(
      io(`taking ownership of ${path}`, () => acquireOwnerLock(filePath)),
      (owner) => Effect.sync(() => owner._tag === "Acquired" ? owner.release() : undefined)
    )
    if (owner._tag === "Locked") return yield* Effect.fail(new LogLocked({ path, owner: owner.owner }))

    const core = yield* makeCore(options, () => path)

    // Closes the log last, after the writer fibers are stopped (finalizers
    // run last added, first run). A leftover `.compact` file is a compaction
    // that never got to its rename: the log itself is whole without it.
    let file: LogFile | undefined
    const fd = yield* Effect.acquireRelease(
      io(`opening ${path}`, () => {
        removeIfPresent(ops, `${filePath}.compact`)
        if (!ops.exists(filePath)) createLog(filePath, ops)
        return ops.openExisting(filePath)
      }),
      (fd) => Effect.sync(() => file === undefined ? ops.close(fd) : file.close())
    )

    const replayed = yield* Effect.try({
      try: () =>
        replayFile(
          (buffer, offset, length, position) => ops.read(fd, buffer, offset, length, position),
          ops.size(fd),
          replayInto(core),
          { onCorruption: options.onCorruption ?? "fail" }
        ),
      catch: (error) =>
        new StorageError({
          message: error instanceof SharedIndexFull
            ? `replaying ${path} into the shared index failed, the log unchanged: ${error.message}`
            : `replaying ${path}: ${error instanceof Error ? error.message : String(error)}`,
          cause: error
        })
    }).pipe(
        Effect.tap((replayed) =>
          Effect.annotateCurrentSpan({
            "kvlog.replay.outcome": replayed._tag,
            "kvlog.replay.records": replayed._tag === "Ok" ? replayed.records : 0
          })
        ),
        Effect.withSpan("kvlog.replay", { attributes: { "kvlog.log.path": path } })
      )
    // The counters count what the store does from now on, not the history it read back.
    core.counters.puts = 0
    core.counters.deletes = 0
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
      const copy = yield* io(`keeping the dropped tail of ${path}`, () =>
        keepDropped(ops, fd, filePath, dropped.offset, dropped.offset + dropped.bytes))
      yield* Effect.logWarning(
        replayed.tornTail !== undefined
          ? `kvlog: dropped ${dropped.bytes} bytes at the end of ${path}, from byte offset ${dropped.offset} (${dropped.reason}); a copy is in ${copy}`
          : `kvlog: truncated ${path} at byte offset ${dropped.offset} (${dropped.reason}), as onCorruption: "truncate" asks; the ${dropped.bytes} bytes cut off are in ${copy}`
      )
    }
    const fresh = replayed.salt === undefined
    const state = fresh
      ? emptyLogState(newSalt())
      : { end: replayed.validEnd, records: replayed.records, sequence: replayed.batches, salt: replayed.salt! }
    yield* io(`repairing ${path}`, () => {
      if (fresh) writeFully(ops, fd, encodeFileHeader(state.salt), 0)
      if (fresh || ops.size(fd) !== state.end) {
        ops.truncate(fd, state.end)
        ops.datasync(fd)
      }
    })
    core.index.trim()
    core.reaper.scheduled(core.index.earliestDeadline())

    const log = new LogFile(filePath, ops, fd, state)
    log.counters = core.counters
    file = log
    yield* publishMetrics(core, { bytes: () => log.end, records: () => log.records })
    const logMutex = Semaphore.makeUnsafe(1)
    const maintenance = Semaphore.makeUnsafe(1)

    let afterBatch = () => {}
    const syncEveryMillis = options.fsyncIntervalMillis ?? defaultFsyncIntervalMillis
    const writer = options.acknowledge === "buffered"
      ? yield* startBufferedWriter(core, log, {
        syncEveryMillis: policy === "interval" ? syncEveryMillis : undefined,
        logMutex,
        afterBatch: () => afterBatch()
      })
      : yield* startLogWriter(core, log, { policy, syncEveryMillis, logMutex, afterBatch: () => afterBatch() })
    const compactor = yield* startCompactor(core, log, {
      auto: options.compaction?.auto ?? true,
      factor: options.compaction?.factor ?? defaultCompactionFactor,
      minRecords: options.compaction?.minRecords ?? defaultCompactionMinRecords,
      logMutex,
      maintenance,
      writersBusy: writer.busy,
      flushWriter: writer.flush,
      syncsEachBatch: policy === "always"
    })
    afterBatch = compactor.afterBatch

    // Runs before the fibers above are interrupted (finalizers run last
    // added, first run): commit what is queued, sync and cut off the zeros
    // written ahead (a closed log ends at its last batch), then refuse
    // writes — in one step with the sync, so none lands in between. The
    // file is closed by the finalizer registered when it was opened.
    yield* Effect.addFinalizer(() =>
      maintenance.withPermits(1)(logMutex.withPermits(1)(Effect.flatMap(writer.drain, () =>
        Effect.suspend(() => {
          const error = log.sync() ?? log.trim()
          log.refuseWrites()
          writer.rejectQueued(log.refusal()!)
          return error === undefined
            ? Effect.void
            : Effect.logWarning(`kvlog: closing ${path}: ${error.message}`)
        })))).pipe(Effect.withSpan("kvlog.close", { attributes: { "kvlog.log.path": path } }))
    )

    return makeService(core, {
      put: writer.put,
      delete: writer.delete,
      clear: compactor.clear,
      writeStatus: Effect.sync(() => log.writeStatus),
      // The log, then the index's own memory (the shared index's arena).
      compact: Effect.andThen(compactor.compact, compactIndex(core))
    }, () => ({
      fileBytes: log.end,
      records: log.records,
      lastCompaction: compactor.lastReport()
    }))
  })
