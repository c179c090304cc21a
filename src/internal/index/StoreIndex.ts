/**
 * The in-memory index: key → value, with exact expiry.
 *
 * A key without TTL maps straight to its value (no wrapper object). A key
 * with a TTL maps to a slot number of the `DeadlineHeap`, which holds its
 * value and deadline; values are strings or `Uint8Array`s, so a number is
 * never mistaken for one.
 *
 * One V8 `Map` holds at most 2^24 entries. Past that, the index spills into
 * further maps; a key lives in exactly one of them. With one map (the common
 * case up to 16.7M keys) every operation is a single lookup.
 *
 * Every method is synchronous: callers make a whole operation one step that no
 * other fiber can interleave with (see `docs/design.md`).
 */
import { DeadlineHeap } from "../ttl/DeadlineHeap.ts"
import type { Value } from "../Value.ts"

type Entry = Value | number

/** V8's limit on the entries of one `Map`. */
export const maxMapEntries = 2 ** 24

export class StoreIndex {
  private heap = new DeadlineHeap()
  private shards: Array<Map<string, Entry>>
  private readonly shardCapacity: number

  constructor(shardCapacity: number = maxMapEntries) {
    this.shardCapacity = shardCapacity
    this.shards = [new Map()]
  }

  /** The deadline-ordered structure the reaper works from. */
  get deadlines(): DeadlineHeap {
    return this.heap
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

  /** Stores `value` under `key`; `deadline` is `Infinity` for a key kept until deleted. */
  set(key: string, value: Value, deadline: number): void {
    const shards = this.shards
    // No key has a TTL and all fit in one map: whatever `key` maps to now is
    // a plain value, so one `Map.set` does it (the common case, and replay's).
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
      const entry = shard.get(key)
      if (entry === undefined) continue
      shard.delete(key)
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
      this.shardOf(key)!.delete(key)
      heap.remove(slot)
      reclaimed++
      if (onReclaim !== undefined) onReclaim(key, deadline)
    }
    return reclaimed
  }

  clear(): void {
    this.shards = [new Map()]
    this.heap = new DeadlineHeap()
  }

  /** Live entries at `now`, in insertion order (per map). */
  *liveEntries(now: () => number): Generator<readonly [string, Value]> {
    for (const shard of this.shards) {
      for (const [key, entry] of shard) {
        if (typeof entry !== "number") yield [key, entry]
        else if (this.deadlines.deadline(entry) > now()) yield [key, this.deadlines.value(entry)]
      }
    }
  }

  /** Live keys at `now`, in insertion order (per map). */
  *liveKeys(now: () => number): Generator<string> {
    for (const shard of this.shards) {
      for (const [key, entry] of shard) {
        if (typeof entry !== "number" || this.deadlines.deadline(entry) > now()) yield key
      }
    }
  }

  /** Every stored entry with its deadline (`Infinity` without TTL), expired or not. */
  *storedEntries(): Generator<readonly [key: string, value: Value, deadline: number]> {
    for (const shard of this.shards) {
      for (const [key, entry] of shard) {
        if (typeof entry !== "number") yield [key, entry, Infinity]
        else yield [key, this.deadlines.value(entry), this.deadlines.deadline(entry)]
      }
    }
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

  private shardOf(key: string): Map<string, Entry> | undefined {
    for (const shard of this.shards) if (shard.has(key)) return shard
    return undefined
  }

  private insertNew(key: string, entry: Entry): void {
    for (const shard of this.shards) {
      if (shard.size < this.shardCapacity) {
        shard.set(key, entry)
        return
      }
    }
    this.shards.push(new Map([[key, entry]]))
  }
}
