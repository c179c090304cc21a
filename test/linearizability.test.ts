/**
 * The in-memory store is linearizable: random concurrent histories run on
 * `layerMemory` pass the Wing–Gong / Lowe checker — histories of get, put and
 * delete with real pauses, interruptions or an adversarial scheduler, and
 * histories built to take the read/write lock's slow path (entries streams
 * held open while writers queue, clear, keys, size, has, timeToLive, random
 * preemption), which report how often they did.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { KeyValueStore } from "../src/index.ts"
import { slowPathStats } from "../src/internal/lock/ReadWriteLock.ts"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import {
  formatStoreHistoryTotals,
  minimumSlowPathShare,
  type StoreHistoryTotals,
  storeHistoriesFor
} from "./support/concurrentHistories.ts"
import {
  check,
  entriesOutcome,
  type Entry,
  formatVerdict,
  keysOutcome,
  type StoreOperation
} from "./support/Linearizability.ts"

const totals: Record<string, StoreHistoryTotals> = {}
contractSuite("KeyValueStore.layerMemory", () => KeyValueStore.layerMemory, {
  sections: ["linearizability"],
  linearizability: {
    storeHistories: storeHistoriesFor("layerMemory"),
    maintenanceWeight: 2,
    lockCounters: slowPathStats,
    minimumSlowPathShare,
    onStoreHistories: (layerTotals) => totals.layerMemory = layerTotals
  }
})
afterAll(() => {
  if (Object.keys(totals).length > 0) console.log(formatStoreHistoryTotals(totals))
})

// The checker's whole-store mode, which the histories above rely on: a
// history with clear, keys, size or entries is checked as one, its state
// being every key's register.
describe("the checker on operations over the whole store", () => {
  const op = (
    process: number,
    operation: StoreOperation,
    outcome: string | "ok" | "KeyNotFound",
    call: number,
    ret: number
  ): Entry<StoreOperation> => ({
    process,
    op: operation,
    outcome: outcome === "KeyNotFound"
      ? { _tag: "KeyNotFound" }
      : outcome === "ok"
      ? { _tag: "ok" }
      : { _tag: "ok", value: outcome },
    call,
    ret
  })
  const putA = (value: string, call: number, ret: number, ttl?: number) =>
    op(0, { _tag: "put", key: "a", value, ...(ttl === undefined ? {} : { ttl }) }, "ok", call, ret)
  const putB = (value: string, call: number, ret: number) => op(1, { _tag: "put", key: "b", value }, "ok", call, ret)
  const linearizable = (history: ReadonlyArray<Entry<StoreOperation>>, initial?: ReadonlyMap<string, string>) =>
    check(history, initial).linearizable

  it("an entries read overlapping two puts may see either, both or neither", () => {
    for (const seen of [[], [["a", "1"]], [["b", "2"]], [["a", "1"], ["b", "2"]]] as const) {
      const history = [putA("1", 1, 4), putB("2", 2, 5), op(2, { _tag: "entries" }, entriesOutcome(seen), 3, 6)]
      assert.isTrue(linearizable(history), JSON.stringify(seen))
    }
  })

  it("an entries read cannot mix two instants: it cannot see a later put and miss an earlier completed one", () => {
    // put a completes before put b starts; a read that sees b must see a.
    const history = [putA("1", 1, 2), putB("2", 3, 6), op(2, { _tag: "entries" }, entriesOutcome([["b", "2"]]), 4, 7)]
    const verdict = check(history)
    assert.isFalse(verdict.linearizable)
    if (!verdict.linearizable) {
      assert.isUndefined(verdict.key)
      assert.include(formatVerdict(verdict), "not linearizable: the store as a whole")
    }
  })

  it("keys and size after a completed clear see an empty store, and the keys present before it", () => {
    const initial = new Map([["~", "x"]])
    const before = [op(0, { _tag: "keys" }, keysOutcome(["~"]), 1, 2), op(0, { _tag: "size" }, "1", 3, 4)]
    const cleared = [op(1, { _tag: "clear" }, "ok", 5, 6), op(2, { _tag: "size" }, "0", 7, 8)]
    assert.isTrue(linearizable([...before, ...cleared], initial))
    assert.isFalse(linearizable([...before, ...cleared, op(2, { _tag: "keys" }, keysOutcome(["~"]), 9, 10)], initial))
    assert.isFalse(linearizable([op(0, { _tag: "size" }, "0", 1, 2)], initial))
  })

  it("a clear that never returned may or may not have taken effect, but not both", () => {
    const pendingClear = op(1, { _tag: "clear" }, "ok", 3, Infinity)
    const history = [putA("1", 1, 2), pendingClear, op(2, { _tag: "get", key: "a" }, "KeyNotFound", 4, 5)]
    assert.isTrue(linearizable(history))
    assert.isFalse(linearizable([...history, op(2, { _tag: "get", key: "a" }, "1", 6, 7)]))
  })

  it("has and timeToLive report the register: presence, and the TTL the last put gave", () => {
    const history = [
      putA("1", 1, 2, 50),
      op(1, { _tag: "has", key: "a" }, "true", 3, 4),
      op(1, { _tag: "timeToLive", key: "a" }, "50", 5, 6),
      putA("2", 7, 8),
      op(1, { _tag: "timeToLive", key: "a" }, "none", 9, 10),
      op(1, { _tag: "timeToLive", key: "b" }, "KeyNotFound", 11, 12),
      op(1, { _tag: "has", key: "b" }, "false", 13, 14)
    ]
    assert.isTrue(linearizable(history))
    assert.isFalse(linearizable([putA("1", 1, 2, 50), op(1, { _tag: "timeToLive", key: "a" }, "none", 3, 4)]))
    assert.isFalse(linearizable([putA("1", 1, 2), op(1, { _tag: "has", key: "a" }, "false", 3, 4)]))
  })
})
