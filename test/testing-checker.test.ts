/**
 * What `kvlog/testing` adds to the checker kvlog's own tests use
 * (`linearizability-checker.test.ts` holds the algorithm's specification):
 * the store model's options, refused calls and byte values; models of your
 * own; counterexamples trimmed to what their contradiction needs and
 * printed with the reason; and `recordStore`, which turns any store's calls
 * into a history.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { KeyValueStore } from "../src/index.ts"
import { HistoryRecorder, Linearizability } from "../src/testing/index.ts"

type Entry = Linearizability.Entry<Linearizability.StoreOperation>

const entry = (
  process: number,
  op: Linearizability.StoreOperation,
  outcome: string | "ok" | "KeyNotFound" | "InvalidInput",
  call: number,
  ret: number
): Entry => ({
  process,
  op,
  outcome: outcome === "KeyNotFound" || outcome === "InvalidInput"
    ? { _tag: outcome }
    : outcome === "ok"
    ? { _tag: "ok" }
    : { _tag: "ok", value: outcome },
  call,
  ret
})

const put = (value: string, call: number, ret: number, ttl?: number): Entry =>
  entry(0, { _tag: "put", key: "k", value, ...(ttl === undefined ? {} : { ttl }) }, "ok", call, ret)
const get = (seen: string, call: number, ret: number): Entry => entry(1, { _tag: "get", key: "k" }, seen, call, ret)
const timeToLive = (seen: string, call: number, ret: number): Entry =>
  entry(1, { _tag: "timeToLive", key: "k" }, seen, call, ret)

const linearizable = (history: ReadonlyArray<Entry>, model?: Linearizability.KeyValueModel) =>
  Linearizability.checkLinearizable(history, model).linearizable

describe("the store model", () => {
  it("timeToLive \"exact\" (the default) accepts only the TTL the last put gave", () => {
    assert.isTrue(linearizable([put("v", 1, 2, 50), timeToLive("50", 3, 4)]))
    assert.isFalse(linearizable([put("v", 1, 2, 50), timeToLive("30", 3, 4)]))
  })

  it("timeToLive \"elapsing\" accepts any time left up to the TTL, and none for a key without one", () => {
    const elapsing = Linearizability.keyValueModel({ timeToLive: "elapsing" })
    assert.isTrue(linearizable([put("v", 1, 2, 50), timeToLive("30", 3, 4)], elapsing))
    assert.isTrue(linearizable([put("v", 1, 2, 50), timeToLive("50", 3, 4)], elapsing))
    assert.isFalse(linearizable([put("v", 1, 2, 50), timeToLive("60", 3, 4)], elapsing), "more than was given")
    assert.isFalse(linearizable([put("v", 1, 2, 50), timeToLive("0", 3, 4)], elapsing), "nothing left, yet present")
    assert.isFalse(linearizable([put("v", 1, 2, 50), timeToLive("none", 3, 4)], elapsing))
    assert.isTrue(linearizable([put("v", 1, 2), timeToLive("none", 3, 4)], elapsing))
    assert.isFalse(linearizable([put("v", 1, 2), timeToLive("30", 3, 4)], elapsing))
  })

  it("initial holds the keys present before the history began", () => {
    const model = Linearizability.keyValueModel({ initial: new Map([["k", "before"]]) })
    assert.isTrue(linearizable([get("before", 1, 2)], model))
    assert.isFalse(linearizable([get("before", 1, 2)]))
  })

  it("a call refused with InvalidInput changed nothing: it can be placed anywhere, and must be", () => {
    const refused = entry(0, { _tag: "put", key: "k", value: "refused" }, "InvalidInput", 1, 2)
    assert.isTrue(linearizable([refused, entry(1, { _tag: "get", key: "k" }, "KeyNotFound", 3, 4)]))
    assert.isFalse(linearizable([refused, get("refused", 3, 4)]), "the refused value was stored")
  })

  it("a value holding the character the model marks TTLs with is a value like any other", () => {
    assert.isTrue(linearizable([put("a\u0000b", 1, 2, 7), get("a\u0000b", 3, 4), timeToLive("7", 5, 6)]))
    assert.isFalse(linearizable([put("a\u0000b", 1, 2, 7), get("a", 3, 4)]))
  })

  it("bytes are values compared by their contents, long ones by their length and hashes", () => {
    const short = Linearizability.historyValue(new Uint8Array([0, 1, 255]))
    assert.strictEqual(short, Linearizability.historyValue(new Uint8Array([0, 1, 255])))
    assert.notStrictEqual(short, Linearizability.historyValue(new Uint8Array([0, 1, 254])))
    assert.notStrictEqual(short, "\u0000\u0001\u00ff", "bytes never equal a string")
    const long = new Uint8Array(100_000).map((_, i) => i % 251)
    const changed = long.slice()
    changed[99_999] ^= 1
    assert.strictEqual(Linearizability.historyValue(long), Linearizability.historyValue(long.slice()))
    assert.notStrictEqual(Linearizability.historyValue(long), Linearizability.historyValue(changed))
    assert.isBelow(Linearizability.historyValue(long).length, 100, "a long value is named briefly")
    assert.strictEqual(
      Linearizability.formatEntry(put(short, 1, 2)),
      "p0 put(\"k\", bytes[00 01 ff]) -> ok  [1, 2]"
    )
  })

  it("refuses options it cannot use", () => {
    assert.throws(() => Linearizability.keyValueModel({ timeToLive: "approximate" as never }), /timeToLive must be "exact" or "elapsing"/)
    assert.throws(() => Linearizability.keyValueModel({ initial: { k: "v" } as never }), /initial must be a Map/)
  })

  it("a history whose timestamps break the rules is a MalformedHistory", () => {
    assert.throws(() => Linearizability.checkLinearizable([put("v", 2, 1)]), Linearizability.MalformedHistory)
  })
})

// =============================================================================
// A model of your own
// =============================================================================

/** A counter: `add(n)` adds and returns nothing, `read()` returns the total. */
type CounterOp = { readonly _tag: "add"; readonly n: number } | { readonly _tag: "read" }

const counter = Linearizability.makeModel<CounterOp, string>({
  initial: "0",
  step: (state, entry) => {
    if (entry.op._tag === "add") return String(Number(state) + entry.op.n)
    if (entry.ret === Infinity) return state
    return entry.outcome._tag === "ok" && entry.outcome.value === state ? state : Linearizability.Impossible
  },
  effectOf: (op) => op._tag === "add" ? `add ${op.n}` : undefined,
  isReadOnly: (entry) => entry.op._tag === "read",
  show: (state) => `total ${state}`,
  explain: (state, entry) =>
    entry.outcome._tag === "ok" ? `read ${entry.outcome.value} while the total is ${state}` : undefined
})

const add = (process: number, n: number, call: number, ret: number): Linearizability.Entry<CounterOp> => ({
  process,
  op: { _tag: "add", n },
  outcome: { _tag: "ok" },
  call,
  ret
})
const read = (process: number, total: string, call: number, ret: number): Linearizability.Entry<CounterOp> => ({
  process,
  op: { _tag: "read" },
  outcome: { _tag: "ok", value: total },
  call,
  ret
})

describe("a model of your own", () => {
  it("a read overlapping two adds may see either, both or neither", () => {
    for (const total of ["0", "1", "2", "3"]) {
      const verdict = Linearizability.checkLinearizable([add(0, 1, 1, 4), add(1, 2, 2, 5), read(2, total, 3, 6)], counter)
      assert.isTrue(verdict.linearizable, total)
    }
  })

  it("a read after both adds returned must see both, and the counterexample says so in the model's words", () => {
    const verdict = Linearizability.checkLinearizable([add(0, 1, 1, 2), add(1, 2, 3, 4), read(2, "1", 5, 6)], counter)
    if (verdict.linearizable) return assert.fail("expected a counterexample")
    assert.isUndefined(verdict.key)
    assert.deepStrictEqual(verdict.prefixStates, ["total 1", "total 3"])
    assert.strictEqual(verdict.reason, "read 1 while the total is 3")
    assert.include(Linearizability.formatVerdict(verdict), "p0 add(1) -> ok  [1, 2]")
  })

  it("an add that never returned counts once or not at all", () => {
    const history = [add(0, 5, 1, Infinity), read(1, "5", 2, 3), read(1, "5", 4, 5)]
    assert.isTrue(Linearizability.checkLinearizable(history, counter).linearizable)
    assert.isFalse(Linearizability.checkLinearizable([...history, read(1, "0", 6, 7)], counter).linearizable)
  })
})

// =============================================================================
// Counterexamples
// =============================================================================

describe("counterexamples", () => {
  it("trimming leaves out the reads the contradiction does not need, and keeps the writes", () => {
    const history = [
      put("v1", 1, 2),
      get("v1", 3, 4),
      get("v1", 5, 6),
      put("v2", 7, 8),
      get("v1", 9, 10), // stale
      get("v2", 11, 12)
    ]
    const verdict = Linearizability.checkLinearizable(history)
    if (verdict.linearizable) return assert.fail("expected a counterexample")
    const trimmed = Linearizability.trimCounterexample(verdict)
    assert.strictEqual(trimmed.leftOut, 3)
    assert.deepStrictEqual(trimmed.verdict.history, [put("v1", 1, 2), put("v2", 7, 8), get("v1", 9, 10)])
    assert.isFalse(Linearizability.checkLinearizable(trimmed.verdict.history).linearizable)
  })

  it("trimming keeps operations that never returned: without them the history might fail for another reason", () => {
    const pendingPut = entry(0, { _tag: "put", key: "k", value: "p" }, "ok", 1, Infinity)
    const history = [pendingPut, get("p", 2, 3), entry(1, { _tag: "get", key: "k" }, "KeyNotFound", 4, 5)]
    const verdict = Linearizability.checkLinearizable(history)
    if (verdict.linearizable) return assert.fail("expected a counterexample")
    assert.deepStrictEqual(Linearizability.trimCounterexample(verdict).verdict.history, history)
  })

  it("a trimmed counterexample is part of the history, still not linearizable, and lost only operations that changed nothing or came after all it kept", () => {
    const op = fc.oneof(
      fc.constant<Linearizability.StoreOperation>({ _tag: "get", key: "k" }),
      fc.constantFrom("x", "y").map((value): Linearizability.StoreOperation => ({ _tag: "put", key: "k", value })),
      fc.constant<Linearizability.StoreOperation>({ _tag: "delete", key: "k" })
    )
    const histories = fc.array(
      fc.record({ op, seen: fc.constantFrom("x", "y", "KeyNotFound", "ok"), pending: fc.boolean() }),
      { minLength: 1, maxLength: 7 }
    ).map((drafts) =>
      drafts.map((draft, i): Entry => {
        const outcome = draft.op._tag === "get" && draft.seen === "ok" ? "x" : draft.seen
        // Overlapping intervals: call 2i+1, return 2i+4.
        return entry(i, draft.op, outcome, 2 * i + 1, draft.pending && i > 0 ? Infinity : 2 * i + 4)
      })
    )
    let trimmedSome = 0
    fc.assert(fc.property(histories, (history) => {
      const verdict = Linearizability.checkLinearizable(history)
      if (verdict.linearizable) return
      const { leftOut, verdict: trimmed } = Linearizability.trimCounterexample(verdict)
      assert.isFalse(Linearizability.checkLinearizable(trimmed.history).linearizable)
      assert.isTrue(trimmed.history.every((kept) => history.includes(kept)))
      assert.strictEqual(trimmed.history.length + leftOut, verdict.history.length)
      for (const removed of verdict.history.filter((e) => !trimmed.history.includes(e))) {
        const changedNothing = removed.op._tag === "get" ||
          (removed.op._tag === "delete" && removed.outcome._tag === "KeyNotFound")
        // Removed one at a time, each after every operation still there at its turn: so after every one kept.
        const last = trimmed.history.every((kept) => kept.ret === Infinity || kept.ret < removed.call)
        assert.isTrue(removed.ret !== Infinity && (changedNothing || last), Linearizability.formatEntry(removed))
      }
      if (leftOut > 0) trimmedSome++
    }), { numRuns: 2_000 })
    assert.isAbove(trimmedSome, 100, "trimming had something to leave out in many histories")
  })

  it("assertLinearizable throws NotLinearizable with the trimmed timeline and the reason", () => {
    assert.doesNotThrow(() => Linearizability.assertLinearizable([put("v", 1, 2), get("v", 3, 4)]))
    const history = [put("v", 1, 2), get("v", 3, 4), entry(1, { _tag: "get", key: "k" }, "KeyNotFound", 5, 6)]
    try {
      Linearizability.assertLinearizable(history)
      assert.fail("expected NotLinearizable")
    } catch (error) {
      assert.instanceOf(error, Linearizability.NotLinearizable)
      assert.strictEqual(error.leftOut, 1)
      assert.isUndefined(error.found)
      assert.strictEqual(
        error.message,
        [
          "1 operation the contradiction does not need left out",
          "",
          "not linearizable: key \"k\"",
          "",
          "history (by call time):",
          "  p0 put(\"k\", \"v\") -> ok  [1, 2]      []  ",
          "  p1 get(\"k\") -> KeyNotFound  [5, 6]    []",
          "",
          "longest linearizable prefix found:",
          "  p0 put(\"k\", \"v\") -> ok  [1, 2]   => \"v\"",
          "",
          "then nothing fits before this return: p1 get(\"k\") -> KeyNotFound  [5, 6]",
          "(register after the prefix: \"v\")",
          "why: get(\"k\") -> KeyNotFound cannot be seen when the key holds \"v\""
        ].join("\n")
      )
    }
  })
})

// =============================================================================
// The recorder
// =============================================================================

describe("recordStore", () => {
  it.effect("records every call with the calling fiber, its outcome, and call and return in order", () =>
    Effect.gen(function*() {
      const recorded = HistoryRecorder.recordStore(yield* KeyValueStore.make())
      const store = recorded.store
      yield* store.put("a", "1", { duration: 50 })
      yield* store.put("b", new Uint8Array([7]))
      assert.strictEqual(yield* store.get("a"), "1")
      assert.isTrue(yield* store.has("a"))
      assert.deepStrictEqual(yield* store.timeToLive("a"), Option.some(Duration.millis(50)))
      assert.strictEqual(yield* store.size, 2)
      assert.deepStrictEqual([...(yield* store.keys)].sort(), ["a", "b"])
      assert.strictEqual((yield* Stream.runCollect(store.entries)).length, 2)
      yield* store.delete("a")
      yield* store.clear
      const fiber = yield* Effect.fiberId
      const history = recorded.history()
      assert.deepStrictEqual(history.map((e) => [e.op._tag, e.outcome]), [
        ["put", { _tag: "ok", value: "1" }],
        ["put", { _tag: "ok", value: Linearizability.historyValue(new Uint8Array([7])) }],
        ["get", { _tag: "ok", value: "1" }],
        ["has", { _tag: "ok", value: "true" }],
        ["timeToLive", { _tag: "ok", value: "50" }],
        ["size", { _tag: "ok", value: "2" }],
        ["keys", { _tag: "ok", value: "[\"a\",\"b\"]" }],
        ["entries", { _tag: "ok", value: JSON.stringify([["a", "1"], ["b", Linearizability.historyValue(new Uint8Array([7]))]]) }],
        ["delete", { _tag: "ok" }],
        ["clear", { _tag: "ok" }]
      ])
      assert.deepStrictEqual(history[0].op, { _tag: "put", key: "a", value: "1", ttl: 50 })
      assert.isTrue(history.every((e) => e.process === fiber))
      const stamps = history.flatMap((e) => [e.call, e.ret])
      assert.deepStrictEqual(stamps, stamps.slice().sort((a, b) => a - b), "each call returned before the next")
      assert.isTrue(Linearizability.checkLinearizable(history).linearizable)
    }))

  it.effect("hands back the store's own failures, and records KeyNotFound and InvalidInput as outcomes", () =>
    Effect.gen(function*() {
      const recorded = HistoryRecorder.recordStore(yield* KeyValueStore.make())
      const missing = yield* Effect.flip(recorded.store.get("missing"))
      assert.instanceOf(missing, KeyValueStore.KeyNotFound)
      assert.strictEqual(missing.key, "missing")
      const refused = yield* Effect.flip(recorded.store.put("k\uD800", "v"))
      assert.instanceOf(refused, KeyValueStore.InvalidInput)
      const untyped = yield* Effect.flip(
        (recorded.store.get as (key: unknown) => Effect.Effect<unknown, unknown>)(42)
      )
      assert.instanceOf(untyped, KeyValueStore.InvalidInput)
      assert.deepStrictEqual(recorded.history().map((e) => [e.op, e.outcome._tag]), [
        [{ _tag: "get", key: "missing" }, "KeyNotFound"],
        [{ _tag: "put", key: "k\uD800", value: "v" }, "InvalidInput"],
        [{ _tag: "get", key: "‹number 42›" }, "InvalidInput"]
      ])
      assert.isTrue(Linearizability.checkLinearizable(recorded.history()).linearizable)
    }))

  it.effect("a call interrupted in flight stays in the history with no return", () =>
    Effect.gen(function*() {
      const inner = yield* KeyValueStore.make()
      const recorded = HistoryRecorder.recordStore({ ...inner, get: () => Effect.never })
      const fiber = yield* Effect.forkChild(recorded.store.get("k"))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(recorded.history().map((e) => [e.op._tag, e.ret]), [["get", Infinity]])
    }))

  it.effect("compact, stats and writeStatus pass through unrecorded", () =>
    Effect.gen(function*() {
      const recorded = HistoryRecorder.recordStore(yield* KeyValueStore.make())
      yield* recorded.store.compact
      assert.strictEqual((yield* recorded.store.stats).storedEntries, 0)
      assert.deepStrictEqual(yield* recorded.store.writeStatus, { _tag: "Writable" })
      assert.deepStrictEqual(recorded.history(), [])
    }))

  it.live("a concurrent workload on kvlog's store records a linearizable history; on a store with a torn delete, one that is not", () =>
    Effect.gen(function*() {
      const workload = (store: KeyValueStore.KeyValueStoreService) =>
        Effect.forEach(Array.from({ length: 8 }, (_, fiber) => fiber), (fiber) =>
          Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
            Effect.ignore(
              i % 3 === 0
                ? store.put("k", `f${fiber}.${i}`)
                : i % 3 === 1
                ? Effect.andThen(Effect.yieldNow, store.delete("k"))
                : store.get("k")
            ), { discard: true }), { concurrency: "unbounded", discard: true })

      const good = HistoryRecorder.recordStore(yield* KeyValueStore.make())
      yield* workload(good.store)
      assert.strictEqual(good.history().length, 160)
      assert.isTrue(Linearizability.checkLinearizable(good.history()).linearizable)
      assert.isAbove(new Set(good.history().map((e) => e.process)).size, 1, "calls came from several fibers")

      const inner = yield* KeyValueStore.make()
      const torn = HistoryRecorder.recordStore({
        ...inner,
        delete: (key) =>
          Effect.flatMap(inner.has(key), (present) =>
            present
              ? Effect.andThen(Effect.yieldNow, Effect.ignore(inner.delete(key)))
              : Effect.fail(new KeyValueStore.KeyNotFound({ key })))
      })
      yield* workload(torn.store)
      const exit = yield* Effect.exit(Effect.sync(() => Linearizability.assertLinearizable(torn.history())))
      assert.isTrue(Exit.hasDies(exit), "the torn delete's history is not linearizable")
    }))
})
