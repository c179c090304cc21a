/**
 * UTF-8 to and from the shared index's arena, written for short strings.
 *
 * Node's own codecs (`Buffer#write`, `Buffer#toString`, `TextDecoder`)
 * cross into C++ on every call: ~110 ns for a 12-byte value here, more than
 * a whole `get` of the heap index. The keys and values of a key-value store
 * are mostly short and mostly ASCII, so short ASCII strings are encoded by a
 * plain loop and decoded by one `String.fromCharCode` call with exactly as
 * many arguments as bytes (~33 ns for 12 bytes); longer or non-ASCII ones
 * go through Node's codecs, where the call's cost is paid once for many bytes.
 *
 * Stored strings are well formed (`validate.ts` refuses lone surrogates,
 * and replay only ever decodes UTF-8), so their round trip is exact. A key
 * that is only looked up is checked for that on a miss alone (the check costs
 * more than a hit), so an ill-formed one does reach the encoder: a lone
 * surrogate is written as the three bytes of its code point (as WTF-8 does),
 * a sequence no well-formed string encodes to. Such a key can match no stored
 * key, its lookup misses, and the miss refuses it. Taking the unit after a
 * high surrogate as its pair whatever it was made `"\udbffa"` find the key
 * `"\u{102061}"`. (Keys are always encoded by the loop, never by Node's
 * codec, which would write U+FFFD for a lone surrogate: only values, checked
 * before they get here, take that path.)
 */

/** Strings longer than this go through Node's codec rather than a JS loop. */
const longString = 64

const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff

/**
 * The UTF-8 length of a well-formed `text`, or its length negated (−n) when
 * every code unit is ASCII (then its UTF-8 form is `n` bytes, one per unit).
 * The sign tells the decoder it may take the ASCII path.
 */
export const utf8Length = (text: string): number => {
  const length = text.length
  let i = 0
  while (i < length && text.charCodeAt(i) < 0x80) i++
  if (i === length) return length === 0 ? 0 : -length
  let bytes = i
  for (; i < length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      // A pair: four bytes for both.
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

/**
 * Writes the UTF-8 form of `text` into `target` at `at`; `buffer` is a
 * `Buffer` over the same memory as `target` (for long strings), or
 * `undefined` to always use the loop. `ascii` is what `utf8Length` said.
 */
export const writeUtf8 = (
  text: string,
  ascii: boolean,
  target: Uint8Array,
  buffer: Buffer | undefined,
  at: number
): void => {
  const length = text.length
  if (ascii) {
    if (length > longString && buffer !== undefined) {
      buffer.write(text, at, length, "latin1")
      return
    }
    for (let i = 0; i < length; i++) target[at + i] = text.charCodeAt(i)
    return
  }
  if (length > longString && buffer !== undefined) {
    buffer.write(text, at, "utf8")
    return
  }
  let out = at
  for (let i = 0; i < length; i++) {
    let point = text.charCodeAt(i)
    if (point < 0x80) {
      target[out++] = point
    } else if (point < 0x800) {
      target[out++] = 0xc0 | (point >> 6)
      target[out++] = 0x80 | (point & 0x3f)
    } else if (point >= 0xd800 && point <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      point = 0x10000 + ((point - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00)
      target[out++] = 0xf0 | (point >> 18)
      target[out++] = 0x80 | ((point >> 12) & 0x3f)
      target[out++] = 0x80 | ((point >> 6) & 0x3f)
      target[out++] = 0x80 | (point & 0x3f)
    } else {
      target[out++] = 0xe0 | (point >> 12)
      target[out++] = 0x80 | ((point >> 6) & 0x3f)
      target[out++] = 0x80 | (point & 0x3f)
    }
  }
}

const c = String.fromCharCode

/**
 * The string whose ASCII bytes are `u[i, i + n)`. One `fromCharCode` call
 * with `n` arguments builds a flat one-byte string; a loop of `+=` builds a
 * rope and was 4× slower.
 */
export const decodeAscii = (u: Uint8Array, buffer: Buffer, i: number, n: number): string => {
  switch (n) {
    case 0: return ""
    case 1: return c(u[i])
    case 2: return c(u[i], u[i + 1])
    case 3: return c(u[i], u[i + 1], u[i + 2])
    case 4: return c(u[i], u[i + 1], u[i + 2], u[i + 3])
    case 5: return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4])
    case 6: return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5])
    case 7: return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6])
    case 8: return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7])
    case 9: return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8])
    case 10:
      return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9])
    case 11:
      return c(u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9], u[i + 10])
    case 12:
      return c(
        u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9], u[i + 10],
        u[i + 11]
      )
    case 13:
      return c(
        u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9], u[i + 10],
        u[i + 11], u[i + 12]
      )
    case 14:
      return c(
        u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9], u[i + 10],
        u[i + 11], u[i + 12], u[i + 13]
      )
    case 15:
      return c(
        u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9], u[i + 10],
        u[i + 11], u[i + 12], u[i + 13], u[i + 14]
      )
    case 16:
      return c(
        u[i], u[i + 1], u[i + 2], u[i + 3], u[i + 4], u[i + 5], u[i + 6], u[i + 7], u[i + 8], u[i + 9], u[i + 10],
        u[i + 11], u[i + 12], u[i + 13], u[i + 14], u[i + 15]
      )
    default:
      return buffer.toString("latin1", i, i + n)
  }
}

/** The string whose UTF-8 form is `buffer[i, i + n)`. */
export const decodeUtf8 = (buffer: Buffer, i: number, n: number): string => buffer.toString("utf8", i, i + n)
