/**
 * The data every subject is measured on, built before any timing starts:
 * `key${i}` → `value${i}` as in the original Python library, a variant with 100-byte values, a
 * random read order, and per-key TTLs. Randomness is seeded so that every
 * subject at a size sees the same order.
 */

import { seededRandom } from "../test/support/seededRandom.ts"

/** Which values a run stores. */
export type ValueShape = "short" | "100b"

/** The width of the `"100b"` variant's values, in characters (ASCII, so also bytes). */
export const wideValueLength = 100

/** `key${i}` for `from ≤ i < to`; flat. */
export const makeKeys = (from: number, to: number): Array<string> => {
  const keys: Array<string> = []
  for (let i = from; i < to; i++) keys.push(flatString(`key${i}`))
  return keys
}

/**
 * A flat copy of an ASCII string. V8 keeps a concatenation of 13 characters or
 * more as a "cons string" (a pair of pointers to its parts): 100-character
 * values from `padEnd` take ~280 bytes instead of 120. A program's values
 * usually come flat (from a socket, a file, `JSON.parse`), so the bench
 * stores flat strings too.
 */
export const flatString = (text: string): string =>
  text.length < 13 ? text : Buffer.from(text, "latin1").toString("latin1")

/** The value of key `i`: `value${i}`, or the same padded with `.` to 100 characters; flat. */
export const valueOf = (i: number, shape: ValueShape): string =>
  flatString(shape === "short" ? `value${i}` : `value${i}`.padEnd(wideValueLength, "."))

/** The values of keys `from ≤ i < to`. */
export const makeValues = (from: number, to: number, shape: ValueShape): Array<string> => {
  const values: Array<string> = []
  for (let i = from; i < to; i++) values.push(valueOf(i, shape))
  return values
}

/** `count` indices drawn uniformly from `[0, keyCount)`: a random read order (a permutation when `count = keyCount`). */
export const randomReadOrder = (keyCount: number, count: number, seed = 42): Uint32Array => {
  const random = seededRandom(seed)
  if (count === keyCount) {
    const order = new Uint32Array(keyCount)
    for (let i = 0; i < keyCount; i++) order[i] = i
    for (let i = keyCount - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const swap = order[i]!
      order[i] = order[j]!
      order[j] = swap
    }
    return order
  }
  const order = new Uint32Array(count)
  for (let i = 0; i < count; i++) order[i] = Math.floor(random() * keyCount)
  return order
}

/** Per-key TTLs in milliseconds, uniform in `[minMillis, maxMillis]`. */
export const uniformTtls = (count: number, minMillis: number, maxMillis: number, seed = 7): Float64Array => {
  const random = seededRandom(seed)
  const ttls = new Float64Array(count)
  for (let i = 0; i < count; i++) ttls[i] = minMillis + Math.floor(random() * (maxMillis - minMillis + 1))
  return ttls
}
