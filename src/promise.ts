/**
 * kvlog for code outside Effect: the same store behind plain Promises.
 *
 * ```ts
 * import { KeyNotFound, openLog } from "kvlog/promise"
 *
 * await using store = await openLog({ path: "data.kvlog" })
 * await store.put("foo", "bar")
 * await store.get("foo") // "bar"
 * ```
 *
 * Every method runs the Effect API's own operation, so semantics, limits and
 * errors are those of `KeyValueStore`: a rejection is the very tagged error
 * the Effect API fails with (`err instanceof KeyNotFound`, `err._tag`, its
 * fields), and a defect rejects with the value that was thrown. An operation
 * that completes without waiting (every read, and every write of an in-memory
 * store, unless the lock is contended) settles its Promise at once, without a
 * second trip through the scheduler: see `docs/promise.md` for what a call
 * costs.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as KeyValueStore from "./KeyValueStore.ts"
import { checkIndexOption } from "./internal/validate.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * What a key maps to: a string, or a `Uint8Array` (copied on the way in and
 * on the way out).
 *
 * @since 0.2.0
 * @category models
 */
export type Value = KeyValueStore.Value

/**
 * Options of `put`: `duration`, how long the key stays readable (a number is
 * milliseconds; absent: kept until deleted, clearing an earlier TTL).
 *
 * @since 0.2.0
 * @category models
 */
export type PutOptions = KeyValueStore.PutOptions

/**
 * Whether the store accepts writes (a log turns `ReadOnly` after a failed
 * `fsync`).
 *
 * @since 0.2.0
 * @category models
 */
export type WriteStatus = KeyValueStore.WriteStatus

/**
 * Diagnostics: entries held in memory, the reaper's progress, the log.
 *
 * @since 0.2.0
 * @category models
 */
export type StoreStats = KeyValueStore.StoreStats

/**
 * The state of a store's log, in `StoreStats`.
 *
 * @since 0.2.0
 * @category models
 */
export type LogStats = KeyValueStore.LogStats

/**
 * What a compaction did, in `LogStats`.
 *
 * @since 0.2.0
 * @category models
 */
export type CompactionReport = KeyValueStore.CompactionReport

/**
 * The file system calls a log makes, any of them replaceable (`fileOps`).
 *
 * @since 0.2.0
 * @category models
 */
export type FileOps = KeyValueStore.FileOps

/**
 * Every file system call a log makes.
 *
 * @since 0.2.0
 * @category models
 */
export type FileSystemCalls = KeyValueStore.FileSystemCalls

/**
 * A change the store made: see `Store.changes`.
 *
 * @since 0.2.0
 * @category models
 */
export type ChangeEvent = KeyValueStore.ChangeEvent

/**
 * Options of `Store.changes`.
 *
 * @since 0.2.0
 * @category models
 */
export type ChangesOptions = KeyValueStore.ChangesOptions

/**
 * What `openMemory` takes beyond `KeyValueStore.MemoryOptions`.
 *
 * `clock`: the Effect `Clock` the store takes time from, for its TTLs and its
 * reaper (default: Effect's, the system's wall clock). A test passes a
 * `TestClock` from `effect/testing` and moves time with `adjust`.
 *
 * @since 0.2.0
 * @category models
 */
export interface MemoryOptions extends KeyValueStore.MemoryOptions {
  readonly clock?: Clock.Clock | undefined
}

/**
 * What `openLog` takes: `KeyValueStore.LogOptions` (`path`, `fsync`,
 * `acknowledge`, `onCorruption`, `compaction`, `fileOps`, `onReclaim`), and
 * `clock` as in `MemoryOptions`. The log stores deadlines as wall-clock times
 * by that clock.
 *
 * @since 0.2.0
 * @category models
 */
export interface LogOptions extends KeyValueStore.LogOptions {
  readonly clock?: Clock.Clock | undefined
}

/**
 * An open store. Every method rejects with `StoreClosed` once `close` has
 * been called; the methods are bound, so `const { get } = store` works.
 *
 * @since 0.2.0
 * @category models
 */
export interface Store extends AsyncDisposable {
  /** The value of `key`; rejects with `KeyNotFound` if it is absent, deleted or expired. */
  readonly get: (key: string) => Promise<Value>
  /**
   * Stores `value` under `key`; resolves with `value` once stored (for a log:
   * once durable under its `fsync` policy).
   */
  readonly put: (key: string, value: Value, options?: PutOptions) => Promise<Value>
  /** Removes `key`; rejects with `KeyNotFound` if it is absent or expired. */
  readonly delete: (key: string) => Promise<void>
  /** Whether `key` is present and not expired. */
  readonly has: (key: string) => Promise<boolean>
  /**
   * The milliseconds `key` has left, or `undefined` for a key kept until
   * deleted; rejects with `KeyNotFound` if it is absent or expired.
   */
  readonly timeToLive: (key: string) => Promise<number | undefined>
  /** The number of live keys. */
  readonly size: () => Promise<number>
  /** A snapshot of the live keys, in no particular order. */
  readonly keys: () => Promise<ReadonlyArray<string>>
  /** Removes every key. */
  readonly clear: () => Promise<void>
  /**
   * Every live entry, in no particular order: a consistent snapshot that
   * holds the store's read lock from the first `next()` until the iteration
   * ends, is left (`break`, `return`, a throw in a `for await` body) or the
   * store closes. Writes wait until then, so a write awaited inside the loop
   * over the same store never completes: collect what to write, and write it
   * after the loop (or iterate `keys()`).
   */
  readonly entries: () => AsyncIterable<readonly [string, Value]>
  /**
   * The changes the store makes (`ChangeEvent`: `Put`, `Delete`, `Expired`,
   * `Cleared`, `Lagged`), from the first `next()` on, in the order they took
   * effect. The iteration ends when the store closes. Writers never wait for
   * it: with more than `bufferSize` events (default 4096) not yet taken, the
   * next ones are dropped for this iteration and counted in a `Lagged`
   * event. A bad `bufferSize` rejects the first `next()` with `InvalidInput`.
   */
  readonly changes: (options?: ChangesOptions) => AsyncIterable<ChangeEvent>
  /** The store's name, the `store` attribute of its metrics. */
  readonly name: string
  /** Rewrites the log to hold only the live entries (nothing to do in memory). */
  readonly compact: () => Promise<void>
  /** Diagnostics: entries in memory, the reaper's progress, the log. */
  readonly stats: () => Promise<StoreStats>
  /** Whether the store accepts writes. */
  readonly writeStatus: () => Promise<WriteStatus>
  /**
   * Closes the store: from the call on, every method rejects with
   * `StoreClosed`; open `entries` iterations end (their next `next()` rejects
   * with `StoreClosed`); operations already called complete, none is
   * interrupted; then the store's scope closes, which for a log writes and
   * syncs what is pending and releases the file. Resolves once all of that is
   * done. Calling it again returns the same Promise.
   */
  readonly close: () => Promise<void>
  /** `close`, for `await using store = await openLog(...)`. */
  readonly [Symbol.asyncDispose]: () => Promise<void>
}

// =============================================================================
// Errors
// =============================================================================

/**
 * The store was closed before the call (or while an `entries` iteration was
 * open). Field `operation`: the method that was refused.
 *
 * @since 0.2.0
 * @category errors
 */
export class StoreClosed extends Data.TaggedError("StoreClosed")<{
  readonly operation: string
}> {
  override get message(): string {
    return `the store is closed: ${this.operation} refused`
  }
}

/**
 * The key is absent, was deleted, or has expired. Field `key`.
 *
 * @since 0.2.0
 * @category errors
 */
export const KeyNotFound: typeof KeyValueStore.KeyNotFound = KeyValueStore.KeyNotFound

/**
 * @since 0.2.0
 * @category errors
 */
export type KeyNotFound = KeyValueStore.KeyNotFound

/**
 * An argument the store cannot accept; the store is left unchanged. Field
 * `message` says what was expected.
 *
 * @since 0.2.0
 * @category errors
 */
export const InvalidInput: typeof KeyValueStore.InvalidInput = KeyValueStore.InvalidInput

/**
 * @since 0.2.0
 * @category errors
 */
export type InvalidInput = KeyValueStore.InvalidInput

/**
 * The log could not be written or synced; fields `message` and `cause`.
 *
 * @since 0.2.0
 * @category errors
 */
export const StorageError: typeof KeyValueStore.StorageError = KeyValueStore.StorageError

/**
 * @since 0.2.0
 * @category errors
 */
export type StorageError = KeyValueStore.StorageError

/**
 * At open: the log is damaged before its tail, or is not a kvlog log; fields
 * `path`, `offset` and `reason`.
 *
 * @since 0.2.0
 * @category errors
 */
export const LogCorrupted: typeof KeyValueStore.LogCorrupted = KeyValueStore.LogCorrupted

/**
 * @since 0.2.0
 * @category errors
 */
export type LogCorrupted = KeyValueStore.LogCorrupted

/**
 * At open: another store, in this process or another, has the log open;
 * fields `path` and `owner`.
 *
 * @since 0.2.0
 * @category errors
 */
export const LogLocked: typeof KeyValueStore.LogLocked = KeyValueStore.LogLocked

/**
 * @since 0.2.0
 * @category errors
 */
export type LogLocked = KeyValueStore.LogLocked

/**
 * Why `openLog` rejected.
 *
 * @since 0.2.0
 * @category errors
 */
export type LogOpenError = KeyValueStore.LogOpenError

// =============================================================================
// Limits
// =============================================================================

/**
 * The longest key, in UTF-16 code units.
 *
 * @since 0.2.0
 * @category limits
 */
export const maxKeyLength: number = KeyValueStore.maxKeyLength

/**
 * The largest value: UTF-16 code units for a string, bytes for a `Uint8Array`.
 *
 * @since 0.2.0
 * @category limits
 */
export const maxValueLength: number = KeyValueStore.maxValueLength

// =============================================================================
// Constructors
// =============================================================================

/**
 * Opens an in-memory store.
 *
 * @since 0.2.0
 * @category constructors
 */
export const openMemory = (options: MemoryOptions = {}): Promise<Store> => {
  const invalid = checkOpenOptions(options, "openMemory")
  if (invalid !== undefined) return Promise.reject(invalid)
  return open(KeyValueStore.make(options), options.clock)
}

/**
 * Opens a store backed by the append-only log at `options.path` (created if
 * absent), replaying it first. Rejects, with nothing left open, with
 * `LogLocked`, `LogCorrupted`, `InvalidInput` (bad options) or
 * `StorageError` (the file could not be read or created).
 *
 * @since 0.2.0
 * @category constructors
 */
export const openLog = (options: LogOptions): Promise<Store> => {
  const invalid = checkOpenOptions(options, "openLog")
  if (invalid !== undefined) return Promise.reject(invalid)
  return open(KeyValueStore.makeLog(options), options.clock)
}

// =============================================================================
// Internals
// =============================================================================

const clockMethods = ["currentTimeMillisUnsafe", "currentTimeNanosUnsafe", "monotonicTimeNanosUnsafe", "sleep"] as const

/** What `KeyValueStore` cannot check for us: that options is an object at all, and the `clock` this module adds. */
const checkOpenOptions = (options: unknown, constructor: string): KeyValueStore.InvalidInput | undefined => {
  if (typeof options !== "object" || options === null) {
    return new KeyValueStore.InvalidInput({
      message: `${constructor} options must be an object, got ${options === null ? "null" : typeof options}`
    })
  }
  const index = checkIndexOption((options as { readonly index?: unknown }).index)
  if (index !== undefined) return index
  const clock: unknown = (options as { readonly clock?: unknown }).clock
  if (clock === undefined) return undefined
  if (
    typeof clock !== "object" || clock === null ||
    !clockMethods.every((method) => typeof (clock as Record<string, unknown>)[method] === "function")
  ) {
    return new KeyValueStore.InvalidInput({
      message: `clock must be an Effect Clock (with ${clockMethods.join(", ")}), got ${
        clock === null ? "null" : typeof clock
      }`
    })
  }
  return undefined
}

/**
 * Builds the store in a scope of its own, which `close` closes. A failed
 * build closes it at once, so whatever the open took (the file, the
 * ownership) is given back before the Promise rejects.
 */
const open = async <E>(
  build: Effect.Effect<KeyValueStore.KeyValueStoreService, E, Scope.Scope>,
  clock: Clock.Clock | undefined
): Promise<Store> => {
  const scope = Scope.makeUnsafe()
  const built = Scope.provide(clock === undefined ? build : Effect.provideService(build, Clock.Clock, clock), scope)
  const exit = await Effect.runPromiseExit(built)
  if (Exit.isFailure(exit)) {
    // The open's own error is the answer, even if giving back what it took fails too.
    await Effect.runPromiseExit(Scope.close(scope, exit))
    throw Cause.squash(exit.cause)
  }
  return makeStore(exit.value, scope)
}

/**
 * A failure's error as the Effect API produced it (the tagged error itself),
 * or a defect's thrown value: never a wrapper.
 */
const settle = <A, E>(exit: Exit.Exit<A, E>): Promise<A> =>
  Exit.isSuccess(exit) ? Promise.resolve(exit.value) : Promise.reject(Cause.squash(exit.cause))

const ttlMillis = (remaining: Option.Option<Duration.Duration>): number | undefined =>
  Option.isNone(remaining) ? undefined : Duration.toMillis(remaining.value)

/** An open `entries` iteration, as `close` sees it. */
interface OpenIteration {
  /** Ends the iteration and releases its read lock; its next `next()` rejects with `StoreClosed`. */
  readonly end: () => Promise<unknown>
}

const makeStore = (service: KeyValueStore.KeyValueStoreService, scope: Scope.Closeable): Store => {
  let closed = false
  let closing: Promise<void> | undefined
  // Operations that did not complete when called; `close` waits for them.
  let inFlight = 0
  let drained: (() => void) | undefined
  const iterations = new Set<OpenIteration>()

  const refuse = (operation: string): Promise<never> => Promise.reject(new StoreClosed({ operation }))

  // One fiber per call, run at once: an operation that completes without
  // suspending has its exit before `runFork` returns, and settles its
  // Promise directly. `runSyncExit` would not do: on an operation that does
  // suspend (a logged put, a read waiting for the lock) it gives up with the
  // work already started.
  const run = <A, E>(operation: string, effect: Effect.Effect<A, E>): Promise<A> => {
    if (closed) return refuse(operation)
    const fiber = Effect.runFork(effect)
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return settle(exit)
    inFlight++
    return new Promise<A>((resolve, reject) => {
      fiber.addObserver((exit) => {
        if (Exit.isSuccess(exit)) resolve(exit.value)
        else reject(Cause.squash(exit.cause))
        // Settled first, so that whatever awaits this operation runs before `close` resolves.
        if (--inFlight === 0 && drained !== undefined) drained()
      })
    })
  }

  const iterate = (): AsyncIterator<readonly [string, Value]> => {
    if (closed) {
      return { next: () => refuse("entries") }
    }
    const inner = Stream.toAsyncIterable(service.entries)[Symbol.asyncIterator]()
    let endedByClose = false
    const iteration: OpenIteration = {
      end: () => {
        endedByClose = true
        iterations.delete(iteration)
        return inner.return!()
      }
    }
    iterations.add(iteration)
    return {
      next: async () => {
        if (endedByClose) throw new StoreClosed({ operation: "entries" })
        let result: IteratorResult<readonly [string, Value]>
        try {
          result = await inner.next()
        } catch (error) {
          iterations.delete(iteration)
          throw error
        }
        // The store closed while this pull waited: an iteration cut short
        // must not look like one that saw every entry.
        if (endedByClose) throw new StoreClosed({ operation: "entries" })
        if (result.done === true) iterations.delete(iteration)
        return result
      },
      return: () => {
        iterations.delete(iteration)
        return inner.return!()
      }
    }
  }

  const shutDown = async (): Promise<void> => {
    closed = true
    // Iterations first: a write in flight may be waiting for their read lock.
    await Promise.allSettled(Array.from(iterations, (iteration) => iteration.end()))
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        drained = resolve
      })
    }
    const exit = await Effect.runPromiseExit(Scope.close(scope, Exit.void))
    if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
  }

  const close = (): Promise<void> => closing ??= shutDown()

  return {
    get: (key) => run("get", service.get(key)),
    put: (key, value, options) => run("put", service.put(key, value, options)),
    delete: (key) => run("delete", service.delete(key)),
    has: (key) => run("has", service.has(key)),
    timeToLive: (key) => run("timeToLive", Effect.map(service.timeToLive(key), ttlMillis)),
    size: () => run("size", service.size),
    keys: () => run("keys", service.keys),
    clear: () => run("clear", service.clear),
    entries: () => ({ [Symbol.asyncIterator]: iterate }),
    changes: (options) => ({
      [Symbol.asyncIterator]: () =>
        closed
          ? { next: () => refuse("changes") }
          // Its rejections are the stream's own errors already (InvalidInput), never a wrapper.
          : Stream.toAsyncIterable(service.changesWith(options ?? {}))[Symbol.asyncIterator]()
    }),
    name: service.name,
    compact: () => run("compact", service.compact),
    stats: () => run("stats", service.stats),
    writeStatus: () => run("writeStatus", service.writeStatus),
    close,
    [Symbol.asyncDispose]: close
  }
}
