/**
 * kvlog's contract on Redis, one server: the same suite as the in-memory and
 * log-backed stores, on the live clock (Redis expires keys by its own clock),
 * against `KeyValueStore.layerRedis` over `NodeRedis.layer` and against
 * `RedisStore.layer` (its own client, commands abortable).
 *
 * Linearizability: 100 histories of get, put and delete per property, on a
 * fresh prefix each, against 200 in memory (every build connects a client). The store histories
 * (entries held open, clear, keys and size among the writes) are left out:
 * they are checked against an atomic snapshot, and the Redis store's scans
 * are not atomic, by design and as documented; `redis-store.test.ts` checks
 * what they do promise.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import { describeWithRedis, type RedisServer, startRedisServer } from "./support/redisServers.ts"
import { layerRedisOn, nodeLayerOn } from "./support/redisStores.ts"

describeWithRedis("Redis, one server", () => {
  let server: RedisServer | undefined
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(() => server?.stop())
  const url = () => {
    if (server === undefined) throw new Error("the Redis server did not start")
    return server.url
  }

  contractSuite("KeyValueStore.layerRedis over NodeRedis.layer", () => layerRedisOn(url()), {
    clock: "live",
    supportsStats: false,
    linearizability: { freshStoreRuns: 100, storeHistories: false }
  })

  contractSuite("RedisStore.layer", () => nodeLayerOn(url()), {
    clock: "live",
    supportsStats: false,
    sections: ["operations", "ttl"]
  })
})
