/**
 * What the Redis store needs of a connection, whatever makes it: a way to
 * send a command about one key (to the node that holds the key, in a
 * cluster), and a way to send a command to every master (a `SCAN` has to
 * visit each of them). Three things make one: Effect's `Redis` service (a
 * user's own, or `NodeRedis`'s), a node-redis client, a node-redis cluster.
 */
import * as Effect from "effect/Effect"
import * as Redis from "effect/persistence/Redis"

/** Sends one command; fails with whatever the client failed with. */
export type SendCommand = (args: ReadonlyArray<string>) => Effect.Effect<unknown, unknown>

export interface RedisCommands {
  /** "Redis" or "Redis Cluster", for error messages. */
  readonly label: string
  /** Sends a command whose first key is `key`, to the node that serves it. */
  readonly send: (key: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, unknown>
  /** One sender per master, read afresh for each scan (a cluster's masters may change). */
  readonly masters: Effect.Effect<ReadonlyArray<SendCommand>, unknown>
}

/**
 * Commands over Effect's `Redis` service: one server (or a proxy that acts as
 * one). The service cannot abort a command, so one that times out while the
 * client waits to reconnect is still sent once it has reconnected.
 */
export const fromRedisService = (redis: Redis.Redis["Service"]): RedisCommands => {
  const send: SendCommand = (args) => Effect.mapError(redis.send(args[0], ...args.slice(1)), (error) => error.cause)
  return {
    label: "Redis",
    send: (_key, args) => send(args),
    masters: Effect.succeed([send])
  }
}

/** Commands over the `Redis` service in context. */
export const fromContext: Effect.Effect<RedisCommands, never, Redis.Redis> = Effect.map(
  Effect.service(Redis.Redis),
  fromRedisService
)
