/**
 * Applying one logged write to the index: the same step for a live write once
 * it is in the log, and for a write read back from the log at open.
 */
import * as Effect from "effect/Effect"
import type { StoreCore } from "./makeStore.ts"
import type { Value } from "../Value.ts"

export const applyPut = (core: StoreCore, key: string, value: Value, deadline: number): boolean => {
  const now = core.clock.currentTimeMillisUnsafe()
  if (deadline <= now) {
    // Already expired (a replayed TTL that ran out while the store was down):
    // the put still replaces any earlier value, which is gone with it.
    core.index.removeLive(key, now)
    return true
  }
  core.index.set(key, value, deadline)
  if (deadline !== Infinity) core.reaper.scheduled(deadline)
  return true
}

/** Whether `key` was live, and so deleted. */
export const applyDelete = (core: StoreCore, key: string): boolean =>
  core.index.removeLive(key, core.clock.currentTimeMillisUnsafe())

/** A write's outcome, shared rather than built per write. */
export const succeedTrue: Effect.Effect<boolean> = Effect.succeed(true)
export const succeedFalse: Effect.Effect<boolean> = Effect.succeed(false)
