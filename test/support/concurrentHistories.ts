/**
 * The concurrent-history workloads of `kvlog/testing`, and kvlog's own
 * budget for them: how many store histories each of its layers checks per
 * test run, raised for a soak with `KVLOG_HISTORIES`.
 */
export {
  type Pause,
  type Pauser,
  PreemptingScheduler,
  type Program,
  type ProgramShape,
  runProgram,
  runStoreProgram,
  type StoreHistoryTotals,
  type StoreProgram
} from "../../src/testing/ConcurrentHistories.ts"
export { formatStoreHistoryTotals } from "../../src/testing/ConcurrentHistories.ts"

/** Store histories per run, across all layers: 10,000, or `KVLOG_HISTORIES` if more (for a soak). */
export const storeHistoriesTotal = Math.max(10_000, Number(process.env.KVLOG_HISTORIES ?? 0) || 0)

/**
 * Each layer's share of `storeHistoriesTotal`. A history on a log costs a
 * few times one in memory (compactions, clears and syncs are real I/O).
 */
const storeHistoryShares = { layerMemory: 0.5, always: 0.15, interval: 0.15, never: 0.2 } as const

/** How many store histories `layer` checks per run; the four add up to `storeHistoriesTotal`. */
export const storeHistoriesFor = (layer: keyof typeof storeHistoryShares): number =>
  layer === "layerMemory"
    ? storeHistoriesTotal - storeHistoriesFor("always") - storeHistoriesFor("interval") - storeHistoriesFor("never")
    : Math.round(storeHistoriesTotal * storeHistoryShares[layer])

/** The least share of kvlog's store histories in which some operation takes the lock's slow path. */
export const minimumSlowPathShare = 0.3
