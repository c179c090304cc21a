/**
 * What the `effect/persistence` tests share: a kvlog store of either kind
 * (memory, or a log in a fresh temporary directory) on the test's clock, and
 * a log store the test closes and reopens itself.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { KeyValueStore } from "../../src/index.ts"
import { freshLogPath, openLog, type OpenLog } from "./logHarness.ts"

/** The two kinds of kvlog store every contract test runs on. */
export type Backend = "memory" | "log"

export const backends: ReadonlyArray<Backend> = ["memory", "log"]

/** Where a test's store lives: for a log, the path to reopen it at. */
export interface KvlogStore {
  readonly store: KeyValueStore.KeyValueStoreService
  readonly logPath: string | undefined
}

/** Opens a kvlog store of kind `backend` for the length of `use`, then closes it (for a log: flush, sync, release). */
export const withKvlogStore = <A, E>(
  backend: Backend,
  use: (opened: KvlogStore) => Effect.Effect<A, E>
): Effect.Effect<A, E | KeyValueStore.LogOpenError> =>
  Effect.scoped(
    Effect.gen(function*() {
      if (backend === "memory") return yield* use({ store: yield* KeyValueStore.make(), logPath: undefined })
      const logPath = yield* freshLogPath("persistence")
      const store = yield* KeyValueStore.makeLog({ path: logPath, compaction: { auto: false } })
      return yield* use({ store, logPath })
    })
  )

/** A fresh log path whose directory lives as long as the current scope. */
export const freshPersistenceLogPath: Effect.Effect<string, never, Scope.Scope> = freshLogPath("persistence")

/** Opens the log at `path` with automatic compaction off, so that only the test compacts it. */
export const openPersistenceLog = (path: string): Effect.Effect<OpenLog, KeyValueStore.LogOpenError> =>
  openLog({ path, compaction: { auto: false } })

/** The error of class `ErrorClass` that `effect` fails with; fails the test if it succeeds or fails otherwise. */
export const failureOf = <A, E, R, C>(
  effect: Effect.Effect<A, E, R>,
  ErrorClass: new(...args: Array<any>) => C
): Effect.Effect<C, A, R> =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.instanceOf(error, ErrorClass)
    return error as unknown as C
  })
