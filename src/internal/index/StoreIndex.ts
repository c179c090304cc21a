/**
 * The in-memory index: key → value, with exact expiry.
 *
 * A key without TTL maps straight to its value (no wrapper object). A key
 * with a TTL maps to a slot number of the `DeadlineHeap`, which holds its
 * value and deadline; values are strings or `Uint8Array`s, so a number is
 * never mistaken for one.
 *
 * Entries live in a `KeyTable` (see there for why not a `Map`). One table
 * holds at most `maxTableEntries` (2^25); past that, the index spills into
 * further tables and a key lives in exactly one of them. With one table (the
 * common case) every operation is a single lookup.
 *
 * Every method is synchronous: callers make a whole operation one step that no
 * other fiber can interleave with (see `docs/design.md`).
 */
import { DeadlineHeap } from "./DeadlineHeap.ts"
import type { Value } from "../Value.ts"
import type { Index } from "./Index.ts"
import { KeyTable, type KeyTableCursor, maxTableEntries } from "./KeyTable.ts"

type Entry = Value | number

export class StoreIndex implements Index {
  readonly kind = "heap"
  readonly returnsFreshBytes = false
  private heap = new DeadlineHeap()
  private shards: Array<KeyTable<Entry>>
  private readonly shardCapacity: number

  constructor(shardCapacity: number = maxTableEntries) {
    this.shardCapacity = shardCapacity
    this.shards = [new KeyTable()]
  }

  /** The deadline-ordered structure the reaper works from. */
  get deadlines(): DeadlineHeap {
    return this.heap
  }

  get deadlineCount(): number {
    return this.heap.size
  }

  earliestDeadline(): number {
    return this.heap.peekDeadline()
  }

  /** Entries stored, including expired ones the reaper has not reclaimed yet. */
  get storedSize(): number {
    let size = 0
    for (const shard of this.shards) size += shard.size
    return size
  }

  /** Live entries: stored ones minus those at or past their deadline. */
  liveSize(now: number): number {
    return this.storedSize - this.deadlines.countExpired(now)
  }

  /** The live value of `key`, or `undefined` if absent or expired at `now`. */
  lookup(key: string, now: () => number): Value | undefined {
    const entry = this.find(key)
    if (typeof entry !== "number") return entry
    return this.deadlines.deadline(entry) > now() ? this.deadlines.value(entry) : undefined
  }

  /** The deadline of a live `key` (`Infinity` without TTL), or `undefined` if absent or expired. */
  deadlineOf(key: string, now: number): number | undefined {
    const entry = this.find(key)
    if (entry === undefined) return undefined
    if (typeof entry !== "number") return Infinity
    const deadline = this.deadlines.deadline(entry)
    return deadline > now ? deadline : undefined
  }

  /**
   * The deadline of a stored `key` (`Infinity` without TTL), expired or not;
   * `undefined` if nothing is stored under it.
   */
  storedDeadline(key: string): number | undefined {
    const entry = this.find(key)
    if (entry === undefined) return undefined
    return typeof entry === "number" ? this.deadlines.deadline(entry) : Infinity
  }

  /** Makes room for `entries` more keys (a hint: replay's estimate). */
  reserve(entries: number): void {
    const last = this.shards[this.shards.length - 1]
    last.reserve(last.size + Math.min(entries, this.shardCapacity - last.size))
  }

  /** Gives back the room a `reserve` made beyond what the keys need. */
  trim(): void {
    for (const shard of this.shards) shard.trim()
  }

  /** Stores `value` under `key`; `deadline` is `Infinity` for a key kept until deleted. */
  // The heap index's memory is V8's: a write it cannot store is an
  // out-of-memory crash, not something a room could foresee.
  roomForSet(): number {
    return 0
  }

  releaseRoom(): void {}

  roomForClear(): undefined {
    return undefined
  }

  compactArena(): boolean {
    return true
  }

  set(key: string, value: Value, deadline: number): void {
    const shards = this.shards
    // No key has a TTL and all fit in one table: whatever `key` maps to now is
    // a plain value, so one `set` does it (the common case, and replay's).
    if (deadline === Infinity && this.heap.size === 0 && shards.length === 1 && shards[0].size < this.shardCapacity) {
      shards[0].set(key, value)
      return
    }
    for (let i = 0; i < shards.length; i++) {
      const shard = shards[i]
      const entry = shard.get(key)
      if (entry === undefined) continue
      if (typeof entry !== "number") {
        shard.set(key, deadline === Infinity ? value : this.deadlines.insert(key, value, deadline))
      } else if (deadline === Infinity) {
        this.deadlines.remove(entry)
        shard.set(key, value)
      } else {
        this.deadlines.reschedule(entry, value, deadline)
      }
      return
    }
    this.insertNew(key, deadline === Infinity ? value : this.deadlines.insert(key, value, deadline))
  }

  /**
   * Removes `key` if it is live at `now`; returns whether it was. An expired
   * key is removed too (it was invisible already) but reported as absent.
   */
  removeLive(key: string, now: number): boolean {
    const shards = this.shards
    for (let i = 0; i < shards.length; i++) {
      const shard = shards[i]
      const entry = shard.delete(key)
      if (entry === undefined) continue
      if (typeof entry !== "number") return true
      const live = this.deadlines.deadline(entry) > now
      this.deadlines.remove(entry)
      return live
    }
    return false
  }

  /**
   * Reclaims up to `limit` entries whose deadline is at or before `now`,
   * earliest first; returns how many it reclaimed. `onReclaim` sees each.
   */
  reclaimExpired(
    now: number,
    limit: number,
    onReclaim?: (key: string, deadline: number) => void
  ): number {
    const heap = this.deadlines
    let reclaimed = 0
    while (reclaimed < limit && heap.size > 0 && heap.peekDeadline() <= now) {
      const slot = heap.peekSlot()
      const key = heap.key(slot)
      const deadline = heap.deadline(slot)
      this.removeStored(key)
      heap.remove(slot)
      reclaimed++
      if (onReclaim !== undefined) onReclaim(key, deadline)
    }
    return reclaimed
  }

  clear(): void {
    this.shards = [new KeyTable()]
    this.heap = new DeadlineHeap()
  }

  /**
   * Live entries at `now`, in insertion order (per table). Like a `Map`
   * iterator, it may be resumed after the index changed: it then gives every
   * entry present at its start and not removed since, once.
   */
  *liveEntries(now: () => number): Generator<readonly [string, Value]> {
    const cursor = this.storedCursor()
    while (cursor.next()) {
      if (cursor.deadline === Infinity || cursor.deadline > now()) yield [cursor.key, cursor.value]
    }
  }

  /** Live keys at `now`, in insertion order (per table). */
  *liveKeys(now: () => number): Generator<string> {
    const cursor = this.storedCursor()
    while (cursor.next()) {
      if (cursor.deadline === Infinity || cursor.deadline > now()) yield cursor.key
    }
  }

  /**
   * Every stored entry with its deadline, expired or not, with `liveEntries`'
   * guarantees across changes, and no object per entry (compaction walks
   * millions of them while writers run, and garbage costs them pauses).
   * After a `clear`, a walk begun before it goes on over the old contents.
   */
  storedCursor(): StoredEntryCursor {
    return new StoredEntryCursor(this.shards, this.heap)
  }

  private find(key: string): Entry | undefined {
    const shards = this.shards
    const entry = shards[0].get(key)
    if (entry !== undefined || shards.length === 1) return entry
    for (let i = 1; i < shards.length; i++) {
      const found = shards[i].get(key)
      if (found !== undefined) return found
    }
    return undefined
  }

  private removeStored(key: string): void {
    for (const shard of this.shards) if (shard.delete(key) !== undefined) return
  }

  private insertNew(key: string, entry: Entry): void {
    for (const shard of this.shards) {
      if (shard.size < this.shardCapacity) {
        shard.set(key, entry)
        return
      }
    }
    const shard = new KeyTable<Entry>()
    shard.set(key, entry)
    this.shards.push(shard)
  }
}

/**
 * A walk over a `StoreIndex`'s stored entries: after `next()` returns true,
 * `key`, `value` and `deadline` (`Infinity` without TTL) describe the entry
 * reached, until the next call.
 */
export class StoredEntryCursor {
  key = ""
  value: Value = ""
  deadline = Infinity
  private readonly shards: ReadonlyArray<KeyTable<Entry>>
  private readonly heap: DeadlineHeap
  private shard = 0
  private cursor: KeyTableCursor<Entry> | undefined = undefined

  constructor(shards: ReadonlyArray<KeyTable<Entry>>, heap: DeadlineHeap) {
    this.shards = shards
    this.heap = heap
  }

  next(): boolean {
    for (;;) {
      if (this.cursor === undefined) {
        // A table added by a spill since the walk began is walked too.
        if (this.shard >= this.shards.length) return false
        this.cursor = this.shards[this.shard].cursor()
      }
      const at = this.cursor.next()
      if (at < 0) {
        this.cursor = undefined
        this.shard++
        continue
      }
      const entry = this.cursor.value(at)
      this.key = this.cursor.key(at)
      if (typeof entry !== "number") {
        this.value = entry
        this.deadline = Infinity
      } else {
        this.value = this.heap.value(entry)
        this.deadline = this.heap.deadline(entry)
      }
      return true
    }
  }
}
