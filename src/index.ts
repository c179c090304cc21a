/**
 * kvlog: an in-memory key-value store for Effect 4 with exact per-key TTL and
 * an optional append-only log.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as KeyValueStore from "./KeyValueStore.ts"

/**
 * Typed views of a store for one Effect `Schema`.
 *
 * @since 0.2.0
 */
export * as SchemaStore from "./SchemaStore.ts"

/**
 * Effect's `effect/persistence` services (`KeyValueStore`, `BackingPersistence`,
 * `Persistence`) on a kvlog store, with each entry's TTL handed to kvlog.
 *
 * @since 0.2.0
 */
export * as Persistence from "./Persistence.ts"
