/**
 * The contract's concurrency clause: histories of many fibers on the store
 * are linearizable. Registers the properties of `ConcurrentHistories` as
 * tests, each asserting that its runs were not vacuous.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  checkHistoriesWithPauses,
  checkInterruptedHistories,
  checkScheduledHistories,
  checkStoreHistories,
  defaultScheduledShape,
  defaultShape,
  type ProgramShape,
  type StoreHistoryTotals
} from "../../ConcurrentHistories.ts"
import type { StoreUnderTest } from "./StoreUnderTest.ts"

/** The linearizability options of the suite, resolved. */
export interface LinearizabilitySettings {
  readonly freshStoreRuns: number | false
  readonly storeHistories: number | false
  readonly maintenanceWeight: number
  readonly lockCounters: (() => { readonly reads: number; readonly writes: number }) | undefined
  readonly minimumSlowPathShare: number
  readonly onStoreHistories: ((totals: StoreHistoryTotals) => void) | undefined
}

/** Property runs take real time; generous against a busy machine. */
const timeout = 600_000

const describeShape = (shape: ProgramShape): string => {
  const range = ({ max, min }: { readonly min: number; readonly max: number }) => min === max ? `${min}` : `${min} to ${max}`
  return `${range(shape.fibers)} fibers doing get, put and delete on ${shape.keys} keys`
}

export const linearizabilitySection = (sut: StoreUnderTest, settings: LinearizabilitySettings): void => {
  const { makeLayer } = sut
  describe("linearizability", () => {
    const runs = settings.freshStoreRuns
    if (runs !== false) {
      it(`histories of ${describeShape(defaultShape)}, with real pauses, are linearizable`, async () => {
        const coverage = await checkHistoriesWithPauses(makeLayer, { runs })
        assert.strictEqual(coverage.runs, runs, "every run was checked")
        assert.isAbove(coverage.withOverlap, coverage.runs / 2, "operations on one key overlapped in most runs")
      }, timeout)

      it("histories with fibers interrupted at random times are linearizable: an interrupted operation takes effect entirely or not at all", async () => {
        const coverage = await checkInterruptedHistories(makeLayer, { runs: Math.ceil(runs / 2) })
        assert.isAbove(coverage.withPending, coverage.runs / 2, "most runs interrupted an operation in flight")
      }, timeout)

      it(`histories of ${describeShape(defaultScheduledShape)} whose interleaving fast-check's scheduler chooses, step by step, are linearizable`, async () => {
        const coverage = await checkScheduledHistories(makeLayer, { runs })
        assert.isAbove(coverage.withOverlap, coverage.runs / 2, "operations on one key overlapped in most runs")
      }, timeout)
    }

    const histories = settings.storeHistories
    if (histories !== false) {
      const { lockCounters, minimumSlowPathShare } = settings
      const slowPath = lockCounters === undefined
        ? ""
        : `, and at least ${minimumSlowPathShare * 100}% of them take the lock's slow path`
      it(`${histories} random histories of entries held open, clear, ${
        sut.supportsCompact ? "compact, " : ""
      }keys, size and single-key operations, preempted at random, are linearizable${slowPath}`, async () => {
        const totals = await checkStoreHistories(makeLayer, histories, {
          maintenanceWeight: settings.maintenanceWeight,
          compact: sut.supportsCompact,
          clock: sut.clock,
          lockCounters
        })
        settings.onStoreHistories?.(totals)
        assert.strictEqual(totals.histories, histories, "every history was checked")
        if (lockCounters !== undefined) {
          assert.isAtLeast(
            totals.slowPath / totals.histories,
            minimumSlowPathShare,
            `share of histories that took the slow path (${totals.slowPath} of ${totals.histories})`
          )
        }
        assert.isAbove(totals.writeDuringEntries, totals.histories / 4, "writes overlapped a held entries stream")
      }, timeout)
    }
  })
}
