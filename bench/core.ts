/**
 * The core check of the in-memory store's speed, in one process: kvlog's `layerMemory` through its
 * public Effect API (one `Effect.gen` loop) beside a raw `Map` doing the same
 * work on the same prebuilt keys (`key${i}` → `value${i}`), puts in key order
 * into an empty store, gets in one shuffled order. Prints medians and ratios.
 *
 *   npm run bench:core               # 1M keys, 7 rounds
 *   npm run bench:core -- 100000 9   # keys, rounds
 */
import * as Effect from "effect/Effect"
import { KeyValueStore } from "../src/index.ts"
import { makeKeys, makeValues, randomReadOrder } from "./dataset.ts"
import { median } from "./stats.ts"

const keyCount = Number(process.argv[2] ?? 1_000_000)
const rounds = Number(process.argv[3] ?? 7)

const keys = makeKeys(0, keyCount)
const values = makeValues(0, keyCount, "short")
// A seeded shuffle, so every run reads in the same order.
const readOrder = randomReadOrder(keyCount, keyCount)

const microsPerOp = (started: number) => ((performance.now() - started) * 1000) / keyCount

const program = Effect.gen(function*() {
  const store = yield* KeyValueStore.KeyValueStore
  const mapPut: Array<number> = []
  const mapGet: Array<number> = []
  const kvPut: Array<number> = []
  const kvGet: Array<number> = []
  let checksum = 0
  for (let round = 0; round < rounds; round++) {
    const map = new Map<string, string>()
    let started = performance.now()
    for (let i = 0; i < keyCount; i++) map.set(keys[i], values[i])
    mapPut.push(microsPerOp(started))
    started = performance.now()
    for (let i = 0; i < keyCount; i++) checksum += map.get(keys[readOrder[i]])!.length
    mapGet.push(microsPerOp(started))

    yield* store.clear
    started = performance.now()
    for (let i = 0; i < keyCount; i++) yield* store.put(keys[i], values[i])
    kvPut.push(microsPerOp(started))
    started = performance.now()
    for (let i = 0; i < keyCount; i++) checksum += (yield* store.get(keys[readOrder[i]])).length
    kvGet.push(microsPerOp(started))
  }
  const row = (operation: string, kv: Array<number>, map: Array<number>, target: number) => {
    const ratio = median(kv) / median(map)
    return `| ${operation} | ${median(kv).toFixed(3)} | ${median(map).toFixed(3)} | ${ratio.toFixed(2)}× | ≤ ${target}× ${
      ratio <= target ? "met" : "missed"
    } |`
  }
  console.log(`${keyCount.toLocaleString("en")} keys, median of ${rounds} rounds, Node ${process.version}`)
  console.log("| operation | kvlog µs/op | Map µs/op | kvlog ÷ Map | target |")
  console.log("|---|---:|---:|---:|---|")
  console.log(row("put", kvPut, mapPut, 3))
  console.log(row("get (random order)", kvGet, mapGet, 4))
  if (checksum === 0) throw new Error("nothing was read")
})

Effect.runPromise(program.pipe(Effect.provide(KeyValueStore.layerMemory))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
