/**
 * Builds the `KeyValueStore` service: the index, the lock, the reaper, and a
 * `Committer` that decides how writes reach the index — at once for the
 * in-memory store, after the log has made them durable for the logged one.
 *
 * Every operation's work happens when its effect runs, never when it is
 * built, and on the fast path in one synchronous step (see `ReadWriteLock` and
 * `docs/design.md`).
 */
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type {
  KeyValueStoreService,
  LogStats,
  StoreStats,
  WriteStatus
} from "../../KeyValueStore.ts"
import { InvalidInput, KeyNotFound, StorageError } from "../errors.ts"
import type { Index, IndexKind } from "../index/Index.ts"
import { makeIndex } from "../index/makeIndex.ts"
import { ChangeHub, defaultChangeBufferSize } from "../observe/ChangeHub.ts"
import { type GaugeSources, registerStoreMetrics, StoreCounters } from "../observe/StoreMetrics.ts"
import { applyClear, applyDelete, applyPut, roomForClear, roomForPut } from "./applyWrite.ts"
import { operation } from "./Operation.ts"
import { registerIndex } from "./sharedReader.ts"
import { ReadWriteLock } from "../lock/ReadWriteLock.ts"
import { type Reaper, type ReaperOptions, startReaper } from "../ttl/ReaperFiber.ts"
import { checkIndexOption, checkKey, checkValue, invalidKey, isKeyInRange, ownValue, ttlMillis } from "../validate.ts"
import type { Value } from "../Value.ts"

/**
 * `now + ttl`, or, when `ttl` is below the precision of a float near `now`
 * (under ~0.25 µs at today's epoch), the next float after `now`: the key is
 * then readable at `now` and gone at any later instant, the closest the
 * clock can come to `now < t_put + d`.
 */
export const deadlineAfter = (now: number, ttl: number): number => {
  const deadline = now + ttl
  return deadline > now ? deadline : now + Math.abs(now) * Number.EPSILON
}

/** Entries per chunk of the `entries` stream. */
export const entriesChunkSize = 4096

/** What every store is made of, whatever commits its writes. */
export interface StoreCore {
  /** The name the store's metrics carry as their `store` attribute. */
  readonly name: string
  readonly index: Index
  readonly lock: ReadWriteLock
  readonly clock: Clock.Clock
  readonly reaper: Reaper
  readonly counters: StoreCounters
  readonly changes: ChangeHub
}

/**
 * How writes reach the index. Each method succeeds once the write is applied
 * (and, for a log, durable); it applies the write under the lock. `put` and
 * `delete` may do their work when called: the service calls them only from
 * inside `Effect.suspend`, when its own effect runs.
 */
export interface Committer {
  /** `stored` is the store's own copy of `value`; succeeds with `value`. */
  readonly put: (key: string, value: Value, stored: Value, deadline: number) => Effect.Effect<Value, StorageError>
  /** Succeeds with whether the key was live (and so was deleted). */
  readonly delete: (key: string) => Effect.Effect<boolean, StorageError>
  readonly clear: Effect.Effect<void, StorageError>
  readonly writeStatus: Effect.Effect<WriteStatus>
  readonly compact: Effect.Effect<void, StorageError>
}

export interface StoreOptions extends ReaperOptions {
  readonly name?: string | undefined
  /**
   * Entries per `Map` before the index spills into another one. V8's limit is
   * the default; tests lower it to exercise the spill.
   */
  readonly shardCapacity?: number | undefined
  readonly index?: IndexKind | undefined
}

/** Memory stores without a name get `memory-1`, `memory-2`, … in the order they open. */
let unnamedMemoryStores = 0
export const defaultMemoryName = (): string => `memory-${++unnamedMemoryStores}`

export const makeCore = (
  options: StoreOptions,
  defaultName: () => string = defaultMemoryName
): Effect.Effect<StoreCore, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const index = makeIndex(options.index, options.shardCapacity)
    const lock = new ReadWriteLock()
    const counters = new StoreCounters()
    const changes = new ChangeHub()
    // The first finalizer added runs last: subscribers' streams end after
    // everything else the store does on close, a log's last flush included.
    yield* Effect.addFinalizer(() => Effect.sync(() => changes.close()))
    const reaper = yield* startReaper(index, lock, clock, { onReclaim: options.onReclaim }, (key, deadline, now) => {
      counters.reclaimLagMillis.observe(now - deadline)
      if (changes.active) changes.emit({ _tag: "Expired", key, deadline, reclaimedAt: now, lateMillis: now - deadline })
    })
    return { name: options.name ?? defaultName(), index, lock, clock, reaper, counters, changes }
  })

/**
 * Registers the store's metric series in the registry of the current
 * context, and removes them when the scope closes.
 */
export const publishMetrics = (
  core: StoreCore,
  log?: GaugeSources["log"]
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(Effect.context<never>(), (context: Context.Context<never>) =>
    Effect.acquireRelease(
      Effect.sync(() =>
        registerStoreMetrics(context, core.name, core.counters, {
          liveKeys: () => core.index.liveSize(core.clock.currentTimeMillisUnsafe()),
          expirations: () => core.reaper.reclaimed(),
          log
        })
      ),
      (remove) => Effect.sync(remove)
    ))

/** Bytes of records an arena compaction step copies under the write lock, between two yields. */
const arenaStepBytes = 1024 * 1024

/**
 * Reclaims the index's arena (the shared index's removed and overwritten
 * records): finishes the compaction under way or begins one, and moves it
 * along in steps under the write lock, yielding between them, so writes go
 * on meanwhile. Fails, the store unchanged, when the compaction cannot get
 * the memory to copy the live records into (it is then put off: later
 * writes try again).
 */
export const compactIndex = (core: StoreCore): Effect.Effect<void, StorageError> =>
  Effect.gen(function*() {
    for (let begin = true;; begin = false) {
      const outcome = yield* core.lock.write(() => core.index.compactArena(arenaStepBytes, begin))
      if (outcome === true) return
      if (outcome !== false) {
        return yield* Effect.fail(
          new StorageError({ message: `compacting the index's memory failed, the store unchanged: ${outcome}` })
        )
      }
      yield* Effect.yieldNow
    }
  })

/** Applies writes to the index directly: the in-memory store's committer. */
export const memoryCommitter = (core: StoreCore): Committer => {
  const { lock } = core
  // The room comes first (`roomForPut`): a put the index cannot take fails
  // before anything changed, its change event and counters included.
  const putNow = (key: string, value: Value, stored: Value, deadline: number): Effect.Effect<Value, StorageError> => {
    const room = roomForPut(core, key, stored, deadline)
    if (typeof room !== "number") return Effect.fail(room)
    applyPut(core, key, stored, deadline, room)
    return Effect.succeed(value)
  }
  return {
    // The fast path is written out rather than going through `lock.write`:
    // `put` is the hottest write, and this saves a closure per call.
    put: (key, value, stored, deadline) =>
      lock.writeFree()
        ? putNow(key, value, stored, deadline)
        : lock.withWrite(Effect.suspend(() => putNow(key, value, stored, deadline))),
    delete: (key) => lock.write(() => applyDelete(core, key)),
    clear: Effect.flatMap(
      lock.write(() => {
        const refused = roomForClear(core)
        if (refused === undefined) applyClear(core)
        return refused
      }),
      (refused) => refused === undefined ? Effect.void : Effect.fail(refused)
    ),
    writeStatus: Effect.succeed({ _tag: "Writable" }),
    compact: compactIndex(core)
  }
}

export const makeService = (
  core: StoreCore,
  committer: Committer,
  logStats?: () => LogStats
): KeyValueStoreService => {
  const { clock, counters, index, lock, reaper } = core
  const now = () => clock.currentTimeMillisUnsafe()
  const freshBytes = index.returnsFreshBytes

  // Every operation that takes an argument checks it first, through
  // `validate.ts`, before it touches the lock, the index or the log: a refused
  // call changes nothing and writes nothing. Reads check the key's type and
  // length up front and its well-formedness only on a miss (`isKeyInRange`):
  // the same answers as `checkKey` first, without a scan of the key on a hit.
  const missing = (key: string): KeyNotFound | InvalidInput =>
    key.isWellFormed() ? new KeyNotFound({ key }) : invalidKey(key)

  /** Runs `operation` once `key` passes `checkKey`. */
  const withKey = <A, E>(key: string, operation: () => Effect.Effect<A, E>): Effect.Effect<A, E | InvalidInput> =>
    Effect.suspend((): Effect.Effect<A, E | InvalidInput> => {
      const invalid = checkKey(key)
      return invalid === undefined ? operation() : Effect.fail(invalid)
    })

  const lookup = (key: string): Effect.Effect<Value, KeyNotFound | InvalidInput> => {
    const value = index.lookup(key, now)
    if (value === undefined) {
      counters.misses++
      return Effect.fail(missing(key))
    }
    counters.hits++
    // Bytes go out as a copy, as they came in: no caller can change the store
    // by mutating an array it was given.
    return Effect.succeed(typeof value === "string" || freshBytes ? value : new Uint8Array(value))
  }

  // `get` and `put` are effects of their own kind (`Operation.ts`): one
  // object per call instead of a closure and a `Suspend`.
  const getOperation = operation(
    "kvlog/get",
    (key: string, _: void, __: void): Effect.Effect<Value, KeyNotFound | InvalidInput> => {
      if (!isKeyInRange(key)) return Effect.fail(invalidKey(key))
      return lock.readFree() ? lookup(key) : lock.withRead(Effect.suspend(() => lookup(key)))
    }
  )
  const get = (key: string): Effect.Effect<Value, KeyNotFound | InvalidInput> => getOperation(key, undefined, undefined)

  const put = operation(
    "kvlog/put",
    (
      key: string,
      value: Value,
      options: { readonly duration?: Duration.Input } | undefined
    ): Effect.Effect<Value, InvalidInput | StorageError> => {
      const invalid = checkKey(key) ?? checkValue(value)
      if (invalid !== undefined) return Effect.fail(invalid)
      const ttl = ttlMillis(options)
      if (typeof ttl !== "number") return Effect.fail(ttl)
      // A reaper kept from its timer (see `reaperLateMillis`) gets a turn
      // of the event loop before this put, which then runs as it would have.
      if (index.deadlineCount > 0 && reaper.isLate(clock.currentTimeMillisUnsafe())) {
        return Effect.flatMap(Effect.yieldNow, () => commitPut(key, value, ttl))
      }
      return commitPut(key, value, ttl)
    }
  )

  const commitPut = (key: string, value: Value, ttl: number): Effect.Effect<Value, StorageError> =>
    committer.put(
      key,
      value,
      ownValue(value),
      ttl === Infinity ? Infinity : deadlineAfter(clock.currentTimeMillisUnsafe(), ttl)
    )

  const del = (key: string): Effect.Effect<void, KeyNotFound | InvalidInput | StorageError> =>
    withKey(key, () =>
      Effect.flatMap(
        committer.delete(key),
        (deleted) => deleted ? Effect.void : Effect.fail(new KeyNotFound({ key }))
      ))

  const stats: Effect.Effect<StoreStats> = lock.read(() => {
    const base = {
      storedEntries: index.storedSize,
      entriesWithDeadline: index.deadlineCount,
      reclaimed: core.reaper.reclaimed()
    }
    return logStats === undefined ? base : { ...base, log: logStats() }
  })

  const service: KeyValueStoreService = {
    name: core.name,
    get,
    put,
    delete: del,
    has: (key) => withKey(key, () => lock.read(() => index.lookup(key, now) !== undefined)),
    timeToLive: (key) =>
      withKey(key, () =>
        Effect.flatMap(lock.read(() => {
          const at = now()
          const deadline = index.deadlineOf(key, at)
          return deadline === undefined ? undefined : deadline - at
        }), (remaining) =>
          remaining === undefined
            ? Effect.fail(new KeyNotFound({ key }))
            : Effect.succeed(remaining === Infinity ? Option.none() : Option.some(Duration.millis(remaining))))),
    size: lock.read(() => index.liveSize(now())),
    keys: lock.read(() => Array.from(index.liveKeys(now))),
    entries: Stream.unwrap(
      Effect.map(lock.readScoped, () =>
        Stream.map(
          Stream.fromIteratorSucceed(index.liveEntries(now), entriesChunkSize),
          (entry) => typeof entry[1] === "string" || freshBytes ? entry : [entry[0], new Uint8Array(entry[1])] as const
        ))
    ),
    clear: committer.clear,
    writeStatus: committer.writeStatus,
    compact: committer.compact,
    stats,
    changes: core.changes.subscribe(defaultChangeBufferSize),
    changesWith: (options) => core.changes.subscribeWith(options)
  }
  registerIndex(service, index)
  return service
}

export const makeMemory = (options: StoreOptions = {}): Effect.Effect<KeyValueStoreService, never, Scope.Scope> =>
  Effect.gen(function*() {
    // `make` has no error channel (its type is the contract): a bad `index`
    // is a defect that names what was expected.
    const invalid = checkIndexOption(options.index)
    if (invalid !== undefined) return yield* Effect.die(invalid)
    const core = yield* makeCore(options, defaultMemoryName)
    yield* publishMetrics(core)
    return makeService(core, memoryCommitter(core))
  }).pipe(Effect.withSpan("kvlog.open", { attributes: { "kvlog.store.kind": "memory" } }))
