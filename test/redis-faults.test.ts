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
import {
  describeWithRedis,
  info,
  type RedisServer,
  startRedisCluster,
  startRedisServer,
  unreadBytesAt
} from "./support/redisServers.ts"
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

/**
 * When the test's scope closes, before the store's client is closed: starts
 * a killed server again and waits (at most 20 s) until the store answers. A
 * node-redis client closed with commands still queued waits for them to be
 * sent, and stops reconnecting: a test that failed before it restarted the
 * server itself would hang until its time limit.
 */
const recoverOnExit = (server: RedisServer, store: Store) =>
  Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if (!server.isRunning()) yield* Effect.promise(() => server.start())
      const giveUpAt = Date.now() + 20_000
      while (Exit.isFailure(yield* Effect.exit(store.has("probe"))) && Date.now() < giveUpAt) yield* pace
    })
  )

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
        yield* recoverOnExit(server, store)
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
        // The new server has only connections made since it started: the store's client reconnected.
        assert.isAtLeast(Number(info(server.port, "clients").get("connected_clients")), 2, "the store's client is connected to the new server")
        assert.strictEqual(yield* store.get("after-restart"), "v")
        // Acknowledged under appendfsync always: the new server replayed them from its append-only file.
        for (const key of acknowledged) assert.strictEqual(yield* store.get(key), `value of ${key}`)
        assert.isAtLeast(yield* store.size, acknowledged.length + 1)
        // The same client lost its connection (it logs that) and made a new one by itself.
        assert.isTrue(
          logs.entries.some((entry) => entry.level === "Warn" && /ECONNRESET|closed unexpectedly/.test(entry.message)),
          `the client saw its connection drop; it logged: ${logs.entries.map((entry) => entry.message).join(" | ").slice(0, 500)}`
        )
      })).pipe(Effect.provide(logs.layer))
    }, 60_000)
  })

  it.live("RedisStore.layer: while its client reconnects, a write fails at once and is never sent later", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* privateServer({ appendfsync: "always" })
      const store = yield* RedisStore.make({ prefix: freshPrefix("f"), timeout: timeoutMillis, client: { url: server.url } })
      yield* store.put("k", "acknowledged")
      yield* recoverOnExit(server, store)
      yield* Effect.promise(() => server.kill())
      for (const attempt of [timed(store.put("k", "while down")), timed(store.delete("k"))]) {
        const result = yield* attempt
        assertFailedInTime("a write while Redis is down", result, "failure")
        assert.isBelow(result.millis, timeoutMillis, "it failed at once, not at its timeout: nothing was queued")
      }
      yield* Effect.promise(() => server.start())
      const giveUpAt = Date.now() + 20_000
      while (Exit.isFailure(yield* Effect.exit(store.has("probe")))) {
        if (Date.now() > giveUpAt) assert.fail("the store did not recover within 20 s")
        yield* pace
      }
      // Had the failed writes waited in the client's queue, they would have run on reconnecting.
      assert.strictEqual(yield* store.get("k"), "acknowledged")
      yield* store.delete("k")
      yield* assertKeyNotFound(store.get("k"), "k")
    })).pipe(Effect.provide(captureLogs().layer)), 60_000)

  it.live.each([
    { label: "RedisStore.layer", cluster: false },
    { label: "RedisStore.layerCluster", cluster: true }
  ])("$label: operations interrupted by the hundred leave the client able to send", ({ cluster }) =>
    Effect.scoped(Effect.gen(function*() {
      const server = cluster ? undefined : yield* privateServer()
      const nodes = cluster
        ? yield* Effect.acquireRelease(Effect.promise(() => startRedisCluster()), (c) => Effect.promise(() => c.stop()))
        : undefined
      const store = nodes === undefined
        ? yield* RedisStore.make({ prefix: freshPrefix("f"), timeout: timeoutMillis, client: { url: server!.url } })
        : yield* RedisStore.makeCluster({
          prefix: freshPrefix("f"),
          timeout: timeoutMillis,
          cluster: { rootNodes: [...nodes.rootNodes] }
        })
      // Started by one timer and interrupted by the next, in the same turn of
      // the event loop, the puts have handed their commands to node-redis but
      // it has not written them yet (it writes at the turn's end): taking
      // them back from its queue is what corrupted it (in node-redis 5.12),
      // and the put after them then never reached Redis.
      const runFork = Effect.runForkWith(yield* Effect.context<never>())
      for (let round = 0; round < 20; round++) {
        yield* Effect.promise(() =>
          new Promise<void>((resolve) => {
            let fibers: Array<Fiber.Fiber<unknown, unknown>> = []
            setTimeout(() => {
              fibers = Array.from({ length: 100 }, (_, i) => runFork(store.put(`{same}:k${i}`, `round ${round}`)))
            }, 0)
            setTimeout(() => {
              for (const fiber of fibers) fiber.interruptUnsafe()
              resolve()
            }, 0)
          })
        )
        const after = yield* timed(store.put(`{same}:after`, `round ${round}`))
        assert.isTrue(Exit.isSuccess(after.exit), `round ${round}: the put after the interrupted ones succeeded, got ${String(after.exit)}`)
      }
      assert.strictEqual(yield* store.get("{same}:after"), "round 19")
    })), 60_000)})
