/**
 * The one deadline-ordered structure behind every TTL: an indexed binary
 * min-heap over "slots". A slot holds a key with a deadline, its value and its
 * deadline; the index maps such a key to its slot number instead of to the
 * value, so a key without TTL costs nothing here and a key with one costs a
 * few typed-array cells, not an object.
 *
 * Indexed (every slot knows its heap position) so that overwriting or deleting
 * a key moves or removes its entry in O(log n): the heap never holds stale
 * entries, and its top is always the next deadline that matters.
 */
import type { Value } from "../Value.ts"

const initialCapacity = 64

export class DeadlineHeap {
  /** Deadline (epoch ms, by the store's Clock) of each slot. */
  private deadlineOf = new Float64Array(initialCapacity)
  /** Heap position of each slot; -1 for a free slot. */
  private positionOf = new Int32Array(initialCapacity).fill(-1)
  /** The heap itself: slot numbers, earliest deadline first. */
  private heap = new Int32Array(initialCapacity)
  /** Key and value of each slot (`undefined` once freed, so the GC can take them). */
  private keyOf: Array<string | undefined> = []
  private valueOf: Array<Value | undefined> = []
  private freeSlots: Array<number> = []
  private nextUnusedSlot = 0
  private length = 0

  /** Number of keys with a deadline (expired or not). */
  get size(): number {
    return this.length
  }

  /** The earliest deadline, or `Infinity` when no key has one. */
  peekDeadline(): number {
    return this.length === 0 ? Infinity : this.deadlineOf[this.heap[0]]
  }

  /** The slot with the earliest deadline; only valid when `size > 0`. */
  peekSlot(): number {
    return this.heap[0]
  }

  deadline(slot: number): number {
    return this.deadlineOf[slot]
  }

  key(slot: number): string {
    return this.keyOf[slot]!
  }

  value(slot: number): Value {
    return this.valueOf[slot]!
  }

  insert(key: string, value: Value, deadline: number): number {
    const slot = this.allocateSlot()
    this.keyOf[slot] = key
    this.valueOf[slot] = value
    this.deadlineOf[slot] = deadline
    const position = this.length++
    this.heap[position] = slot
    this.positionOf[slot] = position
    this.siftUp(position)
    return slot
  }

  /** Gives `slot` a new value and deadline (an overwrite with TTL). */
  reschedule(slot: number, value: Value, deadline: number): void {
    const previous = this.deadlineOf[slot]
    this.valueOf[slot] = value
    this.deadlineOf[slot] = deadline
    const position = this.positionOf[slot]
    if (deadline < previous) this.siftUp(position)
    else if (deadline > previous) this.siftDown(position)
  }

  remove(slot: number): void {
    const position = this.positionOf[slot]
    // A free slot has no place in the heap: going on would sift from
    // position -1 for ever. Only a broken map from keys to slots gets here.
    if (!(position >= 0)) throw new Error(`kvlog: internal error: deadline slot ${slot} removed while free`)
    const lastPosition = --this.length
    if (position !== lastPosition) {
      const moved = this.heap[lastPosition]
      this.heap[position] = moved
      this.positionOf[moved] = position
      // The moved slot may belong above or below its new place.
      this.siftUp(position)
      this.siftDown(this.positionOf[moved])
    }
    this.freeSlot(slot)
  }

  /**
   * Counts the slots whose deadline is at or before `now` without changing
   * anything: a walk of the heap that only descends below expired nodes, so
   * it costs O(expired), not O(size).
   */
  countExpired(now: number): number {
    if (this.length === 0 || this.deadlineOf[this.heap[0]] > now) return 0
    let count = 0
    const stack = [0]
    while (stack.length > 0) {
      const position = stack.pop()!
      if (position >= this.length || this.deadlineOf[this.heap[position]] > now) continue
      count++
      stack.push(2 * position + 1, 2 * position + 2)
    }
    return count
  }

  private allocateSlot(): number {
    const reused = this.freeSlots.pop()
    if (reused !== undefined) return reused
    const slot = this.nextUnusedSlot++
    if (slot === this.deadlineOf.length) this.grow()
    return slot
  }

  private freeSlot(slot: number): void {
    this.positionOf[slot] = -1
    this.keyOf[slot] = undefined
    this.valueOf[slot] = undefined
    this.freeSlots.push(slot)
  }

  private grow(): void {
    const capacity = this.deadlineOf.length * 2
    const deadlineOf = new Float64Array(capacity)
    deadlineOf.set(this.deadlineOf)
    const positionOf = new Int32Array(capacity).fill(-1)
    positionOf.set(this.positionOf)
    const heap = new Int32Array(capacity)
    heap.set(this.heap)
    this.deadlineOf = deadlineOf
    this.positionOf = positionOf
    this.heap = heap
  }

  private siftUp(position: number): void {
    const heap = this.heap
    const slot = heap[position]
    const deadline = this.deadlineOf[slot]
    while (position > 0) {
      const parentPosition = (position - 1) >> 1
      const parent = heap[parentPosition]
      if (this.deadlineOf[parent] <= deadline) break
      heap[position] = parent
      this.positionOf[parent] = position
      position = parentPosition
    }
    heap[position] = slot
    this.positionOf[slot] = position
  }

  private siftDown(position: number): void {
    const heap = this.heap
    const length = this.length
    const slot = heap[position]
    const deadline = this.deadlineOf[slot]
    while (true) {
      const left = 2 * position + 1
      if (left >= length) break
      const right = left + 1
      let child = left
      if (right < length && this.deadlineOf[heap[right]] < this.deadlineOf[heap[left]]) child = right
      const childSlot = heap[child]
      if (this.deadlineOf[childSlot] >= deadline) break
      heap[position] = childSlot
      this.positionOf[childSlot] = position
      position = child
    }
    heap[position] = slot
    this.positionOf[slot] = position
  }
}
