/**
 * The log format, version 2, as specified in `docs/log-format.md`: the file
 * header, the record encoder and its batch header, the scanner's checks, and
 * replay's rule for the first bad batch (end of the log, torn tail, or damage
 * to synced history). Logs are built in memory and replayed through an
 * in-memory `read`.
 */
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { describe, expect, it } from "vitest"
import * as Limits from "../src/internal/Limits.ts"
import {
  batchHeaderLength,
  checkFileHeader,
  crc32,
  encodeBatchHeader,
  encodeFileHeader,
  fileHeaderLength,
  formatVersion,
  magic,
  maxBatchRecordsBytes,
  maxPayloadLength,
  newSalt,
  writeBatchHeader
} from "../src/internal/log/format/LogFormat.ts"
import { RecordEncoder } from "../src/internal/log/format/LogRecord.ts"
import { type ReplayOptions, replayFile } from "../src/internal/log/format/LogReplay.ts"
import { scanRecords } from "../src/internal/log/format/LogScanner.ts"
import { seededRandom } from "./support/seededRandom.ts"
import {
  appendOp,
  collector,
  del,
  encodeLog,
  type EncodedLog,
  type Op,
  opsOfBatches,
  put,
  replayBytes
} from "./support/logBatches.ts"

// =============================================================================
// Helpers
// =============================================================================

/** A record (length, payload) built independently of the encoder. */
const record = (payload: ArrayLike<number>): Buffer => {
  const bytes = Buffer.alloc(4 + payload.length)
  bytes.writeUInt32LE(payload.length, 0)
  bytes.set(payload, 4)
  return bytes
}

/** A batch (header, records) built independently of the encoder. */
const frameBatch = (
  records: Uint8Array,
  fields: { count: number; sequence: number; salt: number; syncedThrough: number; recordsLength?: number }
): Buffer => {
  const header = Buffer.alloc(32)
  header.writeUInt32LE(fields.recordsLength ?? records.length, 0)
  header.writeUInt32LE(fields.count, 4)
  header.writeUInt32LE(fields.sequence, 8)
  header.writeUInt32LE(fields.salt, 12)
  header.writeUInt32LE(fields.syncedThrough % 2 ** 32, 16)
  header.writeUInt32LE(Math.floor(fields.syncedThrough / 2 ** 32), 20)
  header.writeUInt32LE(zlib.crc32(records), 24)
  header.writeUInt32LE(zlib.crc32(header.subarray(0, 28)), 28)
  return Buffer.concat([header, records])
}

// Small chunks make batches straddle chunk boundaries all the time.
const chunkSizes = [64, 100, undefined] as const
const replayOptions = (chunkSize: number | undefined, onCorruption: "fail" | "truncate" = "fail"): ReplayOptions =>
  chunkSize === undefined ? { onCorruption } : { onCorruption, chunkSize }

const flipped = (bytes: Uint8Array, offset: number, bit: number): Buffer => {
  const copy = Buffer.from(bytes)
  copy[offset] ^= 1 << bit
  return copy
}

/** Deterministic non-zero ASCII, so that a zeroed page always changes the bytes it covers. */
const text = (length: number, seed: number): string => {
  const random = seededRandom(seed)
  let s = ""
  for (let i = 0; i < length; i++) s += String.fromCharCode(33 + Math.floor(random() * 90))
  return s
}

// =============================================================================
// Arbitraries
// =============================================================================

const keyArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.constantFrom("", "k", "🔑", "ключ", "\u0000")
)
const stringValueArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary-ascii", minLength: 250, maxLength: 400 }), // across the CRC's native threshold
  fc.constantFrom("", "😀👩‍👩‍👧", "値", "\r\n\u0000")
)
const bytesValueArb = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 250, maxLength: 400 }))
const deadlineArb = fc.oneof(
  fc.constant(Infinity),
  fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true }),
  fc.integer({ min: 1_700_000_000_000, max: 1_900_000_000_000 }).map((ms) => ms + 0.25)
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("Put" as const), key: keyArb, value: stringValueArb, deadline: deadlineArb }),
  fc.record({ _tag: fc.constant("Put" as const), key: keyArb, value: bytesValueArb, deadline: deadlineArb }),
  fc.record({ _tag: fc.constant("Delete" as const), key: keyArb })
)
const batchesArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: 8 }), { maxLength: 8 })

const sampleBatches: ReadonlyArray<ReadonlyArray<Op>> = [
  [put("a", "1"), put("ключ", "значение", 1_732_560_000_000.5)],
  [del("a")],
  [put("bytes", Uint8Array.of(0, 1, 2, 255)), put("", ""), put("emoji 😀", "👩‍👩‍👧 family", 1_732_560_000_001)],
  [del(""), put("bytes with deadline", new Uint8Array(0), 5), put("long", "x".repeat(300))],
  [del("ключ")],
  [put("k11", Uint8Array.of(7, 7, 7), 1e15), del("missing"), put("k13", "v13")],
  [put("k19", "the last one", 1_732_560_000_019), del("k13")]
]

// =============================================================================
// File header
// =============================================================================

describe("file header", () => {
  it("is the magic 89 'KVLOG' \\r\\n, version 2, the salt and the CRC32 of the first 16 bytes", () => {
    const header = encodeFileHeader(0xdeadbeef)
    expect(header.length).toBe(fileHeaderLength)
    expect(fileHeaderLength).toBe(20)
    expect([...header.subarray(0, 8)]).toEqual([0x89, 0x4b, 0x56, 0x4c, 0x4f, 0x47, 0x0d, 0x0a])
    expect([...magic]).toEqual([...header.subarray(0, 8)])
    expect(header.readUInt32LE(8)).toBe(2)
    expect(formatVersion).toBe(2)
    expect(header.readUInt32LE(12)).toBe(0xdeadbeef)
    expect(header.readUInt32LE(16)).toBe(zlib.crc32(header.subarray(0, 16)))
    expect(checkFileHeader(header)).toEqual({ _tag: "Ok", salt: 0xdeadbeef })
  })

  it("newSalt gives non-zero u32s that differ from call to call", () => {
    const salts = new Set<number>()
    for (let i = 0; i < 1000; i++) {
      const salt = newSalt()
      expect(Number.isInteger(salt) && salt > 0 && salt <= 0xffffffff).toBe(true)
      salts.add(salt)
    }
    expect(salts.size).toBeGreaterThan(990)
  })

  it("a file shorter than the header holding a prefix of it, or zeros, is Empty", () => {
    const header = encodeFileHeader(7)
    for (let length = 0; length < fileHeaderLength; length++) {
      expect(checkFileHeader(header.subarray(0, length))).toEqual({ _tag: "Empty" })
      expect(checkFileHeader(new Uint8Array(length))).toEqual({ _tag: "Empty" })
    }
  })

  it("anything else is NotALog with a reason", () => {
    const header = encodeFileHeader(7)
    const textMode = Buffer.concat([header.subarray(0, 6), Buffer.from("\n"), header.subarray(8)]) // \r\n → \n
    const badCrc = flipped(header, 17, 0)
    const badSalt = flipped(header, 13, 3)
    const version3 = Buffer.from(header)
    version3.writeUInt32LE(3, 8)
    version3.writeUInt32LE(zlib.crc32(version3.subarray(0, 16)), 16)
    const notPrefix = Buffer.from(header.subarray(0, 10))
    notPrefix[9] = 7
    for (const bytes of [Buffer.from("hello"), textMode, badCrc, badSalt, version3, notPrefix, Buffer.alloc(20), Buffer.from("{\"json\": true}\n......")]) {
      expect(checkFileHeader(bytes)._tag).toBe("NotALog")
    }
    expect(checkFileHeader(version3)).toMatchObject({ reason: expect.stringContaining("version 3") })
  })

  it("a version 1 log is NotALog, with a reason naming version 1 and saying that version 2 is read", () => {
    // Version 1: magic, version, CRC32 of the first 12 bytes; then records L, ~L, crc, payload.
    const v1Header = Buffer.alloc(16)
    v1Header.set(magic, 0)
    v1Header.writeUInt32LE(1, 8)
    v1Header.writeUInt32LE(zlib.crc32(v1Header.subarray(0, 12)), 12)
    const payload = Uint8Array.of(2, 0, 1, 0, 0, 0, 0x6b)
    const v1Record = Buffer.alloc(12)
    v1Record.writeUInt32LE(payload.length, 0)
    v1Record.writeUInt32LE(~payload.length >>> 0, 4)
    v1Record.writeUInt32LE(zlib.crc32(payload), 8)
    for (const bytes of [v1Header, Buffer.concat([v1Header, v1Record, payload])]) {
      for (const onCorruption of ["fail", "truncate"] as const) {
        const { result, ops } = replayBytes(bytes, { onCorruption })
        expect(result._tag).toBe("NotALog")
        if (result._tag !== "NotALog") return
        expect(result.reason).toContain("version 1")
        expect(result.reason).toContain("reads only version 2")
        expect(ops).toEqual([])
      }
    }
  })

  it("replaying an empty, half-created or all-zero file gives validEnd 0 and no salt (write a fresh header)", () => {
    for (const bytes of [new Uint8Array(0), encodeFileHeader(9).subarray(0, 9), encodeFileHeader(9).subarray(0, 19), new Uint8Array(20), new Uint8Array(5000)]) {
      expect(replayBytes(bytes).result).toEqual({ _tag: "Ok", validEnd: 0, records: 0, batches: 0, salt: undefined })
    }
  })

  it("replaying a file that is not a log gives NotALog, even with onCorruption: truncate", () => {
    expect(replayBytes(Buffer.from("not a kvlog file at all\n")).result._tag).toBe("NotALog")
    const zeroHeaderThenData = Buffer.concat([Buffer.alloc(20), Buffer.from("x")])
    expect(replayBytes(zeroHeaderThenData, { onCorruption: "truncate" }).result._tag).toBe("NotALog")
  })

  it("a header alone is a valid empty log that carries its salt", () => {
    expect(replayBytes(encodeFileHeader(42)).result).toEqual({ _tag: "Ok", validEnd: 20, records: 0, batches: 0, salt: 42 })
  })
})

// =============================================================================
// Encoding
// =============================================================================

describe("record and batch encoding", () => {
  it("a put is laid out as documented: payload length, op, flags, deadline, key length, key, value", () => {
    const encoder = new RecordEncoder()
    const length = encoder.appendPut("k€", "v", 1_700_000_000_000.5)
    const deadline = Buffer.alloc(8)
    deadline.writeDoubleLE(1_700_000_000_000.5)
    const payload = Buffer.concat([Buffer.from([1, 0b10]), deadline, Buffer.from([4, 0, 0, 0]), Buffer.from("k€v", "utf8")])
    expect(length).toBe(4 + payload.length)
    expect(encoder.records()).toEqual(record(payload))
    expect(encoder.count).toBe(1)
    expect(encoder.length).toBe(length)
  })

  it("a bytes put sets flag bit 0 and a delete has flags 0 and no value", () => {
    const encoder = new RecordEncoder()
    encoder.appendPut("k", Uint8Array.of(9, 8), Infinity)
    encoder.appendDelete("k")
    expect(encoder.records()).toEqual(
      Buffer.concat([record([1, 0b01, 1, 0, 0, 0, 0x6b, 9, 8]), record([2, 0, 1, 0, 0, 0, 0x6b])])
    )
  })

  it("seal puts the documented 32-byte batch header before the records", () => {
    const encoder = new RecordEncoder()
    encoder.appendPut("a", "1", Infinity)
    encoder.appendDelete("b")
    const records = Buffer.from(encoder.records())
    const syncedThrough = 5 * 2 ** 32 + 1234 // beyond 4 GiB: both halves are used
    const batch = encoder.seal(17, 0xa5a5a5a5, syncedThrough)
    expect(batch.length).toBe(batchHeaderLength + records.length)
    expect(batch).toEqual(frameBatch(records, { count: 2, sequence: 17, salt: 0xa5a5a5a5, syncedThrough }))
    expect(batch.readUInt32LE(16)).toBe(1234)
    expect(batch.readUInt32LE(20)).toBe(5)
    expect(encodeBatchHeader(records, 2, 17, 0xa5a5a5a5, syncedThrough)).toEqual(batch.subarray(0, 32))
    // Sequences wrap at 2^32.
    expect(encoder.seal(2 ** 32 + 3, 1, 20).readUInt32LE(8)).toBe(3)
  })

  it("append returns the record length; reset empties the batch", () => {
    const encoder = new RecordEncoder(64)
    let total = 0
    for (let i = 0; i < 1000; i++) total += encoder.appendPut(`key${i}`, `value${i}`, Infinity)
    expect(encoder.length).toBe(total)
    expect(encoder.count).toBe(1000)
    expect(encoder.records().length).toBe(total)
    expect(encoder.seal(0, 1, 20).length).toBe(32 + total)
    encoder.reset()
    expect(encoder.length).toBe(0)
    expect(encoder.count).toBe(0)
    expect(encoder.appendDelete("x")).toBe(4 + 7)
    const { ops, visitor } = collector()
    expect(scanRecords(encoder.records(), 0, encoder.length, visitor)).toEqual({ _tag: "Done", records: 1 })
    expect(ops).toEqual([del("x")])
  })

  it("a batch of no records, a records length over the limit, or a bad salt is refused (a defect in the writer)", () => {
    const encoder = new RecordEncoder()
    expect(() => encoder.seal(0, 1, 20)).toThrow(RangeError)
    encoder.appendDelete("k")
    expect(() => encoder.seal(0, -1, 20)).toThrow(RangeError)
    expect(() => encoder.seal(0, 2 ** 32, 20)).toThrow(RangeError)
    expect(() => encoder.seal(-1, 1, 20)).toThrow(RangeError)
    expect(() => encoder.seal(0, 1, NaN)).toThrow(RangeError)
    expect(() => encodeBatchHeader(new Uint8Array(0), 0, 0, 1, 20)).toThrow(RangeError)
    expect(() => encodeBatchHeader(new Uint8Array(20), 3, 0, 1, 20)).toThrow(RangeError) // 3 records need 30 bytes
    expect(() => writeBatchHeader(Buffer.alloc(32), 0, maxBatchRecordsBytes + 1, 1, 0, 0, 1, 20)).toThrow(RangeError)
    writeBatchHeader(Buffer.alloc(32), 0, maxBatchRecordsBytes, 1, 0, 0, 1, 20)
  })

  it("a lone surrogate in a key or a string value is refused: UTF-8 has no form for it", () => {
    const encoder = new RecordEncoder()
    for (const bad of ["\uD800", "a\uDC00b", "x\uD83D"]) {
      expect(() => encoder.appendPut(bad, "v", Infinity)).toThrow(RangeError)
      expect(() => encoder.appendPut("k", bad, Infinity)).toThrow(RangeError)
      expect(() => encoder.appendDelete(bad)).toThrow(RangeError)
    }
    expect(encoder.length).toBe(0)
    expect(encoder.count).toBe(0)
    encoder.appendPut("😀", "pair 😀 ok", Infinity) // a surrogate pair is well formed
    expect(encoder.count).toBe(1)
  })

  it("the encoder refuses deadlines the format cannot hold", () => {
    const encoder = new RecordEncoder()
    for (const deadline of [0, -1, NaN, -Infinity]) {
      expect(() => encoder.appendPut("k", "v", deadline)).toThrow(RangeError)
    }
    expect(encoder.length).toBe(0)
  })

  it("crc32 agrees with zlib.crc32 on both sides of the native threshold", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(20), fc.nat(20), (bytes, cutStart, cutEnd) => {
        const start = Math.min(cutStart, bytes.length)
        const end = Math.max(start, bytes.length - cutEnd)
        expect(crc32(bytes, start, end)).toBe(zlib.crc32(bytes.subarray(start, end)))
      })
    )
  })
})

// =============================================================================
// Round trip
// =============================================================================

describe("round trip", () => {
  it("batches replay exactly as they were appended, through chunks of any size", () => {
    fc.assert(
      fc.property(batchesArb, fc.constantFrom(...chunkSizes), (batches, chunkSize) => {
        const log = encodeLog(batches)
        const { result, ops } = replayBytes(log.bytes, replayOptions(chunkSize))
        expect(result).toEqual({
          _tag: "Ok",
          validEnd: log.bytes.length,
          records: batches.flat().length,
          batches: batches.length,
          salt: log.salt
        })
        expect(ops).toEqual(batches.flat())
      }),
      { numRuns: 300 }
    )
  })

  it("keys and values of every length around the short-string decoder's limit decode exactly, ASCII or not", () => {
    const batch: Array<Op> = []
    for (let length = 0; length <= 20; length++) {
      const ascii = Array.from({ length }, (_, i) => String.fromCharCode((length * 31 + i * 7) % 128)).join("")
      batch.push(put(ascii, ascii), del(ascii))
      for (let at = 0; at < length; at++) {
        // One character past ASCII at each position: é (2 bytes), € (3), 😀 (4).
        for (const wide of ["é", "€", "😀"]) {
          const mixed = ascii.slice(0, at) + wide + ascii.slice(at + 1)
          batch.push(put(mixed, mixed), del(mixed))
        }
      }
    }
    const { result, ops } = replayBytes(encodeLog([batch]).bytes)
    expect(result).toMatchObject({ _tag: "Ok", records: batch.length, batches: 1 })
    expect(ops).toEqual(batch)
  })

  it("bytes values are fresh Uint8Array copies, not views of the chunk", () => {
    const { ops, visitor } = collector()
    const bytes = Buffer.from(encodeLog([[put("a", Uint8Array.of(1, 2, 3)), put("b", Uint8Array.of(4))]]).bytes)
    const result = replayFile((b, o, l, p) => {
      const n = Math.max(0, Math.min(l, bytes.length - p))
      b.set(bytes.subarray(p, p + n), o)
      return n
    }, bytes.length, visitor, { onCorruption: "fail" })
    expect(result._tag).toBe("Ok")
    bytes.fill(0)
    const values = ops.map((op) => (op._tag === "Put" ? op.value : undefined))
    expect(values).toEqual([Uint8Array.of(1, 2, 3), Uint8Array.of(4)])
    for (const value of values) expect(Object.getPrototypeOf(value)).toBe(Uint8Array.prototype)
  })

  it("replays from a file descriptor through fs.readSync", () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-log-record-"))
    try {
      const log = encodeLog(sampleBatches)
      const file = path.join(directory, "log")
      fs.writeFileSync(file, log.bytes)
      const fd = fs.openSync(file, "r")
      try {
        const { ops, visitor } = collector()
        const result = replayFile((b, o, l, p) => fs.readSync(fd, b, o, l, p), log.bytes.length, visitor, { onCorruption: "fail", chunkSize: 100 })
        expect(result).toMatchObject({ _tag: "Ok", validEnd: log.bytes.length, batches: sampleBatches.length })
        expect(ops).toEqual(sampleBatches.flat())
      } finally {
        fs.closeSync(fd)
      }
    } finally {
      fs.rmSync(directory, { recursive: true, force: true })
    }
  })

  it("tells the visitor early how many records a log of many chunks likely holds", () => {
    const batches = Array.from({ length: 200 }, (_, b) => Array.from({ length: 5 }, (_, i) => put(`key${b}-${i}`, `value${i}`)))
    const log = encodeLog(batches)
    const told: Array<number> = []
    const { visitor } = collector()
    const memory = replayFile((b, o, l, p) => {
      const n = Math.max(0, Math.min(l, log.bytes.length - p))
      b.set(log.bytes.subarray(p, p + n), o)
      return n
    }, log.bytes.length, { ...visitor, expect: (n) => told.push(n) }, { onCorruption: "fail", chunkSize: 4096 })
    expect(memory._tag).toBe("Ok")
    expect(told.length).toBe(1)
    expect(told[0]).toBeGreaterThan(900)
    expect(told[0]).toBeLessThan(1100)
  })
})

// =============================================================================
// Batches whose checksums match but whose records do not parse
// =============================================================================

describe("a batch whose checksums match but whose records are malformed is corruption wherever it is", () => {
  const deadlineBytes = (deadline: number) => {
    const bytes = Buffer.alloc(8)
    bytes.writeDoubleLE(deadline)
    return [...bytes]
  }
  const good = record([2, 0, 1, 0, 0, 0, 0x6b])
  const cases: ReadonlyArray<readonly [string, Buffer, number]> = [
    ["unknown op 0", record([0, 0, 0, 0, 0, 0]), 1],
    ["unknown op 3", record([3, 0, 0, 0, 0, 0]), 1],
    ["unknown put flags", record([1, 0b100, 0, 0, 0, 0]), 1],
    ["a delete with flags", record([2, 1, 0, 0, 0, 0]), 1],
    ["a delete with trailing bytes", record([2, 0, 1, 0, 0, 0, 0x6b, 0x6b]), 1],
    ["a delete key longer than the payload", record([2, 0, 2, 0, 0, 0, 0x6b]), 1],
    ["a put key longer than the payload", record([1, 0, 9, 0, 0, 0, 0x6b]), 1],
    ["a deadline flag without room for it", record([1, 0b10, 0, 0, 0, 0]), 1],
    ["a zero deadline", record([1, 0b10, ...deadlineBytes(0), 0, 0, 0, 0]), 1],
    ["a negative deadline", record([1, 0b10, ...deadlineBytes(-5), 0, 0, 0, 0]), 1],
    ["a NaN deadline", record([1, 0b10, ...deadlineBytes(NaN), 0, 0, 0, 0]), 1],
    ["an infinite deadline", record([1, 0b10, ...deadlineBytes(Infinity), 0, 0, 0, 0]), 1],
    ["a payload shorter than op, flags and key length", record([2, 0, 0, 0, 0]), 1],
    ["a payload length past the batch's end", Buffer.concat([Buffer.from([200, 0, 0, 0]), Buffer.alloc(12)]), 1],
    ["a count above the records", good, 2],
    ["a count below the records", Buffer.concat([good, good]), 1],
    ["bytes after the last record", Buffer.concat([good, Buffer.from([1, 2, 3])]), 1]
  ]
  for (const [name, bad, count] of cases) {
    it(`${name}: Corrupt at the batch, none of its records applied, even as the last batch`, () => {
      const log = encodeLog([[put("a", "1")]])
      // A good record first: the bad batch must not be half applied.
      const records = Buffer.concat([good, bad])
      const batch = frameBatch(records, { count: count + 1, sequence: 1, salt: log.salt, syncedThrough: log.bytes.length })
      for (const chunkSize of chunkSizes) {
        const { result, ops } = replayBytes(Buffer.concat([log.bytes, batch]), replayOptions(chunkSize))
        expect(result).toMatchObject({ _tag: "Corrupt", offset: log.bytes.length, reason: expect.stringContaining("malformed") })
        expect(ops).toEqual([put("a", "1")])
      }
      const truncated = replayBytes(Buffer.concat([log.bytes, batch]), { onCorruption: "truncate" })
      expect(truncated.result).toMatchObject({
        _tag: "Ok",
        validEnd: log.bytes.length,
        records: 1,
        batches: 1,
        truncated: { offset: log.bytes.length, bytes: batch.length }
      })
      expect(truncated.ops).toEqual([put("a", "1")])
    })
  }
})

// =============================================================================
// Limits
// =============================================================================

describe("limits", () => {
  it("the largest record (3-byte characters at both limits, with a deadline) has exactly maxPayloadLength bytes and replays", () => {
    const key = "€".repeat(Limits.maxKeyLength)
    const value = "€".repeat(Limits.maxValueLength)
    const encoder = new RecordEncoder()
    expect(encoder.appendPut(key, value, 1_800_000_000_000)).toBe(4 + maxPayloadLength)
    encoder.appendDelete(key)
    const bytes = Buffer.concat([encodeFileHeader(3), encoder.seal(0, 3, 20)])
    encoder.reset()
    const { result, ops } = replayBytes(bytes, { onCorruption: "fail", chunkSize: 4096 })
    expect(result).toMatchObject({ _tag: "Ok", validEnd: bytes.length, records: 2, batches: 1 })
    expect(ops.length).toBe(2)
    expect(ops[0]!._tag === "Put" && ops[0]!.key === key && ops[0]!.value === value).toBe(true)
    expect(ops[1]).toEqual(del(key))
  })

  it("one past a limit is refused by the encoder", () => {
    const encoder = new RecordEncoder()
    const longKey = "k".repeat(Limits.maxKeyLength + 1)
    expect(() => encoder.appendPut(longKey, "v", Infinity)).toThrow(RangeError)
    expect(() => encoder.appendDelete(longKey)).toThrow(RangeError)
    expect(() => encoder.appendPut("k", "v".repeat(Limits.maxValueLength + 1), Infinity)).toThrow(RangeError)
    expect(() => encoder.appendPut("k", new Uint8Array(Limits.maxValueLength + 1), Infinity)).toThrow(RangeError)
    expect(encoder.length).toBe(0)
  })

  it("one past a limit is corruption in replay, even with matching checksums", () => {
    const keyBytes = Buffer.from("k".repeat(Limits.maxKeyLength + 1))
    const keyLength = Buffer.alloc(4)
    keyLength.writeUInt32LE(keyBytes.length)
    const longKeyPut = record(Buffer.concat([Buffer.from([1, 0]), keyLength, keyBytes]))
    const longKeyDelete = record(Buffer.concat([Buffer.from([2, 0]), keyLength, keyBytes]))
    const longBytes = record(Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0]), Buffer.alloc(Limits.maxValueLength + 1)]))
    const atLimit = record(Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0]), Buffer.alloc(Limits.maxValueLength)]))
    for (const bad of [longKeyPut, longKeyDelete, longBytes]) {
      const bytes = Buffer.concat([encodeFileHeader(5), frameBatch(bad, { count: 1, sequence: 0, salt: 5, syncedThrough: 20 })])
      expect(replayBytes(bytes).result).toMatchObject({ _tag: "Corrupt", offset: 20 })
    }
    const bytes = Buffer.concat([encodeFileHeader(5), frameBatch(atLimit, { count: 1, sequence: 0, salt: 5, syncedThrough: 20 })])
    expect(replayBytes(bytes).result).toMatchObject({ _tag: "Ok", records: 1 })
  })

  it("a batch header declaring a huge length never makes replay read or allocate past the file", () => {
    const log = encodeLog(sampleBatches.slice(0, 2))
    for (const recordsLength of [maxBatchRecordsBytes, maxBatchRecordsBytes + 1, 0xffffffff]) {
      const lying = frameBatch(Buffer.alloc(100, 1), { count: 1, sequence: 2, salt: log.salt, syncedThrough: log.bytes.length, recordsLength })
      const bytes = Buffer.concat([log.bytes, lying])
      const { result, ops, bytesRead } = replayBytes(bytes)
      expect(result).toMatchObject({ _tag: "Ok", validEnd: log.bytes.length, tornTail: { offset: log.bytes.length } })
      expect(ops).toEqual(opsOfBatches(log, 2))
      expect(bytesRead).toBeLessThanOrEqual(3 * bytes.length)
    }
  })
})

// =============================================================================
// The replay rule
// =============================================================================

describe("replay of a log cut short or damaged", () => {
  const log = encodeLog(sampleBatches)
  const last = sampleBatches.length - 1

  it("a log cut at any byte replays the batches completed before the cut and drops the rest as a torn tail", () => {
    for (const chunkSize of chunkSizes) {
      for (let cut = 0; cut <= log.bytes.length; cut++) {
        const { result, ops } = replayBytes(log.bytes.subarray(0, cut), replayOptions(chunkSize))
        if (cut < fileHeaderLength) {
          expect(result).toEqual({ _tag: "Ok", validEnd: 0, records: 0, batches: 0, salt: undefined })
          continue
        }
        const complete = log.ends.filter((end) => end <= cut).length
        const validEnd = complete === 0 ? fileHeaderLength : log.ends[complete - 1]!
        expect(ops).toEqual(opsOfBatches(log, complete))
        expect(result).toMatchObject({ _tag: "Ok", validEnd, batches: complete, records: ops.length, salt: log.salt })
        expect(result._tag === "Ok" && result.tornTail !== undefined).toBe(cut > validEnd)
        if (result._tag === "Ok" && result.tornTail !== undefined) {
          expect(result.tornTail).toMatchObject({ offset: validEnd, bytes: cut - validEnd })
        }
      }
    }
  })

  it("every single-bit flip in a batch that a later batch records as synced is corruption at that batch's offset", () => {
    let cases = 0
    for (let batch = 0; batch < last; batch++) {
      expect(log.syncedThrough[batch + 1]).toBe(log.ends[batch])
      for (let byte = log.starts[batch]!; byte < log.ends[batch]!; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const { result, ops } = replayBytes(flipped(log.bytes, byte, bit), replayOptions(bit === 0 ? 64 : undefined))
          expect(result, `batch ${batch}, byte ${byte}, bit ${bit}`).toMatchObject({ _tag: "Corrupt", offset: log.starts[batch] })
          expect(ops).toEqual(opsOfBatches(log, batch))
          cases++
        }
      }
    }
    expect(cases).toBe(8 * (log.starts[last]! - fileHeaderLength))
  })

  it("the same damage with the file cut right after the later batch's header is still corruption", () => {
    const damaged = flipped(log.bytes, log.starts[2]! + 40, 2).subarray(0, log.starts[3]! + batchHeaderLength)
    expect(replayBytes(damaged, { onCorruption: "fail", chunkSize: 64 }).result).toMatchObject({ _tag: "Corrupt", offset: log.starts[2] })
  })

  it("with onCorruption: truncate, damaged history keeps the batches before it and is reported as truncated", () => {
    const damaged = flipped(log.bytes, log.starts[3]! + 40, 5)
    const { result, ops } = replayBytes(damaged, { onCorruption: "truncate" })
    expect(result).toMatchObject({
      _tag: "Ok",
      validEnd: log.starts[3],
      batches: 3,
      records: opsOfBatches(log, 3).length,
      truncated: { offset: log.starts[3], bytes: log.bytes.length - log.starts[3]! }
    })
    expect(result).not.toHaveProperty("tornTail")
    expect(ops).toEqual(opsOfBatches(log, 3))
  })

  it("a bit flip in the last batch, with nothing after it, is a torn tail whose reason says it cannot be told from damage to the last synced batch", () => {
    for (let byte = log.starts[last]!; byte < log.bytes.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const { result, ops } = replayBytes(flipped(log.bytes, byte, bit))
        expect(result).toMatchObject({
          _tag: "Ok",
          validEnd: log.starts[last],
          batches: last,
          tornTail: { offset: log.starts[last], bytes: log.bytes.length - log.starts[last]! }
        })
        if (result._tag === "Ok") expect(result.tornTail?.reason).toContain("cannot be told from damage to the last synced batch")
        expect(ops).toEqual(opsOfBatches(log, last))
      }
    }
  })

  it("zeros after the last batch (space written ahead of the log) end the log cleanly, with no torn tail", () => {
    for (const zeros of [1, 31, 32, 100, 5000]) {
      const { result, ops } = replayBytes(Buffer.concat([log.bytes, Buffer.alloc(zeros)]), { onCorruption: "fail", chunkSize: 64 })
      expect(result).toEqual({ _tag: "Ok", validEnd: log.bytes.length, records: ops.length, batches: sampleBatches.length, salt: log.salt })
      expect(ops).toEqual(sampleBatches.flat())
    }
  })

  it("a zeroed batch that a later batch records as synced is corruption", () => {
    const damaged = Buffer.from(log.bytes)
    damaged.fill(0, log.starts[3], log.ends[3])
    expect(replayBytes(damaged).result).toMatchObject({ _tag: "Corrupt", offset: log.starts[3] })
  })

  it("a batch of this log out of sequence (replayed twice) starts a torn tail when nothing later records it synced", () => {
    const duplicated = Buffer.concat([log.bytes, log.bytes.subarray(log.starts[2], log.ends[2])])
    const { result, ops } = replayBytes(duplicated)
    expect(result).toMatchObject({ _tag: "Ok", validEnd: log.bytes.length, tornTail: { offset: log.bytes.length } })
    if (result._tag === "Ok") expect(result.tornTail?.reason).toContain("sequence")
    expect(ops).toEqual(sampleBatches.flat())
  })

  it("a batch from another log (another salt) spliced in is never applied", () => {
    const other = encodeLog(sampleBatches, { salt: 0x0bad_5a17 })
    const spliced = Buffer.concat([log.bytes.subarray(0, log.ends[1]), other.bytes.subarray(other.starts[2], other.ends[2])])
    const { result, ops } = replayBytes(spliced)
    expect(result).toMatchObject({ _tag: "Ok", validEnd: log.ends[1], tornTail: { offset: log.ends[1] } })
    expect(ops).toEqual(opsOfBatches(log, 2))
  })

  it("a file that shrinks during replay ends the log where the reads end, and replay terminates", () => {
    const { ops, visitor } = collector()
    const shorter = log.bytes.subarray(0, log.starts[4]! + 10)
    const result = replayFile((b, o, l, p) => {
      const n = Math.max(0, Math.min(l, shorter.length - p))
      b.set(shorter.subarray(p, p + n), o)
      return n
    }, log.bytes.length, visitor, { onCorruption: "fail", chunkSize: 64 })
    expect(result).toMatchObject({ _tag: "Ok", validEnd: log.starts[4], batches: 4, tornTail: { offset: log.starts[4] } })
    expect(ops).toEqual(opsOfBatches(log, 4))
  })
})

// =============================================================================
// A power cut during the sync of unsynced batches
// =============================================================================

describe("a power cut that persists any subset of an unsynced write's pages is a torn tail", () => {
  const page = 4096
  const sector = 512

  /**
   * Synced history (three small batches, each synced before the next), then
   * the unsynced batches `unsynced` (each a list of value sizes), all written
   * after the last completed sync, which covered the synced batches.
   */
  const scenario = (unsynced: ReadonlyArray<ReadonlyArray<number>>, seed: number) => {
    const synced: Array<Array<Op>> = [[put("s0", "zero")], [put("s1", "one"), del("s0")], [put("s2", "two")]]
    let n = 0
    const batches = [
      ...synced,
      ...unsynced.map((sizes) => sizes.map((size) => put(`u${n++}`, text(size, seed + n))))
    ]
    const log = encodeLog(batches, {
      syncedThrough: (index, ends) => index <= synced.length ? (ends.at(-1) ?? fileHeaderLength) : ends[synced.length - 1]!
    })
    // The file grows into zeros written ahead: pad to a page boundary and one more page.
    const fileSize = (Math.ceil(log.bytes.length / page) + 1) * page
    const file = Buffer.concat([log.bytes, Buffer.alloc(fileSize - log.bytes.length)])
    return { log, file, durable: log.ends[synced.length - 1]! }
  }

  /** Loses the units (pages or sectors) `lost` of the file: what was never written there reads as zeros. */
  const lose = (file: Buffer, durable: number, unit: number, lost: ReadonlyArray<number>): Buffer => {
    const damaged = Buffer.from(file)
    // Bytes before `durable` were synced: a lost unit keeps them (the old content of the page).
    for (const index of lost) damaged.fill(0, Math.max(index * unit, durable), (index + 1) * unit)
    return damaged
  }

  /** The replay of `damaged` is Ok, drops from the first batch whose bytes differ, and applies all before it. */
  const expectTornAtFirstDamage = (log: EncodedLog, file: Buffer, damaged: Buffer, where: string) => {
    const first = log.starts.findIndex((start, i) => !damaged.subarray(start, log.ends[i]).equals(file.subarray(start, log.ends[i])))
    const x = first === -1 ? log.bytes.length : log.starts[first]!
    for (const chunkSize of [64, 4096, undefined]) {
      const { result, ops } = replayBytes(damaged, replayOptions(chunkSize))
      expect(result, where).toMatchObject({ _tag: "Ok", validEnd: x, batches: first === -1 ? log.batches.length : first })
      expect(ops, where).toEqual(opsOfBatches(log, first === -1 ? log.batches.length : first))
      const restIsZero = damaged.subarray(x).every((byte) => byte === 0)
      expect(result._tag === "Ok" && result.tornTail !== undefined, where).toBe(!restIsZero)
      if (result._tag === "Ok" && result.tornTail !== undefined) expect(result.tornTail.offset).toBe(x)
    }
    return first
  }

  it("a 20 KiB batch of many records whose middle 4 KiB page never reached the disk is a torn tail at that batch", () => {
    const { log, file, durable } = scenario([Array.from({ length: 40 }, () => 500)], 1)
    const big = log.batches.length - 1
    expect(log.ends[big]! - log.starts[big]!).toBeGreaterThan(20 * 1024)
    const middle = Math.floor((log.starts[big]! + log.ends[big]!) / 2 / page)
    const damaged = lose(file, durable, page, [middle])
    const { result, ops } = replayBytes(damaged)
    expect(result).toMatchObject({ _tag: "Ok", validEnd: log.starts[big], batches: big, tornTail: { offset: log.starts[big] } })
    expect(ops).toEqual(opsOfBatches(log, big))
    // The same page lost from synced history is corruption: a later batch records it synced.
    const history = scenario([Array.from({ length: 40 }, () => 500), [10]], 1)
    const historyLog = encodeLog(history.log.batches) // every batch synced before the next
    const zeroed = Buffer.from(historyLog.bytes)
    zeroed.fill(0, middle * page, (middle + 1) * page)
    expect(replayBytes(zeroed).result).toMatchObject({ _tag: "Corrupt", offset: historyLog.starts[big] })
  })

  it("any subset of the unsynced batch's pages missing is a torn tail at that batch", () => {
    const { log, file, durable } = scenario([Array.from({ length: 40 }, () => 500)], 2)
    const firstPage = Math.floor(durable / page)
    const pages = Math.ceil(log.bytes.length / page) - firstPage
    expect(pages).toBeGreaterThanOrEqual(6)
    let subsets = 0
    for (let mask = 1; mask < 1 << pages; mask++) {
      const lost = Array.from({ length: pages }, (_, i) => i).filter((i) => (mask & (1 << i)) !== 0).map((i) => firstPage + i)
      const first = expectTornAtFirstDamage(log, file, lose(file, durable, page, lost), `pages ${lost.join(",")} lost`)
      expect(first).toBe(log.batches.length - 1)
      subsets++
    }
    expect(subsets).toBe(2 ** pages - 1)
  })

  it("torn 512-byte sectors anywhere in the unsynced batch are a torn tail at that batch", () => {
    const { log, file, durable } = scenario([Array.from({ length: 40 }, () => 500)], 3)
    const random = seededRandom(3)
    const firstSector = Math.floor(durable / sector)
    const sectors = Math.ceil(log.bytes.length / sector) - firstSector
    for (let trial = 0; trial < 300; trial++) {
      const lost = Array.from({ length: sectors }, (_, i) => firstSector + i).filter(() => random() < 0.3)
      if (lost.length === 0) lost.push(firstSector + Math.floor(random() * sectors))
      const first = expectTornAtFirstDamage(log, file, lose(file, durable, sector, lost), `sectors ${lost.join(",")} lost`)
      expect(first).toBe(log.batches.length - 1)
    }
  })

  it("several unsynced batches after the last synced one, pages of any of them missing: a torn tail at the first damaged batch", () => {
    // Each unsynced batch but the last is longer than a page, so some page begins inside it.
    const { log, file, durable } = scenario([[3000, 1200], [4200], [2000, 10, 2200], [4200], [100]], 4)
    const firstPage = Math.floor(durable / page)
    const pages = Math.ceil(log.bytes.length / page) - firstPage
    const firstUnsynced = 3
    const seen = new Set<number>()
    for (let mask = 1; mask < 1 << pages; mask++) {
      const lost = Array.from({ length: pages }, (_, i) => i).filter((i) => (mask & (1 << i)) !== 0).map((i) => firstPage + i)
      const first = expectTornAtFirstDamage(log, file, lose(file, durable, page, lost), `pages ${lost.join(",")} lost`)
      expect(first).toBeGreaterThanOrEqual(firstUnsynced)
      seen.add(first)
    }
    // Damage reached each unsynced batch longer than a page first in some subset.
    for (const batch of [3, 4, 5, 6]) expect(seen.has(batch), `batch ${batch}`).toBe(true)
  })

  it("with sectors torn across several unsynced batches and an intermediate sync, the tail starts at the first damaged unsynced batch", () => {
    // Batches 0–2 synced one by one; 3 and 4 written; a sync covering them returns; 5 and 6 written after it.
    const batches = Array.from({ length: 7 }, (_, b) => Array.from({ length: 3 }, (_, i) => put(`b${b}-${i}`, text(400, b * 10 + i))))
    const log = encodeLog(batches, {
      syncedThrough: (index, ends) => index <= 3 ? (ends.at(-1) ?? fileHeaderLength) : index <= 4 ? ends[2]! : ends[4]!
    })
    const durable = log.ends[4]!
    const file = Buffer.concat([log.bytes, Buffer.alloc(page)])
    const random = seededRandom(5)
    const firstSector = Math.floor(durable / sector)
    const sectors = Math.ceil(log.bytes.length / sector) - firstSector
    for (let trial = 0; trial < 200; trial++) {
      const lost = Array.from({ length: sectors }, (_, i) => firstSector + i).filter(() => random() < 0.25)
      const first = expectTornAtFirstDamage(log, file, lose(file, durable, sector, lost), `sectors ${lost.join(",")} lost`)
      expect(first === -1 || first >= 5).toBe(true)
    }
  })

  it("a batch header hidden in a value, without this log's salt, never fools the rule", () => {
    // A value that holds a well-formed batch header of another salt claiming everything is synced.
    const fake = frameBatch(Buffer.from([0, 0, 0, 0]), { count: 1, sequence: 9, salt: 0x1234_5678, syncedThrough: 2 ** 40 })
    const make = (fakeHeader: Buffer) => {
      const batches = [[put("a", "1")], [put("b", "2")], [put("c", text(300, 1)), put("fake", fakeHeader)], [put("d", "4")]]
      return encodeLog(batches, { syncedThrough: (index, ends) => index <= 2 ? (ends.at(-1) ?? fileHeaderLength) : ends[1]! })
    }
    const log = make(fake)
    // The unsynced batch 2 loses its first bytes; batch 3 (unsynced too) and the fake header follow.
    const damaged = Buffer.from(log.bytes)
    damaged.fill(0, log.starts[2]!, log.starts[2]! + 40)
    const { result, ops } = replayBytes(damaged, { onCorruption: "fail", chunkSize: 64 })
    expect(result).toMatchObject({ _tag: "Ok", validEnd: log.starts[2], tornTail: { offset: log.starts[2] } })
    expect(ops).toEqual(opsOfBatches(log, 2))
    // Had it carried this log's salt, it would have been taken for a later synced batch: the salt is what tells.
    const withSalt = frameBatch(Buffer.from([0, 0, 0, 0]), { count: 1, sequence: 9, salt: log.salt, syncedThrough: 2 ** 40 })
    const fooled = make(withSalt)
    const fooledDamaged = Buffer.from(fooled.bytes)
    fooledDamaged.fill(0, fooled.starts[2]!, fooled.starts[2]! + 40)
    expect(replayBytes(fooledDamaged).result).toMatchObject({ _tag: "Corrupt", offset: fooled.starts[2] })
  })

  it("a header whose CRC does not match is not a batch header, whatever its salt and syncedThrough say", () => {
    const log = encodeLog([[put("a", "1")], [put("b", "2")], [put("c", "3")]], {
      syncedThrough: (index, ends) => index === 0 ? fileHeaderLength : ends[0]!
    })
    const damaged = Buffer.from(log.bytes)
    damaged[log.starts[1]! + 40] ^= 1 // batch 1 damaged
    damaged.writeUInt32LE(log.ends[2]!, log.starts[2]! + 16) // batch 2 now claims more, but its CRC no longer matches
    const { result } = replayBytes(damaged)
    expect(result).toMatchObject({ _tag: "Ok", validEnd: log.starts[1], tornTail: { offset: log.starts[1] } })
    if (result._tag === "Ok") expect(result.tornTail?.reason).toContain("cannot be told")
  })

  it("a later batch recording the damaged one as synced is found at any distance, across many reads", () => {
    const batches = Array.from({ length: 60 }, (_, b) => [put(`k${b}`, text(200, b))])
    // Batches 1–58 were written before any sync; batch 59 after a sync covering them all.
    const log = encodeLog(batches, {
      syncedThrough: (index, ends) => index === 0 ? fileHeaderLength : index < 59 ? ends[0]! : ends[58]!
    })
    for (const chunkSize of [64, 100, 4096, undefined]) {
      const damaged = flipped(log.bytes, log.starts[1]! + 50, 0)
      expect(replayBytes(damaged, replayOptions(chunkSize)).result).toMatchObject({ _tag: "Corrupt", offset: log.starts[1] })
      // Without that last batch, the same damage is the unsynced end of the log.
      const { result } = replayBytes(damaged.subarray(0, log.starts[59]), replayOptions(chunkSize))
      expect(result).toMatchObject({ _tag: "Ok", validEnd: log.starts[1], tornTail: { offset: log.starts[1] } })
      if (result._tag === "Ok") expect(result.tornTail?.reason).toContain("57 batches after it")
    }
  })
})

// =============================================================================
// Fuzz (small; test/log-format-fuzz.test.ts runs the large one)
// =============================================================================

describe("fuzz", () => {
  it("replayFile on arbitrary bytes, with or without a header, returns a typed result", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom(...chunkSizes),
        fc.constantFrom("fail" as const, "truncate" as const),
        (withHeader, raw, chunkSize, onCorruption) => {
          const bytes = withHeader ? Buffer.concat([encodeFileHeader(77), raw]) : Buffer.from(raw)
          const { result, ops } = replayBytes(bytes, replayOptions(chunkSize, onCorruption))
          expect(["Ok", "Corrupt", "NotALog"]).toContain(result._tag)
          if (result._tag === "Ok") {
            expect(result.records).toBe(ops.length)
            expect(result.validEnd).toBeLessThanOrEqual(bytes.length)
          }
          if (!withHeader && raw.length >= fileHeaderLength) expect(result._tag).toBe("NotALog")
        }
      ),
      { numRuns: 1000 }
    )
  })

  it("scanRecords on arbitrary bytes applies all of them or none", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
        const { ops, visitor } = collector()
        const result = scanRecords(Buffer.from(raw), 0, raw.length, visitor)
        if (result._tag === "Corrupt") expect(ops).toEqual([])
        else expect(ops.length).toBe(result.records)
      }),
      { numRuns: 2000 }
    )
  })

  it("appendOp encodes what the arbitrary ops hold", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 10 }), (ops) => {
        const encoder = new RecordEncoder(64)
        for (const op of ops) appendOp(encoder, op)
        const { ops: scanned, visitor } = collector()
        expect(scanRecords(encoder.records(), 0, encoder.length, visitor, encoder.count)).toEqual({ _tag: "Done", records: ops.length })
        expect(scanned).toEqual(ops)
      }),
      { numRuns: 200 }
    )
  })
})
