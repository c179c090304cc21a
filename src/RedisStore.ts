/**
 * kvlog's `KeyValueStore` service over Redis, through node-redis (the
 * `redis` package, which `@effect/platform-node` uses too): on one server,
 * with a client made from connection options by `@effect/platform-node`'s
 * `NodeRedis` layer, or on a Redis Cluster. The store itself is the one of
 * `KeyValueStore.layerRedis`: see `KeyValueStore.RedisOptions` for what it
 * guarantees and how it differs from the in-memory store, and
 * `docs/redis.md`.
 *
 * ```ts
 * import { KeyValueStore } from "kvlog"
 * import { RedisStore } from "kvlog/redis"
 *
 * const Single = RedisStore.layer({ prefix: "app:", client: { url: "redis://127.0.0.1:6379" } })
 * const Cluster = RedisStore.layerCluster({
 *   prefix: "app:",
 *   cluster: { rootNodes: [{ url: "redis://10.0.0.1:7000" }, { url: "redis://10.0.0.2:7000" }] }
 * })
 * ```
 *
 * An import of its own, so that `kvlog` does not load the `redis` package
 * for programs that do not use Redis.
 *
 * @since 0.3.0
 */
import type * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { RedisClusterOptions } from "redis"
import { makeRedisStore } from "./internal/redis/makeRedisStore.ts"
import { connectCluster, connectNodeRedis, type NodeRedisOptions } from "./internal/redis/nodeRedis.ts"
import * as KeyValueStore from "./KeyValueStore.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * Options of a store on one Redis server: the store's (see
 * `KeyValueStore.RedisOptions`), and `client`, what `NodeRedis.layer` takes
 * (node-redis's `createClient` options: `url`, `socket`, `password`, …;
 * default: `redis://localhost:6379`).
 *
 * The client reconnects by itself after a lost connection (with
 * `NodeRedis`'s backoff, up to 2 s between attempts); meanwhile operations
 * fail at once with `StorageError`: the client is made with node-redis's
 * `disableOfflineQueue: true`, so no command waits in its queue to be sent
 * after its operation has failed. With `disableOfflineQueue: false` they
 * wait for the reconnection, up to `timeout`, and a write that timed out
 * meanwhile is still sent once the client has reconnected.
 *
 * @since 0.3.0
 * @category models
 */
export interface NodeOptions extends KeyValueStore.RedisOptions {
  readonly client?: NodeRedisOptions | undefined
}

/**
 * Options of a store on a Redis Cluster: the store's (see
 * `KeyValueStore.RedisOptions`), and `cluster`, node-redis's `createCluster`
 * options (`rootNodes`, `defaults`, …).
 *
 * Each key lives on the master of its hash slot. To keep related keys on one
 * node (for your own multi-key commands, or to read them from one place),
 * give them a hash tag: only the part of the stored key between the first
 * `{` and the next `}` is hashed, so `{user42}:profile` and `{user42}:cart`
 * share a slot. The prefix counts: with prefix `"app:"` the stored keys are
 * `app:{user42}:profile` and `app:{user42}:cart`, and the tag still works,
 * while a prefix with braces of its own (`"{app}:"`) puts the whole store
 * in one slot. `size`, `keys`, `entries` and `clear` scan every master.
 * Its node clients are made with `disableOfflineQueue: true` unless
 * `cluster.defaults` says otherwise, as for one server (see `NodeOptions`).
 *
 * @since 0.3.0
 * @category models
 */
export interface ClusterOptions extends KeyValueStore.RedisOptions {
  readonly cluster: RedisClusterOptions
}

// =============================================================================
// Constructors
// =============================================================================

/**
 * Builds a store on one Redis server, with a node-redis client of its own
 * made by `NodeRedis.layer(options.client)`; closing the scope closes the
 * client. Fails with `InvalidInput` (connecting to nothing) on options it
 * cannot use, with `StorageError` when it cannot connect.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  options: NodeOptions
): Effect.Effect<
  KeyValueStore.KeyValueStoreService,
  KeyValueStore.InvalidInput | KeyValueStore.StorageError,
  Scope.Scope
> => makeRedisStore(options, connectNodeRedis(options?.client))

/**
 * Builds a store on a Redis Cluster, with a cluster client of its own;
 * closing the scope closes it. Fails with `InvalidInput` (connecting to
 * nothing) on options it cannot use, with `StorageError` when it cannot
 * connect.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeCluster = (
  options: ClusterOptions
): Effect.Effect<
  KeyValueStore.KeyValueStoreService,
  KeyValueStore.InvalidInput | KeyValueStore.StorageError,
  Scope.Scope
> => makeRedisStore(options, connectCluster(options?.cluster))

// =============================================================================
// Layers
// =============================================================================

/**
 * A store on one Redis server, with a client of its own.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options: NodeOptions
): Layer.Layer<KeyValueStore.KeyValueStore, KeyValueStore.InvalidInput | KeyValueStore.StorageError> =>
  Layer.effect(KeyValueStore.KeyValueStore, make(options))

/**
 * A store on a Redis Cluster, with a cluster client of its own.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerCluster = (
  options: ClusterOptions
): Layer.Layer<KeyValueStore.KeyValueStore, KeyValueStore.InvalidInput | KeyValueStore.StorageError> =>
  Layer.effect(KeyValueStore.KeyValueStore, makeCluster(options))

/**
 * A store on one Redis server, provided under a service key of your own
 * (see `KeyValueStore.Service`).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerAs = <I>(
  key: Context.Key<I, KeyValueStore.KeyValueStoreService>,
  options: NodeOptions
): Layer.Layer<I, KeyValueStore.InvalidInput | KeyValueStore.StorageError> => Layer.effect(key, make(options))

/**
 * A store on a Redis Cluster, provided under a service key of your own
 * (see `KeyValueStore.Service`).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerClusterAs = <I>(
  key: Context.Key<I, KeyValueStore.KeyValueStoreService>,
  options: ClusterOptions
): Layer.Layer<I, KeyValueStore.InvalidInput | KeyValueStore.StorageError> => Layer.effect(key, makeCluster(options))
