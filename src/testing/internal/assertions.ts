/**
 * Assertions on a store's typed failures, for the contract suite and for
 * kvlog's own tests.
 */
import { assert } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as KeyValueStore from "../../KeyValueStore.ts"

/** Runs `effect`; asserts that it failed, and gives its typed error. */
const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>, expected: string): Effect.Effect<E, never, R> =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return assert.fail(`expected ${expected}, got success with ${String(exit.value)}`)
    const error = Cause.findErrorOption(exit.cause)
    if (error._tag === "None") return assert.fail(`expected ${expected}, got ${Cause.pretty(exit.cause)}`)
    return error.value
  })

/** Runs `effect` and asserts that it fails with `KeyNotFound` carrying `key`. */
export const assertKeyNotFound = <A, E, R>(effect: Effect.Effect<A, E, R>, key: string): Effect.Effect<void, never, R> =>
  Effect.map(failureOf(effect, `KeyNotFound(${JSON.stringify(key)})`), (error: unknown) => {
    assert.instanceOf(error, KeyValueStore.KeyNotFound)
    assert.strictEqual(error._tag, "KeyNotFound")
    assert.strictEqual(error.key, key)
  })

/**
 * Runs `effect` and asserts that it fails with `InvalidInput` whose message
 * matches every pattern of `message`; succeeds with that message.
 */
export const assertInvalidInput = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  message: ReadonlyArray<RegExp>
): Effect.Effect<string, never, R> =>
  Effect.map(failureOf(effect, "InvalidInput"), (error: unknown) => {
    assert.instanceOf(error, KeyValueStore.InvalidInput)
    assert.strictEqual(error._tag, "InvalidInput")
    for (const pattern of message) assert.match(error.message, pattern)
    return error.message
  })
