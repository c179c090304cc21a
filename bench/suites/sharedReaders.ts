/**
 * Reads of the shared index from worker threads: a store holding N keys
 * (`key${i}` → `value${i}`) in the child's main thread, shared with one and
 * then two worker threads (`KeyValueStore.shareWithWorker` →
 * `layerSharedReader`), each thread reading the same random sample of keys
 * through the Effect API (`bench/sharedReaderWorker.ts`). The threads start
 * together once all are ready (each has warmed up on its first reads); a round's figure is every thread's reads ÷ the
 * slowest thread's time. The main thread only waits meanwhile.
 */
import * as Effect from "effect/Effect"
import { Worker } from "node:worker_threads"
import * as KeyValueStore from "../../src/KeyValueStore.ts"
import { randomReadOrder } from "../dataset.ts"
import type { ReadersJob, ReadersResult } from "../jobs.ts"
import { median } from "../stats.ts"
import { fmt, progress } from "./progress.ts"

const workerEntry = new URL("../sharedReaderWorker.ts", import.meta.url)

/** Untimed reads each thread makes first: every round's threads are fresh, and their first reads run unoptimised code. */
const warmUp = 100_000

/**
 * Aggregate reads per second of `workers` threads, each reading every key of
 * `order` once (also what `bench/sharedIndex.ts --workers` measures).
 */
export const readInWorkers = (store: KeyValueStore.KeyValueStoreService, workers: number, order: Int32Array) =>
  Effect.gen(function*() {
    // [0]: threads ready; [1]: the start signal they wait on.
    const control = new Int32Array(new SharedArrayBuffer(8))
    const done: Array<Promise<{ readonly millis: number }>> = []
    const threads: Array<Worker> = []
    for (let w = 0; w < workers; w++) {
      const handle = yield* KeyValueStore.shareWithWorker(store)
      const worker = new Worker(workerEntry, { workerData: { handle, control, order, warmUp }, transferList: [handle.port] })
      threads.push(worker)
      done.push(new Promise((resolve, reject) => {
        worker.once("message", resolve)
        worker.once("error", reject)
        // A thread that ends without its figure would otherwise hang the round.
        worker.once("exit", (code) => reject(new Error(`a reader thread exited with ${code} before reporting`)))
      }))
    }
    yield* Effect.promise(() =>
      new Promise<void>((resolve) => {
        const poll = () => (Atomics.load(control, 0) === workers ? resolve() : setTimeout(poll, 1))
        poll()
      })
    )
    Atomics.store(control, 1, 1)
    Atomics.notify(control, 1)
    const results = yield* Effect.promise(() => Promise.all(done))
    // Ended here, so that no thread of a round is still alive in the next.
    yield* Effect.promise(() => Promise.all(threads.map((thread) => thread.terminate())))
    const slowest = Math.max(...results.map((result) => result.millis))
    return (workers * order.length) / (slowest / 1000)
  })

export const runReadersJob = (job: ReadersJob): Promise<ReadersResult> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const store = yield* KeyValueStore.make({ index: "shared" })
    for (let i = 0; i < job.keys; i++) yield* store.put(`key${i}`, `value${i}`)
    const order = Int32Array.from(randomReadOrder(job.keys, job.reads))
    const one: Array<number> = []
    const two: Array<number> = []
    // One and two threads alternate round by round, so that whatever else the
    // shared machine does during the job falls on both counts alike.
    for (let round = 1; round <= job.rounds; round++) {
      one.push(yield* readInWorkers(store, 1, order))
      two.push(yield* readInWorkers(store, 2, order))
      progress(`round ${round}/${job.rounds}: 1 thread ${fmt(one.at(-1)! / 1e6)}M reads/s, 2 threads ${fmt(two.at(-1)! / 1e6)}M reads/s`)
    }
    return {
      suite: "readers",
      keys: job.keys,
      reads: job.reads,
      oneWorker: median(one),
      twoWorkers: median(two),
      oneWorkerRounds: one,
      twoWorkersRounds: two
    } satisfies ReadersResult
  })))
