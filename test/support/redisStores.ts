/**
 * Redis stores for the tests: a fresh prefix for every build (so each build
 * starts empty, as the contract suite requires), and the build's keys removed
 * when its layer is released, so the server stays small and `SCAN`s fast.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { KeyValueStore } from "../../src/index.ts"
import * as RedisStore from "../../src/RedisStore.ts"

let builds = 0

/** A prefix no other build of this process uses, nor any earlier run (the random part). */
export const freshPrefix = (label = "t"): string =>
  `kvlog-test:${label}:${process.pid}.${Math.random().toString(36).slice(2, 8)}.${++builds}:`

type Store = KeyValueStore.KeyValueStoreService

/**
 * The contract suites' command timeout, above the 5 s default: their size
 * tests send and read back 64 MiB values (~89 MB of base64), which took up to
 * ~2 s each way on a quiet 2-core VM and passed 5 s with two test files at
 * once. Timeouts themselves are tested in redis-faults.test.ts, with their own.
 */
const contractTimeout = "60 seconds"

/** Provides the store, and clears its prefix when the layer is released. */
const clearedOnRelease = <E, R>(make: Effect.Effect<Store, E, R | Scope.Scope>) =>
  Layer.effect(
    KeyValueStore.KeyValueStore,
    Effect.tap(make, (store) => Effect.addFinalizer(() => Effect.ignoreCause(store.clear)))
  )

/** `KeyValueStore.layerRedis` on a `NodeRedis` client of its own, under a fresh prefix. */
export const layerRedisOn = (url: string, options: Partial<KeyValueStore.RedisOptions> = {}) =>
  clearedOnRelease(KeyValueStore.makeRedis({ prefix: freshPrefix(), timeout: contractTimeout, ...options })).pipe(
    Layer.provide(NodeRedis.layer({ url }))
  )

/** `RedisStore.layer` (its own node-redis client), under a fresh prefix. */
export const nodeLayerOn = (url: string, options: Partial<KeyValueStore.RedisOptions> = {}) =>
  clearedOnRelease(RedisStore.make({ prefix: freshPrefix(), client: { url }, timeout: contractTimeout, ...options }))

/** `RedisStore.layerCluster`, under a fresh prefix. */
export const clusterLayerOn = (
  rootNodes: ReadonlyArray<{ readonly url: string }>,
  options: Partial<KeyValueStore.RedisOptions> = {}
) => clearedOnRelease(RedisStore.makeCluster({ prefix: freshPrefix("c"), cluster: { rootNodes: [...rootNodes] }, timeout: contractTimeout, ...options }))

/**
 * Where a failed exit carries its `StorageError`: as the typed failure (the
 * operations whose types have it) or as the defect (the reads, whose types
 * do not); `undefined` when it carries none.
 */
export const storageErrorIn = (
  exit: Exit.Exit<unknown, unknown>
): { readonly channel: "failure" | "defect"; readonly error: KeyValueStore.StorageError } | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const failure = Cause.findErrorOption(exit.cause)
  if (Option.isSome(failure) && failure.value instanceof KeyValueStore.StorageError) {
    return { channel: "failure", error: failure.value }
  }
  const defect = Cause.findDefect(exit.cause)
  if (Result.isSuccess(defect) && defect.success instanceof KeyValueStore.StorageError) {
    return { channel: "defect", error: defect.success }
  }
  return undefined
}
