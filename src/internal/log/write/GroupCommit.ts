/**
 * Group commit, for the `"always"` policy: a put or delete is acknowledged
 * only once its record is on disk, and many concurrent writes share one
 * `write()` and one `fdatasync()`.
 *
 * Writers queue their records and wait. One writer fiber takes everything
 * queued, encodes it into one buffer, writes it, syncs once, and only then
 * applies the whole batch to the index (in one step, under the write lock)
 * and wakes the writers. So no reader ever sees a value a crash could take
 * back, and a failed write or sync fails the whole batch with none of it
 * applied. While the disk syncs, the next batch gathers.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Semaphore from "effect/Semaphore"
import type { StorageError } from "../../errors.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import type { Value } from "../../Value.ts"
import { applyDelete, applyPut, succeedFalse, succeedTrue } from "../../store/applyWrite.ts"
import type { LogFile } from "../file/LogFile.ts"
import { RecordEncoder } from "../format/LogRecord.ts"

interface QueuedWrite {
  /** `undefined` for a delete. */
  readonly stored: Value | undefined
  readonly key: string
  readonly deadline: number
  readonly resume: (outcome: Effect.Effect<boolean, StorageError>) => void
}

export interface GroupCommit {
  /** Queues a put (`stored` defined) or a delete; succeeds once durable and applied. */
  readonly submit: (key: string, stored: Value | undefined, deadline: number) => Effect.Effect<boolean, StorageError>
  /** Commits whatever is queued; for closing. Call holding `logMutex`. */
  readonly drain: Effect.Effect<void>
  /**
   * Whether writes are queued now or a batch was committed since the last
   * call (its writers are about to queue their next writes).
   */
  readonly activeSinceLastAsked: () => boolean
  /** Fails every queued write with `error` (at close, once the writer no longer runs). */
  readonly rejectQueued: (error: StorageError) => void
}

export const startGroupCommit = (
  core: StoreCore,
  file: LogFile,
  logMutex: Semaphore.Semaphore,
  afterBatch: () => void
): Effect.Effect<GroupCommit, never, Scope.Scope> =>
  Effect.gen(function*() {
    const encoder = new RecordEncoder()
    let queue: Array<QueuedWrite> = []
    let batches = 0
    let batchesSeen = 0
    let writerIdle: Deferred.Deferred<void> | undefined

    const commitBatch: Effect.Effect<void> = Effect.suspend(() => {
      const batch = queue
      if (batch.length === 0) return Effect.void
      queue = []
      encoder.reset()
      for (const write of batch) {
        if (write.stored === undefined) encoder.appendDelete(write.key)
        else encoder.appendPut(write.key, write.stored, write.deadline)
      }
      const error = file.append(encoder.contents(), batch.length, true)
      encoder.reset()
      if (error !== undefined) {
        const failed = Effect.fail(error)
        for (const write of batch) write.resume(failed)
        return Effect.void
      }
      return core.lock.write(() => {
        for (const write of batch) {
          const applied = write.stored === undefined
            ? applyDelete(core, write.key)
            : applyPut(core, write.key, write.stored, write.deadline)
          write.resume(applied ? succeedTrue : succeedFalse)
        }
        batches++
        afterBatch()
      })
    })

    const writer = Effect.gen(function*() {
      while (true) {
        if (queue.length === 0) {
          writerIdle = Deferred.makeUnsafe<void>()
          yield* Deferred.await(writerIdle)
        }
        // A submit to an idle writer resumes it inline, inside the submitting
        // fiber. Without this yield it would commit that one write at once;
        // the submitter, resumed as it returns, submits its next write alone,
        // and so on: one fdatasync per write while every other fiber waits
        // (test/log-store.test.ts, "group commit"). Yielding lets every
        // runnable fiber queue its write first, and gives the other fibers a
        // turn between batches.
        yield* Effect.yieldNow
        yield* logMutex.withPermits(1)(commitBatch)
      }
    })
    yield* Effect.forkScoped(writer)

    return {
      submit: (key, stored, deadline) =>
        Effect.callback<boolean, StorageError>((resume) => {
          const refused = file.refusal()
          if (refused !== undefined) return resume(Effect.fail(refused))
          queue.push({ key, stored, deadline, resume })
          if (writerIdle !== undefined) {
            const idle = writerIdle
            writerIdle = undefined
            Deferred.doneUnsafe(idle, Effect.void)
          }
        }),
      drain: commitBatch,
      activeSinceLastAsked: () => {
        const active = queue.length > 0 || batches !== batchesSeen
        batchesSeen = batches
        return active
      },
      rejectQueued: (error) => {
        const rejected = queue
        queue = []
        const failed = Effect.fail(error)
        for (const write of rejected) write.resume(failed)
      }
    }
  })
