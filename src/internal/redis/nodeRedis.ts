/**
 * Commands over node-redis: a client made by `@effect/platform-node`'s
 * `NodeRedis` layer, or a cluster client.
 *
 * Both are made with node-redis's `disableOfflineQueue` unless the options
 * say otherwise: while a client reconnects, a command fails at once instead
 * of waiting in its queue. A queued command would be sent once the client
 * had reconnected, even after its operation had timed out and been reported
 * as failed; and node-redis's way to take one back (an `AbortSignal`)
 * corrupts its queue in node-redis 5.12 when two queued commands in a row
 * are aborted (fixed upstream by node-redis pull request 3320), after which
 * no command is ever written again.
 *
 * Only `kvlog/redis` imports this module: `kvlog` itself does not load the
 * `redis` package.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { createCluster, type RedisClusterOptions } from "redis"
import { InvalidInput, StorageError } from "../errors.ts"
import { promiseCommand, type RedisCommands, type SendCommand } from "./RedisCommands.ts"

/** What `NodeRedis.layer` takes: node-redis client options, and Effect's pool options for `Redis.reserve`. */
export type NodeRedisOptions = NonNullable<Parameters<typeof NodeRedis.layer>[0]>

type NodeRedisClient = NodeRedis.NodeRedis["Service"]["client"]

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Sends through one node-redis client, each command bounded by `millis`. */
const clientSender = (millis: number, client: () => Promise<NodeRedisClient> | NodeRedisClient): SendCommand => (args) =>
  promiseCommand(millis, async () => (await client()).sendCommand(args as Array<string>))

/** Commands over a client of `NodeRedis.layer(options)`, built in the current scope and closed with it. */
export const connectNodeRedis = (options: NodeRedisOptions | undefined) =>
(millis: number): Effect.Effect<RedisCommands, StorageError, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(NodeRedis.layer({ disableOfflineQueue: true, ...options })).pipe(
      Effect.mapError((error) =>
        new StorageError({ message: `could not connect to Redis: ${messageOf(error.cause)}`, cause: error.cause })
      )
    )
    const client = Context.get(context, NodeRedis.NodeRedis).client
    const send = clientSender(millis, () => client)
    return { label: "Redis", send: (_key, args) => send(args), masters: Effect.succeed([send]) }
  })

/**
 * Commands over a node-redis cluster client, connected in the current scope
 * and closed with it. A command goes to the master of its key's slot;
 * node-redis follows `MOVED` (refreshing its slot map) and `ASK` (for a slot
 * being migrated) by itself.
 */
export const connectCluster = (options: RedisClusterOptions) =>
(millis: number): Effect.Effect<RedisCommands, InvalidInput | StorageError, Scope.Scope> =>
  Effect.gen(function*() {
    if (options === null || typeof options !== "object" || !Array.isArray(options.rootNodes)) {
      return yield* Effect.fail(
        new InvalidInput({ message: "cluster must be node-redis's createCluster options, with a rootNodes array" })
      )
    }
    const runSync = Effect.runSyncWith(yield* Effect.context<never>())
    const cluster = yield* Effect.acquireRelease(
      Effect.sync(() => createCluster({ ...options, defaults: { disableOfflineQueue: true, ...options.defaults } })),
      (cluster) => Effect.ignoreCause(Effect.tryPromise(() => cluster.close()))
    )
    // node-redis rethrows an `error` event nobody listens to, which would end
    // the process on a passing socket failure; commands report their own.
    cluster.on("error", (cause) => {
      runSync(Effect.logWarning("kvlog Redis cluster client error", cause))
    })
    yield* Effect.tryPromise({
      try: () => cluster.connect(),
      catch: (cause) => new StorageError({ message: `could not connect to the Redis cluster: ${messageOf(cause)}`, cause })
    })
    return {
      label: "Redis Cluster",
      send: (key, args) =>
        promiseCommand(millis, () => cluster.sendCommand(key, undefined, args as Array<string>)),
      masters: Effect.sync(() => cluster.masters.map((master) => clientSender(millis, () => cluster.nodeClient(master))))
    } satisfies RedisCommands
  })
