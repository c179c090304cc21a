/**
 * The change stream: every change reported once, in the order it took
 * effect; nothing reported for what changed nothing; a slow subscriber
 * never holds a writer up and learns exactly how many events it missed.
 *
 * Tests that must know when a subscription is live build the store from its
 * parts, to read the hub's subscriber count: they synchronise on that state,
 * never on time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../src/index.ts"
import { ChangeHub } from "../src/internal/observe/ChangeHub.ts"
import { makeCore, makeService, memoryCommitter, type StoreCore } from "../src/internal/store/makeStore.ts"
import { freshLogPath } from "./support/logHarness.ts"
import { awaitCondition, makeStalledClock } from "./support/RuntimeCounters.ts"

type ChangeEvent = KeyValueStore.ChangeEvent

/** An in-memory store and its core, so a test can see its subscribers. */
const makeObservedStore = Effect.gen(function*() {
  const core = yield* makeCore({})
  return { core, store: makeService(core, memoryCommitter(core)) }
})

/**
 * Subscribes to `stream` in a forked fiber that collects every event, and
 * returns once the subscription is live.
 */
const subscribe = (
  core: StoreCore,
  stream: Stream.Stream<ChangeEvent, unknown>,
  onEvent: (event: ChangeEvent) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    const before = core.changes.subscriberCount
    const seen: Array<ChangeEvent> = []
    const fiber = yield* Effect.forkChild(
      Stream.runForEach(stream, (event) => Effect.suspend(() => {
        seen.push(event)
        return onEvent(event)
      }))
    )
    yield* awaitCondition("the subscription is live", () => core.changes.subscriberCount === before + 1)
    return { seen, fiber }
  })

/** Waits until the subscriber has seen `count` events. */
const awaitSeen = (seen: ReadonlyArray<ChangeEvent>, count: number) =>
  awaitCondition(`${count} events seen (have ${seen.length})`, () => seen.length >= count)

describe("the change stream", () => {
  it.effect("reports puts, deletes of live keys and clears, in order, with the key and the deadline", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeObservedStore
      yield* store.put("before", "not reported: nobody was subscribed")
      const { seen } = yield* subscribe(core, store.changes)
      const t = yield* Clock.currentTimeMillis
      yield* store.put("a", "1")
      yield* store.put("b", new Uint8Array([1]), { duration: 100 })
      yield* store.delete("a")
      // A delete that deletes nothing reports nothing.
      assert.isTrue(Exit.isFailure(yield* Effect.exit(store.delete("absent"))))
      yield* store.clear
      yield* store.put("c", "3")
      yield* awaitSeen(seen, 5)
      assert.deepStrictEqual(seen, [
        { _tag: "Put", key: "a", deadline: undefined },
        { _tag: "Put", key: "b", deadline: t + 100 },
        { _tag: "Delete", key: "a" },
        { _tag: "Cleared" },
        { _tag: "Put", key: "c", deadline: undefined }
      ])
    }))

  it.effect("reports an expiry reclaimed by the reaper once, with its deadline and how late it came", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeObservedStore
      const { seen } = yield* subscribe(core, store.changes)
      const t = yield* Clock.currentTimeMillis
      yield* store.put("k", "v", { duration: 100 })
      yield* TestClock.adjust(250)
      yield* awaitCondition("the reaper reclaimed k", () => core.reaper.reclaimed() === 1)
      yield* store.put("marker", "m")
      yield* awaitSeen(seen, 3)
      assert.strictEqual(seen.length, 3)
      const [put, expired, marker] = seen
      assert.deepStrictEqual(put, { _tag: "Put", key: "k", deadline: t + 100 })
      assert.strictEqual(expired._tag, "Expired")
      if (expired._tag !== "Expired") return
      assert.strictEqual(expired.key, "k")
      assert.strictEqual(expired.deadline, t + 100)
      assert.isAtLeast(expired.reclaimedAt, expired.deadline)
      assert.strictEqual(expired.lateMillis, expired.reclaimedAt - expired.deadline)
      assert.deepStrictEqual(marker, { _tag: "Put", key: "marker", deadline: undefined })
    }))

  it.effect("reports an expiry that a put or a delete finds before the reaper does, once, before that write", () =>
    Effect.gen(function*() {
      // The reaper's sleeps never end: expired entries stay until a write finds them.
      const clock = yield* Clock.Clock
      const core = yield* makeCore({}).pipe(Effect.provideService(Clock.Clock, makeStalledClock(clock)))
      const store = makeService(core, memoryCommitter(core))
      const { seen } = yield* subscribe(core, store.changes)
      const t = yield* Clock.currentTimeMillis
      yield* store.put("k", "old", { duration: 100 })
      yield* store.put("j", "old", { duration: 10 })
      yield* TestClock.adjust(150)
      yield* store.put("k", "new")
      assert.isTrue(Exit.isFailure(yield* Effect.exit(store.delete("j"))))
      yield* store.delete("k")
      yield* awaitSeen(seen, 6)
      assert.deepStrictEqual(seen, [
        { _tag: "Put", key: "k", deadline: t + 100 },
        { _tag: "Put", key: "j", deadline: t + 10 },
        { _tag: "Expired", key: "k", deadline: t + 100, reclaimedAt: t + 150, lateMillis: 50 },
        { _tag: "Put", key: "k", deadline: undefined },
        { _tag: "Expired", key: "j", deadline: t + 10, reclaimedAt: t + 150, lateMillis: 140 },
        { _tag: "Delete", key: "k" }
      ])
      assert.strictEqual(core.reaper.reclaimed(), 0, "the reaper never ran: the writes found the expiries")
    }))

  it.effect("a subscriber that does not keep up never blocks a writer: it gets one Lagged event with the exact count it missed", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeObservedStore
      const release = yield* Deferred.make<void>()
      let blocked = false
      // The subscriber stops at its first event until released.
      const { seen } = yield* subscribe(
        core,
        store.changesWith({ bufferSize: 4 }),
        () =>
          Effect.suspend(() => {
            if (blocked) return Effect.void
            blocked = true
            return Deferred.await(release)
          })
      )
      const writes = 1_000
      for (let i = 0; i < writes; i++) yield* store.put(`k${i}`, "v")
      // Every put above completed while the subscriber held its first event
      // at most (it may not even have had a turn yet).
      assert.isAtMost(seen.length, 1)
      yield* Deferred.succeed(release, undefined)
      // Events that find the buffer still full are dropped too: let the
      // subscriber take some first (k3 is buffered whichever turn it had).
      yield* awaitCondition("the subscriber drained", () => seen.some((event) => event._tag === "Put" && event.key === "k3"))
      yield* store.put("after", "v")
      yield* awaitCondition("the event after the gap arrived", () => seen.some((event) => event._tag === "Put" && event.key === "after"))
      const lagged = seen.filter((event) => event._tag === "Lagged")
      assert.strictEqual(lagged.length, 1, "one Lagged event for one gap")
      const dropped = lagged[0]._tag === "Lagged" ? lagged[0].dropped : 0
      const delivered = seen.filter((event) => event._tag === "Put" && event.key !== "after")
      // Nothing lost without a count: what arrived and what was counted as missed are all the writes.
      assert.strictEqual(delivered.length + dropped, writes)
      assert.isAtMost(delivered.length, 1 + 4, "at most the event in hand and a full buffer")
      // The gap is where the Lagged event says it is: the events after it follow the ones before without a hole.
      const laggedAt = seen.findIndex((event) => event._tag === "Lagged")
      assert.deepStrictEqual(seen[laggedAt + 1], { _tag: "Put", key: "after", deadline: undefined })
      const indices = delivered.map((event) => event._tag === "Put" ? Number(event.key.slice(1)) : -1)
      assert.deepStrictEqual(indices, Array.from({ length: delivered.length }, (_, i) => i))
    }))

  it.effect("each subscriber has its own buffer: a stalled one costs a fast one nothing", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeObservedStore
      const release = yield* Deferred.make<void>()
      const slow = yield* subscribe(core, store.changesWith({ bufferSize: 2 }), () => Deferred.await(release))
      const fast = yield* subscribe(core, store.changesWith({ bufferSize: 64 }))
      for (let i = 0; i < 50; i++) {
        yield* store.put(`k${i}`, "v")
        // The fast one keeps up; its buffer never fills.
        yield* awaitSeen(fast.seen, i + 1)
      }
      assert.deepStrictEqual(fast.seen.map((event) => event._tag), Array(50).fill("Put"))
      assert.strictEqual(slow.seen.length, 1)
      yield* Deferred.succeed(release, undefined)
    }))

  it.effect("bufferSize below 2 or not an integer is refused with InvalidInput", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      for (const bufferSize of [1, 0, -3, 2.5, Number.NaN, Infinity]) {
        const exit = yield* Effect.exit(Stream.runDrain(store.changesWith({ bufferSize })))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const error = exit.cause.reasons[0]
          assert.strictEqual(error._tag, "Fail")
          if (error._tag === "Fail") {
            assert.instanceOf(error.error, KeyValueStore.InvalidInput)
            assert.include(error.error.message, "bufferSize")
          }
        }
      }
    }))

  it.effect("a stream ends when its store closes, after the events it holds", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { core, store } = yield* makeObservedStore.pipe(Scope.provide(scope))
      const { fiber, seen } = yield* subscribe(core, store.changes)
      yield* store.put("last", "v")
      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(seen, [{ _tag: "Put", key: "last", deadline: undefined }])
      // Subscribing to a closed store gives an empty stream, not a hang.
      const late = yield* Stream.runCollect(store.changes)
      assert.strictEqual(late.length, 0)
    }))

  it.effect("with nobody subscribed, writes emit nothing; an ended subscription unsubscribes", () =>
    Effect.gen(function*() {
      const { core, store } = yield* makeObservedStore
      assert.isFalse(core.changes.active)
      const events = yield* Stream.runCollect(
        Stream.take(store.changes, 2).pipe(Stream.onStart(Effect.forkChild(Effect.gen(function*() {
          yield* awaitCondition("subscribed", () => core.changes.subscriberCount === 1)
          yield* store.put("x", "1")
          yield* store.put("y", "2")
        }))))
      )
      assert.deepStrictEqual(events.map((event) => event._tag === "Put" ? event.key : event._tag), ["x", "y"])
      yield* awaitCondition("unsubscribed", () => core.changes.subscriberCount === 0)
      assert.isFalse(core.changes.active)
    }))
})

describe("the change stream of a log-backed store", () => {
  it.effect("reports a write once the log has it, and nothing for replay or compaction", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("changes")
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* KeyValueStore.makeLog({ path })
        yield* store.put("replayed", "r")
      }))
      const store = yield* KeyValueStore.makeLog({ path })
      const seen: Array<ChangeEvent> = []
      yield* Effect.forkChild(Stream.runForEach(store.changes, (event) => Effect.sync(() => seen.push(event))))
      // The store's core is not reachable here: probe until the subscription
      // reports, then every later change is delivered.
      for (let probes = 0; seen.length === 0; probes++) {
        assert.isBelow(probes, 1_000, "the subscription never started")
        yield* store.put("probe", "p")
        yield* Effect.yieldNow
      }
      seen.length = 0
      yield* awaitCondition("the probes are delivered", () => {
        const drained = seen.every((event) => event._tag === "Put" && event.key === "probe")
        if (drained) seen.length = 0
        return drained
      })
      yield* store.put("a", "1")
      yield* store.delete("replayed")
      yield* store.compact
      yield* store.clear
      yield* awaitSeen(seen, 3)
      assert.deepStrictEqual(seen, [
        { _tag: "Put", key: "a", deadline: undefined },
        { _tag: "Delete", key: "replayed" },
        { _tag: "Cleared" }
      ])
    }))
})

describe("ChangeHub", () => {
  it.effect("counts what a full buffer drops and reports it before the next event that fits", () =>
    Effect.gen(function*() {
      const hub = new ChangeHub()
      const received: Array<ChangeEvent> = []
      const scope = yield* Scope.make()
      const pull = yield* Stream.toPull(hub.subscribe(3)).pipe(Scope.provide(scope))
      // toPull subscribes on the first pull: take it in a fiber, then feed it.
      const first = yield* Effect.forkChild(pull)
      yield* awaitCondition("subscribed", () => hub.subscriberCount === 1)
      hub.emit({ _tag: "Delete", key: "0" })
      for (const event of yield* Fiber.join(first)) received.push(event)
      for (let i = 1; i <= 10; i++) hub.emit({ _tag: "Delete", key: String(i) })
      // 3 fit, 7 were dropped; one more event: the Lagged needs a free slot first.
      for (const event of yield* pull) received.push(event)
      hub.emit({ _tag: "Delete", key: "11" })
      for (const event of yield* pull) received.push(event)
      assert.deepStrictEqual(received, [
        { _tag: "Delete", key: "0" },
        { _tag: "Delete", key: "1" },
        { _tag: "Delete", key: "2" },
        { _tag: "Delete", key: "3" },
        { _tag: "Lagged", dropped: 7 },
        { _tag: "Delete", key: "11" }
      ])
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(hub.subscriberCount, 0)
    }))
})
