/**
 * Several stores in one app, each under a service key of its own.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { KeyValueStore } from "../src/index.ts"
import { freshLogPath } from "./support/logHarness.ts"

class Cache extends KeyValueStore.Service<Cache>()("test/Cache") {}
class Users extends KeyValueStore.Service<Users>()("test/Users") {}

describe("stores under keys of your own", () => {
  it.effect("a memory store and a log store side by side are two stores, each reached by its own key", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("service-keys")
      const program = Effect.gen(function*() {
        const cache = yield* Cache
        const users = yield* Users
        const plain = yield* KeyValueStore.KeyValueStore
        yield* cache.put("k", "in the cache")
        yield* users.put("k", "in the users log")
        yield* plain.put("k", "in the default store")
        return [yield* cache.get("k"), yield* users.get("k"), yield* plain.get("k")]
      })
      const layer = Layer.mergeAll(Cache.layerMemory, Users.layerLog({ path }), KeyValueStore.layerMemory)
      assert.deepStrictEqual(yield* Effect.provide(program, layer), ["in the cache", "in the users log", "in the default store"])
      // The users store was the log: reopened, it has its key, and only its key.
      const reopened = yield* Effect.provide(
        Effect.flatMap(Users, (users) => Effect.all([users.get("k"), users.size])),
        Users.layerLog({ path })
      )
      assert.deepStrictEqual(reopened, ["in the users log", 1])
    }))

  it.effect("layerMemoryWith passes its options, and the layer functions take any key", () =>
    Effect.gen(function*() {
      const named = yield* Effect.provide(Effect.map(Cache, (cache) => cache.name), Cache.layerMemoryWith({ name: "cache" }))
      assert.strictEqual(named, "cache")
      const viaFunction = yield* Effect.provide(
        Effect.map(Users, (users) => users.name),
        KeyValueStore.layerMemoryAs(Users, { name: "users" })
      )
      assert.strictEqual(viaFunction, "users")
    }))

  it.effect("a log layer under a key of its own fails to build with the same typed errors", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.provide(Users, Users.layerLog({ path: "" })))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons[0]
        assert.isTrue(reason._tag === "Fail" && reason.error._tag === "InvalidInput")
      }
    }))
})
