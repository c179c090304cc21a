/**
 * Checks every argument once, at the boundary, before the store is touched:
 * a rejected call leaves the store exactly as it was.
 */
import * as Duration from "effect/Duration"
import { InvalidInput } from "./errors.ts"
import { maxKeyLength, maxValueLength } from "./Limits.ts"
import type { Value } from "./Value.ts"

const describe = (u: unknown): string => {
  if (u === null) return "null"
  if (typeof u === "object") return u.constructor?.name ?? "object"
  if (typeof u === "string") return `string ${JSON.stringify(u.length > 40 ? u.slice(0, 40) + "…" : u)}`
  return `${typeof u} ${String(u)}`
}

/** `undefined` when `key` is acceptable, else why not. */
export const checkKey = (key: unknown): InvalidInput | undefined => {
  if (typeof key !== "string") return new InvalidInput({ message: `key must be a string, got ${describe(key)}` })
  if (key.length > maxKeyLength) {
    return new InvalidInput({ message: `key is ${key.length} UTF-16 code units long, over the limit of ${maxKeyLength}` })
  }
  // A lone surrogate has no UTF-8 form: the log would store U+FFFD instead and
  // replay would give back a different key. Refuse it in every layer alike.
  if (!key.isWellFormed()) return new InvalidInput({ message: "key contains a lone UTF-16 surrogate" })
  return undefined
}

/** `undefined` when `value` is acceptable, else why not. */
export const checkValue = (value: unknown): InvalidInput | undefined => {
  if (typeof value === "string") {
    if (value.length > maxValueLength) {
      return new InvalidInput({
        message: `value is ${value.length} UTF-16 code units long, over the limit of ${maxValueLength}`
      })
    }
    if (!value.isWellFormed()) return new InvalidInput({ message: "value contains a lone UTF-16 surrogate" })
    return undefined
  }
  if (value instanceof Uint8Array) {
    if (value.byteLength > maxValueLength) {
      return new InvalidInput({
        message: `value is ${value.byteLength} bytes long, over the limit of ${maxValueLength}`
      })
    }
    return undefined
  }
  return new InvalidInput({ message: `value must be a string or a Uint8Array, got ${describe(value)}` })
}

/**
 * The store keeps its own copy of a byte value: a caller mutating its array
 * after `put` must not change what `get` returns.
 */
export const ownValue = (value: Value): Value => typeof value === "string" ? value : new Uint8Array(value)

/**
 * The TTL of a `put`, in milliseconds: `Infinity` for none (no option, or
 * `Duration.infinity`), else a finite positive number (possibly fractional,
 * for sub-millisecond durations). Anything else is refused.
 */
export const ttlMillis = (options: unknown): number | InvalidInput => {
  if (options === undefined) return Infinity
  if (options === null || typeof options !== "object") {
    return new InvalidInput({ message: `put options must be an object, got ${describe(options)}` })
  }
  const input = (options as { readonly duration?: unknown }).duration
  if (input === undefined) return Infinity
  let millis: number
  if (typeof input === "number") {
    millis = input
  } else {
    const duration = Duration.fromInput(input as Duration.Input)
    if (duration._tag === "None") {
      return new InvalidInput({ message: `duration must be a Duration input, got ${describe(input)}` })
    }
    millis = Duration.toMillis(duration.value)
  }
  if (Number.isNaN(millis)) return new InvalidInput({ message: "duration must not be NaN" })
  if (millis <= 0) {
    return new InvalidInput({ message: `duration must be positive, got ${describe(input)}` })
  }
  return millis
}
