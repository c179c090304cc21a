/**
 * The one place a write touches the index and the reaper. The in-memory
 * store, the log writer (once a batch is in the log) and replay (for every
 * record read back at open) all call these, so a rule about applying a write
 * is written once and obeyed by every path.
 *
 * They are synchronous and assume their arguments were validated at the
 * store's boundary: callers run them under the write lock, or on its fast
 * path, in one step.
 */
import * as Effect from "effect/Effect"
import type { StoreCore } from "./makeStore.ts"
import type { Value } from "../Value.ts"

/**
 * Sets `key` to `value` until `deadline` (`Infinity`: until deleted).
 * `now` is read only for a deadline: replay passes the time it started, so
 * a TTL that ran out while the store was down removes the key.
 */
export const applyPut = (
  core: StoreCore,
  key: string,
  value: Value,
  deadline: number,
  now: number = deadline === Infinity ? 0 : core.clock.currentTimeMillisUnsafe()
): void => {
  if (deadline === Infinity) {
    core.index.set(key, value, deadline)
  } else if (deadline <= now) {
    // Already expired: the put still replaces any earlier value, which is
    // gone with it.
    core.index.removeLive(key, now)
  } else {
    core.index.set(key, value, deadline)
    core.reaper.scheduled(deadline)
  }
}

/** Removes `key`; whether it was live, and so deleted. */
export const applyDelete = (core: StoreCore, key: string, now: number = core.clock.currentTimeMillisUnsafe()): boolean =>
  core.index.removeLive(key, now)

/** A write's outcome, shared rather than built per write. */
export const succeedTrue: Effect.Effect<boolean> = Effect.succeed(true)
export const succeedFalse: Effect.Effect<boolean> = Effect.succeed(false)
