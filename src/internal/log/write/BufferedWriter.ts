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
 *
 * While several fibers write, they take turns of `writesPerYieldWhileShared`
 * writes (see `yieldIfShared`), so that no put waits for long behind the
 * others.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import type * as Scope from "effect/Scope"
import type * as Semaphore from "effect/Semaphore"
import { StorageError } from "../../errors.ts"
import { applyDelete, applyPut, roomForPut, succeedFalse, succeedTrue } from "../../store/applyWrite.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import type { Value } from "../../Value.ts"
import type { LogFile } from "../file/LogFile.ts"
import { RecordEncoder } from "../format/LogRecord.ts"
import type { LogWriter } from "./LogWriter.ts"

/** Bytes buffered before a write flushes them inline instead of waiting for the writer fiber. */
export const flushThreshold = 256 * 1024

/** Writes between two yields of the writing fibers while several fibers write (see `yieldIfShared`). */
export const writesPerYieldWhileShared = 128

/** The same while a compaction runs: it needs turns of the thread too, and more often. */
export const writesPerYieldWhileCompacting = 32

/**
 * How many writes after the last one made by another fiber the writers are
 * still taken to share the thread.
 */
const sharedForWrites = 4096

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

    /**
     * Appends a record and applies it, in one step: the write's outcome, or
     * why it was refused. A put's room in the index comes first: a record in
     * the buffer reaches the log, so it must be one the index takes (see
     * `LogWriter`'s `encode`).
     */
    const appendAndApply = (key: string, stored: Value | undefined, deadline: number): StorageError | boolean => {
      const refused = file.refusal()
      if (refused !== undefined) return refused
      let room = 0
      if (stored !== undefined) {
        const made = roomForPut(core, key, stored, deadline)
        if (typeof made !== "number") return made
        room = made
      }
      try {
        if (stored === undefined) encoder.appendDelete(key)
        else encoder.appendPut(key, stored, deadline)
      } catch (defect) {
        core.index.releaseRoom(room)
        return new StorageError({
          message: `encoding a log record failed: ${defect instanceof Error ? defect.message : String(defect)} (a defect in kvlog; nothing of it was written)`,
          cause: defect
        })
      }
      let outcome = true
      if (stored === undefined) outcome = applyDelete(core, key)
      else applyPut(core, key, stored, deadline, room)
      if (encoder.length >= flushThreshold) {
        const error = flush()
        if (error !== undefined) return error
      } else {
        work.openUnsafe()
      }
      return outcome
    }

    // Writes here never suspend, so a writing fiber keeps the thread until
    // Effect's scheduler preempts it, every 2048 steps of its loop (~1000
    // puts). With many writers, a put that lands on such a preemption waits
    // for every other writer's whole turn: 64 writers made the worst put
    // ~110 ms while the median was 0.6 µs. And a compaction would get a turn
    // only every few such slices, and never catch up. So while more than one
    // fiber writes the writers yield every `writesPerYieldWhileShared` writes
    // between them, and every `writesPerYieldWhileCompacting` while a
    // compaction runs; a lone writer otherwise never yields for this.
    let writesSinceYield = 0
    let writes = 0
    let lastWriter: Fiber.Fiber<unknown, unknown> | undefined
    let lastSwitch = -sharedForWrites
    const yieldIfShared = <A, E>(outcome: Effect.Effect<A, E>): Effect.Effect<A, E> => {
      const writer = Fiber.getCurrent()
      if (writer !== lastWriter) {
        if (lastWriter !== undefined) lastSwitch = writes
        lastWriter = writer
      }
      writes++
      const turn = file.rewriting
        ? writesPerYieldWhileCompacting
        : writes - lastSwitch <= sharedForWrites
        ? writesPerYieldWhileShared
        : Infinity
      if (++writesSinceYield < turn) return outcome
      writesSinceYield = 0
      return Effect.flatMap(Effect.yieldNow, () => outcome)
    }

    const putNow = (key: string, value: Value, stored: Value, deadline: number): Effect.Effect<Value, StorageError> => {
      const outcome = appendAndApply(key, stored, deadline)
      return yieldIfShared(typeof outcome === "boolean" ? Effect.succeed(value) : Effect.fail(outcome))
    }

    const deleteNow = (key: string): Effect.Effect<boolean, StorageError> => {
      const outcome = appendAndApply(key, undefined, Infinity)
      return yieldIfShared(
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
