/**
 * Online compaction: rewrites the log to hold one record per live key, while
 * puts and deletes go on.
 *
 * 1. Between two batches, open `<log>.compact` and start copying every batch
 *    appended to the log from then on (the rewrite buffer, as in Redis's AOF
 *    rewrite).
 * 2. Walk the index in chunks, yielding between them, and write a put for
 *    every live entry. The walk sees each key's value at the moment it is
 *    visited; any write after step 1 is also in the rewrite buffer, which is
 *    replayed after the walk's records, so the last word on every key is
 *    right.
 * 3. Copy the rewrite buffer over while writes go on, sync the new file.
 * 4. Between two batches (the only pause): copy the rest of the rewrite
 *    buffer, sync it under `"always"`, rename the new file over the log and
 *    switch to it; the directory is synced off the main thread, before any
 *    later sync of the log is acknowledged (see `switchTo`).
 *
 * A crash before the rename leaves the old log whole (the leftover
 * `.compact` file is deleted at open); after it, the new one, synced before
 * it got the log's name.
 *
 * The compactor also decides when to run by itself (`afterBatch`, checked
 * after every batch at the cost of a comparison) and runs its own
 * background fiber for that.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type * as Semaphore from "effect/Semaphore"
import type { CompactionReport } from "../../../KeyValueStore.ts"
import { StorageError } from "../../errors.ts"
import { applyClear, roomForClear } from "../../store/applyWrite.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import { directoryOf, removeIfPresent, writeFully } from "../file/FileOps.ts"
import type { FileOps } from "../file/FileOps.ts"
import type { LogFile } from "../file/LogFile.ts"
import { batchHeaderLength, encodeBatchHeader, encodeFileHeader, fileHeaderLength, newSalt } from "../format/LogFormat.ts"
import { RecordEncoder } from "../format/LogRecord.ts"

/**
 * The longest the compactor runs before it yields to the writers. Every
 * synchronous stretch of it (walk, copy) is a pause for everyone else, so
 * this bounds them; and it is time, not a count of entries, so a compaction
 * still progresses when busy writers leave it few turns.
 */
export const stepBudgetMillis = 1
/**
 * The turn while durable writes wait for their batch. They need no CPU, only
 * the writer fiber's turn: a batch comes once a turn, so a 2 ms turn holds
 * `"always"` writers to ~one batch per 2.3 ms (a tenth of their throughput).
 */
const busyStepMillis = 0.25
/** Entries encoded between two looks at the clock. */
const entriesPerClockCheck = 64
/**
 * The new file is synced (off the main thread) every this many bytes, so
 * that the disk never has to take the whole of it at once while the log's
 * own syncs wait behind it.
 */
const syncEveryBytes = 4 * 1024 * 1024
/** Bytes gathered before one `write()` of the new file. */
export const writeChunkBytes = 256 * 1024
/** The rewrite buffer is copied over, writes going on, until it is this small… */
const switchBelowBytes = 64 * 1024
/** …or for this many turns, after which the rest is copied during the switch. */
const maxCopyTurns = 16
/**
 * Copy-then-sync rounds before the switch. What writers append while the new
 * file syncs is copied and synced again inside the switch, the one pause; a
 * further round makes that rest small.
 */
const maxSyncRounds = 4


/**
 * The old log, renamed over, lives on through its descriptor; closing it
 * frees all its blocks at once, ~60 ms of ext4 journal work for 150 MB, and
 * every `fdatasync` of the new log committed meanwhile waits behind it (puts
 * of 100+ ms were seen). So it is cut down a step at a time off the main
 * thread, with a breath between steps, and closed once empty.
 */
const releaseStepBytes = 8 * 1024 * 1024
const releaseStepDelayMillis = 10

const releaseGradually = (ops: FileOps, fd: number, size: number): void => {
  const close = () => {
    try {
      ops.close(fd)
    } catch {
      // Nothing left to release.
    }
  }
  const step = (remaining: number) => {
    if (remaining <= releaseStepBytes) return close()
    const to = remaining - releaseStepBytes
    ops.truncateInBackground(fd, to, (error) => {
      if (error !== null) return close()
      // The process may end before the last step: the kernel frees the rest.
      setTimeout(() => step(to), releaseStepDelayMillis).unref()
    })
  }
  step(size)
}

export interface Compactor {
  readonly compact: Effect.Effect<CompactionReport, StorageError>
  /** Empties the log and the index in one step. */
  readonly clear: Effect.Effect<void, StorageError>
  readonly lastReport: () => CompactionReport | undefined
  /** Called after every batch: asks for an automatic compaction once the log holds enough dead records. */
  readonly afterBatch: () => void
}

export interface CompactionOptions {
  /** Whether the log compacts itself (the background fiber runs). */
  readonly auto: boolean
  /** Compact once the log holds more than `factor` records per live entry… */
  readonly factor: number
  /** …and at least `minRecords` records. */
  readonly minRecords: number
}

const ioError = (what: string, error: unknown) =>
  new StorageError({
    message: `${what}: ${error instanceof Error ? error.message : String(error)}`,
    cause: error
  })

export const startCompactor = (
  core: StoreCore,
  file: LogFile,
  options: CompactionOptions & {
    /** Held by each writer batch; the compactor takes it to act between batches. */
    readonly logMutex: Semaphore.Semaphore
    /** One compaction, `clear` or close at a time. */
    readonly maintenance: Semaphore.Semaphore
    /** Whether durable writes are waiting for, or coming back from, a batch (turns are then kept short). */
    readonly writersBusy: () => boolean
    /** Hands the OS what the writer acknowledged and still holds, before the file is replaced. */
    readonly flushWriter: () => StorageError | undefined
    /** Whether every batch is synced before it is acknowledged (`"always"`). */
    readonly syncsEachBatch: boolean
  }
): Effect.Effect<Compactor, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { flushWriter, logMutex, maintenance, writersBusy } = options
    const ops = file.ops
    /** The length of the turn about to be taken. */
    const turnMillis = () => writersBusy() ? busyStepMillis : stepBudgetMillis
    const compactPath = `${file.path}.compact`
    const directory = directoryOf(file.path)
    let lastReport: CompactionReport | undefined

    /**
     * Creates `<log>.compact` holding just a header with a fresh salt. A
     * leftover (a crash mid-compaction) is removed first; the create itself is
     * exclusive, so a symlink planted there is never followed.
     */
    const createCompactFile = (salt: number): number => {
      removeIfPresent(ops, compactPath)
      const fd = ops.createExclusive(compactPath)
      try {
        writeFully(ops, fd, encodeFileHeader(salt), 0)
      } catch (error) {
        ops.close(fd)
        throw error
      }
      return fd
    }

    const discard = (fd: number | undefined) => {
      file.endRewrite()
      if (fd !== undefined) {
        try {
          ops.close(fd)
        } catch {
          // Already closed.
        }
      }
      try {
        removeIfPresent(ops, compactPath)
      } catch {
        // Left for the next open to remove.
      }
    }

    /**
     * Gives the new file the log's name and makes it the log. Synchronous:
     * nothing can be appended between the last copied byte and the switch.
     *
     * `clear` makes the switch durable at once. A compaction, where this is
     * the one pause writers wait for, syncs only what must be durable before
     * the rename and leaves the directory's sync to `LogFile.deferDirectorySync`
     * (in the background, and before any later sync is acknowledged): under
     * `"always"` the records copied since the last sync round were
     * acknowledged as durable, so they are synced first; under `"interval"`
     * and `"never"` they are the newest writes, which an OS crash may lose
     * anyway, while everything older in the new file was synced before (and
     * later batches record only that much as synced, for replay to tell a
     * torn tail from damage). The old file keeps its blocks until the rename
     * is durable: should the old name come back after a crash, it comes back
     * whole.
     */
    const switchTo = (
      fd: number,
      state: {
        readonly end: number
        readonly records: number
        readonly sequence: number
        readonly salt: number
        /** Where the new file is durable up to already. */
        readonly syncedEnd: number
      },
      durability: "now" | "deferred"
    ): StorageError | undefined => {
      const syncData = durability === "now" || options.syncsEachBatch
      if (syncData) ops.datasync(fd)
      ops.rename(compactPath, file.path)
      const old = file.switchTo(fd, { ...state, syncedEnd: syncData ? state.end : state.syncedEnd })
      if (durability === "deferred") {
        file.deferDirectorySync(directory, () => releaseGradually(ops, old.fd, old.size))
        return undefined
      }
      let failed: StorageError | undefined
      try {
        ops.syncDirectory(directory)
      } catch (error) {
        // The rename may not survive a crash: the old log could come back
        // without what is appended from now on. Refuse further writes.
        failed = file.fail(`syncing directory ${directory} after compaction failed`, error)
      }
      releaseGradually(ops, old.fd, old.size)
      return failed
    }

    const compact: Effect.Effect<CompactionReport, StorageError> = maintenance.withPermits(1)(
      Effect.suspend(() => {
        const started = performance.now()
        let recordsBefore = file.records
        let bytesBefore = file.end
        let longestPause = 0
        let fd: number | undefined
        const salt = newSalt()
        let position = fileHeaderLength
        let sequence = 0
        let records = 0
        let syncedUpTo = fileHeaderLength
        const encoder = new RecordEncoder(writeChunkBytes + 64 * 1024)

        /** Runs a synchronous stretch of the compaction, timing it as a pause. */
        const timed = <A>(step: () => A): A => {
          const t = performance.now()
          try {
            return step()
          } finally {
            longestPause = Math.max(longestPause, performance.now() - t)
          }
        }

        /** A stretch that must fall between two writer batches. */
        const paused = <A>(step: () => A): Effect.Effect<A> =>
          logMutex.withPermits(1)(Effect.sync(() => timed(step)))

        const writeBatch = (batch: Uint8Array, count: number) => {
          writeFully(ops, fd!, batch, position)
          position += batch.length
          records += count
          sequence = (sequence + 1) >>> 0
        }

        const writeEncoded = () => {
          if (encoder.count === 0) return
          writeBatch(encoder.seal(sequence, salt, syncedUpTo), encoder.count)
          encoder.reset()
        }

        /** Copies appended records to the new file, each chunk in a batch of its own, for about `budget` ms. */
        const copyRewrite = (budget: number) =>
          file.takeRewrite(budget, (chunk) => {
            writeFully(ops, fd!, encodeBatchHeader(chunk.records, chunk.count, sequence, salt, syncedUpTo), position)
            position += batchHeaderLength
            writeBatch(chunk.records, chunk.count)
          })

        const syncNewFile = Effect.callback<void, StorageError>((resume) => {
          const end = position
          ops.datasyncInBackground(fd!, (error) => {
            if (error) return resume(Effect.fail(ioError("syncing the compacted log", error)))
            syncedUpTo = end
            resume(Effect.void)
          })
        })

        const run = Effect.gen(function*() {
          const begun = yield* paused(() => {
            const error = flushWriter() ?? file.refusal()
            if (error !== undefined) return error
            recordsBefore = file.records
            bytesBefore = file.end
            fd = createCompactFile(salt)
            file.beginRewrite()
            return undefined
          })
          if (begun !== undefined) return yield* Effect.fail(begun)

          const walk = core.index.storedCursor()
          while (true) {
            const done = yield* Effect.sync(() =>
              timed(() => {
                const now = core.clock.currentTimeMillisUnsafe()
                const started = performance.now()
                const budget = turnMillis()
                while (true) {
                  for (let i = 0; i < entriesPerClockCheck; i++) {
                    if (!walk.next()) {
                      writeEncoded()
                      return true
                    }
                    if (walk.deadline <= now) continue
                    encoder.appendPut(walk.key, walk.value, walk.deadline)
                    if (encoder.length >= writeChunkBytes) writeEncoded()
                  }
                  if (performance.now() - started >= budget) return false
                }
              })
            )
            if (done) break
            if (position - syncedUpTo >= syncEveryBytes) yield* syncNewFile
            yield* Effect.yieldNow
          }

          // Busy writers may refill the copy as fast as it is taken: after
          // `maxCopyTurns`, the switch copies what is left. Each round's sync
          // runs off the main thread while writers append; the next round
          // copies what they appended, so the switch has little left to sync.
          for (let round = 0; round < maxSyncRounds; round++) {
            for (let turn = 0; turn < maxCopyTurns && file.rewriteBytes > switchBelowBytes; turn++) {
              yield* Effect.sync(() => timed(() => copyRewrite(turnMillis())))
              yield* Effect.yieldNow
            }
            yield* syncNewFile
            if (file.rewriteBytes <= switchBelowBytes) break
          }

          const switched = yield* paused(() => {
            const error = flushWriter() ?? file.refusal()
            if (error !== undefined) return error
            copyRewrite(Infinity)
            const failed = switchTo(fd!, { end: position, records, sequence, salt, syncedEnd: syncedUpTo }, "deferred")
            fd = undefined
            return failed
          })
          if (switched !== undefined) return yield* Effect.fail(switched)
          const report: CompactionReport = {
            recordsBefore,
            recordsAfter: records,
            bytesBefore,
            bytesAfter: position,
            durationMillis: performance.now() - started,
            longestPauseMillis: longestPause
          }
          lastReport = report
          core.counters.compactions++
          core.counters.compactionPauseMillis.observe(longestPause)
          return report
        })

        return run.pipe(
          Effect.catchDefect((defect) => Effect.fail(ioError(`compacting ${file.path} failed`, defect))),
          Effect.withSpan("kvlog.compact", { attributes: { "kvlog.log.path": file.path } }),
          Effect.onExit((exit) =>
            Effect.sync(() => {
              if (exit._tag === "Failure") discard(fd)
            })
          )
        )
      })
    )

    const clear: Effect.Effect<void, StorageError> = maintenance.withPermits(1)(
      logMutex.withPermits(1)(Effect.flatMap(
        core.lock.write((): StorageError | undefined => {
          // The index's room first: once the log is switched to an empty
          // one, the index must empty too, so nothing may refuse that after.
          const error = flushWriter() ?? file.refusal() ?? roomForClear(core)
          if (error !== undefined) return error
          let fd: number | undefined
          try {
            const salt = newSalt()
            fd = createCompactFile(salt)
            const failed = switchTo(
              fd,
              { end: fileHeaderLength, records: 0, sequence: 0, salt, syncedEnd: fileHeaderLength },
              "now"
            )
            fd = undefined
            applyClear(core)
            return failed
          } catch (error) {
            discard(fd)
            return ioError(`clearing ${file.path} failed; the log and the store are unchanged`, error)
          }
        }),
        (error) => error === undefined ? Effect.void : Effect.fail(error)
      ))
    )

    // Automatic compaction: once the log holds `factor` times more records
    // than there are entries (and at least `minRecords`), the background
    // fiber rewrites it. A request made before the fiber first waits is kept.
    const { factor, minRecords } = options
    let nextCheck = minRecords
    let pending = false
    let wake: (() => void) | undefined
    const afterBatch = () => {
      if (!options.auto || file.records < nextCheck) return
      const live = core.index.storedSize
      if (file.records > factor * Math.max(live, minRecords / factor)) {
        nextCheck = Infinity
        pending = true
        wake?.()
      } else {
        nextCheck = Math.max(minRecords, Math.ceil(factor * live) + 1)
      }
    }
    if (options.auto) {
      const background = Effect.gen(function*() {
        while (true) {
          if (!pending) {
            yield* Effect.callback<void>((resume) => {
              // The fiber may have been preempted since it read `pending`:
              // a request made meanwhile found no `wake` to call, and none
              // would come after it (the next check is off until this one
              // runs), so automatic compaction would stop for good.
              if (pending) return resume(Effect.void)
              wake = () => resume(Effect.void)
            })
          }
          pending = false
          wake = undefined
          const result = yield* Effect.exit(compact)
          if (Exit.isFailure(result)) yield* Effect.logWarning("kvlog: automatic compaction failed", result.cause)
          nextCheck = file.records + Math.max(minRecords, core.index.storedSize)
        }
      })
      yield* Effect.forkScoped(background)
    }

    return { compact, clear, lastReport: () => lastReport, afterBatch }
  })
