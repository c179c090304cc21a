/**
 * The shared index beside the heap index, on one machine, in one process:
 * bytes per key, get and put through the public Effect API in the main
 * thread, and the aggregate read throughput of one and of two worker
 * threads reading the shared store (`KeyValueStore.layerSharedReader`).
 *
 *   node --expose-gc bench/sharedIndex.ts [--keys 1000000] [--rounds 5] [--reads 2000000] [--index heap,shared] [--workers]
 *
 * Memory is measured as `npm run bench` measures it: growth of
 * `heapUsed + external` after a full collection, keys and values counted,
 * plus the shared index's own `sharedBytes` (`process.memoryUsage()` counts
 * no `SharedArrayBuffer`, in `external` or anywhere). Medians of `--rounds` rounds.
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { sharedIndexOf } from "../src/internal/store/sharedReader.ts"
import { readInWorkers } from "./suites/sharedReaders.ts"

const argument = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1]! : fallback
}
const keys = Number(argument("keys", "1000000"))
const rounds = Number(argument("rounds", "5"))
const reads = Number(argument("reads", String(Math.min(keys, 2_000_000))))
const kinds = argument("index", "heap,shared").split(",") as Array<"heap" | "shared">
const withWorkers = process.argv.includes("--workers")

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with --expose-gc")
const liveBytes = () => {
  gc()
  gc()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}
const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

/** A random order of `count` indexes below `keys` (a fixed LCG, so every run reads the same keys). */
const randomOrder = (count: number): Int32Array => {
  const order = new Int32Array(count)
  let state = 12345
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    order[i] = state % keys
  }
  return order
}

const keyOf = (i: number) => `key${i}`

const measure = (kind: "heap" | "shared") =>
  Effect.scoped(Effect.gen(function*() {
    const order = randomOrder(reads)
    const before = liveBytes()
    const store = yield* KeyValueStore.make({ index: kind })
    const putStart = performance.now()
    for (let i = 0; i < keys; i++) yield* store.put(keyOf(i), `value${i}`)
    const putMicros = ((performance.now() - putStart) * 1000) / keys
    const bytesPerKey = (liveBytes() - before + (sharedIndexOf(store)?.sharedBytes ?? 0)) / keys
    const getMicros: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      let checksum = 0
      const start = performance.now()
      for (let j = 0; j < order.length; j++) checksum += (yield* store.get(keyOf(order[j]!))).length
      getMicros.push(((performance.now() - start) * 1000) / order.length)
      if (checksum === 0) throw new Error("no reads")
    }
    let workerReads: Record<string, number> | undefined
    if (withWorkers && kind === "shared") {
      workerReads = {}
      for (const workers of [1, 2]) {
        const perSecond: Array<number> = []
        for (let round = 0; round < rounds; round++) perSecond.push(yield* readInWorkers(store, workers, order))
        workerReads[`${workers} worker${workers > 1 ? "s" : ""} (reads/s)`] = Math.round(median(perSecond))
      }
    }
    return {
      index: kind,
      keys,
      bytesPerKey: Number(bytesPerKey.toFixed(1)),
      putMicros: Number(putMicros.toFixed(3)),
      getMicros: Number(median(getMicros).toFixed(3)),
      getMicrosRounds: getMicros.map((m) => Number(m.toFixed(3))),
      ...workerReads
    }
  }))

for (const kind of kinds) console.log(JSON.stringify(await Effect.runPromise(measure(kind))))
