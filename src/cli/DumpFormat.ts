/**
 * The JSON lines of `kvlog dump` and `kvlog load`: one entry a line.
 *
 * ```text
 * {"key":"greeting","value":"hello"}
 * {"key":"blob","value":"AAEC/w==","type":"bytes"}
 * {"key":"session","value":"s1","expiresAt":"2026-12-02T04:00:00.000Z"}
 * ```
 *
 * A string value is the string itself; bytes are base64 with `"type":
 * "bytes"`. `expiresAt` is the deadline as an ISO time, in whole
 * milliseconds; a deadline with a fraction of a millisecond also carries
 * `expiresAtMillis`, its exact epoch time, so that a load restores it
 * exactly. Parsing is strict: a field it does not know, a value of the wrong
 * type, base64 that does not re-encode to itself, or a time that is not an
 * ISO UTC time is an error naming the line, never a guess.
 */
import { checkKey, checkValue } from "../internal/validate.ts"

/** One entry of a dump. `deadline` is an epoch time in ms, `Infinity` for none. */
export interface DumpEntry {
  readonly key: string
  readonly value: string | Uint8Array
  readonly deadline: number
}

/** The dump line of an entry, without its newline. */
export const encodeEntry = (key: string, value: string | Uint8Array, deadline: number): string => {
  let line = `{"key":${JSON.stringify(key)},"value":`
  line += typeof value === "string"
    ? JSON.stringify(value)
    : `"${Buffer.from(value.buffer, value.byteOffset, value.length).toString("base64")}","type":"bytes"`
  if (deadline !== Infinity) {
    line += `,"expiresAt":"${new Date(Math.floor(deadline)).toISOString()}"`
    if (!Number.isInteger(deadline)) line += `,"expiresAtMillis":${deadline}`
  }
  return line + "}"
}

/** The `--all-records` line of a put. */
export const encodePutRecord = (offset: number, key: string, value: string | Uint8Array, deadline: number): string =>
  `{"offset":${offset},"op":"put",${encodeEntry(key, value, deadline).slice(1)}`

/** The `--all-records` line of a delete. */
export const encodeDeleteRecord = (offset: number, key: string): string =>
  `{"offset":${offset},"op":"delete","key":${JSON.stringify(key)}}`

/** A line that is not an entry: `line` counts from 1. */
export class DumpLineError extends Error {
  readonly line: number
  readonly problem: string
  constructor(line: number, problem: string) {
    super(`line ${line}: ${problem}`)
    this.line = line
    this.problem = problem
  }
}

const isoUtc = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$/
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

const knownFields = new Set(["key", "value", "type", "expiresAt", "expiresAtMillis"])

/**
 * The entry on line number `lineNumber`, or `undefined` for a blank line.
 * Throws `DumpLineError` for anything else that is not a valid entry.
 */
export const decodeEntry = (text: string, lineNumber: number): DumpEntry | undefined => {
  if (text.trim() === "") return undefined
  const fail = (problem: string): never => {
    throw new DumpLineError(lineNumber, problem)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    return fail(`not JSON (${(error as Error).message})`)
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return fail("expected a JSON object with a key and a value")
  }
  const fields = parsed as Record<string, unknown>
  if ("op" in fields || "offset" in fields) {
    fail("a record of `kvlog dump --all-records` (it has \"op\" or \"offset\"); load takes a dump of the live state")
  }
  for (const name of Object.keys(fields)) {
    if (!knownFields.has(name)) fail(`unknown field ${JSON.stringify(name)}: the fields are ${[...knownFields].join(", ")}`)
  }
  const key = fields.key
  if (typeof key !== "string") return fail("\"key\" must be a string")
  const badKey = checkKey(key)
  if (badKey !== undefined) fail(badKey.message)
  const type = fields.type ?? "string"
  if (type !== "string" && type !== "bytes") fail(`"type" must be "string" or "bytes", got ${JSON.stringify(type)}`)
  const rawValue = fields.value
  if (typeof rawValue !== "string") return fail("\"value\" must be a string (base64 when \"type\" is \"bytes\")")
  let value: string | Uint8Array = rawValue
  if (type === "bytes") {
    if (!base64.test(rawValue)) fail("\"value\" is not base64 (A–Z, a–z, 0–9, +, / and = padding)")
    value = new Uint8Array(Buffer.from(rawValue, "base64"))
  }
  // The store's own check, so that a line a load accepts is a put the store accepts.
  const badValue = checkValue(value)
  if (badValue !== undefined) fail(badValue.message)
  return { key, value, deadline: decodeDeadline(fields, fail) }
}

const decodeDeadline = (fields: Record<string, unknown>, fail: (problem: string) => never): number => {
  const expiresAt = fields.expiresAt
  const exact = fields.expiresAtMillis
  if (expiresAt === undefined) {
    if (exact !== undefined) fail("\"expiresAtMillis\" without \"expiresAt\"")
    return Infinity
  }
  if (typeof expiresAt !== "string") return fail("\"expiresAt\" must be an ISO time string")
  const match = isoUtc.exec(expiresAt)
  const millis = match === null ? NaN : Date.parse(expiresAt)
  // Date.parse rolls over impossible dates (February 30th): the time must print back as it was written.
  if (
    match === null || !Number.isFinite(millis) ||
    new Date(millis).toISOString().slice(0, 19) !== expiresAt.slice(0, 19)
  ) {
    return fail(`"expiresAt" must be an ISO UTC time like 2026-12-02T04:00:00.000Z, got ${JSON.stringify(expiresAt)}`)
  }
  if (!(millis > 0)) fail(`"expiresAt" must be after 1970-01-01T00:00:00.000Z, got ${expiresAt}`)
  if (exact === undefined) return millis
  if (typeof exact !== "number" || !Number.isFinite(exact) || Math.floor(exact) !== millis) {
    return fail(`"expiresAtMillis" must be the exact time of "expiresAt" (${millis} to ${millis + 1} ms), got ${String(exact)}`)
  }
  return exact
}
