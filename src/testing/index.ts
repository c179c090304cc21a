/**
 * kvlog/testing: the tools kvlog's own tests use, for yours. A
 * linearizability checker with readable counterexamples, a recorder that
 * turns any store's calls into a history, random concurrent workloads run
 * as fast-check properties, and kvlog's contract as a test suite for any
 * layer that provides the `KeyValueStore` service.
 *
 * Needs the optional peer dependencies `@effect/vitest`, `vitest` and
 * `fast-check`; `kvlog` itself does not.
 *
 * @since 0.2.0
 */

/**
 * The checker: `checkLinearizable`, `assertLinearizable`, the history types,
 * models and counterexample formatting.
 *
 * @since 0.2.0
 */
export * as Linearizability from "./Linearizability.ts"

/**
 * The recorder: `recordStore` wraps a store, `record` stamps one call.
 *
 * @since 0.2.0
 */
export * as HistoryRecorder from "./HistoryRecorder.ts"

/**
 * Random concurrent workloads, run on a layer and checked as properties.
 *
 * @since 0.2.0
 */
export * as ConcurrentHistories from "./ConcurrentHistories.ts"

/**
 * The contract as a test suite: `contractSuite(name, makeLayer, options)`.
 *
 * @since 0.2.0
 */
export * as ContractSuite from "./ContractSuite.ts"
