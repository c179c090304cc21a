/**
 * Checks every argument once, at the boundary, before the store is touched:
 * a rejected call leaves the store exactly as it was.
 */
import * as Duration from "effect/Duration"
import { InvalidInput } from "./errors.ts"
import { isIndexKind } from "./index/makeIndex.ts"
import { maxKeyLength, maxValueLength } from "./Limits.ts"
import type { Value } from "./Value.ts"

/** A short description of a refused argument; never throws, whatever it is given. */
const describe = (u: unknown): string => {
  try {
    if (u === null) return "null"
    if (typeof u === "object") return u.constructor?.name ?? "object"
    if (typeof u === "string") return `string ${JSON.stringify(u.length > 40 ? u.slice(0, 40) + "…" : u)}`
    const text = String(u)
    return `${typeof u} ${text.length > 40 ? text.slice(0, 40) + "…" : text}`
  } catch {
    return typeof u
  }
}

/**
 * The cheap part of `checkKey`: a string no longer than `maxKeyLength`. Reads
 * check this first and `key.isWellFormed()` only on a miss: a key with a lone
 * surrogate is never stored (put refuses it, replay decodes UTF-8), so a hit
 * proves the key well formed.
 */
export const isKeyInRange = (key: unknown): key is string => typeof key === "string" && key.length <= maxKeyLength

/** Why `key` is refused; for a key `checkKey` does not accept. */
export const invalidKey = (key: unknown): InvalidInput => {
  if (typeof key !== "string") return new InvalidInput({ message: `key must be a string, got ${describe(key)}` })
  if (key.length > maxKeyLength) {
    return new InvalidInput({ message: `key is ${key.length} UTF-16 code units long, over the limit of ${maxKeyLength}` })
  }
  // A lone surrogate has no UTF-8 form: the log would store U+FFFD instead and
  // replay would give back a different key. Refuse it in every layer alike.
  return new InvalidInput({ message: "key contains a lone UTF-16 surrogate" })
}

/** `undefined` when a store's `index` option is acceptable, else why not. */
export const checkIndexOption = (index: unknown): InvalidInput | undefined => {
  if (index === undefined) {
    // The default comes from KVLOG_INDEX: a misspelt value must not quietly
    // give the heap index to a program (or a CI pass) that asked for another.
    const fromEnvironment = globalThis.process?.env?.KVLOG_INDEX
    return fromEnvironment === undefined || fromEnvironment === "" || isIndexKind(fromEnvironment)
      ? undefined
      : new InvalidInput({
        message: `the environment variable KVLOG_INDEX must be "heap" or "shared", got ${describe(fromEnvironment)}`
      })
  }
  return isIndexKind(index)
    ? undefined
    : new InvalidInput({ message: `index must be "heap" or "shared", got ${describe(index)}` })
}

/** `undefined` when `key` is acceptable, else why not. */
export const checkKey = (key: unknown): InvalidInput | undefined =>
  isKeyInRange(key) && key.isWellFormed() ? undefined : invalidKey(key)

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
 * The milliseconds of a `Duration.Input`; `undefined` for anything else,
 * including an object that only claims to be a `Duration`.
 */
const inputMillis = (input: unknown): number | undefined => {
  try {
    const duration = Duration.fromInput(input as Duration.Input)
    return duration._tag === "None" ? undefined : Duration.toMillis(duration.value)
  } catch {
    return undefined
  }
}

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
  const millis = typeof input === "number" ? input : inputMillis(input)
  if (millis === undefined) {
    return new InvalidInput({ message: `duration must be a Duration input, got ${describe(input)}` })
  }
  if (Number.isNaN(millis)) return new InvalidInput({ message: "duration must not be NaN" })
  if (millis <= 0) {
    const asMillis = typeof input === "number" ? "" : ` (${millis} ms)`
    return new InvalidInput({ message: `duration must be positive, got ${describe(input)}${asMillis}` })
  }
  return millis
}
