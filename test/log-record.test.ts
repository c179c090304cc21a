/**
 * The log record codec, the scanner, the torn-tail rule and file replay, as
 * specified in `docs/log-format.md`.
 */
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Limits from "../src/internal/Limits.ts"
import {
  checkHeader,
  crc32,
  encodeHeader,
  frameHeaderLength,
  headerLength,
  maxPayloadLength
} from "../src/internal/log/format/LogFormat.ts"
import { RecordEncoder } from "../src/internal/log/format/LogRecord.ts"
import { type ReplayOptions, type ReplayResult, replayFile } from "../src/internal/log/format/LogReplay.ts"
import { classifyTail, type RecordVisitor, type ScanResult, scanRecords } from "../src/internal/log/format/LogScanner.ts"

// =============================================================================
// Helpers
// =============================================================================

type Op =
  | { readonly _tag: "Put"; readonly key: string; readonly value: string | Uint8Array; readonly deadline: number }
  | { readonly _tag: "Delete"; readonly key: string }

const put = (key: string, value: string | Uint8Array, deadline = Infinity): Op => ({ _tag: "Put", key, value, deadline })
const del = (key: string): Op => ({ _tag: "Delete", key })

const collector = (): { readonly ops: Array<Op>; readonly visitor: RecordVisitor } => {
  const ops: Array<Op> = []
  return {
    ops,
    visitor: {
      put: (key, value, deadline) => ops.push(put(key, value, deadline)),
      delete: (key) => ops.push(del(key))
    }
  }
}

/** A log of `ops`, and the file offset at which each record starts and ends. */
const encodeLog = (ops: ReadonlyArray<Op>, encoder = new RecordEncoder(64)) => {
  const starts: Array<number> = []
  const ends: Array<number> = []
  let end = headerLength
  for (const op of ops) {
    starts.push(end)
    end += op._tag === "Put" ? encoder.appendPut(op.key, op.value, op.deadline) : encoder.appendDelete(op.key)
    ends.push(end)
  }
  const bytes = Buffer.concat([encodeHeader(), encoder.contents()])
  expect(bytes.length).toBe(end)
  return { bytes, starts, ends }
}

const scanAll = (bytes: Buffer, start = 0, end = bytes.length): { result: ScanResult; ops: Array<Op> } => {
  const { ops, visitor } = collector()
  return { result: scanRecords(bytes, start, end, visitor), ops }
}

/** A frame around `payload`, built independently of the encoder. */
const frame = (payload: Uint8Array): Buffer => {
  const header = Buffer.alloc(frameHeaderLength)
  header.writeUInt32LE(payload.length, 0)
  header.writeUInt32LE(~payload.length >>> 0, 4)
  header.writeUInt32LE(zlib.crc32(payload), 8)
  return Buffer.concat([header, payload])
}

let directory = ""
let fileCounter = 0
beforeAll(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-log-record-"))
})
afterAll(() => {
  fs.rmSync(directory, { recursive: true, force: true })
})

/** Writes `bytes` to a file and replays it. */
const replayBytes = (
  bytes: Uint8Array,
  options: ReplayOptions = { onCorruption: "fail" }
): { result: ReplayResult; ops: Array<Op> } => {
  const file = path.join(directory, `log-${fileCounter++}`)
  fs.writeFileSync(file, bytes)
  const fd = fs.openSync(file, "r")
  try {
    const { ops, visitor } = collector()
    return { result: replayFile(fd, bytes.length, visitor, options), ops }
  } finally {
    fs.closeSync(fd)
    fs.rmSync(file)
  }
}

// Small chunks make records straddle chunk boundaries all the time.
const chunkSizes = [48, 100, undefined] as const
const replayOptions = (chunkSize: number | undefined, onCorruption: "fail" | "truncate" = "fail"): ReplayOptions =>
  chunkSize === undefined ? { onCorruption } : { onCorruption, chunkSize }

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
const opsArb = fc.array(opArb, { maxLength: 30 })

const sampleOps: ReadonlyArray<Op> = [
  put("a", "1"),
  put("ключ", "значение", 1_732_560_000_000.5),
  del("a"),
  put("bytes", Uint8Array.of(0, 1, 2, 255)),
  put("", ""),
  put("emoji 😀", "👩‍👩‍👧 family", 1_732_560_000_001),
  del(""),
  put("bytes with deadline", new Uint8Array(0), 5),
  put("long", "x".repeat(300)),
  del("ключ"),
  put("k10", "v10"),
  put("k11", Uint8Array.of(7, 7, 7), 1e15),
  del("missing"),
  put("k13", "v13"),
  put("k14", "value ✓"),
  put("k15", "v15", 1_732_560_000_015),
  del("k13"),
  put("k17", "v17"),
  put("k18", Uint8Array.of(18)),
  put("k19", "the last one", 1_732_560_000_019)
]

// =============================================================================
// Header
// =============================================================================

describe("file header", () => {
  it("is the magic 89 'KVLOG' \\r\\n, version 1 and the CRC32 of the first 12 bytes", () => {
    const header = encodeHeader()
    expect(header.length).toBe(16)
    expect([...header.subarray(0, 8)]).toEqual([0x89, 0x4b, 0x56, 0x4c, 0x4f, 0x47, 0x0d, 0x0a])
    expect(header.readUInt32LE(8)).toBe(1)
    expect(header.readUInt32LE(12)).toBe(zlib.crc32(header.subarray(0, 12)))
    expect(checkHeader(header)).toEqual({ _tag: "Ok" })
  })

  it("a file shorter than the header holding a prefix of it, or zeros, is Empty", () => {
    const header = encodeHeader()
    for (let length = 0; length < headerLength; length++) {
      expect(checkHeader(header.subarray(0, length))).toEqual({ _tag: "Empty" })
      expect(checkHeader(new Uint8Array(length))).toEqual({ _tag: "Empty" })
    }
  })

  it("anything else is NotALog with a reason", () => {
    const header = encodeHeader()
    const short = Buffer.from("hello")
    const textMode = Buffer.concat([header.subarray(0, 6), Buffer.from("\n"), header.subarray(8)]) // \r\n → \n
    const badCrc = Buffer.from(header)
    badCrc[13] ^= 1
    const version2 = Buffer.from(header)
    version2.writeUInt32LE(2, 8)
    version2.writeUInt32LE(zlib.crc32(version2.subarray(0, 12)), 12)
    for (const bytes of [short, textMode, badCrc, version2, Buffer.alloc(16), Buffer.from("{\"json\": true}\n...")]) {
      const result = checkHeader(bytes)
      expect(result._tag).toBe("NotALog")
    }
    expect(checkHeader(version2)).toMatchObject({ reason: expect.stringContaining("version 2") })
  })

  it("replaying an empty or half-created file gives validEnd 0 (write a fresh header)", () => {
    for (const bytes of [new Uint8Array(0), encodeHeader().subarray(0, 9), new Uint8Array(16), new Uint8Array(5000)]) {
      expect(replayBytes(bytes).result).toEqual({ _tag: "Ok", validEnd: 0, records: 0 })
    }
  })

  it("replaying a file that is not a log gives NotALog", () => {
    expect(replayBytes(Buffer.from("not a kvlog file at all\n")).result._tag).toBe("NotALog")
    const zeroHeaderThenData = Buffer.concat([Buffer.alloc(16), Buffer.from("x")])
    expect(replayBytes(zeroHeaderThenData).result._tag).toBe("NotALog")
  })

  it("a header alone is a valid empty log", () => {
    expect(replayBytes(encodeHeader()).result).toEqual({ _tag: "Ok", validEnd: 16, records: 0 })
  })
})

// =============================================================================
// Records
// =============================================================================

describe("record encoding", () => {
  it("a put is laid out as documented: L, ~L, crc, op, flags, deadline, key length, key, value", () => {
    const encoder = new RecordEncoder()
    const length = encoder.appendPut("k€", "v", 1_700_000_000_000.5)
    const payload = Buffer.concat([
      Buffer.from([1, 0b10]),
      (() => {
        const deadline = Buffer.alloc(8)
        deadline.writeDoubleLE(1_700_000_000_000.5)
        return deadline
      })(),
      Buffer.from([4, 0, 0, 0]),
      Buffer.from("k€", "utf8"),
      Buffer.from("v", "utf8")
    ])
    expect(length).toBe(12 + payload.length)
    expect(encoder.contents()).toEqual(frame(payload))
  })

  it("a bytes put sets flag bit 0 and a delete has flags 0 and no value", () => {
    const encoder = new RecordEncoder()
    encoder.appendPut("k", Uint8Array.of(9, 8), Infinity)
    encoder.appendDelete("k")
    expect(encoder.contents()).toEqual(
      Buffer.concat([
        frame(Uint8Array.of(1, 0b01, 1, 0, 0, 0, 0x6b, 9, 8)),
        frame(Uint8Array.of(2, 0, 1, 0, 0, 0, 0x6b))
      ])
    )
  })

  it("append returns the frame length; reset empties the batch", () => {
    const encoder = new RecordEncoder(64)
    let total = 0
    for (let i = 0; i < 1000; i++) total += encoder.appendPut(`key${i}`, `value${i}`, Infinity)
    expect(encoder.length).toBe(total)
    expect(encoder.contents().length).toBe(total)
    encoder.reset()
    expect(encoder.length).toBe(0)
    expect(encoder.appendDelete("x")).toBe(12 + 7)
    expect(scanAll(encoder.contents()).ops).toEqual([del("x")])
  })

  it("a lone surrogate has no UTF-8 form and is written as U+FFFD (the store must reject such strings)", () => {
    const { ops } = scanAll(encodeLog([put("\uD800", "a\uDC00b")]).bytes, headerLength)
    expect(ops).toEqual([put("\uFFFD", "a\uFFFDb")])
  })

  it("the encoder refuses what the format cannot hold", () => {
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

describe("round trip", () => {
  it("records are scanned back exactly as they were appended", () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const { bytes, ends } = encodeLog(ops)
        const { result, ops: scanned } = scanAll(bytes, headerLength)
        expect(result).toEqual({ _tag: "Done", offset: bytes.length, records: ops.length })
        expect(scanned).toEqual(ops)
        expect(ends.at(-1) ?? headerLength).toBe(bytes.length)
      }),
      { numRuns: 300 }
    )
  })

  it("keys and values of every length around the short-string decoder's limit decode exactly, ASCII or not", () => {
    // Short ASCII strings take a decoder of their own (LogScanner's `shortAscii`).
    const ops: Array<Op> = []
    for (let length = 0; length <= 20; length++) {
      const ascii = Array.from({ length }, (_, i) => String.fromCharCode((length * 31 + i * 7) % 128)).join("")
      ops.push(put(ascii, ascii), del(ascii))
      for (let at = 0; at < length; at++) {
        // One character past ASCII at each position: é (2 bytes), € (3), 😀 (4).
        for (const wide of ["é", "€", "😀"]) {
          const mixed = ascii.slice(0, at) + wide + ascii.slice(at + 1)
          ops.push(put(mixed, mixed), del(mixed))
        }
      }
    }
    const { bytes } = encodeLog(ops)
    const { result, ops: scanned } = scanAll(bytes, headerLength)
    expect(result).toEqual({ _tag: "Done", offset: bytes.length, records: ops.length })
    expect(scanned).toEqual(ops)
  })

  it("a scan split at any byte continues where it stopped", () => {
    fc.assert(
      fc.property(opsArb, fc.nat(), (ops, split) => {
        const { bytes, ends } = encodeLog(ops)
        const cut = headerLength + (split % (bytes.length - headerLength + 1))
        const { ops: scanned, visitor } = collector()
        const first = scanRecords(bytes, headerLength, cut, visitor)
        expect(first._tag).toBe("Done")
        // It stops at the last record boundary at or before the cut.
        expect(first.offset).toBe(Math.max(headerLength, ...ends.filter((end) => end <= cut)))
        const second = scanRecords(bytes, first.offset, bytes.length, visitor)
        expect(second).toEqual({ _tag: "Done", offset: bytes.length, records: ops.length - first.records })
        expect(scanned).toEqual(ops)
      }),
      { numRuns: 300 }
    )
  })

  it("replayFile reads them back through chunks of any size", () => {
    fc.assert(
      fc.property(opsArb, fc.constantFrom(...chunkSizes), (ops, chunkSize) => {
        const { bytes } = encodeLog(ops)
        const { result, ops: replayed } = replayBytes(bytes, replayOptions(chunkSize))
        expect(result).toEqual({ _tag: "Ok", validEnd: bytes.length, records: ops.length })
        expect(replayed).toEqual(ops)
      }),
      { numRuns: 150 }
    )
  })

  it("bytes values are fresh Uint8Array copies, not views of the chunk", () => {
    const { bytes } = encodeLog([put("a", Uint8Array.of(1, 2, 3)), put("b", Uint8Array.of(4))])
    const { ops } = scanAll(bytes, headerLength)
    bytes.fill(0)
    const values = ops.map((op) => (op._tag === "Put" ? op.value : undefined))
    expect(values).toEqual([Uint8Array.of(1, 2, 3), Uint8Array.of(4)])
    for (const value of values) {
      expect(Object.getPrototypeOf(value)).toBe(Uint8Array.prototype)
      expect((value as Uint8Array).buffer).not.toBe(bytes.buffer)
    }
  })
})

// =============================================================================
// Validation of records whose CRC matches
// =============================================================================

describe("the scanner rejects every malformed record", () => {
  const deadlineBytes = (deadline: number) => {
    const bytes = Buffer.alloc(8)
    bytes.writeDoubleLE(deadline)
    return [...bytes]
  }
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
    ["unknown op 0", [0, 0, 0, 0, 0, 0]],
    ["unknown op 3", [3, 0, 0, 0, 0, 0]],
    ["unknown put flags", [1, 0b100, 0, 0, 0, 0]],
    ["a delete with flags", [2, 1, 0, 0, 0, 0]],
    ["a delete with trailing bytes", [2, 0, 1, 0, 0, 0, 0x6b, 0x6b]],
    ["a delete key longer than the payload", [2, 0, 2, 0, 0, 0, 0x6b]],
    ["a put key longer than the payload", [1, 0, 9, 0, 0, 0, 0x6b]],
    ["a deadline flag without room for it", [1, 0b10, 0, 0, 0, 0]],
    ["a zero deadline", [1, 0b10, ...deadlineBytes(0), 0, 0, 0, 0]],
    ["a negative deadline", [1, 0b10, ...deadlineBytes(-5), 0, 0, 0, 0]],
    ["a NaN deadline", [1, 0b10, ...deadlineBytes(NaN), 0, 0, 0, 0]],
    ["an infinite deadline", [1, 0b10, ...deadlineBytes(Infinity), 0, 0, 0, 0]],
    ["a payload shorter than op, flags and key length", [2, 0, 0, 0, 0]]
  ]
  for (const [name, payload] of cases) {
    it(`${name} is Corrupt at its offset, after the records before it`, () => {
      const { bytes } = encodeLog([put("a", "1")])
      const log = Buffer.concat([bytes, frame(Uint8Array.from(payload)), frame(Uint8Array.of(2, 0, 0, 0, 0, 0))])
      const { result, ops } = scanAll(log, headerLength)
      expect(result).toMatchObject({ _tag: "Corrupt", offset: bytes.length, records: 1 })
      expect(ops).toEqual([put("a", "1")])
    })
  }

  it("a bad length check is Corrupt even before the payload has been read", () => {
    const header = frame(Uint8Array.of(2, 0, 0, 0, 0, 0)).subarray(0, 12)
    header[5] ^= 0x10
    expect(scanAll(header).result).toMatchObject({ _tag: "Corrupt", offset: 0 })
  })

  it("a declared length of 0 or above maxPayloadLength is Corrupt", () => {
    for (const length of [0, maxPayloadLength + 1, 0xffffffff]) {
      const header = Buffer.alloc(12)
      header.writeUInt32LE(length, 0)
      header.writeUInt32LE(~length >>> 0, 4)
      expect(scanAll(header).result).toMatchObject({ _tag: "Corrupt", offset: 0 })
    }
  })
})

// =============================================================================
// Limits
// =============================================================================

describe("limits", () => {
  it("the largest record (3-byte characters at both limits, with a deadline) has exactly maxPayloadLength bytes", () => {
    const key = "€".repeat(Limits.maxKeyLength)
    const value = "€".repeat(Limits.maxValueLength)
    const encoder = new RecordEncoder()
    expect(encoder.appendPut(key, value, 1_800_000_000_000)).toBe(12 + maxPayloadLength)
    encoder.appendDelete(key)
    const { result, ops } = scanAll(encoder.contents())
    expect(result).toEqual({ _tag: "Done", offset: encoder.length, records: 2 })
    expect(ops.length).toBe(2)
    expect(ops[0]!._tag === "Put" && ops[0]!.key === key && ops[0]!.value === value).toBe(true)
    expect(ops[1]).toEqual(del(key))
    encoder.reset()
  })

  it("a bytes value at the limit replays from a file through a grown chunk, and records after it still replay", () => {
    const value = new Uint8Array(Limits.maxValueLength)
    value[0] = 1
    value[value.length - 1] = 2
    const ops = [put("small", "1"), put("big", value, 1_800_000_000_000), put("after", "2")]
    const { bytes } = encodeLog(ops, new RecordEncoder())
    const { result, ops: replayed } = replayBytes(bytes, { onCorruption: "fail", chunkSize: 4096 })
    expect(result).toEqual({ _tag: "Ok", validEnd: bytes.length, records: 3 })
    expect(replayed[0]).toEqual(ops[0])
    expect(replayed[2]).toEqual(ops[2])
    const big = replayed[1]!
    expect(big._tag === "Put" && Buffer.compare(big.value as Uint8Array, value) === 0).toBe(true)
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

  it("one past a limit is Corrupt in the scanner, even with a matching CRC", () => {
    const keyBytes = Buffer.from("k".repeat(Limits.maxKeyLength + 1))
    const keyLength = Buffer.alloc(4)
    keyLength.writeUInt32LE(keyBytes.length)
    const longKeyPut = frame(Buffer.concat([Buffer.from([1, 0]), keyLength, keyBytes]))
    const longKeyDelete = frame(Buffer.concat([Buffer.from([2, 0]), keyLength, keyBytes]))
    const longBytes = frame(Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0]), Buffer.alloc(Limits.maxValueLength + 1)]))
    for (const record of [longKeyPut, longKeyDelete, longBytes]) {
      expect(scanAll(record).result).toMatchObject({ _tag: "Corrupt", offset: 0, records: 0 })
    }
  })
})

// =============================================================================
// Torn tail or corruption
// =============================================================================

describe("the torn-tail rule", () => {
  const record = frame(Uint8Array.of(2, 0, 1, 0, 0, 0, 0x6b)) // 19 bytes
  const never = () => {
    throw new Error("restIsZero must not be needed")
  }

  it("fewer than 12 bytes before the end of the file are a torn tail", () => {
    for (let length = 0; length < 12; length++) {
      expect(classifyTail(record.subarray(0, length), length, "incomplete", never)._tag).toBe("TornTail")
    }
  })

  it("a valid frame header whose record runs past the end of the file is a torn tail", () => {
    for (let length = 12; length < record.length; length++) {
      expect(classifyTail(record.subarray(0, length), length, "incomplete", never)._tag).toBe("TornTail")
    }
  })

  it("a damaged record that ends exactly at the end of the file is a torn tail", () => {
    const damaged = Buffer.from(record)
    damaged[15] ^= 1
    expect(classifyTail(damaged, damaged.length, "crc mismatch", never)._tag).toBe("TornTail")
  })

  it("zeros from the record to the end of the file are a torn tail", () => {
    expect(classifyTail(new Uint8Array(100), 100, "bad length check", () => true)._tag).toBe("TornTail")
  })

  it("a damaged record with more bytes after it is corruption", () => {
    const damaged = Buffer.concat([record, record])
    damaged[15] ^= 1
    expect(classifyTail(damaged, damaged.length, "crc mismatch", () => false)).toEqual({
      _tag: "Corruption",
      reason: "crc mismatch"
    })
  })

  it("a bad length check is corruption unless only zeros follow, even in the last record", () => {
    const damaged = Buffer.from(record)
    damaged[0] ^= 4
    expect(classifyTail(damaged, damaged.length, "bad length check", () => false)._tag).toBe("Corruption")
  })
})

describe("replay of a damaged log", () => {
  const log = encodeLog(sampleOps)

  it("a log cut at any byte replays the records completed before the cut and drops the rest as a torn tail", () => {
    for (const chunkSize of chunkSizes) {
      for (let cut = 0; cut <= log.bytes.length; cut++) {
        const { result, ops } = replayBytes(log.bytes.subarray(0, cut), replayOptions(chunkSize))
        if (cut < headerLength) {
          expect(result).toEqual({ _tag: "Ok", validEnd: 0, records: 0 })
          continue
        }
        const complete = log.ends.filter((end) => end <= cut).length
        const validEnd = complete === 0 ? headerLength : log.ends[complete - 1]!
        expect(ops).toEqual(sampleOps.slice(0, complete))
        expect(result).toMatchObject({ _tag: "Ok", validEnd, records: complete })
        expect(result._tag === "Ok" && result.tornTail !== undefined).toBe(cut > validEnd)
        if (result._tag === "Ok" && result.tornTail !== undefined) expect(result.tornTail.offset).toBe(validEnd)
      }
    }
  })

  it("a flipped bit in any record but the last fails the open, naming that record's offset", () => {
    for (let record = 0; record < sampleOps.length - 1; record++) {
      for (let byte = log.starts[record]!; byte < log.ends[record]!; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          const damaged = Buffer.from(log.bytes)
          damaged[byte] ^= 1 << bit
          const { result, ops } = replayBytes(damaged, replayOptions(bit === 0 ? 48 : undefined))
          expect(result).toMatchObject({ _tag: "Corrupt", offset: log.starts[record] })
          expect(ops).toEqual(sampleOps.slice(0, record))
        }
      }
    }
  })

  it("with onCorruption: truncate, a flipped bit keeps the records before it and reports the rest as truncated", () => {
    const record = 7
    const damaged = Buffer.from(log.bytes)
    damaged[log.starts[record]! + 14] ^= 0x20
    const { result, ops } = replayBytes(damaged, { onCorruption: "truncate" })
    expect(result).toMatchObject({
      _tag: "Ok",
      validEnd: log.starts[record],
      records: record,
      truncated: { offset: log.starts[record] }
    })
    expect(result).not.toHaveProperty("tornTail")
    expect(ops).toEqual(sampleOps.slice(0, record))
  })

  it("a flipped bit in the last record's CRC or payload is a torn tail: dropped, the rest replayed", () => {
    const last = sampleOps.length - 1
    for (let byte = log.starts[last]! + 8; byte < log.bytes.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Buffer.from(log.bytes)
        damaged[byte] ^= 1 << bit
        const { result, ops } = replayBytes(damaged)
        expect(result).toMatchObject({
          _tag: "Ok",
          validEnd: log.starts[last],
          records: last,
          tornTail: { offset: log.starts[last] }
        })
        expect(ops).toEqual(sampleOps.slice(0, last))
      }
    }
  })

  it("a flipped bit in the last record's length is corruption: the length check tells it from a torn write", () => {
    const last = sampleOps.length - 1
    for (let byte = log.starts[last]!; byte < log.starts[last]! + 8; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Buffer.from(log.bytes)
        damaged[byte] ^= 1 << bit
        expect(replayBytes(damaged).result).toMatchObject({ _tag: "Corrupt", offset: log.starts[last] })
      }
    }
  })

  it("zeros after the last record (space filled ahead of the log) end the log cleanly, with no torn tail", () => {
    for (const zeros of [1, 11, 12, 100, 5000]) {
      const { result, ops } = replayBytes(Buffer.concat([log.bytes, Buffer.alloc(zeros)]), { onCorruption: "fail", chunkSize: 64 })
      expect(result).toEqual({ _tag: "Ok", validEnd: log.bytes.length, records: sampleOps.length })
      expect(ops).toEqual(sampleOps)
    }
  })

  it("a last record cut short inside space filled with zeros is a torn tail", () => {
    const last = log.starts.length - 1
    for (let cut = log.starts[last]! + 1; cut < log.ends[last]!; cut++) {
      const damaged = Buffer.concat([log.bytes, Buffer.alloc(4096)])
      damaged.fill(0, cut, log.ends[last])
      const { result, ops } = replayBytes(damaged, { onCorruption: "fail", chunkSize: 64 })
      expect(result).toMatchObject({ _tag: "Ok", validEnd: log.starts[last], tornTail: { offset: log.starts[last] } })
      expect(ops).toEqual(sampleOps.slice(0, last))
    }
  })

  it("a zeroed record followed by data is corruption", () => {
    const damaged = Buffer.from(log.bytes)
    damaged.fill(0, log.starts[3], log.ends[3])
    expect(replayBytes(damaged).result).toMatchObject({ _tag: "Corrupt", offset: log.starts[3] })
  })
})

// =============================================================================
// Fuzz
// =============================================================================

describe("fuzz", () => {
  it("scanRecords on arbitrary bytes returns a typed result inside the range and never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(), fc.nat(), (raw, a, b) => {
        const bytes = Buffer.from(raw)
        const start = a % (bytes.length + 1)
        const end = start + (b % (bytes.length - start + 1))
        const { result } = scanAll(bytes, start, end)
        expect(["Done", "Corrupt"]).toContain(result._tag)
        expect(result.offset).toBeGreaterThanOrEqual(start)
        expect(result.offset).toBeLessThanOrEqual(end)
      }),
      { numRuns: 2000 }
    )
  })

  it("replayFile on arbitrary bytes, with or without a header, returns a typed result", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.uint8Array({ maxLength: 300 }),
        fc.constantFrom(...chunkSizes),
        fc.constantFrom("fail" as const, "truncate" as const),
        (withHeader, raw, chunkSize, onCorruption) => {
          const bytes = withHeader ? Buffer.concat([encodeHeader(), raw]) : Buffer.from(raw)
          const { result, ops } = replayBytes(bytes, replayOptions(chunkSize, onCorruption))
          expect(["Ok", "Corrupt", "NotALog"]).toContain(result._tag)
          if (result._tag === "Ok") {
            expect(result.records).toBe(ops.length)
            expect(result.validEnd).toBeLessThanOrEqual(bytes.length)
          }
          if (!withHeader && raw.length >= headerLength) expect(result._tag).toBe("NotALog")
        }
      ),
      { numRuns: 1000 }
    )
  })

  const garbageArb = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 120 }),
    fc.uint8Array({ minLength: 1, maxLength: 120 }).map((bytes) => new Uint8Array(bytes.length)), // zeros
    // Pieces of valid records, so that garbage sometimes looks like records.
    fc.tuple(opsArb, fc.nat(), fc.nat(200)).map(([ops, from, length]) => {
      const { bytes } = encodeLog(ops)
      const start = headerLength + (from % (bytes.length - headerLength + 1))
      return bytes.subarray(start, start + length)
    })
  )

  it("a valid log with garbage spliced in replays at least every record completed before the garbage", () => {
    fc.assert(
      fc.property(
        opsArb,
        fc.nat(),
        garbageArb,
        fc.boolean(),
        fc.constantFrom(...chunkSizes),
        fc.constantFrom("fail" as const, "truncate" as const),
        (ops, at, garbage, append, chunkSize, onCorruption) => {
          const log = encodeLog(ops)
          const splice = append ? log.bytes.length : headerLength + (at % (log.bytes.length - headerLength + 1))
          const bytes = Buffer.concat([log.bytes.subarray(0, splice), garbage, log.bytes.subarray(splice)])
          const intact = log.ends.filter((end) => end <= splice).length
          const intactEnd = intact === 0 ? headerLength : log.ends[intact - 1]!
          const { result, ops: replayed } = replayBytes(bytes, replayOptions(chunkSize, onCorruption))
          // The records before the garbage come back first, unchanged.
          expect(replayed.slice(0, intact)).toEqual(ops.slice(0, intact))
          if (result._tag === "Corrupt") {
            expect(onCorruption).toBe("fail")
            expect(result.offset).toBeGreaterThanOrEqual(intactEnd)
            return
          }
          expect(result._tag).toBe("Ok")
          if (result._tag !== "Ok") return
          expect(result.records).toBe(replayed.length)
          expect(result.validEnd).toBeGreaterThanOrEqual(intactEnd)
          expect(result.validEnd).toBeLessThanOrEqual(bytes.length)
          // Truncated at validEnd, the log replays the same records, cleanly.
          const again = replayBytes(bytes.subarray(0, result.validEnd), replayOptions(chunkSize, "fail"))
          expect(again.result).toEqual({ _tag: "Ok", validEnd: result.validEnd, records: result.records })
          expect(again.ops).toEqual(replayed)
        }
      ),
      { numRuns: 500 }
    )
  })
})
