/**
 * kvlog's contract as a test suite: call `contractSuite` in a test file and
 * it registers, under `@effect/vitest`, every test a `KeyValueStore` must
 * pass — against kvlog's own layers, against a store of yours behind the
 * same service, or against a composition of layers.
 *
 * ```ts
 * import { KeyValueStore } from "kvlog"
 * import { ContractSuite } from "kvlog/testing"
 *
 * ContractSuite.contractSuite("my store", () => myStoreLayer, { clock: "live", supportsStats: false })
 * ```
 *
 * @since 0.2.0
 */
import { describe } from "@effect/vitest"
import * as KeyValueStore from "../KeyValueStore.ts"
import type { MakeLayer, StoreHistoryTotals } from "./ConcurrentHistories.ts"
import { invalidInputSection } from "./internal/contract/invalidInput.ts"
import { linearizabilitySection } from "./internal/contract/linearizability.ts"
import { operationsSection } from "./internal/contract/operations.ts"
import type { StoreUnderTest } from "./internal/contract/StoreUnderTest.ts"
import { ttlOnLiveClockSection } from "./internal/contract/ttlOnLiveClock.ts"
import { ttlOnTestClockSection } from "./internal/contract/ttlOnTestClock.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * The parts of the contract:
 *
 * - `"operations"`: get, put, delete, has, timeToLive, size, keys, entries,
 *   clear, writeStatus and compact, clause by clause; values come back as
 *   given; the size limits hold exactly.
 * - `"invalidInput"`: every operation that takes arguments refuses bad ones
 *   with `InvalidInput`, a message that says what was expected, and the
 *   store unchanged.
 * - `"ttl"`: a key put with duration `d` is readable until `t_put + d` and
 *   gone from then on, for every read; overwrites move or clear deadlines.
 * - `"linearizability"`: random concurrent histories are linearizable.
 *
 * @since 0.2.0
 * @category models
 */
export type Section = "operations" | "invalidInput" | "ttl" | "linearizability"

/**
 * Options of `contractSuite`.
 *
 * - `clock` (default `"test"`): `"test"` runs every test on a `TestClock`
 *   and checks TTLs to the exact millisecond, for stores that take time from
 *   Effect's `Clock`; `"live"` is for stores with a clock of their own (a
 *   server that expires keys): TTLs are checked on real time with short
 *   durations (`live`), and keys that must not expire during a test are given
 *   an hour.
 * - `sections` (default all): the parts of the contract to register.
 * - `supportsCompact` (default `true`): whether `compact` runs; without it,
 *   no test calls it.
 * - `supportsStats` (default `true`): whether `stats` counts entries exactly
 *   and expired entries are reclaimed at their deadline (checked on the test
 *   clock only).
 * - `limits` (default kvlog's `maxKeyLength` and `maxValueLength`): the
 *   store's size limits, tested at the limit and one past it.
 * - `live`: on the live clock, the TTL given (`durationMillis`, default 50),
 *   how far apart the store's clock and ours may round (`toleranceMillis`,
 *   default 2), and how long past a deadline a key may stay readable before
 *   the test gives up (`patienceMillis`, default 5000).
 * - `linearizability`: `freshStoreRuns` (default 200; `false` for none), the
 *   runs of the properties that build a fresh store for each history;
 *   `storeHistories` (default 1000; `false` for none), the histories of
 *   whole-store operations, in batches on one store; `maintenanceWeight`
 *   (default 1), how often those histories clear and compact;
 *   `lockCounters` and `minimumSlowPathShare` (default 0.3), a probe of a
 *   lock's slow path and the share of histories that must take it;
 *   `onStoreHistories`, called with what the store histories exercised.
 *
 * @since 0.2.0
 * @category models
 */
export interface ContractSuiteOptions {
  readonly clock?: "test" | "live" | undefined
  readonly sections?: ReadonlyArray<Section> | undefined
  readonly supportsCompact?: boolean | undefined
  readonly supportsStats?: boolean | undefined
  readonly limits?: { readonly maxKeyLength: number; readonly maxValueLength: number } | undefined
  readonly live?: {
    readonly durationMillis?: number | undefined
    readonly toleranceMillis?: number | undefined
    readonly patienceMillis?: number | undefined
  } | undefined
  readonly linearizability?: {
    readonly freshStoreRuns?: number | false | undefined
    readonly storeHistories?: number | false | undefined
    readonly maintenanceWeight?: number | undefined
    readonly lockCounters?: (() => { readonly reads: number; readonly writes: number }) | undefined
    readonly minimumSlowPathShare?: number | undefined
    readonly onStoreHistories?: ((totals: StoreHistoryTotals) => void) | undefined
  } | undefined
}

// =============================================================================
// Constructors
// =============================================================================

const allSections: ReadonlyArray<Section> = ["operations", "invalidInput", "ttl", "linearizability"]

/**
 * Registers kvlog's contract tests under `describe(name)`. `makeLayer` is
 * called once per test (and per history run), and each build of the layer
 * must give a store that starts empty: a fresh temporary log, a fresh
 * namespace on a server. Throws `TypeError` or `RangeError`, registering
 * nothing, on options it cannot use.
 *
 * @since 0.2.0
 * @category constructors
 */
export const contractSuite = (name: string, makeLayer: MakeLayer, options: ContractSuiteOptions = {}): void => {
  if (typeof name !== "string" || name === "") throw new TypeError("the suite's name must be a non-empty string")
  if (typeof makeLayer !== "function") throw new TypeError("makeLayer must be a function that returns a layer")
  const clock = options.clock ?? "test"
  if (clock !== "test" && clock !== "live") throw new TypeError(`clock must be "test" or "live", got ${String(clock)}`)
  const sections = options.sections ?? allSections
  for (const section of sections) {
    if (!allSections.includes(section)) {
      throw new TypeError(`unknown section ${JSON.stringify(section)}: the sections are ${allSections.join(", ")}`)
    }
  }
  const limits = options.limits ?? { maxKeyLength: KeyValueStore.maxKeyLength, maxValueLength: KeyValueStore.maxValueLength }
  positive("limits.maxKeyLength", limits.maxKeyLength, 2)
  positive("limits.maxValueLength", limits.maxValueLength, 1)
  const live = {
    durationMillis: options.live?.durationMillis ?? 50,
    toleranceMillis: options.live?.toleranceMillis ?? 2,
    patienceMillis: options.live?.patienceMillis ?? 5_000
  }
  positive("live.durationMillis", live.durationMillis, 1)
  positive("live.toleranceMillis", live.toleranceMillis, 0)
  positive("live.patienceMillis", live.patienceMillis, 0)
  const lin = options.linearizability ?? {}
  const freshStoreRuns = lin.freshStoreRuns ?? 200
  const storeHistories = lin.storeHistories ?? 1_000
  if (freshStoreRuns !== false) positive("linearizability.freshStoreRuns", freshStoreRuns, 1)
  if (storeHistories !== false) positive("linearizability.storeHistories", storeHistories, 1)
  const minimumSlowPathShare = lin.minimumSlowPathShare ?? 0.3
  if (!(minimumSlowPathShare >= 0 && minimumSlowPathShare <= 1)) {
    throw new RangeError(`linearizability.minimumSlowPathShare must be between 0 and 1, got ${minimumSlowPathShare}`)
  }
  const sut: StoreUnderTest = {
    makeLayer,
    clock,
    supportsCompact: options.supportsCompact ?? true,
    supportsStats: options.supportsStats ?? true,
    limits,
    live
  }
  describe(name, () => {
    if (sections.includes("operations")) operationsSection(sut)
    if (sections.includes("invalidInput")) invalidInputSection(sut)
    if (sections.includes("ttl")) {
      if (clock === "test") ttlOnTestClockSection(sut)
      else ttlOnLiveClockSection(sut)
    }
    if (sections.includes("linearizability")) {
      linearizabilitySection(sut, {
        freshStoreRuns,
        storeHistories,
        maintenanceWeight: lin.maintenanceWeight ?? 1,
        lockCounters: lin.lockCounters,
        minimumSlowPathShare,
        onStoreHistories: lin.onStoreHistories
      })
    }
  })
}

/** Checks that an option is a number of at least `min` (whole, where it counts things). */
const positive = (option: string, value: unknown, min: number): void => {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new RangeError(`${option} must be a number of at least ${min}, got ${String(value)}`)
  }
  if (!option.endsWith("Millis") && !Number.isSafeInteger(value)) {
    throw new RangeError(`${option} must be a whole number, got ${value}`)
  }
}
