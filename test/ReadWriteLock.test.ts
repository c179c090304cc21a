/**
 * The read/write lock guarding the index (`src/internal/lock/ReadWriteLock.ts`),
 * directly and through the store: readers share it, a writer waits until the
 * readers in progress have finished, new lock-holding readers queue behind a
 * waiting writer, an interrupted waiter leaves no trace, and an uncontended
 * single-key operation commits no transaction at all.
 *
 * Synchronisation is on observable state (`Deferred`s, `lock.snapshot()`,
 * `Fiber#pollUnsafe`), never on elapsed time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { ReadWriteLock } from "../src/internal/lock/ReadWriteLock.ts"
import { entriesChunkSize, makeCore, makeService, memoryCommitter } from "../src/internal/store/makeStore.ts"
import { awaitCondition } from "./support/RuntimeCounters.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

const unlocked = { readers: 0, writer: false, writersWaiting: 0 }

/** A fiber that holds the lock (read or write) until released. */
interface Holder {
  readonly entered: Deferred.Deferred<void>
  readonly release: Deferred.Deferred<void>
  readonly fiber: Fiber.Fiber<void>
}

const hold = (acquire: (effect: Effect.Effect<void>) => Effect.Effect<void>): Effect.Effect<Holder> =>
  Effect.gen(function*() {
    const entered = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkChild(acquire(Effect.andThen(Deferred.succeed(entered, undefined), Deferred.await(release))))
    return { entered, release, fiber }
  })

const hasEntered = (holder: Holder) => Deferred.isDoneUnsafe(holder.entered)

const releaseAndJoin = (holder: Holder) =>
  Effect.andThen(Deferred.succeed(holder.release, undefined), Fiber.join(holder.fiber))

/** Gives every other fiber plenty of chances to run. */
const letOthersRun = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

describe("ReadWriteLock", () => {
  it.effect("two readers hold the lock at the same time", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const a = yield* hold((effect) => lock.withRead(effect))
      const b = yield* hold((effect) => lock.withRead(effect))
      yield* awaitCondition("both readers inside", () => hasEntered(a) && hasEntered(b))
      assert.deepStrictEqual(lock.snapshot(), { readers: 2, writer: false, writersWaiting: 0 })
      yield* releaseAndJoin(a)
      yield* releaseAndJoin(b)
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))

  it.effect("a writer waits until the readers in progress have finished", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const events: Array<string> = []
      const reader = yield* hold((effect) => lock.withRead(effect))
      yield* awaitCondition("the reader is inside", () => hasEntered(reader))
      const writer = yield* Effect.forkChild(lock.withWrite(Effect.sync(() => events.push("write"))))
      yield* awaitCondition("the writer waits", () => lock.snapshot().writersWaiting === 1)
      yield* letOthersRun
      assert.isUndefined(writer.pollUnsafe())
      assert.deepStrictEqual(events, [])
      assert.deepStrictEqual(lock.snapshot(), { readers: 1, writer: false, writersWaiting: 1 })

      yield* releaseAndJoin(reader)
      yield* Fiber.join(writer)
      assert.deepStrictEqual(events, ["write"])
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))

  it.effect("a writer excludes readers and other writers while it holds the lock", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const events: Array<string> = []
      const writer = yield* hold((effect) => lock.withWrite(effect))
      yield* awaitCondition("the writer is inside", () => hasEntered(writer))
      const reader = yield* Effect.forkChild(lock.withRead(Effect.sync(() => events.push("read"))))
      const fastReader = yield* Effect.forkChild(lock.read(() => events.push("fast read")))
      const otherWriter = yield* Effect.forkChild(lock.withWrite(Effect.sync(() => events.push("write"))))
      const fastWriter = yield* Effect.forkChild(lock.write(() => events.push("fast write")))
      yield* letOthersRun
      assert.deepStrictEqual(events, [])
      assert.isFalse(lock.readFree())
      assert.isFalse(lock.writeFree())

      yield* releaseAndJoin(writer)
      yield* Fiber.joinAll([reader, fastReader, otherWriter, fastWriter])
      assert.sameMembers(events, ["read", "fast read", "write", "fast write"])
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))

  it.effect("once a writer waits, a new lock-holding reader queues behind it", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const events: Array<string> = []
      const first = yield* hold((effect) => lock.withRead(effect))
      yield* awaitCondition("the first reader is inside", () => hasEntered(first))
      const writer = yield* Effect.forkChild(lock.withWrite(Effect.sync(() => events.push("write"))))
      yield* awaitCondition("the writer waits", () => lock.snapshot().writersWaiting === 1)
      const second = yield* Effect.forkChild(lock.withRead(Effect.sync(() => events.push("second read"))))
      yield* letOthersRun
      assert.deepStrictEqual(events, [], "the second reader did not join the first one")
      assert.isUndefined(second.pollUnsafe())
      assert.strictEqual(lock.snapshot().readers, 1)

      yield* releaseAndJoin(first)
      yield* Fiber.joinAll([writer, second])
      assert.deepStrictEqual(events, ["write", "second read"])
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))

  it.effect("an interrupted waiting writer leaves the lock state clean", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const reader = yield* hold((effect) => lock.withRead(effect))
      yield* awaitCondition("the reader is inside", () => hasEntered(reader))
      let wrote = false
      const writer = yield* Effect.forkChild(lock.withWrite(Effect.sync(() => (wrote = true))))
      yield* awaitCondition("the writer waits", () => lock.snapshot().writersWaiting === 1)

      yield* Fiber.interrupt(writer)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(writer)))
      assert.deepStrictEqual(lock.snapshot(), { readers: 1, writer: false, writersWaiting: 0 })
      // No ghost writer: a new lock-holding reader gets in beside the first.
      const second = yield* hold((effect) => lock.withRead(effect))
      yield* awaitCondition("the second reader is inside", () => hasEntered(second))

      yield* releaseAndJoin(reader)
      yield* releaseAndJoin(second)
      assert.deepStrictEqual(lock.snapshot(), unlocked)
      assert.isFalse(wrote)
      assert.isTrue(lock.writeFree())
    }))

  it.effect("an interrupted waiting reader leaves the lock state clean", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const writer = yield* hold((effect) => lock.withWrite(effect))
      yield* awaitCondition("the writer is inside", () => hasEntered(writer))
      const reader = yield* Effect.forkChild(lock.withRead(Effect.void))
      yield* letOthersRun
      yield* Fiber.interrupt(reader)
      assert.deepStrictEqual(lock.snapshot(), { readers: 0, writer: true, writersWaiting: 0 })
      yield* releaseAndJoin(writer)
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))

  it.effect("a holder interrupted inside the lock releases it", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const reader = yield* hold((effect) => lock.withRead(effect))
      yield* awaitCondition("the reader is inside", () => hasEntered(reader))
      yield* Fiber.interrupt(reader.fiber)
      assert.deepStrictEqual(lock.snapshot(), unlocked)

      const writer = yield* hold((effect) => lock.withWrite(effect))
      yield* awaitCondition("the writer is inside", () => hasEntered(writer))
      yield* Fiber.interrupt(writer.fiber)
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))

  it.effect("a reader holding the lock through readScoped releases it when its scope closes", () =>
    Effect.gen(function*() {
      const lock = new ReadWriteLock()
      const scope = yield* Scope.make()
      yield* Scope.provide(scope)(lock.readScoped)
      assert.deepStrictEqual(lock.snapshot(), { readers: 1, writer: false, writersWaiting: 0 })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(lock.snapshot(), unlocked)
    }))
})

// =============================================================================
// Through the store
// =============================================================================

/** The in-memory store exactly as `makeMemory` builds it, with its lock in view. */
const makeStore = Effect.gen(function*() {
  const core = yield* makeCore({})
  return { core, store: makeService(core, memoryCommitter(core)) }
})

/** Puts more keys than one chunk of `entries` holds: `k0` → `v0`, … */
const keyCount = entriesChunkSize + 904

const fill = (store: ReturnType<typeof makeService>) =>
  Effect.gen(function*() {
    for (let i = 0; i < keyCount; i++) yield* store.put(`k${i}`, `v${i}`)
  })

describe("the lock through the store", () => {
  it.effect("a put waits until an entries stream in progress has finished, while gets go on", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeStore
      yield* fill(store)
      const scope = yield* Scope.make()
      const pull = yield* Scope.provide(scope)(Stream.toPull(store.entries))
      const firstChunk = yield* pull
      assert.strictEqual(firstChunk.length, entriesChunkSize)

      const put = yield* Effect.forkChild(store.put("new", "v"))
      yield* awaitCondition("the put waits", () => core.lock.snapshot().writersWaiting === 1)
      yield* letOthersRun
      assert.isUndefined(put.pollUnsafe(), "the put has not completed")
      assert.strictEqual(yield* store.get("k0"), "v0")
      assert.isTrue(yield* store.has("k1"))
      assert.strictEqual(yield* store.size, keyCount)
      yield* assertKeyNotFound(store.get("new"), "new")

      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Fiber.join(put), "v")
      assert.strictEqual(yield* store.get("new"), "v")
      assert.deepStrictEqual(core.lock.snapshot(), unlocked)
    }))

  it.effect("an entries stream is a snapshot: writes issued while it is read are not in it", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeStore
      yield* fill(store)
      const last = `k${keyCount - 1}`
      const scope = yield* Scope.make()
      const pull = yield* Scope.provide(scope)(Stream.toPull(store.entries))
      const firstChunk = yield* pull
      const put = yield* Effect.forkChild(store.put("new", "v"))
      const del = yield* Effect.forkChild(store.delete(last))
      yield* awaitCondition("both writers wait", () => core.lock.snapshot().writersWaiting === 2)
      const secondChunk = yield* pull
      const streamed = [...firstChunk, ...secondChunk].map(([key]) => key)
      assert.strictEqual(streamed.length, keyCount)
      assert.strictEqual(streamed[streamed.length - 1], last, "the key deleted mid-stream is still in it")
      assert.isFalse(streamed.includes("new"), "the key put mid-stream is not in it")

      yield* Scope.close(scope, Exit.void)
      yield* Fiber.joinAll([put, del])
      assert.strictEqual(yield* store.get("new"), "v")
      yield* assertKeyNotFound(store.get(last), last)
    }))

  it.effect("once a put waits, a new entries stream starts only after the put has landed", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeStore
      yield* fill(store)
      const scope = yield* Scope.make()
      const pull = yield* Scope.provide(scope)(Stream.toPull(store.entries))
      yield* pull
      const put = yield* Effect.forkChild(store.put("new", "v"))
      yield* awaitCondition("the put waits", () => core.lock.snapshot().writersWaiting === 1)

      const second = yield* Effect.forkChild(Stream.runCollect(store.entries))
      yield* letOthersRun
      assert.isUndefined(second.pollUnsafe(), "the second stream waits behind the put")

      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(put)
      const entries = yield* Fiber.join(second)
      assert.strictEqual(entries.length, keyCount + 1)
      assert.deepStrictEqual(entries[entries.length - 1], ["new", "v"])
    }))

  it.effect("an interrupted waiting put leaves the lock clean and the store without its value", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeStore
      yield* fill(store)
      const scope = yield* Scope.make()
      const pull = yield* Scope.provide(scope)(Stream.toPull(store.entries))
      yield* pull
      const put = yield* Effect.forkChild(store.put("new", "v", { duration: 10 }))
      yield* awaitCondition("the put waits", () => core.lock.snapshot().writersWaiting === 1)

      yield* Fiber.interrupt(put)
      assert.deepStrictEqual(core.lock.snapshot(), { readers: 1, writer: false, writersWaiting: 0 })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(core.lock.snapshot(), unlocked)
      yield* assertKeyNotFound(store.get("new"), "new")
      assert.strictEqual(yield* store.size, keyCount)
      assert.strictEqual((yield* store.stats).entriesWithDeadline, 0)
    }))

  it.effect("with the lock free, single-key operations commit no transaction", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeStore
      const before = core.lock.snapshot()
      for (let i = 0; i < 1_000; i++) {
        const key = `k${i % 17}`
        yield* store.put(key, `v${i}`)
        yield* store.get(key)
        yield* store.put(key, new Uint8Array([i & 255]), { duration: 1 + (i % 5) })
        yield* store.has(key)
        yield* store.timeToLive(key)
        if (i % 3 === 0) yield* store.delete(key)
        yield* Effect.exit(store.get(`absent${i}`))
        if (i % 100 === 0) yield* TestClock.adjust(3) // the reaper reclaims, by the same fast path
      }
      yield* store.size
      yield* store.keys
      yield* store.stats
      assert.isAbove((yield* store.stats).reclaimed, 0, "the reaper ran")
      assert.strictEqual(core.lock.snapshot(), before, "no transaction replaced the lock state")

      // The probe sees a transaction when there is one.
      yield* core.lock.withRead(Effect.void)
      assert.notStrictEqual(core.lock.snapshot(), before)
      assert.deepStrictEqual(core.lock.snapshot(), before)
    }))
})
