/**
 * The shared index at a size no `Map` reaches (V8 caps a Map at 2^24
 * entries): one store, `key${i}` → `value${i}` for i below N, put in key
 * order, then a random sample of the keys read back (seeded), each value
 * checked, and the store's size checked against N. Through the public Effect API, in the
 * child's main thread.
 *
 * Keys are made as they are put, not prebuilt: 100M prebuilt strings would
 * take more of V8's heap than the store does, and the shared index keeps
 * keys and values as bytes in its own `SharedArrayBuffer`s, so the memory
 * figure counts keys and values either way.
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "../../src/KeyValueStore.ts"
import { sharedIndexOf } from "../../src/internal/store/sharedReader.ts"
import { randomReadOrder } from "../dataset.ts"
import type { ScaleJob, ScaleResult } from "../jobs.ts"
import { bytesPerKey, peakRssBytes, snapshot } from "../MemoryProbe.ts"
import { fmt, progress } from "./progress.ts"

/** Progress every this many operations: a 100M-key fill takes minutes. */
const progressEvery = 10_000_000

export const runScaleJob = (job: ScaleJob): Promise<ScaleResult> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const keys = job.keys
    const before = snapshot()
    const store = yield* KeyValueStore.make({ index: "shared" })
    const index = sharedIndexOf(store)
    if (index === undefined) throw new Error("the store has no shared index to measure")
    const putStart = performance.now()
    for (let i = 0; i < keys; i++) {
      yield* store.put(`key${i}`, `value${i}`)
      if ((i + 1) % progressEvery === 0) progress(`${fmt((i + 1) / 1e6)}M puts in ${fmt((performance.now() - putStart) / 1000)} s`)
    }
    const putMicros = ((performance.now() - putStart) * 1000) / keys
    const after = snapshot()
    // `process.memoryUsage()` leaves the index's SharedArrayBuffers out: add the index's own count of them.
    const sharedBytesPerKey = index.sharedBytes / keys
    const growth = bytesPerKey(before, after, keys)
    const size = yield* store.size
    if (size !== keys) throw new Error(`the store holds ${size} keys after ${keys} puts`)
    progress(`filled: ${fmt(putMicros)} µs/put, ${fmt(growth.liveBytesPerKey + sharedBytesPerKey)} B/key`)
    const order = randomReadOrder(keys, job.reads)
    const getStart = performance.now()
    for (let j = 0; j < job.reads; j++) {
      const i = order[j]!
      const value = yield* store.get(`key${i}`)
      // Checked, not summed: a wrong value is a failure, not a figure.
      if (value !== `value${i}`) throw new Error(`key${i} read back ${JSON.stringify(value)}`)
      if ((j + 1) % progressEvery === 0) progress(`${fmt((j + 1) / 1e6)}M gets in ${fmt((performance.now() - getStart) / 1000)} s`)
    }
    const getMicros = ((performance.now() - getStart) * 1000) / job.reads
    return {
      suite: "scale",
      keys,
      reads: job.reads,
      putMicros,
      getMicros,
      totalBytesPerKey: growth.liveBytesPerKey + sharedBytesPerKey,
      sharedBytesPerKey,
      rssBytesPerKey: growth.rssBytesPerKey,
      peakRssBytes: peakRssBytes()
    } satisfies ScaleResult
  })))
