/**
 * The Redis store on a Redis Cluster of three masters: kvlog's contract
 * suite; scans that visit every master; hash tags that keep related keys on
 * one node; and a slot migrated (IMPORTING / MIGRATING, MIGRATE, SETSLOT
 * NODE) while fibers keep reading and writing its keys, every answer checked
 * and the redirections it caused counted on the nodes.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createClient } from "redis"
import { KeyValueStore } from "../src/index.ts"
import * as RedisStore from "../src/RedisStore.ts"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import {
  type ClusterNode,
  describeWithRedis,
  info,
  redisCli,
  type RedisClusterServers,
  startRedisCluster
} from "./support/redisServers.ts"
import { clusterLayerOn, freshPrefix } from "./support/redisStores.ts"

describeWithRedis("Redis Cluster, three masters", () => {
  let cluster: RedisClusterServers | undefined
  beforeAll(async () => {
    cluster = await startRedisCluster()
  }, 60_000)
  afterAll(() => cluster?.stop())
  const servers = (): RedisClusterServers => {
    if (cluster === undefined) throw new Error("the Redis cluster did not start")
    return cluster
  }

  contractSuite("RedisStore.layerCluster", () => clusterLayerOn(servers().rootNodes), {
    clock: "live",
    supportsStats: false,
    linearizability: { freshStoreRuns: 100, storeHistories: false }
  })

  /** Runs `use` with a cluster store of its own, under a fresh prefix. */
  const withClusterStore = <A, E>(
    use: (store: KeyValueStore.KeyValueStoreService, prefix: string) => Effect.Effect<A, E>,
    options: { readonly scanCount?: number } = {}
  ) => {
    const prefix = freshPrefix("c")
    return Effect.scoped(Effect.flatMap(
      RedisStore.makeCluster({ prefix, cluster: { rootNodes: [...servers().rootNodes] }, ...options }),
      (store) => use(store, prefix)
    ))
  }

  /** The stored keys under `prefix` on one node, by its own SCAN. */
  const keysOnNode = (node: ClusterNode, prefix: string): Array<string> => {
    const keys: Array<string> = []
    let cursor = "0"
    do {
      const [next, ...page] = redisCli(node.port, "SCAN", cursor, "MATCH", `${prefix}*`, "COUNT", "1000").split("\n")
      cursor = next
      keys.push(...page.filter((key) => key !== ""))
    } while (cursor !== "0")
    return keys
  }

  describe("scans", () => {
    it.live("size, keys, entries and clear visit every master", () =>
      withClusterStore((store, prefix) =>
        Effect.gen(function*() {
          const count = 300
          yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => store.put(`key-${i}`, `v${i}`), {
            concurrency: 32,
            discard: true
          })
          const perNode = servers().nodes.map((node) => keysOnNode(node, prefix).length)
          assert.strictEqual(perNode.reduce((a, b) => a + b, 0), count)
          for (const [i, n] of perNode.entries()) assert.isAbove(n, 0, `master ${i} holds some of the keys`)

          assert.strictEqual(yield* store.size, count)
          const keys = yield* store.keys
          assert.deepStrictEqual(
            [...keys].sort(),
            Array.from({ length: count }, (_, i) => `key-${i}`).sort()
          )
          const entries = yield* Stream.runCollect(store.entries)
          assert.strictEqual(entries.length, count)
          for (const [key, value] of entries) assert.strictEqual(value, `v${key.slice(4)}`)

          yield* store.clear
          assert.deepStrictEqual(servers().nodes.map((node) => keysOnNode(node, prefix).length), [0, 0, 0])
          assert.strictEqual(yield* store.size, 0)
        }), { scanCount: 16 }))

    it.live("keys that share a hash tag live on one node, whatever the prefix", () =>
      withClusterStore((store, prefix) =>
        Effect.gen(function*() {
          const tagged = ["{user42}:profile", "{user42}:cart", "{user42}:sessions"]
          for (const key of tagged) yield* store.put(key, "v")
          const holders = servers().nodes.filter((node) => keysOnNode(node, prefix).length > 0)
          assert.strictEqual(holders.length, 1, "one node holds every key tagged {user42}")
          assert.sameMembers(keysOnNode(holders[0], prefix), tagged.map((key) => prefix + key))
          const slots = tagged.map((key) => redisCli(holders[0].port, "CLUSTER", "KEYSLOT", prefix + key))
          assert.deepStrictEqual(slots, [slots[0], slots[0], slots[0]])
        })))
  })

  describe("a slot migrating while its keys are read and written", () => {
    it.live("every operation succeeds with the right answer; the slot moves; the client was redirected by ASK and MOVED", () =>
      withClusterStore((store) =>
        Effect.gen(function*() {
          const { nodes, ownerOf } = servers()
          // Every key of the workload carries the tag {hot}: one slot holds them all.
          const slot = Number(redisCli(nodes[0].port, "CLUSTER", "KEYSLOT", "{hot}"))
          const source = ownerOf(slot)
          const target = nodes.find((node) => node !== source)!
          const redirects = (node: ClusterNode, kind: "ASK" | "MOVED") =>
            Number(/count=(\d+)/.exec(info(node.port, "errorstats").get(`errorstat_${kind}`) ?? "")?.[1] ?? 0)
          const askBefore = redirects(source, "ASK")
          const movedBefore = redirects(source, "MOVED")

          // Keys already in the slot, so that MIGRATE has some to move.
          const workers = 6
          const keysPerWorker = 8
          const keyOf = (worker: number, j: number) => `{hot}:w${worker}:${j}`
          const model = new Map<string, string>()
          for (let w = 0; w < workers; w++) {
            for (let j = 0; j < keysPerWorker; j++) {
              yield* store.put(keyOf(w, j), `initial-${w}-${j}`)
              model.set(keyOf(w, j), `initial-${w}-${j}`)
            }
          }

          // Each worker owns its keys, so the model says exactly what each answer must be.
          let operations = 0
          let stopping = false
          const failures: Array<string> = []
          const check = (what: string, ok: boolean) => {
            if (!ok) failures.push(what)
          }
          const worker = (w: number) =>
            Effect.gen(function*() {
              for (let i = 0; !stopping; i++) {
                const key = keyOf(w, i % keysPerWorker)
                const expected = model.get(key)
                const step = i % 4
                if (expected === undefined || step === 0) {
                  const value = `w${w}.${i}`
                  const exit = yield* Effect.exit(store.put(key, value))
                  check(`put(${key}) ${String(exit)}`, Exit.isSuccess(exit))
                  if (Exit.isSuccess(exit)) model.set(key, value)
                } else if (step === 1) {
                  const exit = yield* Effect.exit(store.get(key))
                  check(`get(${key}) ${String(exit)}`, Exit.isSuccess(exit) && exit.value === expected)
                } else if (step === 2) {
                  const exit = yield* Effect.exit(store.has(key))
                  check(`has(${key}) ${String(exit)}`, Exit.isSuccess(exit) && exit.value === true)
                } else {
                  const exit = yield* Effect.exit(store.delete(key))
                  check(`delete(${key}) ${String(exit)}`, Exit.isSuccess(exit))
                  if (Exit.isSuccess(exit)) model.delete(key)
                  const after = yield* Effect.exit(store.get(key))
                  check(
                    `get(${key}) after delete ${String(after)}`,
                    Exit.isFailure(after) && Option.getOrUndefined(Cause.findErrorOption(after.cause))?._tag === "KeyNotFound"
                  )
                }
                operations++
              }
            })

          // The migration runs beside the workers, on clients of its own, and
          // after each batch of keys waits until the workers have done more
          // operations: they run against every state the slot passes through.
          const admin = (node: ClusterNode) => createClient({ url: node.url })
          const migrate = Effect.promise(async () => {
            const sourceClient = await admin(source).connect()
            const targetClient = await admin(target).connect()
            const others = await Promise.all(nodes.filter((node) => node !== source && node !== target).map((node) => admin(node).connect()))
            const progress = async (more: number) => {
              const until = operations + more
              while (operations < until && failures.length === 0) await new Promise((resolve) => setImmediate(resolve))
            }
            try {
              await progress(200)
              await targetClient.sendCommand(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id])
              await sourceClient.sendCommand(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id])
              let moved = 0
              for (;;) {
                const keys = await sourceClient.sendCommand(["CLUSTER", "GETKEYSINSLOT", String(slot), "4"]) as Array<string>
                if (keys.length === 0) break
                await sourceClient.sendCommand(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS", ...keys])
                moved += keys.length
                await progress(50)
              }
              for (const client of [targetClient, sourceClient, ...others]) {
                await client.sendCommand(["CLUSTER", "SETSLOT", String(slot), "NODE", target.id])
              }
              await progress(200)
              return moved
            } finally {
              await Promise.all([sourceClient, targetClient, ...others].map((client) => client.close()))
            }
          })

          const [moved] = yield* Effect.all([
            Effect.ensuring(migrate, Effect.sync(() => stopping = true)),
            Effect.forEach(Array.from({ length: workers }, (_, w) => w), worker, { concurrency: "unbounded", discard: true })
          ], { concurrency: "unbounded" })

          assert.deepStrictEqual(failures.slice(0, 5), [], `${failures.length} of ${operations} operations went wrong`)
          assert.isAbove(moved, 0, "MIGRATE moved keys")
          assert.strictEqual(ownerOf(slot).id, target.id, "the slot is served by the target once migrated")
          assert.isAbove(redirects(source, "ASK") - askBefore, 0, "the source answered ASK during the migration")
          assert.isAbove(redirects(source, "MOVED") - movedBefore, 0, "the source answered MOVED once the slot had moved")
          assert.isAbove(operations, 600)
          // What the workers left is what the store holds.
          for (const [key, value] of model) assert.strictEqual(yield* store.get(key), value)
          assert.strictEqual(yield* store.size, model.size)
        })), 60_000)
  })
})
