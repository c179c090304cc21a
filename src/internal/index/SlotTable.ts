/**
 * The open-addressing table both indexes share the layout of: an `Int32Array`
 * of `(entry + 1, hash)` pairs, 0 for an empty slot, linear probing from
 * `hash & mask`, removal by backward shift (no tombstones). The heap index
 * keeps it in an ordinary buffer, the shared index in a `SharedArrayBuffer`;
 * the moves are the same.
 */

/** Empties `slot`, shifting back the slots after it that may move (no tombstones). */
export const vacateSlot = (slots: Int32Array, mask: number, slot: number): void => {
  let hole = slot
  let next = slot
  for (;;) {
    next = (next + 1) & mask
    const stored = slots[2 * next]
    if (stored === 0) break
    const home = slots[2 * next + 1] & mask
    // It may move back to `hole` unless its home lies after `hole` (cyclically).
    if (((next - home) & mask) >= ((next - hole) & mask)) {
      slots[2 * hole] = stored
      slots[2 * hole + 1] = slots[2 * next + 1]
      hole = next
    }
  }
  slots[2 * hole] = 0
  slots[2 * hole + 1] = 0
}

/**
 * Places every pair of `old` into the empty table `slots` (of `mask + 1`
 * slots) by its stored hash: a key is never read to move it.
 */
export const placeAll = (old: Int32Array, slots: Int32Array, mask: number): void => {
  for (let i = 0; i < old.length; i += 2) {
    const stored = old[i]
    if (stored === 0) continue
    const hash = old[i + 1]
    let slot = hash & mask
    while (slots[2 * slot] !== 0) slot = (slot + 1) & mask
    slots[2 * slot] = stored
    slots[2 * slot + 1] = hash
  }
}
