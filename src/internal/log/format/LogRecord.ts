/**
 * Encoding log batches: a `RecordEncoder` appends records (see
 * `LogFormat.ts`) into one growable buffer behind room for the batch header,
 * so a batch of puts and deletes reaches the disk in a single `write()`.
 *
 * This is the hot path of durable writes: no allocation per record except
 * when the buffer grows, strings written straight into the buffer, and one
 * CRC over the whole batch when it is sealed.
 */
import * as Limits from "../../Limits.ts"
import {
  batchHeaderLength,
  crc32,
  flagBytes,
  flagDeadline,
  opDelete,
  opPut,
  recordHeaderLength,
  writeBatchHeader,
  writeU32
} from "./LogFormat.ts"

export { encodeBatchHeader, encodeFileHeader, newSalt } from "./LogFormat.ts"

/** Bytes of a payload before the key (op, flags, key length), and of a deadline. */
const keyPrefixLength = 1 + 1 + 4
const deadlineLength = 8

/**
 * A batch of encoded records in one buffer.
 *
 * ```ts
 * const batch = new RecordEncoder()
 * batch.appendPut("a", "1", Infinity)
 * batch.appendDelete("b")
 * fs.writeSync(fd, batch.seal(sequence, salt, syncedThrough), 0, undefined, end)
 * batch.reset()
 * ```
 *
 * Arguments are asserted, not validated: the store checks them at its
 * boundary (`InvalidInput`), and a violation here is a defect that throws.
 * Strings must be well-formed UTF-16: UTF-8 has no encoding for a lone
 * surrogate (it would be written as U+FFFD and read back as something else).
 */
export class RecordEncoder {
  /** `batchHeaderLength` bytes for the header, then the records. */
  #buffer: Buffer
  #length = 0
  #count = 0
  readonly #retainedCapacity: number

  /**
   * @param initialCapacity bytes to allocate up front; the buffer doubles
   *   when a record does not fit.
   * @param retainedCapacity the largest buffer `reset` keeps: one grown past
   *   it for a large value is released, so a single 64 MiB put does not pin
   *   192 MiB for the life of the store.
   */
  constructor(initialCapacity: number = 64 * 1024, retainedCapacity: number = 4 * 1024 * 1024) {
    this.#buffer = Buffer.allocUnsafeSlow(Math.max(initialCapacity, 64) + batchHeaderLength)
    this.#retainedCapacity = Math.max(retainedCapacity, this.#buffer.length)
  }

  /** Bytes of records encoded since the last `reset` (the batch header excluded). */
  get length(): number {
    return this.#length
  }

  /** Records encoded since the last `reset`. */
  get count(): number {
    return this.#count
  }

  /**
   * The batch, header and records, ready for one `write()` at a batch
   * boundary. `sequence` is the batch's index in the file (it wraps at 2^32),
   * `salt` the file's, `syncedThrough` the file offset before which
   * everything was durable as this batch is written. A view of the encoder's
   * buffer: valid until the next `append*` or `reset`.
   */
  seal(sequence: number, salt: number, syncedThrough: number): Buffer {
    const end = batchHeaderLength + this.#length
    const buffer = this.#buffer
    writeBatchHeader(buffer, 0, this.#length, this.#count, crc32(buffer, batchHeaderLength, end), sequence, salt, syncedThrough)
    return buffer.subarray(0, end)
  }

  /** The records alone, without a header. A view valid until the next `append*` or `reset`. */
  records(): Buffer {
    return this.#buffer.subarray(batchHeaderLength, batchHeaderLength + this.#length)
  }

  /** Forgets the encoded records, keeping the buffer for the next batch. */
  reset(): void {
    this.#length = 0
    this.#count = 0
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
    assertKey(key)
    if (value.length > Limits.maxValueLength) {
      throw new RangeError(`value longer than ${Limits.maxValueLength}: ${value.length}`)
    }
    if (!isBytes && !value.isWellFormed()) throw new RangeError("a value with a lone surrogate has no UTF-8 form")
    if (hasDeadline && !(deadline > 0 && deadline < Infinity)) {
      throw new RangeError(`deadline must be a positive finite epoch time in ms or Infinity: ${deadline}`)
    }
    const fixed = recordHeaderLength + keyPrefixLength + (hasDeadline ? deadlineLength : 0)
    // Reserve the worst case (3 UTF-8 bytes a UTF-16 code unit) so the common
    // case never measures a string; measure exactly only when that overflows.
    const worst = fixed + 3 * key.length + (isBytes ? value.length : 3 * value.length)
    if (batchHeaderLength + this.#length + worst > this.#buffer.length) {
      this.#reserve(
        fixed + Buffer.byteLength(key, "utf8") + (isBytes ? value.length : Buffer.byteLength(value, "utf8"))
      )
    }
    const buffer = this.#buffer
    const recordStart = batchHeaderLength + this.#length
    const payloadStart = recordStart + recordHeaderLength
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
    return this.#close(recordStart, offset)
  }

  /** Appends a delete of `key`. Returns the record's length in bytes. */
  appendDelete(key: string): number {
    assertKey(key)
    const fixed = recordHeaderLength + keyPrefixLength
    if (batchHeaderLength + this.#length + fixed + 3 * key.length > this.#buffer.length) {
      this.#reserve(fixed + Buffer.byteLength(key, "utf8"))
    }
    const buffer = this.#buffer
    const recordStart = batchHeaderLength + this.#length
    const payloadStart = recordStart + recordHeaderLength
    buffer[payloadStart] = opDelete
    buffer[payloadStart + 1] = 0
    const keyByteLength = buffer.write(key, payloadStart + keyPrefixLength, "utf8")
    writeU32(buffer, payloadStart + 2, keyByteLength)
    return this.#close(recordStart, payloadStart + keyPrefixLength + keyByteLength)
  }

  /** Writes the length of the record `[recordStart, recordEnd)` and counts it. */
  #close(recordStart: number, recordEnd: number): number {
    writeU32(this.#buffer, recordStart, recordEnd - recordStart - recordHeaderLength)
    this.#length = recordEnd - batchHeaderLength
    this.#count++
    return recordEnd - recordStart
  }

  /** Makes room for `bytes` more bytes, at least doubling the buffer. */
  #reserve(bytes: number): void {
    const needed = batchHeaderLength + this.#length + bytes
    if (needed <= this.#buffer.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, 2 * this.#buffer.length))
    this.#buffer.copy(grown, 0, 0, batchHeaderLength + this.#length)
    this.#buffer = grown
  }
}

const assertKey = (key: string): void => {
  if (key.length > Limits.maxKeyLength) throw new RangeError(`key longer than ${Limits.maxKeyLength}: ${key.length}`)
  if (!key.isWellFormed()) throw new RangeError("a key with a lone surrogate has no UTF-8 form")
}
