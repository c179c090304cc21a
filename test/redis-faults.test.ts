/**
 * The Redis store when Redis stops answering: every operation fails with a
 * `StorageError` within its timeout, never hangs (writes as their typed
 * failure, reads, whose types have no room for it, as their defect), and the
 * same store works again once Redis is back, without being rebuilt.
 *
 * Each test has a server of its own: it pauses it (SIGSTOP), or kills it
 * (SIGKILL) in the middle of a run and starts it again on the same port and
 * directory, its append-only file (`appendfsync always`) replayed.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { KeyValueStore } from "../src/index.ts"
import * as RedisStore from "../src/RedisStore.ts"
import { assertKeyNotFound } from "../src/testing/internal/assertions.ts"
import { captureLogs } from "./support/logHarness.ts"
import { describeWithRedis, info, type RedisServer, startRedisServer, unreadBytesAt } from "./support/redisServers.ts"
import { freshPrefix, storageErrorIn } from "./support/redisStores.ts"

type Store = KeyValueStore.KeyValueStoreService

const timeoutMillis = 400
/** How much later than its timeout a failure may arrive on a busy machine. */
const slackMillis = 1_500

/** A server of the test's own, stopped (and its directory removed) when the scope closes. */
const privateServer = (options: { readonly appendfsync?: "always" } = {}): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.promise(() => startRedisServer(options)), (server) => Effect.promise(() => server.stop()))

/**
 * Resumes a paused server when the test's scope closes, before the store's
 * client: closing the client waits for the replies of its commands in
 * flight, which a paused server would never send.
 */
const resumeOnExit = (server: RedisServer) => Effect.addFinalizer(() => Effect.sync(() => server.signal("SIGCONT")))

/** Both ways to build the store: through Effect's `Redis` service, and with a node-redis client of its own. */
const makers: ReadonlyArray<{
  readonly label: string
  readonly make: (url: string) => Effect.Effect<Store, unknown, Scope.Scope>
}> = [
  {
    label: "KeyValueStore.layerRedis over NodeRedis.layer",
    make: (url) =>
      Layer.build(
        KeyValueStore.layerRedis({ prefix: freshPrefix("f"), timeout: timeoutMillis }).pipe(
          Layer.provide(NodeRedis.layer({ url }))
        )
      ).pipe(Effect.map((context) => Context.get(context, KeyValueStore.KeyValueStore)))
  },
  {
    label: "RedisStore.layer",
    make: (url) => RedisStore.make({ prefix: freshPrefix("f"), timeout: timeoutMillis, client: { url } })
  }
]

/**
 * Between two attempts to use a store that is reconnecting: the attempt's own
 * answer is what the test waits for, this only keeps a store that fails at
 * once (its client closed for good) from spinning the CPU until the test gives up.
 */
const pace = Effect.sleep("10 millis")

/** Runs `operation`, and gives its exit and how long it took. */
const timed = <A, E>(operation: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const exit = yield* Effect.exit(operation)
    return { exit, millis: performance.now() - started }
  })

/** Asserts that an operation failed with a `StorageError` in `channel`, within the timeout and the slack. */
const assertFailedInTime = (
  what: string,
  result: { readonly exit: Exit.Exit<unknown, unknown>; readonly millis: number },
  channel: "failure" | "defect"
) => {
  const found = storageErrorIn(result.exit)
  assert.isDefined(found, `${what} failed with a StorageError, got ${String(result.exit)}`)
  assert.strictEqual(found!.channel, channel, `${what}: the StorageError is its ${channel}`)
  assert.isAtMost(result.millis, timeoutMillis + slackMillis, `${what} failed within its timeout`)
  return found!.error
}

describeWithRedis("Redis faults", () => {
  describe.each(makers)("$label", ({ make }) => {
    it.live("an operation Redis does not answer fails with StorageError once its timeout has passed; answers resume", () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* privateServer()
        const store = yield* make(server.url)
        yield* store.put("k", "before")
        yield* resumeOnExit(server)
        server.signal("SIGSTOP")
        const put = yield* timed(store.put("k", "during the pause"))
        const error = assertFailedInTime("put", put, "failure")
        assert.match(error.message, new RegExp(`did not answer within ${timeoutMillis} ms to SET key "k"`))
        assert.isAtLeast(put.millis, timeoutMillis - 5, "it waited for its timeout")
        assertFailedInTime("get", yield* timed(store.get("k")), "defect")
        assertFailedInTime("delete", yield* timed(store.delete("other")), "failure")
        assertFailedInTime("size", yield* timed(store.size), "defect")
        server.signal("SIGCONT")
        // The put was written before the pause: Redis applies it once it reads
        // it, as it would a write whose reply was lost.
        assert.strictEqual(yield* store.get("k"), "during the pause")
        yield* store.put("k", "after")
        assert.strictEqual(yield* store.get("k"), "after")
      })), 30_000)

    it.live("SIGKILL mid-run: operations in flight and those that follow fail with StorageError within the timeout; the restarted server serves the same store", () => {
      const logs = captureLogs()
      return Effect.scoped(Effect.gen(function*() {
        const server = yield* privateServer({ appendfsync: "always" })
        const store = yield* make(server.url)
        const acknowledged = Array.from({ length: 50 }, (_, i) => `acked-${i}`)
        yield* Effect.forEach(acknowledged, (key) => store.put(key, `value of ${key}`), { concurrency: 10, discard: true })
        const pidBefore = server.pid()

        // Paused, Redis reads nothing: commands sent now stay in flight until the kill.
        yield* resumeOnExit(server)
        server.signal("SIGSTOP")
        const inFlight = yield* Effect.forkChild(Effect.all([
          ...Array.from({ length: 10 }, (_, i) => Effect.map(timed(store.put(`in-flight-${i}`, "v")), (r) => ({ ...r, op: "put" as const }))),
          ...Array.from({ length: 10 }, (_, i) => Effect.map(timed(store.get(acknowledged[i])), (r) => ({ ...r, op: "get" as const })))
        ], { concurrency: "unbounded" }))
        while (unreadBytesAt(server.port) === 0) yield* Effect.yieldNow
        yield* Effect.promise(() => server.kill())

        for (const result of yield* Fiber.join(inFlight)) {
          assertFailedInTime(`in-flight ${result.op}`, result, result.op === "put" ? "failure" : "defect")
        }
        // With the server gone the client reconnects in the background; meanwhile operations time out.
        const following = [
          { op: "put", channel: "failure", result: yield* timed(store.put("while-down", "v")) },
          { op: "get", channel: "defect", result: yield* timed(store.get(acknowledged[0])) },
          { op: "has", channel: "defect", result: yield* timed(store.has(acknowledged[0])) },
          { op: "clear", channel: "failure", result: yield* timed(store.clear) }
        ] as const
        for (const { channel, op, result } of following) assertFailedInTime(`${op} while Redis is down`, result, channel)

        yield* Effect.promise(() => server.start())
        assert.notStrictEqual(server.pid(), pidBefore, "a new server process")
        // The store reconnects by itself: ask until a put succeeds (each attempt bounded by the timeout).
        const giveUpAt = Date.now() + 20_000
        let attempts = 0
        while (Exit.isFailure(yield* Effect.exit(store.put("after-restart", "v")))) {
          attempts++
          if (Date.now() > giveUpAt) assert.fail(`the store did not recover within 20 s (${attempts} attempts)`)
          yield* pace
        }
        assert.isAtLeast(Number(info(server.port, "clients").get("connected_clients")), 2, "the store's client is connected to the new server")
        assert.strictEqual(yield* store.get("after-restart"), "v")
        // Acknowledged under appendfsync always: the new server replayed them from its append-only file.
        for (const key of acknowledged) assert.strictEqual(yield* store.get(key), `value of ${key}`)
        assert.isAtLeast(yield* store.size, acknowledged.length + 1)
        // The client's own reconnection did it: it logged its attempts while the port was closed.
        assert.isTrue(
          logs.entries.some((entry) => entry.level === "Warn" && /ECONNREFUSED/.test(entry.message)),
          "the client tried to reconnect while the server was down"
        )
      })).pipe(Effect.provide(logs.layer))
    }, 60_000)
  })

  it.live("RedisStore.layer: a write that timed out while the client was reconnecting is never sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* privateServer({ appendfsync: "always" })
      const store = yield* RedisStore.make({ prefix: freshPrefix("f"), timeout: timeoutMillis, client: { url: server.url } })
      yield* store.put("k", "acknowledged")
      yield* Effect.promise(() => server.kill())
      assertFailedInTime("put while down", yield* timed(store.put("k", "timed out")), "failure")
      assertFailedInTime("delete while down", yield* timed(store.delete("k")), "failure")
      yield* Effect.promise(() => server.start())
      const giveUpAt = Date.now() + 20_000
      while (Exit.isFailure(yield* Effect.exit(store.has("probe")))) {
        if (Date.now() > giveUpAt) assert.fail("the store did not recover within 20 s")
        yield* pace
      }
      // Had the timed-out commands stayed in the client's queue, they would have run on reconnecting.
      assert.strictEqual(yield* store.get("k"), "acknowledged")
      yield* store.delete("k")
      yield* assertKeyNotFound(store.get("k"), "k")
    })).pipe(Effect.provide(captureLogs().layer)), 60_000)
})
