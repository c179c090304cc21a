/**
 * What one operation allocates on the V8 heap, through the Effect API: kvlog's
 * `layerMemory` beside Effect's `KeyValueStore.layerMemory` and the `yield*`
 * floor (a raw Map, each operation one `yield* Effect.succeed(…)`), 10k keys
 * already stored, so that a put overwrites and the index does not grow.
 *
 * With a young generation larger than everything the loop allocates, no
 * collection runs inside it, and the growth of the used heap over the loop is
 * what the loop allocated. A loop during which a collection ran is measured
 * again (the count of collections is checked, not assumed).
 *
 *   node_modules/.bin/node --expose-gc --max-semi-space-size=256 bench/opAlloc.ts [operations]   # default 20k
 */
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as EffectKeyValueStore from "effect/persistence/KeyValueStore"
import { PerformanceObserver } from "node:perf_hooks"
import { KeyValueStore } from "../src/index.ts"
import { makeKeys, makeValues, randomReadOrder } from "./dataset.ts"
import { median } from "./stats.ts"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with --expose-gc")

const keyCount = 10_000
const operations = Number(process.argv[2] ?? 20_000)
const keys = makeKeys(0, keyCount)
const values = makeValues(0, keyCount, "short")
const order = randomReadOrder(keyCount, keyCount)

let collections = 0
new PerformanceObserver((list) => {
  collections += list.getEntries().length
}).observe({ entryTypes: ["gc"] })

const kvlogRuntime = ManagedRuntime.make(KeyValueStore.layerMemory)
const kvlog = await kvlogRuntime.runPromise(Effect.service(KeyValueStore.KeyValueStore))
const effectRuntime = ManagedRuntime.make(EffectKeyValueStore.layerMemory)
const effectStore = await effectRuntime.runPromise(Effect.service(EffectKeyValueStore.KeyValueStore))
const map = new Map<string, string>()
let checksum = 0

type Loop = (count: number) => Effect.Effect<void, unknown>
const loops: Record<string, { readonly run: (effect: Effect.Effect<void, unknown>) => Promise<void>; readonly loop: Loop }> = {
  "kvlog put": {
    run: (effect) => kvlogRuntime.runPromise(effect),
    loop: (count) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) yield* kvlog.put(keys[i % keyCount]!, values[i % keyCount]!)
      })
  },
  "kvlog get": {
    run: (effect) => kvlogRuntime.runPromise(effect),
    loop: (count) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) checksum += (yield* kvlog.get(keys[order[i % keyCount]!]!)).length
      })
  },
  "Effect put": {
    run: (effect) => effectRuntime.runPromise(effect),
    loop: (count) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) yield* effectStore.set(keys[i % keyCount]!, values[i % keyCount]!)
      })
  },
  "Effect get": {
    run: (effect) => effectRuntime.runPromise(effect),
    loop: (count) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) checksum += (yield* effectStore.get(keys[order[i % keyCount]!]!))!.length
      })
  },
  "floor put": {
    run: (effect) => Effect.runPromise(effect),
    loop: (count) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) yield* Effect.succeed(map.set(keys[i % keyCount]!, values[i % keyCount]!))
      })
  },
  "floor get": {
    run: (effect) => Effect.runPromise(effect),
    loop: (count) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) checksum += (yield* Effect.succeed(map.get(keys[order[i % keyCount]!]!)!)).length
      })
  }
}

const results: Array<string> = []
for (const [name, { loop, run }] of Object.entries(loops)) {
  // Fill (the puts overwrite from here on) and warm the code up.
  for (let round = 0; round < 3; round++) await run(loop(keyCount * 5))
  const samples: Array<number> = []
  for (let attempt = 0; samples.length < 5 && attempt < 50; attempt++) {
    gc()
    // The observer reports that collection on a later turn: let it, before counting.
    await new Promise((resolve) => setTimeout(resolve, 20))
    const seen = collections
    const before = process.memoryUsage().heapUsed
    await run(loop(operations))
    const after = process.memoryUsage().heapUsed
    await new Promise((resolve) => setTimeout(resolve, 20))
    if (collections === seen) samples.push((after - before) / operations)
  }
  results.push(`| ${name} | ${samples.length === 0 ? "(a collection ran in every attempt)" : median(samples).toFixed(0)} | ${samples.length} |`)
}
await kvlogRuntime.dispose()
await effectRuntime.dispose()
if (checksum === 0) throw new Error("nothing was read")

console.log(`${keyCount.toLocaleString("en")} keys, ${operations.toLocaleString("en")} operations a loop, Node ${process.version}: bytes allocated per operation (median of loops without a collection)`)
console.log("| operation | bytes per op | loops |")
console.log("|---|---:|---:|")
for (const line of results) console.log(line)
