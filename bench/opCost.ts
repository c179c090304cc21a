/**
 * The CPU cost of one operation through the Effect API with everything in
 * cache: 10k keys (`key${i}` → `value${i}`), kvlog's `layerMemory` beside
 * Effect's `KeyValueStore.layerMemory` and the `yield*` floor (a raw Map,
 * each operation one `yield* Effect.succeed(…)`), all three in one process,
 * taking turns round after round. Each round puts every key and gets every
 * key in a shuffled order, 20 times over, inside one `Effect.gen`.
 *
 * The per-operation suite (`npm run bench -- --suites perop`) measures the
 * same operations on stores too large for the caches, where memory latency
 * dominates; this one isolates what the code itself costs, so a change of a
 * few tens of nanoseconds shows through the noise of a shared machine. The
 * minimum over the rounds is the least disturbed one; the median is shown
 * beside it.
 *
 *   node_modules/.bin/node bench/opCost.ts [rounds]   # default 30
 */
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as EffectKeyValueStore from "effect/persistence/KeyValueStore"
import { KeyValueStore } from "../src/index.ts"
import { makeKeys, makeValues, randomReadOrder } from "./dataset.ts"
import { median } from "./stats.ts"

const keyCount = 10_000
const passes = 20
const rounds = Number(process.argv[2] ?? 30)

const keys = makeKeys(0, keyCount)
const values = makeValues(0, keyCount, "short")
const order = randomReadOrder(keyCount, keyCount)
const perOp = (started: number) => ((performance.now() - started) * 1e6) / (keyCount * passes)

const kvlogRuntime = ManagedRuntime.make(KeyValueStore.layerMemory)
const kvlog = await kvlogRuntime.runPromise(Effect.service(KeyValueStore.KeyValueStore))
const effectRuntime = ManagedRuntime.make(EffectKeyValueStore.layerMemory)
const effectStore = await effectRuntime.runPromise(Effect.service(EffectKeyValueStore.KeyValueStore))
const map = new Map<string, string>()

const samples: Record<string, Array<number>> = {}
const record = (name: string, nanos: number) => (samples[name] ??= []).push(nanos)
let checksum = 0

// One generator per store, so that each keeps its own type feedback.
const kvlogRound = Effect.gen(function*() {
  let started = performance.now()
  for (let pass = 0; pass < passes; pass++) for (let i = 0; i < keyCount; i++) yield* kvlog.put(keys[i]!, values[i]!)
  record("kvlog put", perOp(started))
  started = performance.now()
  for (let pass = 0; pass < passes; pass++) {
    for (let i = 0; i < keyCount; i++) checksum += (yield* kvlog.get(keys[order[i]!]!)).length
  }
  record("kvlog get", perOp(started))
})
const effectRound = Effect.gen(function*() {
  let started = performance.now()
  for (let pass = 0; pass < passes; pass++) for (let i = 0; i < keyCount; i++) yield* effectStore.set(keys[i]!, values[i]!)
  record("Effect put", perOp(started))
  started = performance.now()
  for (let pass = 0; pass < passes; pass++) {
    for (let i = 0; i < keyCount; i++) checksum += (yield* effectStore.get(keys[order[i]!]!))!.length
  }
  record("Effect get", perOp(started))
})
const floorRound = Effect.gen(function*() {
  let started = performance.now()
  for (let pass = 0; pass < passes; pass++) {
    for (let i = 0; i < keyCount; i++) yield* Effect.succeed(map.set(keys[i]!, values[i]!))
  }
  record("floor put", perOp(started))
  started = performance.now()
  for (let pass = 0; pass < passes; pass++) {
    for (let i = 0; i < keyCount; i++) checksum += (yield* Effect.succeed(map.get(keys[order[i]!]!)!)).length
  }
  record("floor get", perOp(started))
})

for (let round = 0; round < rounds; round++) {
  await kvlogRuntime.runPromise(kvlogRound)
  await effectRuntime.runPromise(effectRound)
  await Effect.runPromise(floorRound)
}
await kvlogRuntime.dispose()
await effectRuntime.dispose()
if (checksum === 0) throw new Error("nothing was read")

console.log(`${keyCount.toLocaleString("en")} keys, ${rounds} rounds, Node ${process.version}: ns per operation`)
console.log("| operation | min ns | median ns |")
console.log("|---|---:|---:|")
for (const [name, values] of Object.entries(samples)) {
  console.log(`| ${name} | ${Math.min(...values).toFixed(0)} | ${median(values).toFixed(0)} |`)
}
