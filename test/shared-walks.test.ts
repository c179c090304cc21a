/**
 * Reads of the whole store from a worker thread (`size`, `keys`, `entries`,
 * `stats`) finish while the owner writes without pause, each one snapshot
 * of the store, and a worker cannot hold the owner's writes for long.
 *
 * - Counting reads no entry while no deadline has come, and counts without
 *   a torn walk when one has.
 * - A worker reads the whole store again and again while the owner writes
 *   until it has its answers: every answer is a state the store held, and
 *   the walks got there through the walk request.
 * - A walk the owner gave up on (no progress) lets the write through, and
 *   the reader asks again and finishes.
 * - A worker terminated with its walk request raised holds the owner's next
 *   write for the stall bound, once; its request is taken back when its port
 *   closes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Worker } from "node:worker_threads"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { SharedIndex } from "../src/internal/index/shared/SharedIndex.ts"
import { SharedIndexReader } from "../src/internal/index/shared/SharedIndexReader.ts"
import { controlWalkRequests } from "../src/internal/index/shared/SharedLayout.ts"
import { sharedIndexOf } from "../src/internal/store/sharedReader.ts"

const workerFile = new URL("./fixtures/shared-walk-worker.ts", import.meta.url)

/** [0] worker ready / request raised, [1] owner writing, [2] worker has its answers, [3] never changes. */
const makeFlags = () => new Int32Array(new SharedArrayBuffer(16))

/** Resolves once `flags[index]` is no longer 0 (woken by the worker's notify, never polled). */
const flagRaised = (flags: Int32Array, index: number): Promise<unknown> => {
  const waited = Atomics.waitAsync(flags, index, 0)
  return waited.async ? waited.value : Promise.resolve()
}

/**
 * A reader in this thread whose `n`-th load from its dense array (counted
 * from 1) first runs `write` in the owner; `loads()` tells how many it made.
 */
const readerWithHook = (
  index: SharedIndex,
  tuning: { readonly walksBeforeRequest?: number } = {}
) => {
  const attachment = index.attachReader()
  const reader = new SharedIndexReader(attachment, tuning)
  const view = reader as unknown as { entries: Uint32Array }
  const state = { loads: 0, fired: false }
  const hook = (n: number, write: () => void) => {
    // Adopts the buffers published since attaching: adopting would replace the proxy.
    reader.liveEntries(0, false)
    state.loads = 0
    view.entries = new Proxy(view.entries, {
      get(target, property) {
        if (typeof property === "string" && /^\d+$/.test(property) && ++state.loads === n && !state.fired) {
          state.fired = true
          write()
        }
        return Reflect.get(target, property)
      }
    })
  }
  return { reader, port: attachment.port, control: new Int32Array(attachment.layout.control), state, hook }
}

describe("a reader counts without making strings, and without walking when no deadline has come", () => {
  it("size reads no entry when no key has a deadline, nor when the earliest deadline is after now", () => {
    const index = new SharedIndex()
    const { hook, port, reader, state } = readerWithHook(index)
    try {
      for (let i = 0; i < 100; i++) index.set(`k${i}`, `v${i}`, Infinity)
      hook(Infinity, () => undefined)
      assert.strictEqual(reader.liveSize(50), 100)
      index.set("later", "v", 1_000)
      assert.strictEqual(reader.liveSize(999), 101)
      assert.deepStrictEqual(reader.storedCounts(), { stored: 101, withDeadline: 1 })
      assert.strictEqual(state.loads, 0, "no entry was read")
      // From the deadline on, the entry is stored but not live: counted by a walk.
      assert.strictEqual(reader.liveSize(1_000), 100)
      assert.isAbove(state.loads, 100)
      assert.deepStrictEqual(reader.storedCounts(), { stored: 101, withDeadline: 1 })
    } finally {
      port.close()
    }
  })

  it("size: a squeeze in the middle of the counting walk is retried, never a count of no instant", () => {
    const index = new SharedIndex({ minHolesToSqueeze: 2 })
    const { hook, port, reader, state } = readerWithHook(index)
    try {
      index.set("a", "a-value", 5)
      for (const key of ["b", "c", "d"]) index.set(key, `${key}-value`, Infinity)
      index.removeLive("b", 0)
      // At 10, `a` has expired: [a (expired), hole, c, d] is 2 live. The walk
      // loads entry 0, then the owner removes `a` and squeezes to [c, d]: the
      // walk's next loads find `d` and two holes. Unchecked, it answers 1.
      hook(2, () => index.removeLive("a", 0))
      assert.strictEqual(reader.liveSize(10), 2)
      assert.isTrue(state.fired, "the owner's write ran inside the walk")
      assert.isAbove(reader.retried, 0, "the walk that overlapped the write was retried")
      assert.strictEqual(index.activity.squeezes, 1)
    } finally {
      port.close()
    }
  })
})

describe("a walk the owner stops waiting for", () => {
  it("lets the write through once it made no progress for the stall bound; the reader asks again and finishes", () => {
    // In one thread, a write inside the walk cannot see the walk progress:
    // it waits the bound, gives up, writes; the walk it overlapped is retried.
    const index = new SharedIndex({ walkStallMillis: 20 })
    const { control, hook, port, reader, state } = readerWithHook(index, { walksBeforeRequest: 0 })
    try {
      for (const key of ["a", "b", "c"]) index.set(key, `${key}-value`, Infinity)
      hook(2, () => index.set("d", "d-value", Infinity))
      const requestsBefore = reader.walkRequests
      const started = performance.now()
      assert.deepStrictEqual(reader.liveEntries(0, false).keys, ["a", "b", "c", "d"])
      assert.isAtLeast(performance.now() - started, 20, "the write waited for the walk")
      assert.isTrue(state.fired)
      assert.deepStrictEqual(
        { waited: index.activity.walksWaitedFor, abandoned: index.activity.walksAbandoned },
        { waited: 1, abandoned: 1 }
      )
      assert.strictEqual(reader.walkRequests - requestsBefore, 2, "raised, then raised anew once given up on")
      assert.strictEqual(Atomics.load(control, controlWalkRequests), 0, "withdrawn once the walk finished")
      index.set("e", "e-value", Infinity)
      assert.strictEqual(index.activity.walksWaitedFor, 1, "a write with no request raised waits for nothing")
    } finally {
      port.close()
    }
  })
})

describe("whole-store reads from a worker while the owner writes without pause", () => {
  /** Keys in the sliding window; odd ones have a deadline an hour off. */
  const window = 50_000
  /** Keys expired for the worker (30 s deadline, its clock 60 s ahead), which its owner has not reclaimed. */
  const expired = 50
  /** Steps the window moves before the worker reads: holes pile up, so the dense array is squeezed under the worker. */
  const stepsBefore = 45_000
  const repeats = 3
  /** How long the owner writes, at most, waiting for the worker's answers. */
  const maxWritingMillis = 30_000

  it.live("size, keys, entries and stats each answer a state the store held, through the walk request", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ index: "shared" })
      const hour = { duration: Duration.hours(1) }
      // One step: put the window's next key, write it into `hot` too, delete
      // the window's oldest key. Between two writes the store holds `hot` and
      // w[lo..hi], contiguous, in insertion order, `window` or `window + 1`
      // keys, with `hot` naming hi or hi - 1 (then the window has `window + 1`).
      // `hot`'s long values fill the arena with garbage, which is compacted.
      const hotValue = (n: number) => `${n}:${"h".repeat(200)}`
      let next = 0
      const step = Effect.gen(function*() {
        yield* store.put(`w${next}`, `v${next}`, next % 2 === 1 ? hour : undefined)
        yield* store.put("hot", hotValue(next))
        if (next >= window) yield* store.delete(`w${next - window}`)
        next++
      })
      for (let i = 0; i < expired; i++) yield* store.put(`x${i}`, "gone", { duration: Duration.seconds(30) })
      yield* store.put("hot", hotValue(-1))
      while (next < window + stepsBefore) yield* step
      const handle = yield* KeyValueStore.shareWithWorker(store)
      const flags = makeFlags()
      const worker = new Worker(workerFile, {
        workerData: { handle, mode: "walks", flags, repeats, maxMillis: 15_000, aheadMillis: 60_000 },
        transferList: [handle.port]
      })
      const report = new Promise<any>((resolve, reject) => {
        worker.once("message", resolve)
        worker.once("error", reject)
        worker.once("exit", (code) => reject(new Error(`worker exited with ${code} before reporting`)))
      })
      try {
        yield* Effect.promise(() => flagRaised(flags, 0))
        const before = sharedIndexActivity(store)
        Atomics.store(flags, 1, 1)
        Atomics.notify(flags, 1)
        const started = performance.now()
        let steps = 0
        while (Atomics.load(flags, 2) === 0 && performance.now() - started < maxWritingMillis) {
          yield* step
          steps++
        }
        assert.strictEqual(
          Atomics.load(flags, 2),
          1,
          `the worker's reads had not finished after ${maxWritingMillis} ms of owner writes (${steps} steps)`
        )
        const { answers, mostRetries, requests } = yield* Effect.promise(() => report)
        const after = sharedIndexActivity(store)
        assert.isAbove(steps, 100, "the owner wrote while the worker read")
        assert.isAbove(after.squeezes, before.squeezes, "the dense array was squeezed under the worker")
        assert.isAbove(after.compactions, before.compactions, "the arena was compacted under the worker")

        /** Checks one snapshot's keys (and `hot`'s value, if known): `hot`, then w[lo..hi] as a step leaves them. */
        const snapshot = (keys: ReadonlyArray<string>, hot: number | undefined, what: string) => {
          assert.strictEqual(keys[0], "hot", what)
          const held = keys.length - 1
          assert.include([window, window + 1], held, `${what}: ${held} window keys`)
          const first = Number(keys[1].slice(1))
          for (let i = 1; i < keys.length; i++) assert.strictEqual(keys[i], `w${first + i - 1}`, `${what}: key ${i}`)
          if (hot === undefined) return
          const last = first + held - 1
          assert.include([last, last - 1], hot, `${what}: hot names the window's last key or the one before`)
          if (hot === last - 1) assert.strictEqual(held, window + 1, `${what}: hot lags only before the delete`)
        }
        for (const size of answers.size) {
          assert.include([window + 1, window + 2], size, "size counts hot and the window, not the expired keys")
        }
        answers.keys.forEach((keys: ReadonlyArray<string>, i: number) => snapshot(keys, undefined, `keys #${i}`))
        answers.entries.forEach((entries: ReadonlyArray<readonly [string, string]>, i: number) => {
          const hot = Number(entries[0][1].split(":")[0])
          snapshot(entries.map(([key]) => key), hot, `entries #${i}`)
          for (const [key, value] of entries.slice(1)) assert.strictEqual(value, `v${key.slice(1)}`)
        })
        for (const { entriesWithDeadline, storedEntries } of answers.stats) {
          // Stored: the expired keys and hot too. Half the window has a
          // deadline; with `window + 1` keys, the extra one may be odd.
          const held = storedEntries - expired - 1
          assert.include([window, window + 1], held, "stats.storedEntries")
          const withDeadline = entriesWithDeadline - expired
          if (held === window) assert.strictEqual(withDeadline, window / 2, "stats of one instant")
          else assert.include([window / 2, window / 2 + 1], withDeadline, "stats of one instant")
        }
        assert.isAtLeast(answers.stats.length, repeats)
        // Each kind of walk was overlapped on its first tries at least once.
        assert.isAtLeast(requests.size, 1, "size asked for a walk no write overlaps")
        assert.isAtLeast(requests.keys, 1, "keys asked for a walk no write overlaps")
        assert.isAtLeast(requests.entries, 1, "entries asked for a walk no write overlaps")
        assert.isAbove(after.walksWaitedFor, before.walksWaitedFor, "the owner's writes waited for walks")
        // Two attempts overlapped, then the request; only a write that had
        // begun before the owner saw it can overlap one attempt more.
        for (const kind of ["size", "keys", "entries", "stats"] as const) {
          assert.isAtMost(mostRetries[kind], 3, `a ${kind} read was retried ${mostRetries[kind]} times`)
        }
      } finally {
        Atomics.store(flags, 1, 1)
        Atomics.notify(flags, 1)
        yield* Effect.promise(() => worker.terminate())
      }
    }), 60_000)
})

describe("a worker that ends with its walk request raised", () => {
  const stall = 200

  /** An index of 100 keys read by a worker whose walk raised its request and then stopped moving. */
  const hangingWorker = async () => {
    const index = new SharedIndex({ walkStallMillis: stall })
    for (let i = 0; i < 100; i++) index.set(`k${i}`, `v${i}`, Infinity)
    const { layout, port, walkRequest } = index.attachReader()
    const control = new Int32Array(layout.control)
    const flags = makeFlags()
    const worker = new Worker(workerFile, {
      workerData: { handle: { name: "walked", layout, port, walkRequest }, mode: "hang", flags, repeats: 0, maxMillis: 0, aheadMillis: 0 },
      transferList: [port]
    })
    worker.on("error", () => undefined)
    await flagRaised(flags, 0)
    assert.strictEqual(Atomics.load(control, controlWalkRequests), 1, "the worker's request is raised")
    return { index, control, worker }
  }

  const readerGone = (index: SharedIndex) =>
    new Promise<void>((resolve) => {
      const poll = () => index.readerCount === 0 ? resolve() : setTimeout(poll, 1)
      poll()
    })

  it("terminated while the owner writes: the write waits the stall bound, once, and later writes none", async () => {
    const { control, index, worker } = await hangingWorker()
    try {
      // The owner writes at once, as a busy owner would, before its event
      // loop can hear that the worker's port closed.
      const terminated = worker.terminate()
      const started = performance.now()
      index.set("after", "v", Infinity)
      const held = performance.now() - started
      assert.isAtLeast(held, stall, "the write waited for the walk")
      assert.isBelow(held, 10 * stall, "and not much beyond the bound")
      assert.deepStrictEqual(
        { waited: index.activity.walksWaitedFor, abandoned: index.activity.walksAbandoned },
        { waited: 1, abandoned: 1 }
      )
      await terminated
      // The request stays raised until the owner hears of the close: writes
      // meanwhile skip the walk given up on.
      for (let i = 0; i < 20; i++) index.set(`again${i}`, "v", Infinity)
      assert.strictEqual(index.activity.walksWaitedFor, 1, "no later write waited")
      await readerGone(index)
      assert.strictEqual(Atomics.load(control, controlWalkRequests), 0, "the dead worker's request was taken back")
      assert.strictEqual(index.lookup("again19", () => 0), "v")
    } finally {
      await worker.terminate()
    }
  }, 30_000)

  it("terminated before the owner writes again: its port's close takes the request back, and no write waits", async () => {
    const { control, index, worker } = await hangingWorker()
    await worker.terminate()
    await readerGone(index)
    assert.strictEqual(Atomics.load(control, controlWalkRequests), 0)
    index.set("after", "v", Infinity)
    assert.strictEqual(index.activity.walksWaitedFor, 0)
  }, 30_000)
})

/** The activity of the shared index behind `store`. */
const sharedIndexActivity = (store: KeyValueStore.KeyValueStoreService) => {
  const index = sharedIndexOf(store)
  assert.isDefined(index)
  return index!.activity
}
