/**
 * Builds the `KeyValueStore` service over Redis: every key under the store's
 * prefix, every value in the format of `storedValue.ts`, every TTL given to
 * Redis (`SET … PX`), every command bounded by the store's timeout.
 *
 * Single-key operations are one command each, so Redis's own ordering makes
 * them linearizable. `size`, `keys`, `entries`, `clear` and `stats` walk the
 * prefix with `SCAN` on every master: they cost O(keys on the server), and
 * they are not atomic with concurrent writers (see `docs/redis.md`).
 *
 * Arguments go through `validate.ts` first, like every other store's: a
 * refused call sends nothing.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { KeyValueStoreService, RedisOptions, StoreStats } from "../../KeyValueStore.ts"
import { InvalidInput, KeyNotFound, StorageError } from "../errors.ts"
import { ChangeHub, defaultChangeBufferSize } from "../observe/ChangeHub.ts"
import { checkKey, checkValue, ttlMillis } from "../validate.ts"
import type { Value } from "../Value.ts"
import { NoAnswer, type RedisCommands, type SendCommand } from "./RedisCommands.ts"
import { decodeValue, encodeValue } from "./storedValue.ts"

/** The timeout of a command unless the options say otherwise. */
export const defaultTimeoutMillis = 5_000

/** Keys per `SCAN` page (its `COUNT`) unless the options say otherwise. */
export const defaultScanCount = 1_000

/**
 * The longest TTL sent to Redis, in milliseconds. Redis refuses an expiry
 * past the range of a 64-bit integer; past 2^53 a JavaScript number no
 * longer prints as an integer. 2^53 − 1 ms is some 285,000 years.
 */
export const maxDurationMillis = Number.MAX_SAFE_INTEGER

/** The longest timeout: a Node timer set further ahead fires at once (it warns of an overflow). About 24.8 days. */
export const maxTimeoutMillis = 2 ** 31 - 1

interface ResolvedOptions {
  readonly prefix: string
  readonly timeoutMillis: number
  readonly scanCount: number
  readonly name: string
}

/**
 * The options, checked: a prefix checked as a key is (it is the start of
 * every stored key), a timeout checked as a duration is, and a whole
 * `scanCount`. The key and duration checks are `validate.ts`'s own; only the
 * name of the option in their messages changes.
 */
const resolveOptions = (options: RedisOptions): ResolvedOptions | InvalidInput => {
  if (options === null || typeof options !== "object") {
    return new InvalidInput({ message: `Redis store options must be an object, got ${String(options)}` })
  }
  const prefix: unknown = options.prefix
  const badPrefix = checkKey(prefix)
  if (badPrefix !== undefined) return new InvalidInput({ message: badPrefix.message.replace(/^key/, "prefix") })
  const timeout = ttlMillis({ duration: options.timeout ?? defaultTimeoutMillis })
  if (typeof timeout !== "number") return new InvalidInput({ message: timeout.message.replace(/^duration/, "timeout") })
  if (timeout === Infinity) {
    return new InvalidInput({ message: "timeout must be finite: without one, a lost connection could hang an operation" })
  }
  if (timeout > maxTimeoutMillis) {
    return new InvalidInput({ message: `timeout must be at most ${maxTimeoutMillis} ms, got ${timeout} ms` })
  }
  const scanCount: unknown = options.scanCount ?? defaultScanCount
  if (!(typeof scanCount === "number" && Number.isSafeInteger(scanCount) && scanCount >= 1)) {
    return new InvalidInput({ message: `scanCount must be a whole number of at least 1, got ${String(scanCount)}` })
  }
  const name: unknown = options.name
  if (name !== undefined && typeof name !== "string") {
    return new InvalidInput({ message: `name must be a string, got ${typeof name}` })
  }
  return { prefix: prefix as string, timeoutMillis: timeout, scanCount, name: name ?? `redis:${prefix as string}` }
}

/** `SCAN … MATCH` takes a glob: the prefix's own glob characters must match only themselves. */
export const scanPattern = (prefix: string): string => `${prefix.replace(/[\\*?[\]]/g, "\\$&")}*`

/** A key as messages quote it: long keys cut, so a message stays readable. */
const quote = (key: string): string => JSON.stringify(key.length > 200 ? key.slice(0, 200) + "…" : key)

const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/** A bulk-string reply as a string: node-redis gives strings, another client may give bytes. */
const replyText = (reply: unknown): string | null | undefined =>
  typeof reply === "string" || reply === null
    ? reply
    : reply instanceof Uint8Array
    ? Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength).toString("utf8")
    : undefined

/** An integer reply (node-redis gives numbers; RESP as text gives strings). */
const replyInteger = (reply: unknown): number => {
  const n = typeof reply === "number" ? reply : Number(replyText(reply))
  return Number.isInteger(n) ? n : NaN
}

/** Where a scan stands: which master, and its `SCAN` cursor there. */
interface ScanPosition {
  readonly master: number
  readonly cursor: string
}

/**
 * Checks the options, then connects (so bad options reach no server), then
 * builds the store over the connection.
 */
export const makeRedisStore = <E, R>(
  options: RedisOptions,
  connect: (timeoutMillis: number) => Effect.Effect<RedisCommands, E, R>
): Effect.Effect<KeyValueStoreService, InvalidInput | E, Scope.Scope | R> =>
  Effect.gen(function*() {
    const resolved = resolveOptions(options)
    if (resolved instanceof InvalidInput) return yield* Effect.fail(resolved)
    const { prefix, scanCount, timeoutMillis } = resolved
    const commands = yield* connect(timeoutMillis)
    const clock = yield* Clock.Clock
    const changes = new ChangeHub()
    yield* Effect.addFinalizer(() => Effect.sync(() => changes.close()))
    const label = commands.label
    const pattern = scanPattern(prefix)

    /**
     * Runs a command (bounded by the store's timeout where it is sent), its
     * failure a `StorageError` that says what was asked. `what` is called
     * only to build a message.
     */
    const run = <A>(what: () => string, command: Effect.Effect<A, unknown>): Effect.Effect<A, StorageError> =>
      Effect.mapError(command, (cause) =>
        cause instanceof NoAnswer
          ? new StorageError({ message: `${label} did not answer within ${cause.millis} ms to ${what()}` })
          : new StorageError({ message: `${label} failed to ${what()}: ${messageOf(cause)}`, cause }))

    const unexpected = (what: string, reply: unknown) =>
      new StorageError({ message: `${label} gave an unexpected reply to ${what}: ${String(reply).slice(0, 100)}` })

    /** The value of a `GET` reply; fails on a value kvlog did not write. */
    const valueOf = (key: string, reply: unknown): Effect.Effect<Value | undefined, StorageError> => {
      const text = replyText(reply)
      if (text === null) return Effect.succeed(undefined)
      if (text === undefined) return Effect.fail(unexpected(`GET of key ${quote(key)}`, reply))
      const value = decodeValue(text)
      return value === undefined
        ? Effect.fail(
          new StorageError({
            message: `key ${quote(key)} holds a value kvlog did not write (it does not begin with "s" or "b")`
          })
        )
        : Effect.succeed(value)
    }

    // -------------------------------------------------------------------------
    // Single keys
    // -------------------------------------------------------------------------

    // Reads have no `StorageError` in their types (the contract's, fixed for
    // every store): a failed read dies, with the `StorageError` as its defect.
    const get = (key: string): Effect.Effect<Value, KeyNotFound | InvalidInput> =>
      Effect.suspend((): Effect.Effect<Value, KeyNotFound | InvalidInput> => {
        const invalid = checkKey(key)
        if (invalid !== undefined) return Effect.fail(invalid)
        const stored = prefix + key
        return Effect.flatMap(
          Effect.orDie(Effect.flatMap(
            run(() => `GET key ${quote(key)}`, commands.send(stored, ["GET", stored])),
            (reply) => valueOf(key, reply)
          )),
          (value) => value === undefined ? Effect.fail(new KeyNotFound({ key })) : Effect.succeed(value)
        )
      })

    const put = (
      key: string,
      value: Value,
      putOptions?: { readonly duration?: Duration.Input }
    ): Effect.Effect<Value, InvalidInput | StorageError> =>
      Effect.suspend((): Effect.Effect<Value, InvalidInput | StorageError> => {
        const invalid = checkKey(key) ?? checkValue(value)
        if (invalid !== undefined) return Effect.fail(invalid)
        const ttl = ttlMillis(putOptions)
        if (typeof ttl !== "number") return Effect.fail(ttl)
        // Redis counts whole milliseconds: a TTL is rounded up, so a key is
        // never gone before the duration it was put with.
        const millis = ttl === Infinity ? undefined : Math.ceil(ttl)
        if (millis !== undefined && millis > maxDurationMillis) {
          return Effect.fail(
            new InvalidInput({ message: `duration of ${ttl} ms is over Redis's limit of ${maxDurationMillis} ms` })
          )
        }
        const stored = prefix + key
        const encoded = encodeValue(value)
        // Without PX, SET also clears an earlier TTL of the key: the contract's "kept until deleted".
        const args = millis === undefined ? ["SET", stored, encoded] : ["SET", stored, encoded, "PX", String(millis)]
        return Effect.map(run(() => `SET key ${quote(key)}`, commands.send(stored, args)), () => {
          if (changes.active) {
            changes.emit({
              _tag: "Put",
              key,
              deadline: millis === undefined ? undefined : clock.currentTimeMillisUnsafe() + millis
            })
          }
          return value
        })
      })

    /** Runs `operation` once `key` passes `checkKey`. */
    const withKey = <A, E>(key: string, operation: (stored: string) => Effect.Effect<A, E>) =>
      Effect.suspend((): Effect.Effect<A, E | InvalidInput> => {
        const invalid = checkKey(key)
        return invalid === undefined ? operation(prefix + key) : Effect.fail(invalid)
      })

    const del = (key: string): Effect.Effect<void, KeyNotFound | InvalidInput | StorageError> =>
      withKey(key, (stored) =>
        Effect.flatMap(run(() => `DEL key ${quote(key)}`, commands.send(stored, ["DEL", stored])), (reply) => {
          if (replyInteger(reply) !== 1) return Effect.fail(new KeyNotFound({ key }))
          if (changes.active) changes.emit({ _tag: "Delete", key })
          return Effect.void
        }))

    const has = (key: string): Effect.Effect<boolean, InvalidInput> =>
      withKey(key, (stored) =>
        Effect.orDie(Effect.map(
          run(() => `EXISTS key ${quote(key)}`, commands.send(stored, ["EXISTS", stored])),
          (reply) => replyInteger(reply) === 1
        )))

    const timeToLive = (key: string): Effect.Effect<Option.Option<Duration.Duration>, KeyNotFound | InvalidInput> =>
      withKey(key, (stored) =>
        Effect.flatMap(
          Effect.orDie(run(() => `PTTL key ${quote(key)}`, commands.send(stored, ["PTTL", stored]))),
          (reply) => {
            const millis = replyInteger(reply)
            if (millis === -2) return Effect.fail(new KeyNotFound({ key }))
            if (millis === -1) return Effect.succeed(Option.none())
            if (millis >= 0) return Effect.succeed(Option.some(Duration.millis(millis)))
            return Effect.die(unexpected(`PTTL of key ${quote(key)}`, reply))
          }
        ))

    // -------------------------------------------------------------------------
    // The whole prefix: SCAN on every master
    // -------------------------------------------------------------------------

    const scanStep = (send: SendCommand, cursor: string) =>
      Effect.flatMap(
        run(() => `SCAN the keys of prefix ${quote(prefix)}`, send(["SCAN", cursor, "MATCH", pattern, "COUNT", String(scanCount)])),
        (reply) => {
          const [next, keys] = Array.isArray(reply) ? reply : []
          const nextCursor = replyText(next)
          if (typeof nextCursor !== "string" || !Array.isArray(keys)) return Effect.fail(unexpected("SCAN", reply))
          const texts: Array<string> = []
          for (const key of keys) {
            const text = replyText(key)
            if (typeof text !== "string") return Effect.fail(unexpected("SCAN", reply))
            texts.push(text)
          }
          return Effect.succeed({ next: nextCursor, keys: texts })
        }
      )

    /**
     * The prefix's keys (stored form), a `SCAN` page at a time on each
     * master in turn, each key once, handed to `onPage`, whose results the
     * stream emits as one chunk. `SCAN` may return a key twice (while Redis
     * resizes its table): the keys already seen in this run are dropped.
     */
    const scan = <A>(
      onPage: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<A>, StorageError>
    ): Stream.Stream<A, StorageError> =>
      Stream.unwrap(Effect.map(run(() => "list the masters", commands.masters), (masters) => {
        const seen = new Set<string>()
        if (masters.length === 0) return Stream.empty
        return Stream.paginate<ScanPosition, A, StorageError>({ master: 0, cursor: "0" }, ({ cursor, master }) =>
          Effect.flatMap(scanStep(masters[master], cursor), ({ keys, next }) => {
            const fresh: Array<string> = []
            for (const key of keys) {
              // MATCH already keeps to the prefix; a key outside it would be another store's.
              if (!seen.has(key) && key.startsWith(prefix)) {
                seen.add(key)
                fresh.push(key)
              }
            }
            const following: Option.Option<ScanPosition> = next !== "0"
              ? Option.some({ master, cursor: next })
              : master + 1 < masters.length
              ? Option.some({ master: master + 1, cursor: "0" })
              : Option.none()
            return Effect.map(
              fresh.length === 0 ? Effect.succeed([]) : onPage(fresh),
              (out) => [out, following] as const
            )
          }))
      }))

    const unprefixed = (stored: string) => stored.slice(prefix.length)

    const size: Effect.Effect<number> = Effect.orDie(
      Stream.runFold(scan((keys) => Effect.succeed([keys.length])), () => 0, (total, page) => total + page)
    )

    const keys: Effect.Effect<ReadonlyArray<string>> = Effect.orDie(
      Stream.runCollect(scan((keys) => Effect.succeed(keys.map(unprefixed))))
    )

    /** The values of a page's keys, one `GET` each, sent together; keys gone meanwhile are left out. */
    const fetchPage = (keys: ReadonlyArray<string>) =>
      Effect.map(
        Effect.forEach(
          keys,
          (stored) =>
            Effect.flatMap(
              run(() => `GET key ${quote(unprefixed(stored))}`, commands.send(stored, ["GET", stored])),
              (reply) => valueOf(unprefixed(stored), reply)
            ),
          { concurrency: "unbounded" }
        ),
        (values) => {
          const entries: Array<readonly [string, Value]> = []
          for (let i = 0; i < keys.length; i++) {
            const value = values[i]
            if (value !== undefined) entries.push([unprefixed(keys[i]), value])
          }
          return entries
        }
      )

    const entries: Stream.Stream<readonly [string, Value]> = Stream.orDie(scan(fetchPage))

    const clear: Effect.Effect<void, StorageError> = Effect.andThen(
      Stream.runDrain(scan((keys) =>
        Effect.as(
          Effect.forEach(keys, (stored) => run(() => `DEL key ${quote(unprefixed(stored))}`, commands.send(stored, ["DEL", stored])), {
            concurrency: "unbounded",
            discard: true
          }),
          []
        )
      )),
      Effect.sync(() => {
        if (changes.active) changes.emit({ _tag: "Cleared" })
      })
    )

    /** Counts the prefix's keys and, with one `PTTL` each, those with a TTL. */
    const stats: Effect.Effect<StoreStats> = Effect.orDie(
      Effect.map(
        Stream.runFold(
          scan((keys) =>
            Effect.map(
              Effect.forEach(
                keys,
                (stored) =>
                  run(() => `PTTL key ${quote(unprefixed(stored))}`, commands.send(stored, ["PTTL", stored])),
                { concurrency: "unbounded" }
              ),
              (replies) => {
                let live = 0
                let withDeadline = 0
                for (const reply of replies) {
                  const millis = replyInteger(reply)
                  if (millis === -2) continue
                  live++
                  if (millis >= 0) withDeadline++
                }
                return [{ live, withDeadline }]
              }
            )
          ),
          () => ({ live: 0, withDeadline: 0 }),
          (total, page) => ({ live: total.live + page.live, withDeadline: total.withDeadline + page.withDeadline })
        ),
        // Redis reclaims expired keys itself and counts them for the whole server, not per prefix.
        ({ live, withDeadline }): StoreStats => ({ storedEntries: live, entriesWithDeadline: withDeadline, reclaimed: 0 })
      )
    )

    return {
      name: resolved.name,
      get,
      put,
      delete: del,
      has,
      timeToLive,
      size,
      keys,
      entries,
      clear,
      // Redis decides for each write: one it refuses fails with its reason.
      writeStatus: Effect.succeed({ _tag: "Writable" }),
      // Redis rewrites its append-only file itself (BGREWRITEAOF): nothing for a client to do.
      compact: Effect.void,
      stats,
      changes: changes.subscribe(defaultChangeBufferSize),
      changesWith: (changesOptions) => changes.subscribeWith(changesOptions)
    } satisfies KeyValueStoreService
  }).pipe(Effect.withSpan("kvlog.open", { attributes: { "kvlog.store.kind": "redis" } }))
