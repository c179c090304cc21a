/**
 * The log's one writer, for every `fsync` policy: writers queue their
 * records and wait; one writer fiber takes everything queued, encodes it
 * into one batch and hands it to the OS with one `write()`. Under `"always"`
 * it then syncs; under `"interval"` a syncer fiber syncs every interval (off
 * the main thread); under `"never"` the OS decides. Only then is the whole batch
 * applied to the index, in one step under the write lock, and its writers
 * resumed.
 *
 * So whatever the policy, a write is acknowledged only once its record is at
 * least in the OS's page cache: a crash of the process (an exception, an OOM
 * kill, a SIGKILL) loses nothing acknowledged, as with Redis's `appendfsync
 * everysec` and `no`. Only an OS crash or a power cut can take back what was
 * not yet synced. No reader ever sees a write before it is acknowledged, and
 * a failed write or sync fails the whole batch with none of it applied.
 *
 * The writer fiber never dies: a defect while encoding one write fails that
 * write with a `StorageError`; anything else fails the batch and the writer
 * goes on serving.
 */
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import type * as Scope from "effect/Scope"
import type * as Semaphore from "effect/Semaphore"
import { StorageError } from "../../errors.ts"
import { applyDelete, applyPut, roomForPut, succeedFalse, succeedTrue } from "../../store/applyWrite.ts"
import type { StoreCore } from "../../store/makeStore.ts"
import type { Value } from "../../Value.ts"
import type { LogFile } from "../file/LogFile.ts"
import { RecordEncoder } from "../format/LogRecord.ts"

export type FsyncPolicy = "always" | "interval" | "never"

/** When a write under `"interval"` or `"never"` is acknowledged: once written to the OS, or at once. */
export type Acknowledge = "written" | "buffered"

/** How writes reach a log-backed store's index. */
export interface LogWriter {
  /** A put; succeeds with `value` once it is acknowledged (in the log, durable under `"always"`) and applied. */
  readonly put: (key: string, value: Value, stored: Value, deadline: number) => Effect.Effect<Value, StorageError>
  /** A delete; succeeds with whether the key was live, once acknowledged and applied. */
  readonly delete: (key: string) => Effect.Effect<boolean, StorageError>
  /**
   * Hands the OS every record acknowledged but not yet written (only a
   * buffering writer has any), synchronously: before `clear` replaces the
   * file, they must reach the one they belong to.
   */
  readonly flush: () => StorageError | undefined
  /** Commits whatever is queued now; for closing. Call holding `logMutex`. */
  readonly drain: Effect.Effect<void>
  /** Fails every queued write with `error` (at close, once the writer no longer runs). */
  readonly rejectQueued: (error: StorageError) => void
  /**
   * Whether writes are queued now or a batch was committed since the last
   * call (its writers are about to queue their next writes): the compactor
   * keeps its turns short while writers are busy.
   */
  readonly busy: () => boolean
}

/**
 * A batch stops taking writes once their records may reach this many bytes:
 * one huge batch would hold every writer behind the largest values, and the
 * format bounds a batch (`maxBatchRecordsBytes`, 1 GiB) so that a damaged
 * length never makes replay allocate more.
 */
export const batchBytesTarget = 64 * 1024 * 1024

/** How many writes from the front of `queue` go into one batch: at least one, and within `batchBytesTarget`. */
const batchEnd = (queue: ReadonlyArray<QueuedWrite>): number => {
  let bytes = 0
  for (let i = 0; i < queue.length; i++) {
    const write = queue[i]
    // The worst case of UTF-8: three bytes a UTF-16 code unit.
    bytes += 32 + 3 * write.key.length +
      (write.stored === undefined ? 0 : typeof write.stored === "string" ? 3 * write.stored.length : write.stored.length)
    if (bytes > batchBytesTarget && i > 0) return i
  }
  return queue.length
}

interface QueuedWrite {
  /** `undefined` for a delete. */
  readonly stored: Value | undefined
  readonly key: string
  readonly deadline: number
  readonly resume: (outcome: Effect.Effect<boolean, StorageError>) => void
  /** A put's room in the index (`roomForPut`) from its commit until it is applied or refused; 0 otherwise. */
  room: number
}

const defectError = (what: string, defect: unknown) =>
  new StorageError({
    message: `${what}: ${defect instanceof Error ? defect.message : String(defect)} (a defect in kvlog; nothing of it was written)`,
    cause: defect
  })

export const startLogWriter = (
  core: StoreCore,
  file: LogFile,
  options: {
    readonly policy: FsyncPolicy
    readonly syncEveryMillis: number
    /** Held by each batch; compaction and close take it to act between batches. */
    readonly logMutex: Semaphore.Semaphore
    /** Called after every batch applied (compaction's trigger). */
    readonly afterBatch: () => void
  }
): Effect.Effect<LogWriter, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { afterBatch, logMutex, policy } = options
    const syncEachBatch = policy === "always"
    const encoder = new RecordEncoder()
    let queue: Array<QueuedWrite> = []
    let batches = 0
    let batchesSeen = 0
    /** Open while the writer has work or is at it; it waits on it, closed, when there is none. */
    const work = Latch.makeUnsafe(false)

    /** Gives a write's room back to the index, once. */
    const releaseRoom = (write: QueuedWrite) => {
      core.index.releaseRoom(write.room)
      write.room = 0
    }

    const failAll = (batch: ReadonlyArray<QueuedWrite>, error: StorageError) => {
      const failed = Effect.fail(error)
      for (const write of batch) {
        releaseRoom(write)
        write.resume(failed)
      }
    }

    /**
     * Makes each put's room in the index, then encodes `batch`. A put the
     * index has no room for fails alone, before its record is encoded; a
     * write whose encoding throws fails alone too (the encoder counts a
     * record only once it is whole). Returns the writes encoded.
     *
     * The order is the point: room, then record, then the log, then the
     * index. Once a record is appended the put must be applied, or the log
     * would hold a write the store refused and the next replay would apply
     * it; so everything that can refuse a put (the arena full, memory
     * refused) happens here, before the append, and applying it afterwards
     * allocates nothing that can fail. Making a room changes nothing a read
     * or a cursor can see (it only replaces buffers they re-read), so it
     * needs no lock; the rooms of a batch also keep the index from beginning
     * a compaction until the batch is applied.
     */
    const encode = (batch: ReadonlyArray<QueuedWrite>): Array<QueuedWrite> => {
      encoder.reset()
      const encoded: Array<QueuedWrite> = []
      for (const write of batch) {
        if (write.stored !== undefined) {
          const room = roomForPut(core, write.key, write.stored, write.deadline)
          if (typeof room !== "number") {
            write.resume(Effect.fail(room))
            continue
          }
          write.room = room
        }
        try {
          if (write.stored === undefined) encoder.appendDelete(write.key)
          else encoder.appendPut(write.key, write.stored, write.deadline)
          encoded.push(write)
        } catch (defect) {
          releaseRoom(write)
          write.resume(Effect.fail(defectError("encoding a log record failed", defect)))
        }
      }
      return encoded
    }

    const apply = (batch: ReadonlyArray<QueuedWrite>) =>
      core.lock.write(() => {
        for (const write of batch) {
          if (write.stored === undefined) {
            write.resume(applyDelete(core, write.key) ? succeedTrue : succeedFalse)
          } else {
            const room = write.room
            write.room = 0
            applyPut(core, write.key, write.stored, write.deadline, room)
            write.resume(succeedTrue)
          }
        }
        batches++
        afterBatch()
      })

    /** Writes `batch` to the log, syncs it if the policy says so, then applies it. */
    const commit = (taken: ReadonlyArray<QueuedWrite>): Effect.Effect<void> => {
      const batch = encode(taken)
      if (batch.length === 0) return Effect.void
      const written = file.appendBatch(encoder, !syncEachBatch)
      encoder.reset()
      if (written !== undefined) {
        failAll(batch, written)
        return Effect.void
      }
      if (!syncEachBatch) return apply(batch)
      // On the main thread: a sync handed to the thread pool made one
      // writer ~10% slower and 256 writers no faster (design.md, "One
      // writer for every policy").
      const synced = file.sync()
      if (synced !== undefined) {
        failAll(batch, synced)
        return Effect.void
      }
      return apply(batch)
    }

    /**
     * Takes what is queued, up to `batchBytesTarget` of records (the rest
     * waits for the next batch), and commits it as one batch.
     */
    const commitBatch: Effect.Effect<void> = Effect.suspend(() => {
      if (queue.length === 0) return Effect.void
      const cut = batchEnd(queue)
      const taken = cut === queue.length ? queue : queue.slice(0, cut)
      queue = cut === queue.length ? [] : queue.slice(cut)
      // Whatever goes wrong, no write may be left waiting forever (a write
      // already resumed ignores a second answer).
      return Effect.catchDefect(
        Effect.suspend(() => commit(taken)),
        (defect) => Effect.sync(() => failAll(taken, defectError("committing a batch failed", defect)))
      )
    })

    const writer = Effect.gen(function*() {
      while (true) {
        if (queue.length === 0) {
          work.closeUnsafe()
          yield* work.await
        }
        // A submit to an idle writer resumes it inline, inside the submitting
        // fiber. Without this yield it would commit that one write at once;
        // the submitter, resumed as it returns, submits its next write alone,
        // and so on: one fdatasync per write while every other fiber waits
        // (test/log-store.test.ts, "group commit"). Yielding lets every
        // runnable fiber queue its write first, and gives every other fiber
        // (a compaction, readers) a turn between batches. Without a sync it
        // costs about as much as the batch's write() (~5 µs here), but
        // writers that never suspend would starve a compaction: committing
        // at once cut the compactions done under load (test/log-crash.test.ts)
        // from ~2.5 to ~0.1 a cycle.
        yield* Effect.yieldNow
        yield* logMutex.withPermits(1)(commitBatch)
      }
    })
    yield* Effect.forkScoped(writer)

    if (policy === "interval") {
      const syncer = Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(options.syncEveryMillis)
          // A failure turns the log read-only; the writes see it.
          yield* Effect.ignore(file.syncInBackground)
        }
      })
      yield* Effect.forkScoped(syncer)
    }

    const submit = (key: string, stored: Value | undefined, deadline: number) =>
      Effect.callback<boolean, StorageError>((resume) => {
        const refused = file.refusal()
        if (refused !== undefined) return resume(Effect.fail(refused))
        const write: QueuedWrite = { key, stored, deadline, resume, room: 0 }
        queue.push(write)
        work.openUnsafe()
        // Interrupted while still queued: never written. Once its batch is
        // taken it may still become durable, like a reply lost on the wire.
        return Effect.sync(() => {
          const at = queue.indexOf(write)
          if (at >= 0) queue.splice(at, 1)
        })
      })

    return {
      put: (key, value, stored, deadline) => Effect.as(submit(key, stored, deadline), value),
      delete: (key) => submit(key, undefined, Infinity),
      // Nothing is acknowledged before it is written.
      flush: () => undefined,
      drain: commitBatch,
      rejectQueued: (error) => {
        const rejected = queue
        queue = []
        failAll(rejected, error)
      },
      busy: () => {
        const active = queue.length > 0 || batches !== batchesSeen
        batchesSeen = batches
        return active
      }
    }
  })
