/**
 * An in-memory key-value store with exact per-key TTL, safe under any number
 * of concurrent fibers, with an optional append-only log that makes every put
 * and delete durable and rebuilds the state on open.
 *
 * Single-key operations are linearizable. Readers run in parallel; writers are
 * exclusive and wait for the readers in progress, through a read/write lock
 * built on Effect's STM (`TxRef`). Uncontended single-key operations take a
 * fast path that runs no transaction: see `docs/design.md`.
 *
 * The same service runs on Redis, for data that several processes share:
 * see `layerRedis` and `docs/redis.md`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redis from "effect/persistence/Redis"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as Errors from "./internal/errors.ts"
import type { FileOps as LogFileOps, FileOpsOverrides } from "./internal/log/file/FileOps.ts"
import * as internalLog from "./internal/log/openLog.ts"
import * as internal from "./internal/store/makeStore.ts"
import * as internalShared from "./internal/store/sharedReader.ts"
import * as Limits from "./internal/Limits.ts"
import * as Metrics from "./internal/observe/StoreMetrics.ts"
import * as internalRedis from "./internal/redis/makeRedisStore.ts"
import { fromContext as redisFromContext } from "./internal/redis/RedisCommands.ts"
import type { Value as InternalValue } from "./internal/Value.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * What a key maps to. `get` gives back what was put: a string as the same
 * string, bytes as a `Uint8Array` with the same contents.
 *
 * @since 0.1.0
 * @category models
 */
export type Value = InternalValue

/**
 * Options of `put`.
 *
 * `duration`: how long the key stays readable. Absent, or
 * `Duration.infinity`: kept until deleted (an earlier TTL on the key is
 * cleared). A finite positive duration `d` (a plain number means
 * milliseconds): readable while `now < t_put + d`, gone from `t_put + d` on.
 *
 * @since 0.1.0
 * @category models
 */
export interface PutOptions {
  readonly duration?: Duration.Input
}

/**
 * Whether the store accepts writes. A log-backed store stops accepting them
 * after a failed `fsync`: Linux may have dropped the unsynced pages, so a
 * later successful `fsync` would not prove they reached the disk.
 *
 * @since 0.1.0
 * @category models
 */
export type WriteStatus =
  | { readonly _tag: "Writable" }
  | { readonly _tag: "ReadOnly"; readonly reason: string }

/**
 * Diagnostics: what the store holds, beyond what it shows.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreStats {
  /** Entries in memory, including expired ones the reaper has not reclaimed yet. */
  readonly storedEntries: number
  /** Entries in memory that carry a deadline. */
  readonly entriesWithDeadline: number
  /** Expired entries reclaimed by the reaper since the store opened. */
  readonly reclaimed: number
  /** For a log-backed store: the log's size and its last compaction. */
  readonly log?: LogStats
}

/**
 * The state of a store's log.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogStats {
  /** Bytes of whole records in the log file, header included. */
  readonly fileBytes: number
  /** Records in the log, live or superseded. */
  readonly records: number
  /** The last compaction, manual or automatic, if any ran since the store opened. */
  readonly lastCompaction: CompactionReport | undefined
}

/**
 * What a compaction did, and how long writes had to wait for it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CompactionReport {
  readonly recordsBefore: number
  readonly recordsAfter: number
  readonly bytesBefore: number
  readonly bytesAfter: number
  readonly durationMillis: number
  /** The longest stretch during which writes waited for the compaction. */
  readonly longestPauseMillis: number
}

/**
 * What the change stream reports, in the order the changes took effect:
 *
 * - `Put`: `key` was set; `deadline` is its expiry (epoch ms by the store's
 *   `Clock`), `undefined` for a key kept until deleted.
 * - `Delete`: a live `key` was deleted (a delete of an absent key changes
 *   nothing and reports nothing).
 * - `Expired`: `key` reached its `deadline` and was removed, by the reaper or
 *   by a put or delete that found it expired first; `reclaimedAt` is when,
 *   and `lateMillis` how long after the deadline. Each expiry is reported
 *   once. Reads never see an expired key, whatever the lag.
 * - `Cleared`: every key was removed by `clear` (no event per key).
 * - `Lagged`: this subscriber's buffer was full and it missed `dropped`
 *   events just before this one (see `ChangesOptions`).
 *
 * @since 0.2.0
 * @category models
 */
export type ChangeEvent =
  | { readonly _tag: "Put"; readonly key: string; readonly deadline: number | undefined }
  | { readonly _tag: "Delete"; readonly key: string }
  | {
    readonly _tag: "Expired"
    readonly key: string
    readonly deadline: number
    readonly reclaimedAt: number
    readonly lateMillis: number
  }
  | { readonly _tag: "Cleared" }
  | { readonly _tag: "Lagged"; readonly dropped: number }

/**
 * Options of `changesWith`.
 *
 * `bufferSize` (default 4096, at least 2): events held for a subscriber that
 * has not taken them yet. Writers never wait for a subscriber: when its
 * buffer is full, further events are dropped for that subscriber alone and
 * counted, and once it has room again it receives one `Lagged` event with
 * the count, then the events that follow. Other subscribers lose nothing.
 *
 * @since 0.2.0
 * @category models
 */
export interface ChangesOptions {
  readonly bufferSize?: number | undefined
}

/**
 * The store's operations: what `yield* KeyValueStore.KeyValueStore` gives.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyValueStoreService {
  /**
   * The value of `key`; fails with `KeyNotFound` if it is absent, deleted or
   * expired. Bytes come back as a fresh copy.
   *
   * Every operation that takes a key, a value or options checks them before
   * anything else and fails with `InvalidInput`, the store unchanged, on a
   * key that is not a string, is longer than `maxKeyLength` or holds a lone
   * UTF-16 surrogate (it has no UTF-8 form, so no such key is ever stored:
   * reading one is refused too, not answered with `KeyNotFound`).
   */
  readonly get: (key: string) => Effect.Effect<Value, KeyNotFound | InvalidInput>
  /**
   * Stores `value` under `key` and succeeds with `value` once stored (for a
   * log-backed store: once durable under its `fsync` policy). Fails with
   * `InvalidInput` on a bad key, a value that is neither a string nor a
   * `Uint8Array`, is over `maxValueLength` or holds a lone surrogate, or on
   * options or a duration it cannot use (see `PutOptions`); with
   * `StorageError` when the log cannot take it, or the shared index has no
   * memory left for it (nothing written, the store unchanged).
   */
  readonly put: (
    key: string,
    value: Value,
    options?: PutOptions
  ) => Effect.Effect<Value, InvalidInput | StorageError>
  /**
   * Removes `key`; fails with `KeyNotFound` if it is absent or expired, with
   * `InvalidInput` (nothing written) on a bad key.
   */
  readonly delete: (key: string) => Effect.Effect<void, KeyNotFound | InvalidInput | StorageError>
  /** Whether `key` is present and not expired; fails with `InvalidInput` on a bad key. */
  readonly has: (key: string) => Effect.Effect<boolean, InvalidInput>
  /**
   * The time `key` has left: `Option.none()` for a key kept until deleted;
   * fails with `KeyNotFound` if it is absent or expired, with `InvalidInput`
   * on a bad key.
   */
  readonly timeToLive: (key: string) => Effect.Effect<Option.Option<Duration.Duration>, KeyNotFound | InvalidInput>
  /** The number of live keys (expired keys are not counted, reclaimed or not). */
  readonly size: Effect.Effect<number>
  /** A snapshot of the live keys, in no particular order. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  /**
   * Every live entry, in chunks, in no particular order. The stream holds the
   * read lock while it is consumed, so no write changes it and writers wait
   * until it ends; each entry's deadline is checked as it is emitted, so a
   * key that expires meanwhile is left out. Do not write to the store while
   * consuming its own stream: the write would wait for the stream.
   */
  readonly entries: Stream.Stream<readonly [string, Value]>
  /** Removes every key. */
  readonly clear: Effect.Effect<void, StorageError>
  /** Whether the store accepts writes (always `Writable` for `layerMemory`). */
  readonly writeStatus: Effect.Effect<WriteStatus>
  /**
   * Rewrites the log to hold only the live entries, and compacts the shared
   * index's memory (`index: "shared"`; for `layerMemory` that is all it
   * does). Writes go on while it runs.
   */
  readonly compact: Effect.Effect<void, StorageError>
  /** Diagnostics: entries held in memory and the reaper's progress. */
  readonly stats: Effect.Effect<StoreStats>
  /**
   * The store's name: the `store` attribute of its metrics (see `metrics`).
   * The `name` option, else the log's path as given, else `memory-N`.
   *
   * @since 0.2.0
   */
  readonly name: string
  /**
   * The changes made from the moment the stream starts running, until the
   * store closes (the stream then ends): see `ChangeEvent`. Each subscriber
   * has its own buffer of 4096 events; `changesWith` sets another size.
   * Nobody subscribed costs the writers nothing but one check.
   *
   * @since 0.2.0
   */
  readonly changes: Stream.Stream<ChangeEvent>
  /**
   * `changes` with options; fails with `InvalidInput` on a bad `bufferSize`.
   *
   * @since 0.2.0
   */
  readonly changesWith: (options: ChangesOptions) => Stream.Stream<ChangeEvent, InvalidInput>
}

// =============================================================================
// Errors
// =============================================================================

/**
 * The log is damaged before its tail, or is not a kvlog log; fields `path`,
 * `offset` (the first bad byte) and `reason`. The store refuses to open rather
 * than serve a wrong value.
 *
 * @since 0.1.0
 * @category errors
 */
export const LogCorrupted: typeof Errors.LogCorrupted = Errors.LogCorrupted

/**
 * @since 0.1.0
 * @category errors
 */
export type LogCorrupted = Errors.LogCorrupted

/**
 * Another store, in this process or another, has the log open; fields `path`
 * and `owner`.
 *
 * @since 0.1.0
 * @category errors
 */
export const LogLocked: typeof Errors.LogLocked = Errors.LogLocked

/**
 * @since 0.1.0
 * @category errors
 */
export type LogLocked = Errors.LogLocked

/**
 * The key is absent, was deleted, or has expired. Field `key`.
 *
 * @since 0.1.0
 * @category errors
 */
export const KeyNotFound: typeof Errors.KeyNotFound = Errors.KeyNotFound

/**
 * @since 0.1.0
 * @category errors
 */
export type KeyNotFound = Errors.KeyNotFound

/**
 * An argument the store cannot accept; the store is left unchanged. Field
 * `message` says what was expected.
 *
 * @since 0.1.0
 * @category errors
 */
export const InvalidInput: typeof Errors.InvalidInput = Errors.InvalidInput

/**
 * @since 0.1.0
 * @category errors
 */
export type InvalidInput = Errors.InvalidInput

/**
 * The log could not be written or synced. The operations of the failed batch
 * were not applied; everything acknowledged before is intact. `writeStatus`
 * tells whether the store still accepts writes.
 *
 * For a store over Redis: a command failed, Redis refused it, or no answer
 * came within the store's `timeout` (see `RedisOptions`: a write that got no
 * answer may still have been applied).
 *
 * @since 0.1.0
 * @category errors
 */
export const StorageError: typeof Errors.StorageError = Errors.StorageError

/**
 * @since 0.1.0
 * @category errors
 */
export type StorageError = Errors.StorageError

// =============================================================================
// Limits
// =============================================================================

/**
 * The longest key, in UTF-16 code units (`key.length`).
 *
 * @since 0.1.0
 * @category limits
 */
export const maxKeyLength: number = Limits.maxKeyLength

/**
 * The largest value: `value.length` in UTF-16 code units for a string, in
 * bytes for a `Uint8Array`.
 *
 * @since 0.1.0
 * @category limits
 */
export const maxValueLength: number = Limits.maxValueLength

// =============================================================================
// Service
// =============================================================================

/**
 * The service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export class KeyValueStore extends Context.Service<KeyValueStore, KeyValueStoreService>()("kvlog/KeyValueStore") {}

/**
 * Options of an in-memory store.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /**
   * The store's name, given to its metrics as the attribute `store` so that
   * several stores in one app report apart. Default: the log's path for a
   * log-backed store, `memory-1`, `memory-2`, … for in-memory ones. Two open
   * stores with one name share their series: the last opened reports.
   *
   * @since 0.2.0
   */
  readonly name?: string | undefined
  /**
   * Called by the reaper for every expired entry it reclaims, with the
   * entry's deadline and the time it was reclaimed (both epoch ms by the
   * store's `Clock`): a way to observe the reclaim lag. If it throws, the
   * entry is reclaimed all the same and the reaper goes on; the first such
   * failure is logged as a warning.
   */
  readonly onReclaim?: ((key: string, deadline: number, reclaimedAt: number) => void) | undefined
  /**
   * Where the store keeps its entries. `"heap"`: as JavaScript strings and
   * arrays on V8's heap. `"shared"`: as bytes in `SharedArrayBuffer`s, off
   * the heap (about half the memory a key, no string made until a value is
   * read, and worker threads can read the store in parallel); strings and
   * byte arrays come back exactly as they went in either way. Default:
   * `"heap"`, or `"shared"` when the environment variable `KVLOG_INDEX` is
   * `shared`. Anything else is refused with `InvalidInput` (a defect for
   * `make` and `layerMemoryWith`, which have no error channel).
   *
   * @since 0.3.0
   */
  readonly index?: "heap" | "shared" | undefined
}

// =============================================================================
// Constructors
// =============================================================================

/**
 * Builds an in-memory store whose reaper fiber lives in the current scope:
 * closing the scope stops it. Most programs use `layerMemory` instead.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MemoryOptions = {}): Effect.Effect<KeyValueStoreService, never, Scope.Scope> =>
  internal.makeMemory(options)

// =============================================================================
// Layers
// =============================================================================

/**
 * An in-memory store. Its TTL reaper fiber lives in the layer's scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<KeyValueStore> = Layer.effect(KeyValueStore, internal.makeMemory())

/**
 * Options of a log-backed store.
 *
 * - `path`: the log file (created with mode 0600 if absent).
 * - `fsync` (default `"always"`): `"always"` acknowledges a put or delete
 *   once its record is on disk (group commit); `"interval"` acknowledges it
 *   once its record is written to the OS (a process crash cannot lose it)
 *   and syncs at least every `fsyncIntervalMillis` (default 1000); `"never"`
 *   also acknowledges once written and leaves syncing to the OS. Only an OS
 *   crash or a power cut can lose a write under `"interval"` or `"never"`.
 *   See `docs/design.md` for what each can lose. A write interrupted while
 *   queued is never written; one interrupted once its batch is being written
 *   may still become durable, like a reply lost on the wire.
 * - `onCorruption` (default `"fail"`): corruption before the log's tail fails
 *   the open with `LogCorrupted`; `"truncate"` keeps the records before the
 *   first bad one instead, and logs a warning.
 * - `compaction`: automatic compaction (`auto`, default `true`) once the log
 *   holds more than `factor` (default 2) records per live entry and at least
 *   `minRecords` (default 100,000) records.
 * - `fileOps`: the file system calls (`FileSystemCalls`), any of them
 *   replaceable to inject disk faults or to run on a simulated disk.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogOptions extends MemoryOptions {
  readonly path: string
  readonly fsync?: "always" | "interval" | "never" | undefined
  readonly fsyncIntervalMillis?: number | undefined
  /**
   * When a put or delete under `"interval"` or `"never"` is acknowledged.
   * `"written"` (the default): once its record is written to the OS, so a
   * crash of the process loses nothing acknowledged. `"buffered"`: at once,
   * its record appended to a buffer in the process that is written at the
   * writer's next turn (or once 256 KiB are buffered) — about ten times
   * faster for a single writer that awaits each put, but a crash of the
   * process loses the writes of the last scheduler turns. Refused with
   * `"always"`.
   *
   * @since 0.2.0
   */
  readonly acknowledge?: "written" | "buffered" | undefined
  readonly onCorruption?: "fail" | "truncate" | undefined
  readonly compaction?: {
    readonly auto?: boolean | undefined
    readonly factor?: number | undefined
    readonly minRecords?: number | undefined
  } | undefined
  readonly fileOps?: FileOps | undefined
}

/**
 * The file system calls a log makes, for fault injection or a simulated
 * disk: any subset of `FileSystemCalls`, the rest taken from `node:fs`.
 *
 * @since 0.1.0
 * @category models
 */
export type FileOps = FileOpsOverrides

/**
 * Every file system call a log makes: opening, reading, writing, syncing,
 * truncating, renaming and removing its files, and syncing their directory.
 * Files the store creates are created exclusively, never through a symlink.
 *
 * @since 0.2.0
 * @category models
 */
export type FileSystemCalls = LogFileOps

/**
 * Why a log-backed store could not open.
 *
 * @since 0.1.0
 * @category errors
 */
export type LogOpenError = InvalidInput | LogCorrupted | LogLocked | StorageError

/**
 * Builds a log-backed store in the current scope: replays the log, then
 * appends every put and delete to it. Closing the scope flushes and syncs
 * what is pending, stops the writer and releases the log.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLog = (options: LogOptions): Effect.Effect<KeyValueStoreService, LogOpenError, Scope.Scope> =>
  internalLog.makeLog(options)

/**
 * A store backed by an append-only log: every put and delete is appended to
 * it, and opening replays it. Uses `node:fs` directly (Effect's `FileSystem`
 * has no `fdatasync`), so it needs no platform layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLog = (options: LogOptions): Layer.Layer<KeyValueStore, LogOpenError> =>
  Layer.effect(KeyValueStore, internalLog.makeLog(options))

/**
 * An in-memory store with options.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemoryWith = (options: MemoryOptions): Layer.Layer<KeyValueStore> =>
  Layer.effect(KeyValueStore, internal.makeMemory(options))

// =============================================================================
// Readers in worker threads
// =============================================================================

/**
 * What a worker thread needs to read a store opened in another thread with
 * `index: "shared"`: pass it in `workerData` or a message, with `port` in the
 * transfer list (`new Worker(file, { workerData: handle, transferList: [handle.port] })`).
 *
 * @since 0.3.0
 * @category models
 */
export type SharedReaderHandle = internalShared.SharedReaderHandle

/**
 * Lets one worker thread read `store`, which must keep its entries in the
 * shared index (`index: "shared"`); fails with `InvalidInput` otherwise.
 * Call it once per worker. The worker's reads see the memory the store
 * writes, without copying: each read sees the store as it was at one instant
 * between two of its writes, and a key at or after its deadline is absent.
 * Writers stay in the thread that opened the store. Worker and owner should
 * both take time from the system clock (Effect's default `Clock`), so that
 * deadlines mean the same instant to both.
 *
 * @since 0.3.0
 * @category constructors
 */
export const shareWithWorker = (store: KeyValueStoreService): Effect.Effect<SharedReaderHandle, InvalidInput> =>
  internalShared.shareWithWorker(store)

/**
 * In a worker thread, a store that reads the store `handle` came from
 * (`shareWithWorker`). Reads as that store reads, in parallel with it and
 * with other workers; `put`, `delete`, `clear` and `compact` check their
 * arguments as the store does, then fail with `StorageError` (`writeStatus`
 * is `ReadOnly`); `changes` ends at once (subscribe in the owning thread).
 * `size`, `keys`, `entries` and `stats` each see one instant, as the
 * store's own do: `stats`, and `size` while no deadline has come, read
 * counts the owner publishes; `size` otherwise counts, and `keys` and
 * `entries` walk, every entry between two writes. A walk that writes keep
 * overlapping asks the owner to hold its next write until the walk is done,
 * so it finishes however fast the owner writes; the owner's thread then
 * waits for as long as the walk takes (about a second at 10M entries), as
 * its own whole-store reads keep its writes waiting. A worker that stops in
 * the middle of a walk holds one write for at most 500 ms. Closing the scope
 * closes the handle's port, and the owner stops publishing to it.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeSharedReader = (handle: SharedReaderHandle): Effect.Effect<KeyValueStoreService, never, Scope.Scope> =>
  internalShared.makeSharedReader(handle)

/**
 * `makeSharedReader` as a layer, for a worker thread.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerSharedReader = (handle: SharedReaderHandle): Layer.Layer<KeyValueStore> =>
  Layer.effect(KeyValueStore, internalShared.makeSharedReader(handle))

// =============================================================================
// Redis
// =============================================================================

/**
 * Options of a store over Redis (`makeRedis`, `layerRedis`, and
 * `kvlog/redis` for a node-redis client or a cluster).
 *
 * - `prefix` (required): every key is stored in Redis as `prefix + key`, so
 *   two apps or two stores share a server safely; `size`, `keys`, `entries`
 *   and `clear` see only keys under it. Checked as a key is (a string of at
 *   most `maxKeyLength` code units, no lone surrogate); `""` is the whole
 *   database. In a cluster, braces in the prefix make a hash tag: a prefix
 *   such as `"{app}:"` puts every key of the store in one slot, on one node.
 * - `timeout` (default 5 seconds, at most 2^31 − 1 ms): how long each command sent to
 *   Redis may take before the operation fails with `StorageError`; a lost
 *   connection never hangs an operation. `size`, `keys`, `entries`, `clear`
 *   and `stats` send one command per `SCAN` page and per key, each with this
 *   timeout. A write that timed out may still be applied by Redis, like any
 *   write whose reply was lost; through Effect's `Redis` service
 *   (`layerRedis`), even one its client had queued while reconnecting, once
 *   it has reconnected (`kvlog/redis`'s layers queue nothing meanwhile).
 * - `scanCount` (default 1000): the `COUNT` of each `SCAN`.
 * - `name` (default `redis:<prefix>`): the store's `name`.
 *
 * What changes from the in-memory store:
 *
 * - TTLs run on Redis's clock, in whole milliseconds: a duration is rounded
 *   up to the next millisecond (0.3 ms is sent as `PX 1`), never down, and
 *   one longer than 2^53 − 1 ms is refused with `InvalidInput`.
 * - `get`, `has`, `timeToLive`, `size`, `keys`, `entries` and `stats` have no
 *   `StorageError` in their types: when Redis fails them, they die, with the
 *   `StorageError` as the defect (`Effect.catchDefect` recovers it).
 * - `size`, `keys`, `entries`, `clear` and `stats` walk the prefix with
 *   `SCAN` on every master: they cost O(keys on the server), and they are not
 *   atomic. A key present and unchanged for the whole call is seen once; a
 *   key put, deleted or expiring during the call may or may not be; `entries`
 *   gives each key's value as it was when read, and writers do not wait for
 *   it. `stats` counts the keys and those with a TTL (`reclaimed` is 0:
 *   Redis reclaims expired keys itself).
 * - `changes` reports this store's own acknowledged writes (`Put`, with a
 *   deadline estimated by this process's `Clock`; `Delete`; `Cleared`), not
 *   other clients' writes nor Redis's expirations.
 * - `compact` does nothing (Redis rewrites its own append-only file);
 *   `writeStatus` is `Writable` (Redis refuses writes one by one, and each
 *   refusal fails with `StorageError`). No metric series are registered.
 *
 * Values are stored as one tag character and the value: `s` and the string,
 * or `b` and the bytes in base64, so each comes back with its type (see
 * `docs/redis.md`).
 *
 * @since 0.3.0
 * @category models
 */
export interface RedisOptions {
  readonly prefix: string
  readonly timeout?: Duration.Input | undefined
  readonly scanCount?: number | undefined
  readonly name?: string | undefined
}

/**
 * Builds a store over the `Redis` service in context (Effect's
 * `effect/persistence/Redis`: `NodeRedis.layer` from
 * `@effect/platform-node`, or a service of your own). Fails with
 * `InvalidInput`, sending nothing, on options it cannot use. See
 * `RedisOptions`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeRedis = (
  options: RedisOptions
): Effect.Effect<KeyValueStoreService, InvalidInput, Redis.Redis | Scope.Scope> =>
  internalRedis.makeRedisStore(options, redisFromContext)

/**
 * A store over the `Redis` service in context: one Redis server, through
 * `NodeRedis.layer` or a `Redis` service of your own. `kvlog/redis` has the
 * layers that make their own node-redis client, and the one for a cluster.
 *
 * ```ts
 * import { NodeRedis } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { KeyValueStore } from "kvlog"
 *
 * const StoreLive = KeyValueStore.layerRedis({ prefix: "app:" }).pipe(
 *   Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379", disableOfflineQueue: true }))
 * )
 * ```
 *
 * `disableOfflineQueue: true` makes operations fail at once while the
 * client reconnects. Without it, they wait in its queue; one that times out
 * there is still sent once the client has reconnected, and a client closed
 * with commands queued waits for Redis to come back (see `docs/redis.md`).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<KeyValueStore, InvalidInput, Redis.Redis> =>
  Layer.effect(KeyValueStore, makeRedis(options))

// =============================================================================
// Stores under keys of your own
// =============================================================================

/**
 * An in-memory store provided under a service key of your own, for an app
 * that needs more than one store (see `Service`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemoryAs = <I>(
  key: Context.Key<I, KeyValueStoreService>,
  options: MemoryOptions = {}
): Layer.Layer<I> => Layer.effect(key, internal.makeMemory(options))

/**
 * A log-backed store provided under a service key of your own (see `Service`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerLogAs = <I>(
  key: Context.Key<I, KeyValueStoreService>,
  options: LogOptions
): Layer.Layer<I, LogOpenError> => Layer.effect(key, internalLog.makeLog(options))

/**
 * A store over the `Redis` service in context, provided under a service key
 * of your own (see `Service` and `layerRedis`).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerRedisAs = <I>(
  key: Context.Key<I, KeyValueStoreService>,
  options: RedisOptions
): Layer.Layer<I, InvalidInput, Redis.Redis> => Layer.effect(key, makeRedis(options))

/**
 * The statics of a class made by `Service`: kvlog's layers, providing the
 * class's own key.
 *
 * @since 0.2.0
 * @category models
 */
export interface ServiceLayers<Self> {
  /** An in-memory store. */
  readonly layerMemory: Layer.Layer<Self>
  /** An in-memory store with options. */
  readonly layerMemoryWith: (options: MemoryOptions) => Layer.Layer<Self>
  /** A store backed by an append-only log. */
  readonly layerLog: (options: LogOptions) => Layer.Layer<Self, LogOpenError>
  /**
   * A store over the `Redis` service in context.
   *
   * @since 0.3.0
   */
  readonly layerRedis: (options: RedisOptions) => Layer.Layer<Self, InvalidInput, Redis.Redis>
}

/**
 * A service key of your own for a kvlog store, with kvlog's layers on it, so
 * one app can hold several stores side by side, each typed by its key:
 *
 * ```ts
 * class Cache extends KeyValueStore.Service<Cache>()("app/Cache") {}
 * class Users extends KeyValueStore.Service<Users>()("app/Users") {}
 *
 * const Stores = Layer.mergeAll(Cache.layerMemory, Users.layerLog({ path: "users.log" }))
 *
 * const program = Effect.gen(function*() {
 *   const cache = yield* Cache
 *   const users = yield* Users
 *   yield* users.put("ada", "Ada Lovelace")
 *   yield* cache.put("ada", "seen", { duration: "5 minutes" })
 * })
 * ```
 *
 * The key's identifier (`"app/Cache"`) must be unique in the app, as for any
 * `Context.Service`. The default `KeyValueStore` key stays what
 * `layerMemory` and `layerLog` provide.
 *
 * @since 0.2.0
 * @category tags
 */
export const Service = <Self>() =>
<const Identifier extends string>(
  identifier: Identifier
): Context.ServiceClass<Self, Identifier, KeyValueStoreService> & ServiceLayers<Self> => {
  const key = Context.Service<Self, KeyValueStoreService>()(identifier)
  const layers: ServiceLayers<Self> = {
    layerMemory: layerMemoryAs(key),
    layerMemoryWith: (options) => layerMemoryAs(key, options),
    layerLog: (options) => layerLogAs(key, options),
    layerRedis: (options) => layerRedisAs(key, options)
  }
  return Object.assign(key, layers)
}

// =============================================================================
// Metrics
// =============================================================================

/**
 * The metric series of the store named `name` (its `name` option, or see
 * `KeyValueStoreService.name`), each carrying the attribute `store` = `name`,
 * for `Metric.value` or to pick them out of `Metric.snapshot`. They are
 * registered in the `Metric.MetricRegistry` of the context the store was
 * opened in, read when the metrics are read (no cost per operation beyond
 * an increment), and removed when the store closes:
 *
 * - counters `kvlog_get_hits`, `kvlog_get_misses`, `kvlog_puts` (applied;
 *   for a log, acknowledged), `kvlog_deletes` (of live keys), `kvlog_clears`,
 *   `kvlog_expirations` (reclaimed by the reaper);
 * - histogram `kvlog_reclaim_lag_ms`: how late after its deadline each
 *   expired entry was reclaimed; gauge `kvlog_live_keys`;
 * - for a log-backed store: gauges `kvlog_log_bytes` and `kvlog_log_records`,
 *   histograms `kvlog_log_batch_records` (records per batch written) and
 *   `kvlog_log_fsync_ms`, counter `kvlog_log_compactions` and histogram
 *   `kvlog_log_compaction_pause_ms` (each compaction's longest pause).
 *
 * Puts and deletes read back from the log at open are not counted.
 *
 * @since 0.2.0
 * @category metrics
 */
export const metrics: (name: string) => StoreMetrics = Metrics.storeMetrics

/**
 * The metric series of one store: see `metrics`.
 *
 * @since 0.2.0
 * @category metrics
 */
export type StoreMetrics = Metrics.StoreMetricSet
