/**
 * The `"interval"` and `"never"` policies: a write is applied and
 * acknowledged at once, its record appended to an in-process buffer that a
 * flusher fiber hands to the OS (one `write()`) at its next turn — after at
 * most one scheduler slice of the writing fiber, or as soon as the buffer
 * holds `flushThreshold` bytes. `"interval"` also syncs the file every
 * `fsyncIntervalMillis`.
 *
 * What that can lose (see `docs/design.md`): on a process crash, the
 * unflushed buffer (writes of the last scheduler slice); on an OS crash or
 * power loss, also what the OS had not written (`"never"`) or what was
 * written since the last sync (`"interval"`). A failed write or sync turns
 * the log read-only, since acknowledged writes may then be missing from it.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { StorageError } from "../../errors.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import type { Value } from "../../Value.ts"
import { applyDelete, applyPut, succeedFalse, succeedTrue } from "../../store/applyWrite.ts"
import type { LogFile } from "../file/LogFile.ts"
import { RecordEncoder } from "../format/LogRecord.ts"

/** While a compaction runs, writes between two yields of the writing fiber (see `yieldIfCompacting`). */
export const writesPerYieldWhileCompacting = 32

/** Bytes buffered before a write flushes them inline instead of waiting for the flusher. */
export const flushThreshold = 256 * 1024

export interface BufferedAppender {
  /** Appends and applies a put, in one step; succeeds with `value`. */
  readonly put: (key: string, value: Value, stored: Value, deadline: number) => Effect.Effect<Value, StorageError>
  /** Appends and applies a delete, in one step; succeeds with whether the key was live. */
  readonly delete: (key: string) => Effect.Effect<boolean, StorageError>
  /** Hands the buffer to the OS. Synchronous. */
  readonly flush: () => StorageError | undefined
}

export const startBufferedAppender = (
  core: StoreCore,
  file: LogFile,
  options: { readonly syncEveryMillis: number | undefined; readonly afterWrite: () => void }
): Effect.Effect<BufferedAppender, never, Scope.Scope> =>
  Effect.gen(function*() {
    const encoder = new RecordEncoder()
    let buffered = 0
    let flusherIdle: Deferred.Deferred<void> | undefined

    const flush = (): StorageError | undefined => {
      if (buffered === 0) return undefined
      const records = buffered
      buffered = 0
      const error = file.append(encoder.contents(), records, false)
      encoder.reset()
      if (error === undefined) return undefined
      // These writes were acknowledged already: the log no longer holds what
      // the store shows, so it must not pretend to be usable.
      return file.fail(`${records} acknowledged writes could not be written to the log: ${error.message}`, error)
    }

    /** Appends a record and applies it; returns a refusal or failed flush, else `undefined`. */
    const appendAndApply = (key: string, stored: Value | undefined, deadline: number): StorageError | boolean => {
      const refused = file.refusal()
      if (refused !== undefined) return refused
      if (stored === undefined) encoder.appendDelete(key)
      else encoder.appendPut(key, stored, deadline)
      buffered++
      const applied = stored === undefined ? applyDelete(core, key) : applyPut(core, key, stored, deadline)
      if (encoder.length >= flushThreshold) {
        const error = flush()
        if (error !== undefined) return error
      } else if (flusherIdle !== undefined) {
        const idle = flusherIdle
        flusherIdle = undefined
        Deferred.doneUnsafe(idle, Effect.void)
      }
      options.afterWrite()
      return applied
    }

    // Writes here never suspend, so busy writers would leave a compaction a
    // turn only every few scheduler slices of each of them, and it would
    // never catch up. While one runs, every writer yields every
    // `writesPerYieldWhileCompacting` writes: the compaction gets a share of
    // the thread, and no pause of its own grows longer.
    let writesSinceYield = 0
    const yieldIfCompacting = <A, E>(outcome: Effect.Effect<A, E>): Effect.Effect<A, E> => {
      if (file.rewrite === undefined || ++writesSinceYield < writesPerYieldWhileCompacting) return outcome
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

    const flusher = Effect.gen(function*() {
      while (true) {
        // Writes made before this fiber first ran found no `flusherIdle` to
        // complete: wait only when nothing is buffered, or they would stay in
        // the buffer until the next write.
        if (buffered === 0) {
          flusherIdle = Deferred.makeUnsafe<void>()
          yield* Deferred.await(flusherIdle)
        }
        // Let the writing fiber finish its slice, so one write() carries it all.
        yield* Effect.yieldNow
        flush()
      }
    })
    yield* Effect.forkScoped(flusher)

    const syncEveryMillis = options.syncEveryMillis
    if (syncEveryMillis !== undefined) {
      const syncer = Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(syncEveryMillis)
          if (flush() === undefined) file.sync()
        }
      })
      yield* Effect.forkScoped(syncer)
    }

    const lock = core.lock
    return {
      put: (key, value, stored, deadline) =>
        lock.writeFree()
          ? putNow(key, value, stored, deadline)
          : lock.withWrite(Effect.suspend(() => putNow(key, value, stored, deadline))),
      delete: (key) =>
        lock.writeFree() ? deleteNow(key) : lock.withWrite(Effect.suspend(() => deleteNow(key))),
      flush
    }
  })
