/**
 * What the store asks of its index, whichever it is: the heap index
 * (`StoreIndex`: keys and values as V8 strings in a `KeyTable`) or the shared
 * one (`SharedIndex`: keys and values as bytes in `SharedArrayBuffer`s, which
 * worker threads can read). `makeStore`, `applyWrite`, replay, compaction
 * and the reaper use nothing else.
 *
 * Every method is synchronous: callers make a whole operation one step that
 * no other fiber can interleave with (see `docs/design.md`).
 */
import type { Value } from "../Value.ts"

/** Which index a store keeps its entries in. */
export type IndexKind = "heap" | "shared"

export interface Index {
  readonly kind: IndexKind
  /**
   * Whether a `Uint8Array` the index returns is already a fresh copy that the
   * caller may hand out (the shared index copies bytes out of its arena).
   */
  readonly returnsFreshBytes: boolean
  /** Entries stored, including expired ones the reaper has not reclaimed yet. */
  readonly storedSize: number
  /** Entries stored with a deadline, expired or not. */
  readonly deadlineCount: number
  /** The earliest deadline of a stored entry, or `Infinity`. */
  earliestDeadline(): number
  /** Live entries: stored ones minus those at or past their deadline. */
  liveSize(now: number): number
  /** The live value of `key`, or `undefined` if absent or expired at `now`. */
  lookup(key: string, now: () => number): Value | undefined
  /** The deadline of a live `key` (`Infinity` without TTL), or `undefined` if absent or expired. */
  deadlineOf(key: string, now: number): number | undefined
  /** The deadline of a stored `key`, expired or not; `undefined` if nothing is stored under it. */
  storedDeadline(key: string): number | undefined
  /** Makes room for `entries` more keys (a hint: replay's estimate). */
  reserve(entries: number): void
  /** Gives back the room a `reserve` made beyond what the keys need. */
  trim(): void
  /**
   * Makes room now for a `set(key, value, deadline, room)` to come, so that
   * the `set` allocates nothing that can fail: a write the index cannot take
   * is then refused before it becomes irrevocable (appended to the log).
   * Returns the room (0 from an index that needs none), or, the index
   * unchanged, why there is none. A room not used by a `set` must be given
   * back (`releaseRoom`); no room outlives a `clear`.
   */
  roomForSet(key: string, value: Value, deadline: number): number | string
  /** Gives back a room `roomForSet` made and no `set` used. */
  releaseRoom(room: number): void
  /** Makes room now for a `clear` to come, so that it allocates nothing that can fail; why not, or `undefined`. */
  roomForClear(): string | undefined
  /**
   * Reclaims the memory of removed and overwritten entries, in steps of about
   * `budgetBytes`, beginning a compaction only if `begin` (the first step):
   * true once done, false while more is left, or why it cannot go on now.
   * An index whose memory V8 reclaims has nothing to do.
   */
  compactArena(budgetBytes: number, begin: boolean): boolean | string
  /**
   * Stores `value` under `key`; `deadline` is `Infinity` for a key kept until
   * deleted. `room`, from `roomForSet` for this very write, or 0 to make one
   * now (the shared index then throws `SharedIndexFull`, unchanged, if it cannot).
   */
  set(key: string, value: Value, deadline: number, room?: number): void
  /** Removes `key` if it is live at `now`; returns whether it was. An expired key is removed too. */
  removeLive(key: string, now: number): boolean
  /** Reclaims up to `limit` entries whose deadline is at or before `now`, earliest first. */
  reclaimExpired(now: number, limit: number, onReclaim?: (key: string, deadline: number) => void): number
  clear(): void
  /** Live entries at `now`; resumable across changes with a `Map` iterator's guarantees. */
  liveEntries(now: () => number): Generator<readonly [string, Value]>
  /** Live keys at `now`, with `liveEntries`' guarantees. */
  liveKeys(now: () => number): Generator<string>
  /** Every stored entry with its deadline, expired or not, with `liveEntries`' guarantees. */
  storedCursor(): EntryCursor
  /**
   * `set` with the key and value as bytes (UTF-8 for strings), for an index
   * that stores bytes: replay then makes no string. Absent on the heap index.
   */
  readonly setBytes?: (
    source: Uint8Array,
    keyAt: number,
    keyLength: number,
    valueAt: number,
    valueLength: number,
    valueIsBytes: boolean,
    deadline: number
  ) => void
  /** `removeLive` with the key as UTF-8 bytes; with `setBytes`. */
  readonly removeLiveBytes?: (source: Uint8Array, keyAt: number, keyLength: number, now: number) => boolean
  /**
   * Told of a key (as UTF-8 bytes) that a `setBytes` or `removeLiveBytes`
   * will soon be given, with the same bytes: starts bringing what its lookup
   * reads into cache. Changes nothing; with `setBytes`.
   */
  readonly lookAheadBytes?: (source: Uint8Array, keyAt: number, keyLength: number) => void
}

/**
 * A walk over an index's stored entries: after `next()` returns true, `key`,
 * `value` and `deadline` (`Infinity` without TTL) describe the entry reached,
 * until the next call.
 */
export interface EntryCursor {
  readonly key: string
  readonly value: Value
  readonly deadline: number
  next(): boolean
}
