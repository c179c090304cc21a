/**
 * The one place a write touches the index and the reaper. The in-memory
 * store, the log writer (once a batch is in the log) and replay (for every
 * record read back at open) all call these, so a rule about applying a write
 * is written once and obeyed by every path: the counters and the change
 * stream see exactly the writes that took effect, in the order they did.
 *
 * They are synchronous and assume their arguments were validated at the
 * store's boundary: callers run them under the write lock, or on its fast
 * path, in one step.
 */
import * as Effect from "effect/Effect"
import { StorageError } from "../errors.ts"
import type { StoreCore } from "./makeStore.ts"
import type { Value } from "../Value.ts"

/**
 * Makes room in the index for a put, before anything makes the put
 * irrevocable: the room (for `applyPut`), or the error that refuses the put
 * with the store unchanged. Every write path takes its room before it
 * appends the put's record to the log (or applies it, in memory): a put the
 * index then refused would be in the log, and replay would apply a write
 * the store had refused.
 */
export const roomForPut = (core: StoreCore, key: string, value: Value, deadline: number): number | StorageError => {
  const room = core.index.roomForSet(key, value, deadline)
  return typeof room === "number" ? room : new StorageError({ message: `put of ${quoteKey(key)} refused, the store unchanged: ${room}` })
}

/** Makes room in the index for a `clear` (see `roomForPut`): `undefined`, or the error that refuses it. */
export const roomForClear = (core: StoreCore): StorageError | undefined => {
  const refused = core.index.roomForClear()
  return refused === undefined
    ? undefined
    : new StorageError({ message: `clear refused, the store unchanged: ${refused}` })
}

const quoteKey = (key: string): string => JSON.stringify(key.length > 200 ? key.slice(0, 200) + "…" : key)

/**
 * Sets `key` to `value` until `deadline` (`Infinity`: until deleted), in
 * `room` (from `roomForPut`; 0 makes it now, throwing `SharedIndexFull` if
 * the shared index cannot, as replay wants). `now` is read only for a
 * deadline: replay passes the time it started, so a TTL that ran out while
 * the store was down removes the key.
 */
export const applyPut = (
  core: StoreCore,
  key: string,
  value: Value,
  deadline: number,
  room: number,
  now: number = deadline === Infinity ? 0 : core.clock.currentTimeMillisUnsafe()
): void => {
  core.counters.puts++
  // With someone subscribed, an expired entry that this write replaces
  // before the reaper reached it is reported as expired first, so every
  // expiry is reported exactly once whoever removed the entry. (Replay never
  // observes: nobody can subscribe before the open.)
  const observed = core.changes.active
  if (observed) {
    now = core.clock.currentTimeMillisUnsafe()
    reportExpiredBefore(core, key, now)
  }
  if (deadline === Infinity) {
    core.index.set(key, value, deadline, room)
    if (observed) core.changes.emit({ _tag: "Put", key, deadline: undefined })
  } else if (deadline <= now) {
    // Already expired: the put still replaces any earlier value, which is
    // gone with it. It took effect, and its TTL had run out when it did (the
    // clock moved while it waited for the log): both are reported.
    core.index.releaseRoom(room)
    core.index.removeLive(key, now)
    if (observed) {
      core.changes.emit({ _tag: "Put", key, deadline })
      core.changes.emit({ _tag: "Expired", key, deadline, reclaimedAt: now, lateMillis: now - deadline })
    }
  } else {
    core.index.set(key, value, deadline, room)
    core.reaper.scheduled(deadline)
    if (observed) core.changes.emit({ _tag: "Put", key, deadline })
  }
}

/**
 * `applyPut` with the key and value as bytes (`Index.setBytes`), for replay
 * into an index that stores bytes: the same rule, without a string. A store
 * with a subscriber takes `applyPut` itself, which reports the changes.
 */
export const applyPutBytes = (
  core: StoreCore,
  buf: Uint8Array,
  keyAt: number,
  keyLength: number,
  valueAt: number,
  valueLength: number,
  valueIsBytes: boolean,
  deadline: number,
  now: number
): void => {
  const index = core.index
  if (core.changes.active || index.setBytes === undefined) {
    const key = textDecoder.decode(buf.subarray(keyAt, keyAt + keyLength))
    const bytes = buf.slice(valueAt, valueAt + valueLength)
    return applyPut(core, key, valueIsBytes ? bytes : textDecoder.decode(bytes), deadline, 0, now)
  }
  core.counters.puts++
  if (deadline === Infinity) {
    index.setBytes(buf, keyAt, keyLength, valueAt, valueLength, valueIsBytes, deadline)
  } else if (deadline <= now) {
    index.removeLiveBytes!(buf, keyAt, keyLength, now)
  } else {
    index.setBytes(buf, keyAt, keyLength, valueAt, valueLength, valueIsBytes, deadline)
    core.reaper.scheduled(deadline)
  }
}

/** `applyDelete` with the key as bytes; see `applyPutBytes`. */
export const applyDeleteBytes = (core: StoreCore, buf: Uint8Array, keyAt: number, keyLength: number, now: number): void => {
  const index = core.index
  if (core.changes.active || index.removeLiveBytes === undefined) {
    applyDelete(core, textDecoder.decode(buf.subarray(keyAt, keyAt + keyLength)), now)
    return
  }
  if (index.removeLiveBytes(buf, keyAt, keyLength, now)) core.counters.deletes++
}

const textDecoder = new TextDecoder()

const reportExpiredBefore = (core: StoreCore, key: string, now: number): void => {
  const stored = core.index.storedDeadline(key)
  if (stored !== undefined && stored <= now) {
    core.changes.emit({ _tag: "Expired", key, deadline: stored, reclaimedAt: now, lateMillis: now - stored })
  }
}

/** Removes `key`; whether it was live, and so deleted. */
export const applyDelete = (core: StoreCore, key: string, now: number = core.clock.currentTimeMillisUnsafe()): boolean => {
  if (core.changes.active) reportExpiredBefore(core, key, now)
  const deleted = core.index.removeLive(key, now)
  if (deleted) {
    core.counters.deletes++
    if (core.changes.active) core.changes.emit({ _tag: "Delete", key })
  }
  return deleted
}

/** Removes every entry; after `roomForClear`, it cannot fail. */
export const applyClear = (core: StoreCore): void => {
  core.index.clear()
  core.counters.clears++
  if (core.changes.active) core.changes.emit({ _tag: "Cleared" })
}

/** A write's outcome, shared rather than built per write. */
export const succeedTrue: Effect.Effect<boolean> = Effect.succeed(true)
export const succeedFalse: Effect.Effect<boolean> = Effect.succeed(false)
