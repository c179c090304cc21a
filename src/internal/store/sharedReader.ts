/**
 * Readers in worker threads: a store opened with `index: "shared"` hands its
 * index to a worker (`shareWithWorker`, in the owning thread), and the worker
 * builds a `KeyValueStore` over it (`makeSharedReader`) that reads the same
 * memory, in parallel with the owner and with other workers, without copying.
 *
 * Writes stay in the owning thread: the reader's `writeStatus` is
 * `ReadOnly` and its writes fail with `StorageError`, as a store's writes do
 * once it is read-only. Reads follow the seqlock of `SharedIndexReader`, so
 * each one sees the store as it was at one instant between two writes; a
 * read of the whole store that writes keep overlapping asks the owner to
 * hold its next write until the read is done.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { MessagePort } from "node:worker_threads"
import type { KeyValueStoreService, StoreStats, WriteStatus } from "../../KeyValueStore.ts"
import { InvalidInput, KeyNotFound, StorageError } from "../errors.ts"
import type { Index } from "../index/Index.ts"
import { SharedIndex } from "../index/shared/SharedIndex.ts"
import { SharedIndexReader } from "../index/shared/SharedIndexReader.ts"
import type { SharedLayout } from "../index/shared/SharedLayout.ts"
import { checkKey, checkValue, invalidKey, isKeyInRange, ttlMillis } from "../validate.ts"
import type { Value } from "../Value.ts"

/**
 * What a worker needs to read a store: give it to the worker in `workerData`
 * or a message, with `port` in the transfer list.
 */
export interface SharedReaderHandle {
  readonly name: string
  readonly layout: SharedLayout
  readonly port: MessagePort
  /** Where the worker asks the owner to hold its writes for a read of the whole store. */
  readonly walkRequest: SharedArrayBuffer
}

/** The index behind each store this module built, for `shareWithWorker`. */
const indexes = new WeakMap<KeyValueStoreService, Index>()

export const registerIndex = (store: KeyValueStoreService, index: Index): void => {
  indexes.set(store, index)
}

/**
 * The shared index behind `store`, or `undefined` if it keeps its entries
 * elsewhere: for measurements and tests, which need what the store does not
 * show (`process.memoryUsage()` counts no `SharedArrayBuffer`, so a memory
 * figure must add `sharedBytes` itself).
 */
export const sharedIndexOf = (store: KeyValueStoreService): SharedIndex | undefined => {
  const index = indexes.get(store)
  return index instanceof SharedIndex ? index : undefined
}

/** The index reader behind each store `makeSharedReader` built. */
const readers = new WeakMap<KeyValueStoreService, SharedIndexReader>()

/**
 * The reader behind a store `makeSharedReader` built, or `undefined`: for
 * tests, which check what it did (retries, walk requests).
 */
export const sharedReaderOf = (store: KeyValueStoreService): SharedIndexReader | undefined => readers.get(store)

export const shareWithWorker = (store: KeyValueStoreService): Effect.Effect<SharedReaderHandle, InvalidInput> =>
  Effect.suspend(() => {
    const index = indexes.get(store)
    if (!(index instanceof SharedIndex)) {
      return Effect.fail(
        new InvalidInput({
          message: index === undefined
            ? "only a store made by kvlog's make, makeLog or their layers can be shared with a worker"
            : `the store keeps its entries in the "${index.kind}" index: open it with index: "shared" to share it with workers`
        })
      )
    }
    const { layout, port, walkRequest } = index.attachReader()
    return Effect.succeed({ name: store.name, layout, port, walkRequest })
  })

const readOnly: WriteStatus = {
  _tag: "ReadOnly",
  reason: "this store reads another thread's store: write through the thread that opened it"
}

export const makeSharedReader = (handle: SharedReaderHandle): Effect.Effect<KeyValueStoreService, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const reader = yield* Effect.acquireRelease(
      Effect.sync(() => new SharedIndexReader(handle)),
      // Closing the port tells the owner to stop publishing to this reader.
      () => Effect.sync(() => handle.port.close())
    )
    const now = () => clock.currentTimeMillisUnsafe()
    const refuse = Effect.fail(new StorageError({ message: `kvlog: ${readOnly.reason}` }))
    const missing = (key: string): KeyNotFound | InvalidInput =>
      key.isWellFormed() ? new KeyNotFound({ key }) : invalidKey(key)
    const withKey = <A, E>(key: string, read: () => Effect.Effect<A, E>): Effect.Effect<A, E | InvalidInput> =>
      Effect.suspend((): Effect.Effect<A, E | InvalidInput> => {
        const invalid = checkKey(key)
        return invalid === undefined ? read() : Effect.fail(invalid)
      })

    const get = (key: string): Effect.Effect<Value, KeyNotFound | InvalidInput> =>
      Effect.suspend((): Effect.Effect<Value, KeyNotFound | InvalidInput> => {
        if (!isKeyInRange(key)) return Effect.fail(invalidKey(key))
        const value = reader.lookup(key, now())
        return value === undefined ? Effect.fail(missing(key)) : Effect.succeed(value)
      })

    const stats: Effect.Effect<StoreStats> = Effect.sync(() => {
      const counts = reader.storedCounts()
      return { storedEntries: counts.stored, entriesWithDeadline: counts.withDeadline, reclaimed: 0 }
    })

    const service: KeyValueStoreService = {
      name: handle.name,
      get,
      // Arguments are checked as the owner checks them, so a worker gets the
      // same answer to a bad call; then the write is refused.
      put: (key, value, options) =>
        Effect.suspend((): Effect.Effect<never, InvalidInput | StorageError> => {
          const ttl = ttlMillis(options)
          const invalid = checkKey(key) ?? checkValue(value) ?? (typeof ttl === "number" ? undefined : ttl)
          return invalid === undefined ? refuse : Effect.fail(invalid)
        }),
      delete: (key) => withKey(key, () => refuse),
      has: (key) => withKey(key, () => Effect.sync(() => reader.lookup(key, now()) !== undefined)),
      timeToLive: (key) =>
        withKey(key, () =>
          Effect.suspend((): Effect.Effect<Option.Option<Duration.Duration>, KeyNotFound> => {
            const at = now()
            const deadline = reader.deadlineOf(key, at)
            if (deadline === undefined) return Effect.fail(new KeyNotFound({ key }))
            return Effect.succeed(deadline === Infinity ? Option.none() : Option.some(Duration.millis(deadline - at)))
          })),
      size: Effect.sync(() => reader.liveSize(now())),
      keys: Effect.sync(() => reader.liveEntries(now(), false).keys),
      entries: Stream.suspend(() => {
        const walk = reader.liveEntries(now(), true)
        return Stream.fromIterable(walk.keys.map((key, i) => [key, walk.values[i]] as const))
      }),
      clear: refuse,
      writeStatus: Effect.succeed(readOnly),
      compact: refuse,
      stats,
      // Change events are the owner's: a worker subscribes there.
      changes: Stream.empty,
      changesWith: () => Stream.empty
    }
    readers.set(service, reader)
    return service
  })

