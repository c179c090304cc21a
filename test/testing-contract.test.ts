/**
 * The contract suite of `kvlog/testing` beyond kvlog's own test-clock runs:
 * on the live clock (TTLs on real time, awaited through the store's own
 * answers) against `layerMemory` and a log that syncs every write; against
 * a composition of a user's own (kvlog's store behind the history
 * recorder); the live TTL check failing on stores that expire late or
 * early; and the suite refusing options it cannot use.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { KeyValueStore } from "../src/index.ts"
import { contractSuite } from "../src/testing/ContractSuite.ts"
import type { StoreUnderTest } from "../src/testing/internal/contract/StoreUnderTest.ts"
import { awaitExpiry, timedPut } from "../src/testing/internal/contract/ttlOnLiveClock.ts"
import { recordStore } from "../src/testing/HistoryRecorder.ts"
import { freshLogPath } from "./support/logHarness.ts"

contractSuite("KeyValueStore.layerMemory on the live clock", () => KeyValueStore.layerMemory, {
  clock: "live",
  linearizability: { freshStoreRuns: false, storeHistories: 200, maintenanceWeight: 2 }
})

contractSuite(
  "KeyValueStore.layerLog({ fsync: \"always\" }) on the live clock",
  () => Layer.unwrap(Effect.map(freshLogPath("live"), (path) => KeyValueStore.layerLog({ path, fsync: "always" }))),
  { clock: "live", sections: ["ttl"] }
)

// A composition of the user's own: the store behind the recorder must keep
// every clause, since the recorder hands back the store's own answers.
contractSuite(
  "KeyValueStore.make() behind HistoryRecorder.recordStore",
  () => Layer.effect(KeyValueStore.KeyValueStore, Effect.map(KeyValueStore.make(), (store) => recordStore(store).store)),
  { sections: ["operations", "invalidInput", "ttl"] }
)

// =============================================================================
// The live TTL check fails on a store that breaks the rule
// =============================================================================

const liveSut: StoreUnderTest = {
  makeLayer: () => KeyValueStore.layerMemory,
  clock: "live",
  supportsCompact: true,
  supportsStats: true,
  limits: { maxKeyLength: KeyValueStore.maxKeyLength, maxValueLength: KeyValueStore.maxValueLength },
  live: { durationMillis: 30, toleranceMillis: 2, patienceMillis: 2_000 }
}

/** A store whose keys live `factor` times the duration they were put with. */
const stretchingTtl = (store: KeyValueStore.KeyValueStoreService, factor: number): KeyValueStore.KeyValueStoreService => ({
  ...store,
  put: (key, value, options) =>
    store.put(key, value, options?.duration === undefined ? options : { duration: Number(options.duration) * factor })
})

/** Runs the expiry check on `store` for a key put with 30 ms, and gives its failure's message. */
const expiryFailure = (store: KeyValueStore.KeyValueStoreService) =>
  Effect.gen(function*() {
    const put = yield* timedPut(store, "k", "v", liveSut.live.durationMillis)
    const exit = yield* Effect.exit(awaitExpiry(liveSut, store, "k", "v", put))
    assert.isTrue(Exit.isFailure(exit), "the check failed")
    return Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
  })

describe("the live TTL check", () => {
  it.live("fails on a store whose keys outlive their deadline", () =>
    Effect.gen(function*() {
      const store = stretchingTtl(yield* KeyValueStore.make(), 4)
      assert.match(yield* expiryFailure(store), /k was still readable by a get called \d+ ms after its put returned/)
    }))

  it.live("fails on a store whose keys expire before their deadline", () =>
    Effect.gen(function*() {
      const store = stretchingTtl(yield* KeyValueStore.make(), 0.25)
      assert.match(yield* expiryFailure(store), /k was gone for a get that returned \d+ ms after its put was called/)
    }))

  it.live("passes on kvlog's store, and returns once the key is gone", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      const put = yield* timedPut(store, "k", "v", liveSut.live.durationMillis)
      const goneAt = yield* awaitExpiry(liveSut, store, "k", "v", put)
      assert.isAtLeast(goneAt, put.called + put.millis)
      assert.isFalse(yield* store.has("k"))
    }))
})

// =============================================================================
// Options
// =============================================================================

describe("contractSuite refuses options it cannot use, registering nothing", () => {
  const layer = () => KeyValueStore.layerMemory
  it.each([
    { label: "an empty name", call: () => contractSuite("", layer) , message: /name must be a non-empty string/ },
    { label: "a layer instead of a function", call: () => contractSuite("s", KeyValueStore.layerMemory as never), message: /makeLayer must be a function/ },
    { label: "clock \"real\"", call: () => contractSuite("s", layer, { clock: "real" as never }), message: /clock must be "test" or "live", got real/ },
    { label: "an unknown section", call: () => contractSuite("s", layer, { sections: ["ttl", "speed" as never] }), message: /unknown section "speed"/ },
    { label: "0 fresh-store runs", call: () => contractSuite("s", layer, { linearizability: { freshStoreRuns: 0 } }), message: /freshStoreRuns must be a number of at least 1, got 0/ },
    { label: "1.5 store histories", call: () => contractSuite("s", layer, { linearizability: { storeHistories: 1.5 } }), message: /storeHistories must be a whole number, got 1.5/ },
    { label: "a slow-path share of 2", call: () => contractSuite("s", layer, { linearizability: { minimumSlowPathShare: 2 } }), message: /minimumSlowPathShare must be between 0 and 1, got 2/ },
    { label: "a live duration of 0", call: () => contractSuite("s", layer, { live: { durationMillis: 0 } }), message: /live.durationMillis must be a number of at least 1, got 0/ },
    { label: "a maxKeyLength of NaN", call: () => contractSuite("s", layer, { limits: { maxKeyLength: NaN, maxValueLength: 10 } }), message: /limits.maxKeyLength must be a number of at least 2, got NaN/ }
  ])("$label", ({ call, message }) => {
    assert.throws(call, message)
  })
})
