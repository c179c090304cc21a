/**
 * What the Redis store promises beyond kvlog's contract, on a private
 * server: the stored format (values keep their type, and other clients can
 * read and write it), prefixes that keep stores apart (glob characters
 * included), TTLs rounded up to whole milliseconds, bad input that sends
 * nothing, what a scan sees while writers run, the change stream of its own
 * writes, and the options it refuses.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redis from "effect/persistence/Redis"
import * as Stream from "effect/Stream"
import { KeyValueStore } from "../src/index.ts"
import * as RedisStore from "../src/RedisStore.ts"
import { assertInvalidInput, assertKeyNotFound } from "../src/testing/internal/assertions.ts"
import { describeWithRedis, info, redisCli, type RedisServer, startRedisServer } from "./support/redisServers.ts"
import { freshPrefix, storageErrorIn } from "./support/redisStores.ts"

type Store = KeyValueStore.KeyValueStoreService

describeWithRedis("the Redis store", () => {
  let server: RedisServer | undefined
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(() => server?.stop())
  const running = (): RedisServer => {
    if (server === undefined) throw new Error("the Redis server did not start")
    return server
  }

  /**
   * The `Redis` service of `NodeRedis.layer`, with every command the store
   * sends through it recorded in `sent`: what a user's own service could do.
   */
  const recording = () => {
    const sent: Array<ReadonlyArray<string>> = []
    const layer = Layer.effect(
      Redis.Redis,
      Effect.map(Effect.service(Redis.Redis), (redis) =>
        Redis.Redis.of({
          ...redis,
          send: <A>(command: string, ...args: ReadonlyArray<string>) => {
            sent.push([command, ...args])
            return redis.send<A>(command, ...args)
          }
        }))
    ).pipe(Layer.provide(NodeRedis.layer({ url: running().url })))
    return { sent, layer }
  }

  /** Runs `use` with a store on the recording service, under `options` (a fresh prefix by default). */
  const withRecordedStore = <A, E>(
    use: (store: Store, sent: Array<ReadonlyArray<string>>, prefix: string) => Effect.Effect<A, E>,
    options: Partial<KeyValueStore.RedisOptions> = {}
  ) => {
    const { layer, sent } = recording()
    const prefix = options.prefix ?? freshPrefix("s")
    return Effect.scoped(Effect.flatMap(KeyValueStore.makeRedis({ ...options, prefix }), (store) => use(store, sent, prefix)))
      .pipe(Effect.provide(layer))
  }

  const withStore = <A, E>(use: (store: Store, prefix: string) => Effect.Effect<A, E>, prefix = freshPrefix("s")) =>
    Effect.scoped(Effect.flatMap(RedisStore.make({ prefix, client: { url: running().url } }), (store) => use(store, prefix)))

  const raw = (...args: ReadonlyArray<string>) => redisCli(running().port, ...args)

  describe("the stored format", () => {
    it.live("a string is stored as s and the string, bytes as b and their base64", () =>
      withStore((store, prefix) =>
        Effect.gen(function*() {
          yield* store.put("text", "héllo")
          yield* store.put("bytes", new Uint8Array([1, 2, 3, 255]))
          yield* store.put("empty", new Uint8Array(0))
          assert.strictEqual(raw("GET", `${prefix}text`), "shéllo")
          assert.strictEqual(raw("GET", `${prefix}bytes`), "bAQID/w==")
          assert.strictEqual(raw("GET", `${prefix}empty`), "b")
        })))

    it.live("a string that reads like encoded bytes comes back as that string", () =>
      withStore((store, prefix) =>
        Effect.gen(function*() {
          for (const value of ["bAQID", "sAQID", "b", "s", ""]) {
            yield* store.put("k", value)
            assert.strictEqual(yield* store.get("k"), value)
            assert.strictEqual(raw("GET", `${prefix}k`), `s${value}`)
          }
        })))

    it.live("values another client writes in the format are read with their type", () =>
      withStore((store, prefix) =>
        Effect.gen(function*() {
          raw("SET", `${prefix}text`, "sfrom redis-cli")
          raw("SET", `${prefix}bytes`, "bAAH/")
          assert.strictEqual(yield* store.get("text"), "from redis-cli")
          const bytes = yield* store.get("bytes")
          assert.instanceOf(bytes, Uint8Array)
          assert.deepStrictEqual(Array.from(bytes as Uint8Array), [0, 1, 255])
          const entries = new Map(yield* Stream.runCollect(store.entries))
          assert.strictEqual(entries.get("text"), "from redis-cli")
        })))

    it.live("a value kvlog did not write makes get die with a StorageError that names the key", () =>
      withStore((store, prefix) =>
        Effect.gen(function*() {
          raw("SET", `${prefix}foreign`, "plain text")
          const found = storageErrorIn(yield* Effect.exit(store.get("foreign")))
          assert.strictEqual(found?.channel, "defect")
          assert.match(found?.error.message ?? "", /"foreign" holds a value kvlog did not write/)
        })))
  })

  describe("prefixes", () => {
    it.live("two stores with their own prefix on one server do not see each other's keys", () =>
      Effect.gen(function*() {
        const base = freshPrefix("apps")
        yield* withStore((app1) =>
          withStore((app2) =>
            Effect.gen(function*() {
              yield* app1.put("user", "in app1")
              yield* app1.put("only-app1", "x")
              yield* app2.put("user", "in app2")
              assert.strictEqual(yield* app1.get("user"), "in app1")
              assert.strictEqual(yield* app2.get("user"), "in app2")
              yield* assertKeyNotFound(app2.get("only-app1"), "only-app1")
              assert.strictEqual(yield* app1.size, 2)
              assert.strictEqual(yield* app2.size, 1)
              assert.sameMembers([...(yield* app1.keys)], ["user", "only-app1"])
              yield* app1.clear
              assert.strictEqual(yield* app1.size, 0)
              assert.strictEqual(yield* app2.get("user"), "in app2")
              assert.strictEqual(yield* app2.size, 1)
              yield* app2.clear
            }), `${base}app2:`), `${base}app1:`)
      }))

    it.live("a prefix's glob characters match only themselves in its scans", () =>
      Effect.gen(function*() {
        const base = freshPrefix("glob")
        // Unescaped, "a*:" would match every other prefix here, "a?:" and "a[b]:" would match "ab:", and
        // "a\\:" would match "a:" and not itself.
        const prefixes = ["a*:", "a?:", "a[b]:", "ab:", "a\\:", "a:"].map((suffix) => base + suffix)
        yield* Effect.scoped(Effect.gen(function*() {
          const stores = yield* Effect.forEach(prefixes, (prefix) => RedisStore.make({ prefix, client: { url: running().url } }))
          for (const [i, store] of stores.entries()) yield* store.put("k", `store ${i}`)
          for (const [i, store] of stores.entries()) {
            assert.deepStrictEqual(yield* store.keys, ["k"], `the store prefixed ${prefixes[i]} lists its own key only`)
            assert.strictEqual(yield* store.size, 1, `the store prefixed ${prefixes[i]} counts its own key only`)
            assert.deepStrictEqual(Array.from(yield* Stream.runCollect(store.entries)), [["k", `store ${i}`]])
          }
          yield* stores[0].clear
          for (const store of stores.slice(1)) assert.strictEqual(yield* store.size, 1)
          for (const store of stores) yield* store.clear
        }))
      }))
  })

  describe("TTL in whole milliseconds", () => {
    const pxOf = (sent: ReadonlyArray<ReadonlyArray<string>>) => {
      const set = sent.findLast((args) => args[0] === "SET")
      assert.isDefined(set)
      const at = set!.indexOf("PX")
      return at === -1 ? undefined : set![at + 1]
    }

    it.live.each([
      { label: "0.001 ms", duration: 0.001, px: "1" },
      { label: "0.3 ms", duration: 0.3, px: "1" },
      { label: "1 ms", duration: 1, px: "1" },
      { label: "1.2 ms", duration: 1.2, px: "2" },
      { label: "1 ns", duration: Duration.nanos(1n), px: "1" },
      { label: "1500 µs", duration: Duration.micros(1500n), px: "2" },
      { label: "\"1 second\"", duration: "1 second", px: "1000" },
      { label: "1 hour", duration: Duration.hours(1), px: "3600000" }
    ])("a duration of $label is sent as PX $px: rounded up, never down", ({ duration, px }) =>
      withRecordedStore((store, sent) =>
        Effect.gen(function*() {
          yield* store.put("k", "v", { duration: duration as Duration.Input })
          assert.strictEqual(pxOf(sent), px)
        })))

    it.live("a put without a duration, or with Duration.infinity, sends no PX and clears the key's TTL", () =>
      withRecordedStore((store, sent) =>
        Effect.gen(function*() {
          for (const options of [undefined, {}, { duration: Duration.infinity }]) {
            yield* store.put("k", "with ttl", { duration: "1 hour" })
            assert.isTrue(Option.isSome(yield* store.timeToLive("k")))
            yield* store.put("k", "kept", options)
            assert.isUndefined(pxOf(sent))
            assert.deepStrictEqual(yield* store.timeToLive("k"), Option.none())
          }
        })))

    it.live("timeToLive is Redis's PTTL: what is left of the duration", () =>
      withRecordedStore((store) =>
        Effect.gen(function*() {
          yield* store.put("k", "v", { duration: "10 seconds" })
          const left = Duration.toMillis(Option.getOrThrow(yield* store.timeToLive("k")))
          assert.isAtMost(left, 10_000)
          assert.isAbove(left, 9_000)
        })))

    it.live("the longest duration Redis can take, 2^53 − 1 ms, is accepted; past it, InvalidInput and nothing sent", () =>
      withRecordedStore((store, sent) =>
        Effect.gen(function*() {
          yield* store.put("k", "v", { duration: Number.MAX_SAFE_INTEGER })
          assert.strictEqual(pxOf(sent), String(Number.MAX_SAFE_INTEGER))
          const before = sent.length
          const message = yield* assertInvalidInput(store.put("k", "new", { duration: Number.MAX_SAFE_INTEGER + 2 }), [
            /duration/,
            /Redis's limit of 9007199254740991 ms/
          ])
          assert.notMatch(message, /e\+/)
          yield* assertInvalidInput(store.put("k", "new", { duration: Duration.days(1e9) }), [/duration/])
          assert.strictEqual(sent.length, before)
          assert.strictEqual(yield* store.get("k"), "v")
        })))
  })

  describe("bad input sends nothing", () => {
    const untyped = (store: Store, name: "get" | "put" | "delete" | "has" | "timeToLive", ...args: Array<unknown>) =>
      (store[name] as (...args: Array<unknown>) => Effect.Effect<unknown, unknown>)(...args)
    const longKey = "k".repeat(KeyValueStore.maxKeyLength + 1)
    const cases: ReadonlyArray<{ readonly label: string; readonly call: (store: Store) => Effect.Effect<unknown, unknown> }> = [
      { label: "put of a number key", call: (store) => untyped(store, "put", 42, "v") },
      { label: "put of a key over maxKeyLength", call: (store) => store.put(longKey, "v") },
      { label: "put of a key with a lone surrogate", call: (store) => store.put("k\uD800", "v") },
      { label: "put of a number value", call: (store) => untyped(store, "put", "k", 42) },
      { label: "put of a Uint16Array", call: (store) => untyped(store, "put", "k", new Uint16Array(2)) },
      { label: "put of a value over maxValueLength", call: (store) => store.put("k", new Uint8Array(KeyValueStore.maxValueLength + 1)) },
      { label: "put of a string with a lone surrogate", call: (store) => store.put("k", "v\uDC00") },
      { label: "put with a zero duration", call: (store) => store.put("k", "v", { duration: 0 }) },
      { label: "put with a negative duration", call: (store) => store.put("k", "v", { duration: "-5 seconds" }) },
      { label: "put with a NaN duration", call: (store) => store.put("k", "v", { duration: NaN }) },
      { label: "put with a duration that is not one", call: (store) => untyped(store, "put", "k", "v", { duration: "soon" }) },
      { label: "put with options that are a string", call: (store) => untyped(store, "put", "k", "v", "5 seconds") },
      { label: "get of a number key", call: (store) => untyped(store, "get", 1) },
      { label: "get of a key with a lone surrogate", call: (store) => store.get("\uDFFF") },
      { label: "delete of a key over maxKeyLength", call: (store) => store.delete(longKey) },
      { label: "has of null", call: (store) => untyped(store, "has", null) },
      { label: "timeToLive of a key with a lone surrogate", call: (store) => store.timeToLive("a\uD800") },
      { label: "changesWith a bufferSize of 1", call: (store) => Stream.runDrain(store.changesWith({ bufferSize: 1 })) }
    ]
    it.live.each(cases)("$label: InvalidInput, no command sent", ({ call }) =>
      withRecordedStore((store, sent) =>
        Effect.gen(function*() {
          yield* assertInvalidInput(call(store), [/./])
          assert.deepStrictEqual(sent, [])
        })))

    it.live.each([
      { label: "a prefix that is not a string", options: { prefix: 5 }, message: /prefix must be a string, got number 5/ },
      { label: "a prefix over maxKeyLength", options: { prefix: "p".repeat(KeyValueStore.maxKeyLength + 1) }, message: /prefix is 16385 UTF-16 code units long/ },
      { label: "a prefix with a lone surrogate", options: { prefix: "p\uD800" }, message: /prefix contains a lone UTF-16 surrogate/ },
      { label: "a timeout of 0", options: { prefix: "p:", timeout: 0 }, message: /timeout must be positive/ },
      { label: "a timeout that is not a duration", options: { prefix: "p:", timeout: "soon" }, message: /timeout must be a Duration input/ },
      { label: "an infinite timeout", options: { prefix: "p:", timeout: Duration.infinity }, message: /timeout must be finite/ },
      { label: "a timeout past Node's timers (25 days)", options: { prefix: "p:", timeout: "25 days" }, message: /timeout must be at most 2147483647 ms/ },
      { label: "a scanCount of 0", options: { prefix: "p:", scanCount: 0 }, message: /scanCount must be a whole number of at least 1, got 0/ },
      { label: "a scanCount of 2.5", options: { prefix: "p:", scanCount: 2.5 }, message: /scanCount must be a whole number/ },
      { label: "a name that is not a string", options: { prefix: "p:", name: 7 }, message: /name must be a string/ }
    ])("options with $label are refused with InvalidInput before connecting", ({ message, options }) =>
      Effect.gen(function*() {
        const connections = () => Number(info(running().port, "stats").get("total_connections_received"))
        const before = connections()
        const make = RedisStore.make({ ...(options as unknown as KeyValueStore.RedisOptions), client: { url: running().url } })
        yield* assertInvalidInput(Effect.scoped(make), [message])
        assert.strictEqual(connections(), before + 1, "no connection was made (but the one counting them)")
        const { layer, sent } = recording()
        yield* assertInvalidInput(
          Effect.scoped(KeyValueStore.makeRedis(options as unknown as KeyValueStore.RedisOptions)).pipe(Effect.provide(layer)),
          [message]
        )
        assert.deepStrictEqual(sent, [])
      }))
  })

  describe("scans while writers run", () => {
    it.live("size, keys and entries see every key left alone during the call, once, and no key never put", () =>
      withRecordedStore((store) =>
        Effect.gen(function*() {
          const stable = Array.from({ length: 600 }, (_, i) => `stable-${i}`)
          const churn = Array.from({ length: 60 }, (_, i) => `churn-${i}`)
          yield* Effect.forEach(stable, (key) => store.put(key, `value of ${key}`), { concurrency: 64, discard: true })
          let writes = 0
          const writer = Effect.gen(function*() {
            for (let i = 0;; i++) {
              const key = churn[i % churn.length]
              yield* (i % 3 === 2 ? Effect.ignore(store.delete(key)) : store.put(key, `w${i}`))
              writes++
            }
          })
          const fiber = yield* Effect.forkChild(Effect.all([writer, writer, writer], { concurrency: "unbounded" }))
          const allowed = new Set([...stable, ...churn])
          for (let round = 0; round < 6; round++) {
            const writesBefore = writes
            const keys = yield* store.keys
            const size = yield* store.size
            const entries = yield* Stream.runCollect(store.entries)
            assert.isAbove(writes, writesBefore, "writes ran during the scans")
            for (const listed of [keys, entries.map(([key]) => key)]) {
              assert.strictEqual(new Set(listed).size, listed.length, "no key twice")
              for (const key of stable) assert.include(listed, key)
              for (const key of listed) assert.isTrue(allowed.has(key), `${key} was put`)
            }
            assert.isAtLeast(size, stable.length)
            assert.isAtMost(size, stable.length + churn.length)
            for (const [key, value] of entries) {
              if (key.startsWith("stable-")) assert.strictEqual(value, `value of ${key}`)
            }
          }
          yield* Fiber.interrupt(fiber)
        }), { scanCount: 20 }))
  })

  describe("stats", () => {
    it.live("counts the prefix's keys and those with a TTL; Redis reclaims expired keys itself, so reclaimed is 0", () =>
      withStore((store, prefix) =>
        Effect.gen(function*() {
          yield* store.put("a", "1")
          yield* store.put("b", "2", { duration: "1 hour" })
          yield* store.put("c", new Uint8Array([3]), { duration: "1 hour" })
          raw("SET", `${freshPrefix("elsewhere")}x`, "sother store")
          assert.deepStrictEqual(yield* store.stats, { storedEntries: 3, entriesWithDeadline: 2, reclaimed: 0 })
          yield* store.clear
          assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 0 })
          assert.strictEqual(raw("EXISTS", `${prefix}a`), "0")
        })))
  })

  describe("the change stream", () => {
    it.live("reports this store's acknowledged writes in order, and not another client's", () =>
      withStore((store, prefix) =>
        Effect.gen(function*() {
          const events = yield* Effect.forkChild(Stream.runCollect(Stream.take(store.changes, 4)))
          yield* Effect.yieldNow
          yield* withStore((other) => other.put("by another client", "x"), prefix)
          yield* store.put("a", "1")
          const before = Date.now()
          yield* store.put("b", "2", { duration: 60_000 })
          const after = Date.now()
          yield* store.delete("a")
          yield* assertKeyNotFound(store.delete("a"), "a")
          yield* store.clear
          const seen = yield* Fiber.join(events)
          assert.deepStrictEqual(seen.map((event) => event._tag), ["Put", "Put", "Delete", "Cleared"])
          assert.deepStrictEqual(seen[0], { _tag: "Put", key: "a", deadline: undefined })
          const deadline = seen[1]._tag === "Put" ? seen[1].deadline ?? 0 : 0
          assert.isAtLeast(deadline, before + 60_000)
          assert.isAtMost(deadline, after + 60_000)
          assert.deepStrictEqual(seen[2], { _tag: "Delete", key: "a" })
        })))
  })

  describe("service keys", () => {
    class Sessions extends KeyValueStore.Service<Sessions>()("test/redis/Sessions") {}

    it.live("a Service class provides a Redis store under its own key, with layerRedis", () =>
      Effect.gen(function*() {
        const sessions = yield* Sessions
        yield* sessions.put("s1", "ada", { duration: "1 minute" })
        assert.strictEqual(yield* sessions.get("s1"), "ada")
        assert.isTrue((yield* sessions.keys).includes("s1"))
        yield* sessions.clear
      }).pipe(Effect.provide(Sessions.layerRedis({ prefix: freshPrefix("svc") }).pipe(
        Layer.provide(NodeRedis.layer({ url: running().url }))
      ))))

    it.live("layerAs gives RedisStore's store under a key of one's own", () =>
      Effect.gen(function*() {
        const sessions = yield* Sessions
        yield* sessions.put("s1", "grace")
        assert.strictEqual(yield* sessions.get("s1"), "grace")
        assert.deepStrictEqual(Exit.isSuccess(yield* Effect.exit(sessions.clear)), true)
      }).pipe(Effect.provide(RedisStore.layerAs(Sessions, { prefix: freshPrefix("svc"), client: { url: running().url } }))))
  })
})
