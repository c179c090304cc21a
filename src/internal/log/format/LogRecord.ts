/**
 * Encoding log records: a `RecordEncoder` appends framed records (see
 * `LogFormat.ts`) into one growable buffer, so a batch of puts and deletes
 * reaches the disk in a single `write()`.
 *
 * This is the hot path of durable writes: no allocation per record except
 * when the buffer grows, strings written straight into the buffer, and the
 * CRC computed in place.
 */
import * as Limits from "../../Limits.ts"
import {
  crc32,
  flagBytes,
  flagDeadline,
  frameHeaderLength,
  opDelete,
  opPut,
  writeU32
} from "./LogFormat.ts"

/** Bytes of a put payload before the key, without and with a deadline. */
const putPrefixLength = 1 + 1 + 4
const deadlineLength = 8

/**
 * A batch of encoded records in one buffer.
 *
 * ```ts
 * const batch = new RecordEncoder()
 * batch.appendPut("a", "1", Infinity)
 * batch.appendDelete("b")
 * fs.writeSync(fd, batch.contents())
 * batch.reset()
 * ```
 *
 * Arguments are asserted, not validated: the store checks them at its
 * boundary (`InvalidInput`), and a violation here is a defect that throws.
 * Strings must be well-formed UTF-16: UTF-8 has no encoding for a lone
 * surrogate, so it is written as U+FFFD and would not read back as written.
 */
export class RecordEncoder {
  #buffer: Buffer
  #length = 0
  readonly #retainedCapacity: number

  /**
   * @param initialCapacity bytes to allocate up front; the buffer doubles
   *   when a record does not fit.
   * @param retainedCapacity the largest buffer `reset` keeps: one grown past
   *   it for a large value is released, so a single 64 MiB put does not pin
   *   192 MiB for the life of the store.
   */
  constructor(initialCapacity: number = 64 * 1024, retainedCapacity: number = 4 * 1024 * 1024) {
    this.#buffer = Buffer.allocUnsafeSlow(Math.max(initialCapacity, 64))
    this.#retainedCapacity = Math.max(retainedCapacity, this.#buffer.length)
  }

  /** Bytes encoded since the last `reset`. */
  get length(): number {
    return this.#length
  }

  /**
   * The encoded records, ready for one `write()`. A view of the encoder's
   * buffer: valid until the next `append*` or `reset`.
   */
  contents(): Buffer {
    return this.#buffer.subarray(0, this.#length)
  }

  /** Forgets the encoded records, keeping the buffer for the next batch. */
  reset(): void {
    this.#length = 0
    if (this.#buffer.length > this.#retainedCapacity) {
      this.#buffer = Buffer.allocUnsafeSlow(this.#retainedCapacity)
    }
  }

  /**
   * Appends a put of `key` → `value`. `deadline` is the absolute wall-clock
   * time (epoch milliseconds, may be fractional) from which the key is gone,
   * or `Infinity` for none. Returns the record's length in bytes.
   */
  appendPut(key: string, value: string | Uint8Array, deadline: number): number {
    const isBytes = typeof value !== "string"
    const hasDeadline = deadline !== Infinity
    if (key.length > Limits.maxKeyLength) throw new RangeError(`key longer than ${Limits.maxKeyLength}: ${key.length}`)
    if (value.length > Limits.maxValueLength) {
      throw new RangeError(`value longer than ${Limits.maxValueLength}: ${value.length}`)
    }
    if (hasDeadline && !(deadline > 0 && deadline < Infinity)) {
      throw new RangeError(`deadline must be a positive finite epoch time in ms or Infinity: ${deadline}`)
    }
    const fixed = frameHeaderLength + putPrefixLength + (hasDeadline ? deadlineLength : 0)
    // Reserve the worst case (3 UTF-8 bytes a UTF-16 code unit) so the common
    // case never measures a string; measure exactly only when that overflows.
    const worst = fixed + 3 * key.length + (isBytes ? value.length : 3 * value.length)
    if (this.#length + worst > this.#buffer.length) {
      this.#reserve(
        fixed + Buffer.byteLength(key, "utf8") + (isBytes ? value.length : Buffer.byteLength(value, "utf8"))
      )
    }
    const buffer = this.#buffer
    const frameStart = this.#length
    const payloadStart = frameStart + frameHeaderLength
    buffer[payloadStart] = opPut
    buffer[payloadStart + 1] = (isBytes ? flagBytes : 0) | (hasDeadline ? flagDeadline : 0)
    let offset = payloadStart + 2
    if (hasDeadline) {
      buffer.writeDoubleLE(deadline, offset)
      offset += deadlineLength
    }
    const keyByteLength = buffer.write(key, offset + 4, "utf8")
    writeU32(buffer, offset, keyByteLength)
    offset += 4 + keyByteLength
    if (isBytes) {
      buffer.set(value, offset)
      offset += value.length
    } else {
      offset += buffer.write(value, offset, "utf8")
    }
    return this.#seal(frameStart, offset)
  }

  /** Appends a delete of `key`. Returns the record's length in bytes. */
  appendDelete(key: string): number {
    if (key.length > Limits.maxKeyLength) throw new RangeError(`key longer than ${Limits.maxKeyLength}: ${key.length}`)
    const fixed = frameHeaderLength + putPrefixLength
    if (this.#length + fixed + 3 * key.length > this.#buffer.length) {
      this.#reserve(fixed + Buffer.byteLength(key, "utf8"))
    }
    const buffer = this.#buffer
    const frameStart = this.#length
    const payloadStart = frameStart + frameHeaderLength
    buffer[payloadStart] = opDelete
    buffer[payloadStart + 1] = 0
    const keyByteLength = buffer.write(key, payloadStart + 6, "utf8")
    writeU32(buffer, payloadStart + 2, keyByteLength)
    return this.#seal(frameStart, payloadStart + 6 + keyByteLength)
  }

  /** Writes the frame header of the payload `[frameStart + 12, payloadEnd)`. */
  #seal(frameStart: number, payloadEnd: number): number {
    const buffer = this.#buffer
    const payloadStart = frameStart + frameHeaderLength
    const payloadLength = payloadEnd - payloadStart
    writeU32(buffer, frameStart, payloadLength)
    writeU32(buffer, frameStart + 4, ~payloadLength >>> 0)
    writeU32(buffer, frameStart + 8, crc32(buffer, payloadStart, payloadEnd))
    this.#length = payloadEnd
    return payloadEnd - frameStart
  }

  /** Makes room for `bytes` more bytes, at least doubling the buffer. */
  #reserve(bytes: number): void {
    const needed = this.#length + bytes
    if (needed <= this.#buffer.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, 2 * this.#buffer.length))
    this.#buffer.copy(grown, 0, 0, this.#length)
    this.#buffer = grown
  }
}
