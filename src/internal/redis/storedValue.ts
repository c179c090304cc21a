/**
 * How a value is stored in Redis, so that it comes back with its type: one
 * ASCII character says what follows.
 *
 * - `s` then the string itself (UTF-8 on the wire, as Redis clients send
 *   strings): `"hello"` is stored as `shello`.
 * - `b` then the bytes in base64 (RFC 4648, standard alphabet, padded):
 *   bytes `01 02 03` are stored as `bAQID`.
 *
 * A string that reads like encoded bytes (`"bAQID"`) is stored as `sbAQID`,
 * so it stays a string. Bytes go as base64 rather than raw because Effect's
 * `Redis` service (the one a user may hand over) sends and receives strings
 * only: raw bytes that are not UTF-8 would not survive it. The format is in
 * `docs/redis.md` for other clients.
 */
import type { Value } from "../Value.ts"

const stringTag = "s"
const bytesTag = "b"

/** The stored form of `value` (a fresh string: later changes to a byte array do not reach it). */
export const encodeValue = (value: Value): string =>
  typeof value === "string"
    ? stringTag + value
    : bytesTag + Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64")

/**
 * The value a stored string holds, or `undefined` when it does not begin
 * with a tag of this format (a value some other client wrote). Bytes come
 * back as a `Uint8Array` of their own, not a view of Node's shared pool.
 */
export const decodeValue = (stored: string): Value | undefined => {
  const tag = stored.charAt(0)
  if (tag === stringTag) return stored.slice(1)
  if (tag !== bytesTag) return undefined
  const base64 = stored.slice(1)
  const bytes = new Uint8Array(Buffer.byteLength(base64, "base64"))
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).write(base64, "base64")
  return bytes
}
