/**
 * One reader thread of `bench/sharedIndex.ts` and of the bench's readers
 * suite: reads the first `warmUp` keys of `order` (untimed: a fresh thread's
 * first reads are interpreted code), waits for the start signal, then
 * `yield* store.get(key)` for every index of `order`, through
 * `KeyValueStore.layerSharedReader`, and posts how long that took.
 */
import * as Effect from "effect/Effect"
import { parentPort, workerData } from "node:worker_threads"
import * as KeyValueStore from "../src/KeyValueStore.ts"

const { control, handle, order, warmUp = 0 } = workerData as {
  readonly control: Int32Array
  readonly handle: KeyValueStore.SharedReaderHandle
  readonly order: Int32Array
  readonly warmUp?: number
}

const millis = await Effect.runPromise(
  Effect.gen(function*() {
    const store = yield* KeyValueStore.KeyValueStore
    let warm = 0
    for (let j = 0; j < Math.min(warmUp, order.length); j++) warm += (yield* store.get(`key${order[j]}`)).length
    if (warmUp > 0 && warm === 0) throw new Error("no reads in the warm-up")
    Atomics.add(control, 0, 1)
    Atomics.wait(control, 1, 0)
    let checksum = 0
    const start = performance.now()
    for (let j = 0; j < order.length; j++) checksum += (yield* store.get(`key${order[j]}`)).length
    const elapsed = performance.now() - start
    if (checksum === 0) throw new Error("no reads")
    return elapsed
  }).pipe(Effect.provide(KeyValueStore.layerSharedReader(handle)))
)
parentPort!.postMessage({ millis })
