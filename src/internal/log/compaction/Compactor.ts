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
 *    buffer, sync, rename the new file over the log, sync the directory, and
 *    switch to it.
 *
 * A crash before the rename leaves the old log whole (the leftover
 * `.compact` file is deleted at open); after it, the new one, synced before
 * it got the log's name.
 */
import * as fs from "node:fs"
import * as Effect from "effect/Effect"
import type * as Semaphore from "effect/Semaphore"
import type { CompactionReport } from "../../../KeyValueStore.ts"
import { StorageError } from "../../errors.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import { directoryOf, type LogFile, syncDirectory, writeFully } from "../file/LogFile.ts"
import { encodeHeader, headerLength } from "../format/LogFormat.ts"
import { RecordEncoder } from "../format/LogRecord.ts"

/**
 * The longest the compactor runs before it yields to the writers. Every
 * synchronous stretch of it (walk, copy) is a pause for everyone else, so
 * this bounds them; and it is time, not a count of entries, so a compaction
 * still progresses when busy writers leave it few turns.
 */
export const stepBudgetMillis = 2
/**
 * The turn while durable writes wait for their batch. They need no CPU, only
 * the writer fiber's turn: a batch comes once a turn, so a 2 ms turn holds
 * `"always"` writers to ~one batch per 2.3 ms (a tenth of their throughput).
 */
const busyStepMillis = 0.25
/** Entries encoded between two looks at the clock. */
const entriesPerClockCheck = 256
/**
 * The new file is synced (off the main thread) every this many bytes, so
 * that the disk never has to take the whole of it at once while the log's
 * own syncs wait behind it.
 */
const syncEveryBytes = 4 * 1024 * 1024
/** Bytes gathered before one `write()` of the new file. */
const writeChunkBytes = 1024 * 1024
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

const releaseGradually = (fd: number, size: number): void => {
  const close = () => fs.close(fd, () => {})
  const step = (remaining: number) => {
    if (remaining <= releaseStepBytes) return close()
    const to = remaining - releaseStepBytes
    fs.ftruncate(fd, to, (error) => {
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
}

const ioError = (what: string, error: unknown) =>
  new StorageError({
    message: `${what}: ${error instanceof Error ? error.message : String(error)}`,
    cause: error
  })

export const makeCompactor = (
  core: StoreCore,
  file: LogFile,
  options: {
    /** Held by each group-commit batch; the compactor takes it to act between batches. */
    readonly logMutex: Semaphore.Semaphore
    /** One compaction or clear at a time. */
    readonly maintenance: Semaphore.Semaphore
    /** Hands buffered records (`"interval"`/`"never"`) to the log. */
    readonly flushBuffered: () => StorageError | undefined
    /** Whether durable writes are waiting for, or coming back from, a batch (turns are then kept short). */
    readonly writesWaiting: () => boolean
  }
): Compactor => {
  const { logMutex, maintenance, flushBuffered, writesWaiting } = options
  /** The length of the turn about to be taken. */
  const turnMillis = () => writesWaiting() ? busyStepMillis : stepBudgetMillis
  const compactPath = `${file.path}.compact`
  const directory = directoryOf(file.path)
  let lastReport: CompactionReport | undefined

  /** Creates `<log>.compact` holding just a header. */
  const createCompactFile = (): number => {
    const fd = fs.openSync(compactPath, "w", 0o600)
    writeFully(file.ops, fd, encodeHeader(), 0)
    return fd
  }

  const discard = (fd: number | undefined) => {
    file.rewrite = undefined
    file.rewriteBytes = 0
    if (fd !== undefined) {
      try {
        fs.closeSync(fd)
      } catch {
        // Already closed.
      }
    }
    try {
      fs.unlinkSync(compactPath)
    } catch {
      // Never created, or gone.
    }
  }

  /**
   * Gives the new file the log's name and makes it the log. Synchronous:
   * nothing can be appended between the last copied byte and the switch.
   */
  const switchTo = (fd: number, end: number, records: number): StorageError | undefined => {
    file.ops.datasync(fd)
    fs.renameSync(compactPath, file.path)
    const oldSize = file.allocated
    const old = file.switchTo(fd, end, records)
    let failed: StorageError | undefined
    try {
      syncDirectory(directory)
    } catch (error) {
      // The rename may not survive a crash: the old log could come back
      // without what is appended from now on. Refuse further writes.
      failed = file.fail(`syncing directory ${directory} after compaction failed`, error)
    }
    releaseGradually(old, oldSize)
    return failed
  }

  const compact: Effect.Effect<CompactionReport, StorageError> = maintenance.withPermits(1)(
    Effect.suspend(() => {
      const started = performance.now()
      // Read once the buffer is flushed (below): under "interval"/"never" the
      // records still in it are part of the log being compacted.
      let recordsBefore = file.records
      let bytesBefore = file.end
      let longestPause = 0
      let fd: number | undefined
      let position = headerLength
      let records = 0
      // Records appended since the start are in the rewrite buffer; once
      // copied they count towards the new file's records, which only steer
      // the next automatic compaction.
      let rewriteRecordsAtStart = 0
      let rewriteRecords = 0
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

      /** A stretch that must fall between two group-commit batches. */
      const paused = <A>(step: () => A): Effect.Effect<A> =>
        logMutex.withPermits(1)(Effect.sync(() => timed(step)))

      const writeEncoded = () => {
        if (encoder.length === 0) return
        writeFully(file.ops, fd!, encoder.contents(), position)
        position += encoder.length
        encoder.reset()
      }

      /** Copies the rewrite buffer to the new file, for at most `budget` ms (at least one chunk). */
      const copyRewrite = (budget: number) => {
        const chunks = file.rewrite!
        const started = performance.now()
        let copied = 0
        while (copied < chunks.length && (copied === 0 || performance.now() - started < budget)) {
          const chunk = chunks[copied++]
          writeFully(file.ops, fd!, chunk, position)
          position += chunk.length
          file.rewriteBytes -= chunk.length
        }
        chunks.splice(0, copied)
      }

      let syncedUpTo = headerLength
      const syncNewFile = Effect.callback<void, StorageError>((resume) => {
        fs.fdatasync(fd!, (error) => resume(error ? Effect.fail(ioError("syncing the compacted log", error)) : Effect.void))
      })

      const run = Effect.gen(function*() {
        const begun = yield* paused(() => {
          const error = flushBuffered() ?? file.refusal()
          if (error !== undefined) return error
          recordsBefore = file.records
          bytesBefore = file.end
          rewriteRecordsAtStart = file.records
          fd = createCompactFile()
          file.rewrite = []
          file.rewriteBytes = 0
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
                  records++
                  if (encoder.length >= writeChunkBytes) writeEncoded()
                }
                if (performance.now() - started >= budget) return false
              }
            })
          )
          if (done) break
          if (position - syncedUpTo >= syncEveryBytes) {
            syncedUpTo = position
            yield* syncNewFile
          }
          yield* Effect.yieldNow
        }

        // Busy writers may refill the buffer as fast as it is copied: after
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
          const error = flushBuffered() ?? file.refusal()
          if (error !== undefined) return error
          copyRewrite(Infinity)
          rewriteRecords = file.records - rewriteRecordsAtStart
          const failed = switchTo(fd!, position, records + rewriteRecords)
          fd = undefined
          return failed
        })
        if (switched !== undefined) return yield* Effect.fail(switched)
        const report: CompactionReport = {
          recordsBefore,
          recordsAfter: records + rewriteRecords,
          bytesBefore,
          bytesAfter: position,
          durationMillis: performance.now() - started,
          longestPauseMillis: longestPause
        }
        lastReport = report
        return report
      })

      return run.pipe(
        Effect.catchDefect((defect) => Effect.fail(ioError(`compacting ${file.path} failed`, defect))),
        Effect.onExit((exit) => Effect.sync(() => {
          if (exit._tag === "Failure") discard(fd)
        }))
      )
    })
  )

  const clear: Effect.Effect<void, StorageError> = maintenance.withPermits(1)(
    logMutex.withPermits(1)(Effect.flatMap(
      core.lock.write((): StorageError | undefined => {
        const error = flushBuffered() ?? file.refusal()
        if (error !== undefined) return error
        let fd: number | undefined
        try {
          fd = createCompactFile()
          const failed = switchTo(fd, headerLength, 0)
          fd = undefined
          core.index.clear()
          return failed
        } catch (error) {
          discard(fd)
          return ioError(`clearing ${file.path} failed; the log and the store are unchanged`, error)
        }
      }),
      (error) => error === undefined ? Effect.void : Effect.fail(error)
    ))
  )

  return { compact, clear, lastReport: () => lastReport }
}
