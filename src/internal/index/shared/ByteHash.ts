/**
 * The shared index's keyed hash: HalfSipHash-1-3 over a key's UTF-8 bytes,
 * four bytes a word, keyed by a seed drawn when the index is made.
 *
 * The heap index hashes a key's UTF-16 code units; the shared one hashes the
 * bytes it stores, so that replay can place a key read from the log without
 * ever making it a string, and a worker thread finds the same slot as the
 * owner from the same bytes. The seed travels with the index's memory to the
 * workers that read it; it never leaves the process, so keys chosen to
 * collide cannot be computed in advance (the defence against hash flooding,
 * as with the heap index and V8's own `Map`).
 */

/** HalfSipHash-1-3 of `bytes[start, start + length)`, keyed by (`k0`, `k1`). */
export const hashBytes = (bytes: Uint8Array, start: number, length: number, k0: number, k1: number): number => {
  let v0 = k0
  let v1 = k1
  let v2 = 0x6c796765 ^ k0
  let v3 = 0x74656462 ^ k1
  const whole = start + (length & ~3)
  let i = start
  for (; i < whole; i += 4) {
    const word = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)
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
  // The last word: the 0–3 bytes left, and the length in its top byte.
  let last = (length & 0xff) << 24
  const left = start + length - i
  if (left >= 3) last |= bytes[i + 2] << 16
  if (left >= 2) last |= bytes[i + 1] << 8
  if (left >= 1) last |= bytes[i]
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
