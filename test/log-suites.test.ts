/**
 * The store's contract, run against the log-backed store under every fsync
 * policy: the operations, the refusals of bad input and the TTL rules hold
 * exactly as they do in memory, and concurrent histories on `layerLog` are
 * linearizable — histories of get, put and delete on a fresh log each, and
 * histories built to take the read/write lock's slow path (entries streams
 * held open while batches wait to be applied, compactions and clears running
 * concurrently, random preemption) on one log per batch.
 */
import { afterAll } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { KeyValueStore } from "../src/index.ts"
import { slowPathStats } from "../src/internal/lock/ReadWriteLock.ts"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import {
  formatStoreHistoryTotals,
  minimumSlowPathShare,
  type StoreHistoryTotals,
  storeHistoriesFor
} from "./support/concurrentHistories.ts"
import { freshLogPath } from "./support/logHarness.ts"

/** A log-backed store on a log of its own in a fresh temporary directory, removed with the layer. */
const freshLogLayer = (
  fsync: "always" | "interval" | "never",
  acknowledge: "written" | "buffered" = "written"
): Layer.Layer<KeyValueStore.KeyValueStore, KeyValueStore.LogOpenError> =>
  Layer.unwrap(Effect.map(freshLogPath(`suite-${fsync}`), (path) => KeyValueStore.layerLog({ path, fsync, acknowledge })))

const totals: Record<string, StoreHistoryTotals> = {}
const storeHistories = (layer: string, histories: number) => ({
  storeHistories: histories,
  maintenanceWeight: 1,
  lockCounters: slowPathStats,
  minimumSlowPathShare,
  onStoreHistories: (layerTotals: StoreHistoryTotals) => totals[layer] = layerTotals
})

// A fresh log per history costs its open and close: the fresh-store
// properties run fewer histories than in memory; the store histories run
// thousands, one log per batch.
contractSuite("KeyValueStore.layerLog({ fsync: \"always\" })", () => freshLogLayer("always"), {
  linearizability: { freshStoreRuns: 40, ...storeHistories("layerLog/always", storeHistoriesFor("always")) }
})
contractSuite("KeyValueStore.layerLog({ fsync: \"interval\" })", () => freshLogLayer("interval"), {
  linearizability: { freshStoreRuns: false, ...storeHistories("layerLog/interval", storeHistoriesFor("interval")) }
})
contractSuite("KeyValueStore.layerLog({ fsync: \"never\" })", () => freshLogLayer("never"), {
  linearizability: { freshStoreRuns: 40, ...storeHistories("layerLog/never", storeHistoriesFor("never")) }
})
contractSuite(
  "KeyValueStore.layerLog({ fsync: \"never\", acknowledge: \"buffered\" })",
  () => freshLogLayer("never", "buffered"),
  { linearizability: { freshStoreRuns: 40, storeHistories: false } }
)
// The buffering writer under "interval", beyond the 10,000 histories split among the layers above.
contractSuite(
  "KeyValueStore.layerLog({ fsync: \"interval\", acknowledge: \"buffered\" })",
  () => freshLogLayer("interval", "buffered"),
  {
    sections: ["linearizability"],
    linearizability: {
      freshStoreRuns: false,
      ...storeHistories("layerLog/interval/buffered", Math.round(storeHistoriesFor("interval") / 3))
    }
  }
)
afterAll(() => {
  if (Object.keys(totals).length > 0) console.log(formatStoreHistoryTotals(totals))
})
