/**
 * kvlog under Effect's `effect/persistence`: the same store, with its exact
 * TTL, its reaper and its optional log, behind the services Effect's
 * persistence modules are written against.
 *
 * - `KeyValueStore` (Effect's, from `effect/persistence/KeyValueStore`): each
 *   value keeps its type, as in Effect's `layerMemory`: a string put comes
 *   back from `get` as that string, bytes from `getUint8Array` as those
 *   bytes; the cross-type reads give a string's UTF-8 bytes and the bytes'
 *   base64.
 * - `BackingPersistence` and `Persistence` (from
 *   `effect/persistence/Persistence`, what `PersistedCache` runs on): each
 *   entry's TTL is kvlog's own, so the reaper reclaims an expired entry on
 *   time, unread, and the log forgets it at its next compaction. Effect's
 *   `layerBackingKvs` keeps the expiry inside the value and removes an
 *   expired entry only when it is read.
 *
 * See `docs/persistence.md`.
 *
 * @since 0.2.0
 */
import * as Arr from "effect/Array"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Base64 from "effect/encoding/Base64"
import * as Layer from "effect/Layer"
import * as EffectKeyValueStore from "effect/persistence/KeyValueStore"
import * as EffectPersistence from "effect/persistence/Persistence"
import { checkKey, checkValue } from "./internal/validate.ts"
import * as KeyValueStore from "./KeyValueStore.ts"

// =============================================================================
// Limits
// =============================================================================

/**
 * The most writes one multi-key operation (`setMany`, `clear`, `clearPrefix`)
 * keeps in flight. A log-backed store commits the writes queued together as
 * one batch (one `write()`, one sync), so keeping many in flight makes a
 * durable `setMany` of 1,000 entries cost a few syncs instead of 1,000, while
 * the bound keeps a `clear` of a million keys from starting a million fibers.
 *
 * @since 0.2.0
 * @category limits
 */
export const maxWritesInFlight: number = 256

// =============================================================================
// Errors
// =============================================================================

/** A key as an error message quotes it: long keys cut, so a message stays readable. */
const quoteKey = (key: unknown): string =>
  typeof key === "string" ? JSON.stringify(key.length > 200 ? key.slice(0, 200) + "…" : key) : String(key)

const keyValueStoreError = (
  method: string,
  key: string | undefined,
  cause: KeyValueStore.InvalidInput | KeyValueStore.StorageError
): EffectKeyValueStore.KeyValueStoreError =>
  new EffectKeyValueStore.KeyValueStoreError({
    method,
    ...(typeof key === "string" ? { key } : {}),
    message: key === undefined
      ? `kvlog could not ${method}: ${cause.message}`
      : `kvlog could not ${method} key ${quoteKey(key)}: ${cause.message}`,
    cause
  })

/** A `PersistenceError` whose message ends with its cause's, so that it says why on its own. */
const persistenceError = (message: string, cause?: unknown): EffectPersistence.PersistenceError =>
  cause === undefined
    ? new EffectPersistence.PersistenceError({ message })
    : new EffectPersistence.PersistenceError({ message: `${message}: ${messageOf(cause)}`, cause })

const messageOf = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string"
    ? cause.message
    : String(cause)

// =============================================================================
// KeyValueStore
// =============================================================================

const utf8 = new TextEncoder()

/**
 * Effect's `KeyValueStore` on a kvlog store, built with Effect's own `make`
 * (so `modify`, `modifyUint8Array` and `isEmpty` are Effect's).
 *
 * `get` gives a string as it was put and bytes as their base64;
 * `getUint8Array` gives bytes as they were put (a fresh copy) and a string as
 * its UTF-8 bytes; an absent or expired key is `undefined`. `remove` of an
 * absent key succeeds. kvlog's `InvalidInput` (a key over
 * `KeyValueStore.maxKeyLength`, a lone surrogate, a value that is neither a
 * string nor a `Uint8Array`) and `StorageError` become a
 * `KeyValueStoreError` whose `cause` is kvlog's error and whose message says
 * why; the store is left unchanged.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeKeyValueStore = (store: KeyValueStore.KeyValueStoreService): EffectKeyValueStore.KeyValueStore => {
  const read = <A>(method: string, key: string, fromValue: (value: KeyValueStore.Value) => A) =>
    Effect.matchEffect(store.get(key), {
      onFailure: (error) =>
        error._tag === "KeyNotFound" ? Effect.undefined : Effect.fail(keyValueStoreError(method, key, error)),
      onSuccess: (value) => Effect.succeed(fromValue(value))
    })

  const remove = (method: string, key: string): Effect.Effect<void, EffectKeyValueStore.KeyValueStoreError> =>
    Effect.catch(
      store.delete(key),
      (error) => error._tag === "KeyNotFound" ? Effect.void : Effect.fail(keyValueStoreError(method, key, error))
    )

  const clear = Effect.mapError(store.clear, (error) => keyValueStoreError("clear", undefined, error))

  return EffectKeyValueStore.make({
    get: (key) => read("get", key, (value) => typeof value === "string" ? value : Base64.encode(value)),
    getUint8Array: (key) =>
      read("getUint8Array", key, (value) => typeof value === "string" ? utf8.encode(value) : value),
    set: (key, value) =>
      Effect.mapError(Effect.asVoid(store.put(key, value)), (error) => keyValueStoreError("set", key, error)),
    remove: (key) => remove("remove", key),
    has: (key) => Effect.mapError(store.has(key), (error) => keyValueStoreError("has", key, error)),
    clear,
    clearPrefix: (prefix) => {
      if (typeof prefix !== "string") {
        return Effect.fail(
          keyValueStoreError(
            "clearPrefix",
            undefined,
            new KeyValueStore.InvalidInput({ message: `prefix must be a string, got ${typeof prefix}` })
          )
        )
      }
      if (prefix.length === 0) return clear
      return Effect.flatMap(store.keys, (keys) =>
        Effect.forEach(keys.filter((key) => key.startsWith(prefix)), (key) => remove("clearPrefix", key), {
          concurrency: maxWritesInFlight,
          discard: true
        }))
    },
    size: store.size,
    keys: store.keys
  })
}

/**
 * Effect's `KeyValueStore` on the kvlog store in context: the way to give
 * Effect's `KeyValueStore` and kvlog's own service from one store.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerKeyValueStore: Layer.Layer<EffectKeyValueStore.KeyValueStore, never, KeyValueStore.KeyValueStore> =
  Layer.effect(EffectKeyValueStore.KeyValueStore, Effect.map(KeyValueStore.KeyValueStore, makeKeyValueStore))

/**
 * Effect's `KeyValueStore` on an in-memory kvlog store.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerKeyValueStoreMemory: Layer.Layer<EffectKeyValueStore.KeyValueStore> = Layer.provide(
  layerKeyValueStore,
  KeyValueStore.layerMemory
)

/**
 * Effect's `KeyValueStore` on a kvlog store backed by the log at
 * `options.path`: every `set` and `remove` is durable under `options.fsync`
 * before it succeeds, and reopening the log gives each value back with its
 * type.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerKeyValueStoreLog = (
  options: KeyValueStore.LogOptions
): Layer.Layer<EffectKeyValueStore.KeyValueStore, KeyValueStore.LogOpenError> =>
  Layer.provide(layerKeyValueStore, KeyValueStore.layerLog(options))

// =============================================================================
// BackingPersistence
// =============================================================================

/**
 * The key prefix of a persistence store, as Effect's backing stores build it
 * (`storeNamespace` in Effect's internals): `%` and `:` in the store id are
 * percent-encoded, so the namespace ends at its first `:` and no two
 * (store id, key) pairs share a kvlog key.
 */
const storeNamespace = (storeId: string): string => `${storeId.replace(/%/g, "%25").replace(/:/g, "%3A")}:`

/** Whether a TTL means "already expired": Effect does not store such an entry. */
const isExpiredAtOnce = (ttl: Duration.Duration | undefined): boolean =>
  ttl !== undefined && (Duration.isZero(ttl) || Duration.isNegative(ttl))

type BackingEntry = readonly [key: string, value: object, ttl: Duration.Duration | undefined]

/** An entry checked and encoded, ready to write: what `setMany` validates before writing anything. */
type EncodedEntry =
  | { readonly _tag: "Put"; readonly key: string; readonly json: string; readonly ttl: Duration.Duration | undefined }
  | { readonly _tag: "Remove"; readonly key: string }

const makeBackingStore = (
  store: KeyValueStore.KeyValueStoreService,
  storeId: string
): EffectPersistence.BackingPersistenceStore => {
  const namespace = storeNamespace(storeId)
  /** How messages name an entry: by its key in the store, not its kvlog key. */
  const entryName = (key: string) => `key ${quoteKey(key)} of store ${quoteKey(storeId)}`

  type Result<A> = Effect.Effect<A, EffectPersistence.PersistenceError>

  const decode = (key: string, value: KeyValueStore.Value): Result<object> => {
    if (typeof value !== "string") {
      return Effect.fail(persistenceError(`Failed to read ${entryName(key)}: it holds bytes, not JSON`))
    }
    try {
      const parsed: unknown = JSON.parse(value)
      if (typeof parsed === "object" && parsed !== null) return Effect.succeed(parsed)
      return Effect.fail(persistenceError(`Failed to read ${entryName(key)}: it holds JSON that is not an object`))
    } catch (cause) {
      return Effect.fail(persistenceError(`Failed to parse the value of ${entryName(key)}`, cause))
    }
  }

  const get = (key: string): Result<object | undefined> =>
    Effect.matchEffect(store.get(namespace + key), {
      onFailure: (error) =>
        error._tag === "KeyNotFound"
          ? Effect.undefined
          : Effect.fail(persistenceError(`Failed to get ${entryName(key)}`, error)),
      onSuccess: (value) => decode(key, value)
    })

  /** Checks and encodes one entry; the failure says which key and why, before anything is written. */
  const encode = ([key, value, ttl]: BackingEntry): EncodedEntry | EffectPersistence.PersistenceError => {
    const storedKey = namespace + key
    const badKey = checkKey(storedKey)
    if (badKey !== undefined) return persistenceError(`Failed to set ${entryName(key)}`, badKey)
    if (isExpiredAtOnce(ttl)) return { _tag: "Remove", key: storedKey }
    let json: string | undefined
    try {
      json = JSON.stringify(value)
    } catch (cause) {
      return persistenceError(`Failed to encode the value of ${entryName(key)} as JSON`, cause)
    }
    if (typeof json !== "string") {
      return persistenceError(`Failed to encode the value of ${entryName(key)} as JSON: it has no JSON form`)
    }
    const badValue = checkValue(json)
    if (badValue !== undefined) return persistenceError(`Failed to set ${entryName(key)}`, badValue)
    return { _tag: "Put", key: storedKey, json, ttl }
  }

  const removeStored = (storedKey: string): Result<void> =>
    Effect.catch(
      store.delete(storedKey),
      (error) =>
        error._tag === "KeyNotFound"
          ? Effect.void
          : Effect.fail(persistenceError(`Failed to remove ${entryName(storedKey.slice(namespace.length))}`, error))
    )

  // A TTL of zero or less means the entry is expired as it is written: no
  // reader may see it, nor the value it replaces, so the key is removed.
  const write = (entry: EncodedEntry): Result<void> =>
    entry._tag === "Remove" ? removeStored(entry.key) : Effect.mapError(
      Effect.asVoid(store.put(entry.key, entry.json, entry.ttl === undefined ? undefined : { duration: entry.ttl })),
      (error) => persistenceError(`Failed to set ${entryName(entry.key.slice(namespace.length))}`, error)
    )

  return {
    get,
    getMany: (keys) => Effect.forEach(keys, get) as Result<Arr.NonEmptyArray<object | undefined>>,
    set: (key, value, ttl) =>
      Effect.suspend(() => {
        const entry = encode([key, value, ttl])
        return entry instanceof EffectPersistence.PersistenceError ? Effect.fail(entry) : write(entry)
      }),
    setMany: (entries) =>
      Effect.suspend(() => {
        // Every entry is checked before the first write, so a bad one leaves the store unchanged; a key given
        // twice keeps its last entry, as a sequence of `set`s would, though the writes run concurrently.
        const byKey = new Map<string, EncodedEntry>()
        for (const entry of entries) {
          const encoded = encode(entry)
          if (encoded instanceof EffectPersistence.PersistenceError) return Effect.fail(encoded)
          byKey.set(encoded.key, encoded)
        }
        return Effect.forEach(byKey.values(), write, { concurrency: maxWritesInFlight, discard: true })
      }),
    remove: (key) => removeStored(namespace + key),
    clear: Effect.flatMap(
      store.keys,
      (keys) =>
        Effect.forEach(keys.filter((key) => key.startsWith(namespace)), removeStored, {
          concurrency: maxWritesInFlight,
          discard: true
        })
    )
  }
}

/**
 * Effect's `BackingPersistence` on a kvlog store. Entries of store `storeId`
 * live under the kvlog keys `<storeId>:<key>` (`%` and `:` in the store id
 * percent-encoded, as in Effect's backing stores), each value as its JSON
 * text, each TTL handed to kvlog as the put's `duration`. A TTL of zero or
 * less stores nothing and removes the key, as Effect's `Persistence.layer`
 * skips such writes. `clear` removes only its own store's entries.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeBackingPersistence = (
  store: KeyValueStore.KeyValueStoreService
): EffectPersistence.BackingPersistence["Service"] =>
  EffectPersistence.BackingPersistence.of({
    make: (storeId) => Effect.sync(() => makeBackingStore(store, storeId))
  })

/**
 * Effect's `BackingPersistence` on the kvlog store in context.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerBacking: Layer.Layer<EffectPersistence.BackingPersistence, never, KeyValueStore.KeyValueStore> =
  Layer.effect(
    EffectPersistence.BackingPersistence,
    Effect.map(KeyValueStore.KeyValueStore, makeBackingPersistence)
  )

/**
 * Effect's `BackingPersistence` on an in-memory kvlog store.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerBackingMemory: Layer.Layer<EffectPersistence.BackingPersistence> = Layer.provide(
  layerBacking,
  KeyValueStore.layerMemory
)

/**
 * Effect's `BackingPersistence` on a kvlog store backed by the log at
 * `options.path`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerBackingLog = (
  options: KeyValueStore.LogOptions
): Layer.Layer<EffectPersistence.BackingPersistence, KeyValueStore.LogOpenError> =>
  Layer.provide(layerBacking, KeyValueStore.layerLog(options))

// =============================================================================
// Persistence
// =============================================================================

/**
 * Effect's `Persistence` (what `PersistedCache` needs) on the kvlog store in
 * context: Effect's `Persistence.layer` over `layerBacking`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<EffectPersistence.Persistence, never, KeyValueStore.KeyValueStore> = Layer.provide(
  EffectPersistence.layer,
  layerBacking
)

/**
 * Effect's `Persistence` on an in-memory kvlog store.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<EffectPersistence.Persistence> = Layer.provide(layer, KeyValueStore.layerMemory)

/**
 * Effect's `Persistence` on a kvlog store backed by the log at
 * `options.path`: what a `PersistedCache` stores survives a restart, and an
 * expired entry leaves memory at its deadline and the file at the next
 * compaction.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerLog = (
  options: KeyValueStore.LogOptions
): Layer.Layer<EffectPersistence.Persistence, KeyValueStore.LogOpenError> =>
  Layer.provide(layer, KeyValueStore.layerLog(options))
