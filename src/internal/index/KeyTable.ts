/**
 * The hash table under the index: string keys to values, in insertion order.
 *
 * Why not a V8 `Map`: replaying a log inserts millions of fresh keys, and at
 * 10M keys a `Map.set` of a new key costs ~0.8 µs, most of it cache misses: a
 * miss walks the bucket's chain and dereferences every key string on it, and
 * each growth re-reads the hash out of every key string. This table keeps the
 * 32-bit hash beside each slot of its open-addressing index, so a probe
 * compares hashes in one typed array and touches a key string only when the
 * hashes match, and growth never touches the key strings at all. It inserts
 * fresh keys in half a `Map`'s time at 1M and 10M keys, and finds them about
 * as fast (`npm run bench:table`; `docs/design.md` has the figures).
 *
 * Layout (the "compact dict" of CPython, and of V8's `OrderedHashMap`):
 * - `entries`: one dense array of the entries in insertion order, each key
 *   beside its value (a hit reads one cache line for both). A removed entry
 *   leaves a hole (`undefined`) that is squeezed out once holes make up half
 *   of the array.
 * - `slots`: the index, an `Int32Array` of `capacity` pairs (entry + 1, hash),
 *   0 meaning empty, with linear probing and at most 3/4 full. Removal shifts
 *   the following slots back (no tombstones), so probes stay short under churn.
 *
 * Iteration walks the dense array, so it sees what a `Map` iterator would:
 * every entry present when it started and not removed since, exactly once,
 * plus some of those added meanwhile. Squeezing out holes moves entries, so
 * each squeeze starts a new `Generation` that records the positions it
 * removed; a cursor from an older generation translates its position through
 * them (V8 does the same for `Map` iterators across a rehash). Nothing is
 * registered per cursor, so an abandoned cursor costs nothing.
 *
 * Hashes are keyed with a per-process random seed (HalfSipHash-1-3, as the
 * Linux kernel's `hsiphash`), so keys chosen to collide cannot be computed in
 * advance: the defence against hash flooding that V8's seeded string hash
 * gives a `Map`.
 */

import { getRandomValues } from "node:crypto"
import { placeAll, vacateSlot } from "./SlotTable.ts"

/** Position translation for cursors that began before a squeeze. */
class Generation {
  next: Generation | undefined = undefined
  /** Positions (ascending) of the holes the squeeze that ended this generation removed. */
  removed: Int32Array | undefined = undefined
}

/**
 * Entries a table holds at most: its dense array holds two elements an entry
 * and grows by half again, and V8's fast arrays end near 2^27 elements.
 */
export const maxTableEntries = 2 ** 25

const minCapacity = 8

export class KeyTable<V> {
  /** Key and value side by side (one cache line for both): [key0, value0, key1, value1, …]. */
  private entries: Array<string | V | undefined> = []
  private slots = new Int32Array(2 * minCapacity)
  private mask = minCapacity - 1
  private live = 0
  private generation = new Generation()
  private squeezeCount = 0
  private readonly minHolesToSqueeze: number

  /**
   * @param minHolesToSqueeze holes tolerated however small the table (64 by
   *   default; tests lower it to squeeze often).
   */
  constructor(minHolesToSqueeze = 64) {
    this.minHolesToSqueeze = minHolesToSqueeze
  }

  get size(): number {
    return this.live
  }

  /** How many times holes were squeezed out (each moved entries under live cursors). */
  get squeezes(): number {
    return this.squeezeCount
  }

  get(key: string): V | undefined {
    const entry = this.find(key, hashKey(key))
    return entry < 0 ? undefined : this.entries[2 * entry + 1] as V
  }

  has(key: string): boolean {
    return this.find(key, hashKey(key)) >= 0
  }

  /** Sets `key` to `value`, adding it at the end if absent. */
  set(key: string, value: V): void {
    const hash = hashKey(key)
    const slots = this.slots
    const mask = this.mask
    let slot = hash & mask
    for (;;) {
      const stored = slots[2 * slot]
      if (stored === 0) break
      if (slots[2 * slot + 1] === hash && this.entries[2 * stored - 2] === key) {
        this.entries[2 * stored - 1] = value
        return
      }
      slot = (slot + 1) & mask
    }
    const entry = this.entries.length >> 1
    this.entries.push(key, value)
    slots[2 * slot] = entry + 1
    slots[2 * slot + 1] = hash
    if (++this.live * 4 > (mask + 1) * 3) this.grow()
  }

  /** Removes `key`; returns its value, or `undefined` if it was absent. */
  delete(key: string): V | undefined {
    const hash = hashKey(key)
    const slots = this.slots
    const mask = this.mask
    let slot = hash & mask
    for (;;) {
      const stored = slots[2 * slot]
      if (stored === 0) return undefined
      if (slots[2 * slot + 1] === hash && this.entries[2 * stored - 2] === key) break
      slot = (slot + 1) & mask
    }
    const entry = slots[2 * slot] - 1
    const value = this.entries[2 * entry + 1] as V
    this.entries[2 * entry] = undefined
    this.entries[2 * entry + 1] = undefined
    this.live--
    vacateSlot(this.slots, this.mask, slot)
    const used = this.entries.length >> 1
    const holes = used - this.live
    if (holes >= this.minHolesToSqueeze && 2 * holes >= used) this.squeeze()
    return value
  }

  /**
   * Makes room in the index for `entries` entries without growing (replay
   * calls it with its estimate: each doubling re-places every slot).
   */
  reserve(entries: number): void {
    const capacity = capacityFor(Math.min(entries, maxTableEntries))
    if (capacity > this.mask + 1) this.rebuildIndex(capacity)
  }

  /** Gives back index memory a `reserve` made beyond what the entries need. */
  trim(): void {
    const capacity = capacityFor(this.live)
    if (capacity < this.mask + 1) this.rebuildIndex(capacity)
  }

  /** A cursor over the entries, in insertion order; see the module comment. */
  cursor(): KeyTableCursor<V> {
    return new KeyTableCursor(this, this.generation)
  }

  /** @internal for `KeyTableCursor` */
  currentGeneration(): Generation {
    return this.generation
  }

  /** @internal for `KeyTableCursor` */
  keyAt(entry: number): string | undefined {
    return this.entries[2 * entry] as string | undefined
  }

  /** @internal for `KeyTableCursor` */
  valueAt(entry: number): V {
    return this.entries[2 * entry + 1] as V
  }

  /** @internal for `KeyTableCursor` */
  get entriesEnd(): number {
    return this.entries.length >> 1
  }

  /** The dense position of `key`, or -1. */
  private find(key: string, hash: number): number {
    const slots = this.slots
    const mask = this.mask
    let slot = hash & mask
    for (;;) {
      const stored = slots[2 * slot]
      if (stored === 0) return -1
      if (slots[2 * slot + 1] === hash && this.entries[2 * stored - 2] === key) return stored - 1
      slot = (slot + 1) & mask
    }
  }

  /** Doubles the index. */
  private grow(): void {
    this.rebuildIndex(2 * (this.mask + 1))
  }

  /**
   * Squeezes the holes out of the dense array and starts a new generation.
   * In place: the entries move down within the array they are in, which is
   * then cut to length. Building a new array instead (one push per entry)
   * held a delete for 12–40 ms at 100k entries and 130–240 ms at 1M, a stall
   * for every fiber; the reaper hit it while reclaiming.
   */
  private squeeze(): void {
    const entries = this.entries
    const length = entries.length >> 1
    const moved = new Int32Array(length) // old position → new position + 1
    const removed = new Int32Array(length - this.live)
    let kept = 0
    let holes = 0
    for (let entry = 0; entry < length; entry++) {
      const key = entries[2 * entry]
      if (key === undefined) {
        removed[holes++] = entry
        continue
      }
      if (kept !== entry) {
        entries[2 * kept] = key
        entries[2 * kept + 1] = entries[2 * entry + 1]
      }
      moved[entry] = ++kept
    }
    entries.length = 2 * kept
    const slots = this.slots
    for (let i = 0; i < slots.length; i += 2) {
      const stored = slots[i]
      if (stored !== 0) slots[i] = moved[stored - 1]
    }
    const ended = this.generation
    ended.removed = removed
    ended.next = this.generation = new Generation()
    this.squeezeCount++
    // A table that shrank a lot gives back index memory too.
    if (this.live * 4 <= this.mask + 1) this.trim()
  }

  /** Moves the index to `capacity` slots, re-placing them by their stored hashes. */
  private rebuildIndex(capacity: number): void {
    const old = this.slots
    const mask = capacity - 1
    const slots = new Int32Array(2 * capacity)
    placeAll(old, slots, mask)
    this.slots = slots
    this.mask = mask
  }
}

/**
 * Walks a `KeyTable` in insertion order while it changes: `next()` gives the
 * dense position of the next entry (read it with `key`/`value` before the
 * table changes again), or -1 at the end.
 */
export class KeyTableCursor<V> {
  private position = 0
  private readonly table: KeyTable<V>
  private generation: Generation

  constructor(table: KeyTable<V>, generation: Generation) {
    this.table = table
    this.generation = generation
  }

  next(): number {
    let generation = this.generation
    if (generation.next !== undefined) {
      let position = this.position
      while (generation.next !== undefined) {
        position -= countBelow(generation.removed!, position)
        generation = generation.next
      }
      this.position = position
      this.generation = generation
    }
    const table = this.table
    const end = table.entriesEnd
    for (let entry = this.position; entry < end; entry++) {
      if (table.keyAt(entry) !== undefined) {
        this.position = entry + 1
        return entry
      }
    }
    this.position = end
    return -1
  }

  key(entry: number): string {
    return this.table.keyAt(entry)!
  }

  value(entry: number): V {
    return this.table.valueAt(entry)
  }
}

/** The index capacity (a power of two) that holds `entries` at most 3/4 full. */
const capacityFor = (entries: number): number => {
  let capacity = minCapacity
  while (entries * 4 > capacity * 3) capacity *= 2
  return capacity
}

/** How many of the ascending `positions` are below `position`. */
const countBelow = (positions: Int32Array, position: number): number => {
  let low = 0
  let high = positions.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (positions[middle] < position) low = middle + 1
    else high = middle
  }
  return low
}

// =============================================================================
// The keyed hash
// =============================================================================

const seed = getRandomValues(new Int32Array(2))
const k0 = seed[0]
const k1 = seed[1]

/**
 * HalfSipHash-1-3 of the key's UTF-16 code units, two per 32-bit word, keyed
 * by the per-process seed. One compression round per word and three to
 * finish: the Linux kernel's choice (`hsiphash`) for hash tables that
 * untrusted input fills. The round is written out twice, for the words and
 * for the finish: one loop over both, branching on which it is in, measured
 * 37 ns a 10-character key against 30 here, on every get and put.
 */
export const hashKey = (key: string): number => {
  let v0 = k0
  let v1 = k1
  let v2 = 0x6c796765 ^ k0
  let v3 = 0x74656462 ^ k1
  const length = key.length
  let i = 0
  for (; i + 1 < length; i += 2) {
    const word = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16)
    v3 ^= word
    v0 = (v0 + v1) | 0
    v1 = (v1 << 5) | (v1 >>> 27)
    v1 ^= v0
    v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0
    v3 = (v3 << 8) | (v3 >>> 24)
    v3 ^= v2
    v0 = (v0 + v3) | 0
    v3 = (v3 << 7) | (v3 >>> 25)
    v3 ^= v0
    v2 = (v2 + v1) | 0
    v1 = (v1 << 13) | (v1 >>> 19)
    v1 ^= v2
    v2 = (v2 << 16) | (v2 >>> 16)
    v0 ^= word
  }
  // The last word holds the odd code unit, if any, and the length.
  const last = (i < length ? key.charCodeAt(i) : 0) | (length << 16)
  v3 ^= last
  for (let round = 0; round < 4; round++) {
    v0 = (v0 + v1) | 0
    v1 = (v1 << 5) | (v1 >>> 27)
    v1 ^= v0
    v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0
    v3 = (v3 << 8) | (v3 >>> 24)
    v3 ^= v2
    v0 = (v0 + v3) | 0
    v3 = (v3 << 7) | (v3 >>> 25)
    v3 ^= v0
    v2 = (v2 + v1) | 0
    v1 = (v1 << 13) | (v1 >>> 19)
    v1 ^= v2
    v2 = (v2 << 16) | (v2 >>> 16)
    if (round === 0) {
      v0 ^= last
      v2 ^= 0xff
    }
  }
  return v1 ^ v3
}
