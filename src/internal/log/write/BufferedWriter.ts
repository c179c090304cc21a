/**
 * The log writer of `acknowledge: "buffered"` (with `"interval"` or
 * `"never"`): a write is applied and acknowledged at once, its record
 * appended to a buffer in the process that the writer fiber hands to the OS
 * (one `write()`) at its next turn, or inline once the buffer holds
 * `flushThreshold` bytes.
 *
 * It exists for speed: a `write()` costs ~5 µs here, so a single writer that
 * awaits every put waits ~10 µs a put for one written to the OS, and ~1 µs
 * for one buffered. The price: a crash of the process loses what the buffer
 * held (the writes of the last scheduler turns, at most `flushThreshold`
 * bytes), acknowledged or not. A failed `write()` of the buffer turns the
 * log read-only, since it held acknowledged writes.
 */
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import type * as Scope from "effect/Scope"
import type * as Semaphore from "effect/Semaphore"
import { StorageError } from "../../errors.ts"
import { applyDelete, applyPut, succeedFalse, succeedTrue } from "../../store/applyWrite.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import type { Value } from "../../Value.ts"
import type { LogFile } from "../file/LogFile.ts"
import { RecordEncoder } from "../format/LogRecord.ts"
import type { LogWriter } from "./LogWriter.ts"

/** Bytes buffered before a write flushes them inline instead of waiting for the writer fiber. */
export const flushThreshold = 256 * 1024

/** While a compaction runs, writes between two yields of the writing fiber (see `yieldIfCompacting`). */
export const writesPerYieldWhileCompacting = 32

export const startBufferedWriter = (
  core: StoreCore,
  file: LogFile,
  options: {
    /** `undefined` under `"never"`. */
    readonly syncEveryMillis: number | undefined
    readonly logMutex: Semaphore.Semaphore
    readonly afterBatch: () => void
  }
): Effect.Effect<LogWriter, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { afterBatch, logMutex } = options
    const encoder = new RecordEncoder()
    /** Open while the writer has work or is at it; it waits on it, closed, when there is none. */
    const work = Latch.makeUnsafe(false)

    const flush = (): StorageError | undefined => {
      if (encoder.count === 0) return undefined
      const records = encoder.count
      const error = file.appendBatch(encoder, true)
      encoder.reset()
      if (error !== undefined) {
        // These writes were acknowledged already: the log no longer holds
        // what the store shows, so it must not pretend to be usable.
        return file.fail(`${records} acknowledged writes could not be written to the log: ${error.message}`, error)
      }
      afterBatch()
      return undefined
    }

    /** Appends a record and applies it, in one step: the write's outcome, or why it was refused. */
    const appendAndApply = (key: string, stored: Value | undefined, deadline: number): StorageError | boolean => {
      const refused = file.refusal()
      if (refused !== undefined) return refused
      try {
        if (stored === undefined) encoder.appendDelete(key)
        else encoder.appendPut(key, stored, deadline)
      } catch (defect) {
        return new StorageError({
          message: `encoding a log record failed: ${defect instanceof Error ? defect.message : String(defect)} (a defect in kvlog; nothing of it was written)`,
          cause: defect
        })
      }
      let outcome = true
      if (stored === undefined) outcome = applyDelete(core, key)
      else applyPut(core, key, stored, deadline)
      if (encoder.length >= flushThreshold) {
        const error = flush()
        if (error !== undefined) return error
      } else {
        work.openUnsafe()
      }
      return outcome
    }

    // Writes here never suspend, so busy writers would leave a compaction a
    // turn only every few scheduler slices of each of them, and it would
    // never catch up. While one runs, every writer yields every
    // `writesPerYieldWhileCompacting` writes.
    let writesSinceYield = 0
    const yieldIfCompacting = <A, E>(outcome: Effect.Effect<A, E>): Effect.Effect<A, E> => {
      if (!file.rewriting || ++writesSinceYield < writesPerYieldWhileCompacting) return outcome
      writesSinceYield = 0
      return Effect.flatMap(Effect.yieldNow, () => outcome)
    }

    const putNow = (key: string, value: Value, stored: Value, deadline: number): Effect.Effect<Value, StorageError> => {
      const outcome = appendAndApply(key, stored, deadline)
      return yieldIfCompacting(typeof outcome === "boolean" ? Effect.succeed(value) : Effect.fail(outcome))
    }

    const deleteNow = (key: string): Effect.Effect<boolean, StorageError> => {
      const outcome = appendAndApply(key, undefined, Infinity)
      return yieldIfCompacting(
        typeof outcome === "boolean" ? (outcome ? succeedTrue : succeedFalse) : Effect.fail(outcome)
      )
    }

    const writer = Effect.gen(function*() {
      while (true) {
        // Writes made before this fiber first ran opened the latch
        // already: wait only when nothing is buffered.
        if (encoder.count === 0) {
          work.closeUnsafe()
          yield* work.await
        }
        // Let the writing fiber finish its turn, so one write() carries it all.
        yield* Effect.yieldNow
        yield* logMutex.withPermits(1)(Effect.sync(flush))
      }
    })
    yield* Effect.forkScoped(writer)

    const syncEveryMillis = options.syncEveryMillis
    if (syncEveryMillis !== undefined) {
      const syncer = Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(syncEveryMillis)
          if (flush() === undefined) yield* Effect.ignore(file.syncInBackground)
        }
      })
      yield* Effect.forkScoped(syncer)
    }

    const lock = core.lock
    return {
      // The store calls these inside its own `Effect.suspend`: the work may happen now.
      put: (key, value, stored, deadline) =>
        lock.writeFree()
          ? putNow(key, value, stored, deadline)
          : lock.withWrite(Effect.suspend(() => putNow(key, value, stored, deadline))),
      delete: (key) => lock.writeFree() ? deleteNow(key) : lock.withWrite(Effect.suspend(() => deleteNow(key))),
      flush,
      drain: Effect.sync(() => {
        flush()
      }),
      // Nothing waits in a queue: every write was answered when it was made.
      rejectQueued: () => {},
      busy: () => false
    }
  })
