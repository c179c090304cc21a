/**
 * Metrics and spans, read back the way a user reads them: `Metric.value` on
 * the series `KeyValueStore.metrics(name)` describes, `Metric.snapshot`, and
 * a tracer that records the spans it is given.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import * as Tracer from "effect/Tracer"
import { KeyValueStore } from "../src/index.ts"
import { freshLogPath } from "./support/logHarness.ts"

/** Runs `effect` with a registry of its own, so no other test's series show up. */
const withRegistry = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

const count = (metric: Metric.Metric<number, Metric.CounterState<number>>) =>
  Effect.map(Metric.value(metric), (state) => state.count)

const gauge = (metric: Metric.Metric<number, Metric.GaugeState<number>>) =>
  Effect.map(Metric.value(metric), (state) => state.value)

const kvlogSeries = Effect.map(
  Metric.snapshot,
  (snapshots) => snapshots.filter((snapshot) => snapshot.id.startsWith("kvlog_"))
)

describe("metrics", () => {
  it.effect("an in-memory store counts hits, misses, puts, deletes, clears, expirations and their lag, and live keys", () =>
    withRegistry(Effect.gen(function*() {
      const store = yield* KeyValueStore.make({ name: "cache" })
      assert.strictEqual(store.name, "cache")
      const metrics = KeyValueStore.metrics("cache")
      yield* store.put("a", "1")
      yield* store.put("b", "2")
      yield* store.put("t", "3", { duration: 100 })
      yield* store.get("a")
      yield* store.get("a")
      yield* Effect.exit(store.get("absent"))
      yield* store.delete("b")
      yield* Effect.exit(store.delete("absent"))
      assert.deepStrictEqual(
        yield* Effect.all([count(metrics.hits), count(metrics.misses), count(metrics.puts), count(metrics.deletes)]),
        [2, 1, 3, 1]
      )
      assert.strictEqual(yield* gauge(metrics.liveKeys), 2)
      yield* TestClock.adjust(100)
      for (let turns = 0; (yield* store.stats).reclaimed === 0; turns++) {
        assert.isBelow(turns, 1_000, "the reaper never reclaimed the expired key")
        yield* Effect.yieldNow
      }
      assert.strictEqual(yield* count(metrics.expirations), 1)
      const lag = yield* Metric.value(metrics.reclaimLag)
      assert.strictEqual(lag.count, 1)
      assert.isAtLeast(lag.min, 0)
      assert.strictEqual(yield* gauge(metrics.liveKeys), 1)
      yield* store.clear
      assert.strictEqual(yield* count(metrics.clears), 1)
      assert.strictEqual(yield* gauge(metrics.liveKeys), 0)
      // An in-memory store has no log series.
      const ids = (yield* kvlogSeries).map((snapshot) => snapshot.id)
      assert.notInclude(ids, "kvlog_log_bytes")
      assert.include(ids, "kvlog_get_hits")
    })))

  it.effect("a log-backed store reports its bytes, records, batches, fsyncs and compactions; replay is not counted", () =>
    withRegistry(Effect.gen(function*() {
      const path = yield* freshLogPath("metrics")
      const metrics = KeyValueStore.metrics("durable")
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* KeyValueStore.makeLog({ path, name: "durable", fsync: "always" })
        for (let i = 0; i < 10; i++) yield* store.put(`k${i}`, "v")
        yield* Effect.all(Array.from({ length: 20 }, (_, i) => store.put(`k${i % 5}`, `w${i}`)), { concurrency: "unbounded" })
        assert.strictEqual(yield* count(metrics.puts), 30)
        const batches = yield* Metric.value(metrics.batchRecords)
        assert.strictEqual(batches.sum, 30, "every record went through one batch")
        assert.isBelow(batches.count, 30, "concurrent puts shared batches (group commit)")
        assert.isAtLeast(batches.max, 2)
        const fsyncs = yield* Metric.value(metrics.fsyncLatency)
        assert.isAtLeast(fsyncs.count, batches.count, "under \"always\" every batch was synced")
        const stats = yield* store.stats
        assert.strictEqual(yield* gauge(metrics.logBytes), stats.log!.fileBytes)
        assert.strictEqual(yield* gauge(metrics.logRecords), 30)
        yield* store.compact
        assert.strictEqual(yield* count(metrics.compactions), 1)
        const pauses = yield* Metric.value(metrics.compactionPause)
        assert.strictEqual(pauses.count, 1)
        assert.strictEqual(pauses.max, (yield* store.stats).log!.lastCompaction!.longestPauseMillis)
        assert.strictEqual(yield* gauge(metrics.logRecords), 10)
      }))
      // Closed: its series are gone.
      assert.deepStrictEqual(yield* kvlogSeries, [])
      const store = yield* KeyValueStore.makeLog({ path, name: "durable" })
      assert.strictEqual(yield* store.size, 10)
      assert.deepStrictEqual([yield* count(metrics.puts), yield* count(metrics.deletes)], [0, 0])
      assert.strictEqual(yield* gauge(metrics.liveKeys), 10)
    })))

  it.effect("two stores report apart, each under its own name", () =>
    withRegistry(Effect.gen(function*() {
      const one = yield* KeyValueStore.make({ name: "one" })
      const two = yield* KeyValueStore.make({ name: "two" })
      yield* one.put("k", "v")
      yield* two.put("k", "v")
      yield* two.put("l", "v")
      assert.strictEqual(yield* count(KeyValueStore.metrics("one").puts), 1)
      assert.strictEqual(yield* count(KeyValueStore.metrics("two").puts), 2)
      const puts = (yield* kvlogSeries).filter((snapshot) => snapshot.id === "kvlog_puts")
      assert.deepStrictEqual(puts.map((snapshot) => snapshot.attributes?.store).sort(), ["one", "two"])
    })))

  it.effect("stores without a name get distinct ones: memory-N, or the log's path", () =>
    Effect.gen(function*() {
      const first = yield* KeyValueStore.make()
      const second = yield* KeyValueStore.make()
      assert.match(first.name, /^memory-\d+$/)
      assert.notStrictEqual(first.name, second.name)
      const path = yield* freshLogPath("named")
      const log = yield* KeyValueStore.makeLog({ path })
      assert.strictEqual(log.name, path)
    }))

  it.effect("an empty name for a log is refused with InvalidInput", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("badname")
      const exit = yield* Effect.exit(KeyValueStore.makeLog({ path, name: "" }))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons[0]
        assert.isTrue(reason._tag === "Fail" && reason.error._tag === "InvalidInput")
      }
    }))
})

describe("spans", () => {
  it.effect("open, replay, compaction and close of a log each run in a span of their own", () => {
    const spans: Array<Tracer.NativeSpan> = []
    const tracer = Tracer.make({
      span(options) {
        const span = new Tracer.NativeSpan(options)
        spans.push(span)
        return span
      }
    })
    return Effect.gen(function*() {
      const path = yield* freshLogPath("spans")
      const scope = yield* Scope.make()
      const store = yield* KeyValueStore.makeLog({ path }).pipe(Scope.provide(scope))
      yield* store.put("k", "v")
      yield* store.compact
      yield* Scope.close(scope, Exit.void)
      // In the order they started, and all of them ended.
      assert.deepStrictEqual(spans.map((span) => span.name), ["kvlog.open", "kvlog.replay", "kvlog.compact", "kvlog.close"])
      assert.isTrue(spans.every((span) => span.status._tag === "Ended"))
      const replay = spans.find((span) => span.name === "kvlog.replay")!
      assert.strictEqual(replay.attributes.get("kvlog.replay.outcome"), "Ok")
      assert.strictEqual(replay.attributes.get("kvlog.log.path"), path)
      const open = spans.find((span) => span.name === "kvlog.open")!
      assert.strictEqual(replay.parent._tag === "Some" && replay.parent.value, open, "replay runs inside open")
    }).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })
})
