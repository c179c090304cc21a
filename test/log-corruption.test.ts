/**
 * Opening a damaged log, as `docs/log-format.md` specifies it: damage to a
 * batch that a later batch records as synced fails the open with
 * `LogCorrupted` naming the bad batch's byte offset and leaves the file as it
 * was; `onCorruption: "truncate"` keeps the batches before it instead, with a
 * warning; a torn tail (the unsynced end of the log: the file cut inside a
 * batch, or pages of the last batch never written) is dropped with a warning;
 * a file that is not a log, or a log of format version 1, fails at offset 0.
 * The logs are written by the store itself under `fsync: "always"` (one
 * batch a write, each synced before the next), then damaged byte by byte.
 * On every damaged log, `kvlog verify` is checked to say what the open does.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { magic } from "../src/internal/log/format/LogFormat.ts"
import { KeyValueStore } from "../src/index.ts"
import {
  assertSameState,
  captureLogs,
  recordSpans,
  stateOfLog,
  tempDirectory,
  typedFailure,
  type ValueView,
  viewValue,
  withLogStore
} from "./support/logHarness.ts"
import { assertVerifyAgreesWithOpen } from "./support/verifyAgreement.ts"

type Write =
  | { readonly _tag: "Put"; readonly key: string; readonly value: KeyValueStore.Value; readonly duration?: Duration.Input }
  | { readonly _tag: "Delete"; readonly key: string }

/** Six writes, one record each: strings, bytes, a TTL, a delete, non-ASCII. */
const writes: ReadonlyArray<Write> = [
  { _tag: "Put", key: "a", value: "first" },
  { _tag: "Put", key: "b", value: Uint8Array.of(0, 1, 2, 255) },
  { _tag: "Put", key: "c", value: "kept an hour", duration: "1 hour" },
  { _tag: "Delete", key: "a" },
  { _tag: "Put", key: "ключ", value: "ünïcödé 🙂" },
  { _tag: "Put", key: "e", value: "" }
]

/** The state after the first `n` writes. */
const stateAfter = (n: number): Map<string, ValueView> => {
  const state = new Map<string, ValueView>()
  for (const write of writes.slice(0, n)) {
    if (write._tag === "Put") state.set(write.key, viewValue(write.value))
    else state.delete(write.key)
  }
  return state
}

interface WrittenLog {
  /** The file as the store left it: batches, then the zeros it grew into. */
  readonly bytes: Buffer
  /** Just the header and the batches. */
  readonly batches: Buffer
  /** Where each write's batch starts and how long it is. */
  readonly spans: ReadonlyArray<{ readonly offset: number; readonly length: number }>
}

/** Writes `writes` through a real store into `directory/original.log` and reads the file back. */
const writeLog = (directory: string, extra: ReadonlyArray<Write> = []) =>
  Effect.gen(function*() {
    const logPath = path.join(directory, "original.log")
    const all = [...writes, ...extra]
    yield* withLogStore({ path: logPath, fsync: "always" }, (store) =>
      Effect.forEach(all, (write): Effect.Effect<unknown, unknown> =>
        write._tag === "Put"
          ? store.put(write.key, write.value, write.duration === undefined ? undefined : { duration: write.duration })
          : store.delete(write.key), { discard: true }))
    const bytes = fs.readFileSync(logPath)
    const records = recordSpans(bytes)
    assert.strictEqual(records.length, all.length, "one record per write")
    const starts = [...new Set(records.map((record) => record.batch))]
    assert.strictEqual(starts.length, all.length, "one batch per write")
    const last = records[records.length - 1]
    const end = last.offset + last.length
    const spans = starts.map((offset, i) => ({ offset, length: (starts[i + 1] ?? end) - offset }))
    return { bytes, batches: bytes.subarray(0, end), spans } satisfies WrittenLog
  })

let copies = 0
/**
 * Writes `bytes` to a new file in `directory`; gives its path. Every damaged
 * log of this file passes through here, so each is also checked to get the
 * verdict from `kvlog verify` that the open will act on (on copies of its own).
 */
const copyOf = (directory: string, bytes: Uint8Array): Effect.Effect<string> =>
  Effect.gen(function*() {
    const file = path.join(directory, `copy-${copies++}.log`)
    yield* assertVerifyAgreesWithOpen(directory, bytes, file)
    fs.writeFileSync(file, bytes, { mode: 0o600 })
    return file
  })

const flipped = (bytes: Buffer, offset: number, bit: number): Buffer => {
  const copy = Buffer.from(bytes)
  copy[offset] ^= 1 << bit
  return copy
}

/** Opens `logPath` and expects `LogCorrupted`; gives it. */
const expectCorrupted = (logPath: string, options: Partial<KeyValueStore.LogOptions> = {}) =>
  Effect.map(
    typedFailure(KeyValueStore.makeLog({ path: logPath, ...options }).pipe(Effect.scoped), "LogCorrupted"),
    (error) => {
      assert.instanceOf(error, KeyValueStore.LogCorrupted)
      return error as KeyValueStore.LogCorrupted
    }
  )

describe("damage to synced history", () => {
  it.effect("a flipped bit anywhere in a batch a later one records as synced (header, record length, payload) fails the open with LogCorrupted naming that batch's offset, and leaves the file untouched", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("corrupt")
      const log = yield* writeLog(directory)
      for (const [index, span] of log.spans.slice(0, -1).entries()) {
        const places = [0, 3, 4, 8, 12, 16, 20, 24, 28, 31, 32, 35, 36, 37, 40, span.length - 1]
        for (const place of places) {
          for (const bit of [0, 7]) {
            const damaged = flipped(log.bytes, span.offset + place, bit)
            const logPath = yield* copyOf(directory, damaged)
            const error = yield* expectCorrupted(logPath)
            const where = `batch ${index} at ${span.offset}, byte ${place}, bit ${bit}`
            assert.strictEqual(error.offset, span.offset, where)
            assert.strictEqual(error.path, logPath)
            assert.include(error.message, `byte offset ${span.offset}`)
            assert.isTrue(fs.readFileSync(logPath).equals(damaged), `the failed open changed the file (${where})`)
            assert.isFalse(fs.existsSync(`${logPath}.lock`), "the failed open left its lock behind")
          }
        }
      }
    }))

  it.effect("the same damage with the log cut right after its last batch is still corruption, not a torn tail", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("corrupt-trim")
      const log = yield* writeLog(directory)
      const span = log.spans[1]
      const error = yield* expectCorrupted(yield* copyOf(directory, flipped(log.batches, span.offset + 40, 2)))
      assert.strictEqual(error.offset, span.offset)
    }))

  it.effect("onCorruption \"truncate\" opens with the batches before the bad one, logs a warning naming the offset, and cuts the file there", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("truncate")
      const log = yield* writeLog(directory)
      const bad = log.spans[3]
      const logPath = yield* copyOf(directory, flipped(log.bytes, bad.offset + 36, 1))
      const logs = captureLogs()
      const state = yield* stateOfLog(logPath, { onCorruption: "truncate" }).pipe(Effect.provide(logs.layer))
      assertSameState(state, stateAfter(3))
      const warnings = logs.entries.filter((entry) => entry.level === "Warn")
      assert.strictEqual(warnings.length, 1, JSON.stringify(logs.entries))
      assert.include(warnings[0].message, `byte offset ${bad.offset}`)
      assert.strictEqual(fs.statSync(logPath).size, bad.offset)
      // What is left is a sound log: it opens without the option, and appends.
      yield* withLogStore({ path: logPath }, (store) => store.put("after", "repair"))
      assertSameState(yield* stateOfLog(logPath), new Map([...stateAfter(3), ["after", "s:repair"]]))
    }))
})

describe("a torn tail", () => {
  it.effect("a log cut at any byte offset opens with exactly the batches wholly before the cut", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("cut")
      const log = yield* writeLog(directory)
      for (let cut = 0; cut <= log.batches.length; cut++) {
        const whole = log.spans.filter((span) => span.offset + span.length <= cut).length
        const logPath = yield* copyOf(directory, log.batches.subarray(0, cut))
        const logs = captureLogs()
        const state = yield* stateOfLog(logPath).pipe(Effect.provide(logs.layer))
        assertSameState(state, stateAfter(whole), `cut at ${cut}`)
        if (cut < 20) {
          // A crash while the log was being created: it gets a fresh header.
          assert.strictEqual(fs.statSync(logPath).size, 20, `cut at ${cut}`)
        } else if (!log.spans.some((span) => span.offset + span.length === cut) && cut > 20) {
          const start = log.spans[whole]?.offset ?? cut
          assert.isTrue(
            logs.entries.some((entry) => entry.level === "Warn" && entry.message.includes(`byte offset ${start}`)),
            `no warning for the torn tail at ${start} (cut at ${cut}): ${JSON.stringify(logs.entries)}`
          )
          assert.strictEqual(fs.statSync(logPath).size, start, `the torn tail was not cut off (cut at ${cut})`)
        }
      }
    }))

  it.effect("a last batch whose end was never written (zeros where the rest should be) is a torn tail", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("zeros")
      const log = yield* writeLog(directory)
      const last = log.spans[log.spans.length - 1]
      for (let from = last.offset; from < last.offset + last.length; from++) {
        const damaged = Buffer.from(log.bytes)
        damaged.fill(0, from, last.offset + last.length)
        const state = yield* stateOfLog(yield* copyOf(directory, damaged))
        assertSameState(state, stateAfter(writes.length - 1), `zeros from ${from}`)
      }
    }))

  it.effect("a 20 KiB last batch whose middle 4 KiB page never reached the disk is a torn tail: the open keeps every write before it and warns", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("page")
      const big: Write = { _tag: "Put", key: "big", value: "x".repeat(20 * 1024) }
      const log = yield* writeLog(directory, [big])
      const last = log.spans[log.spans.length - 1]
      assert.isAbove(last.length, 20 * 1024)
      const page = Math.floor((last.offset + last.length / 2) / 4096) * 4096
      const damaged = Buffer.from(log.bytes)
      damaged.fill(0, page, page + 4096)
      const logPath = yield* copyOf(directory, damaged)
      const logs = captureLogs()
      const state = yield* stateOfLog(logPath).pipe(Effect.provide(logs.layer))
      assertSameState(state, stateAfter(writes.length))
      const warnings = logs.entries.filter((entry) => entry.level === "Warn")
      assert.strictEqual(warnings.length, 1, JSON.stringify(logs.entries))
      assert.include(warnings[0].message, `byte offset ${last.offset}`)
      assert.strictEqual(fs.statSync(logPath).size, last.offset)
      // Nothing the open could not use is destroyed: the dropped bytes are kept beside the log.
      const kept = /dropped (\d+) bytes .* a copy is in (\S+)$/.exec(warnings[0].message)
      assert.isNotNull(kept, warnings[0].message)
      const copy = fs.readFileSync(kept![2])
      assert.strictEqual(copy.length, Number(kept![1]))
      assert.isAbove(copy.length, 0)
      assert.isTrue(copy.equals(damaged.subarray(last.offset, last.offset + copy.length)), "the copy is not the dropped bytes")
    }))
})

describe("a file that is not a log", () => {
  it.effect.each([
    { label: "text", bytes: Buffer.from("hello, this is not a kvlog log at all\n") },
    { label: "a PNG signature", bytes: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 73, 72, 68, 82, 1]) },
    { label: "a short file that is not a header prefix", bytes: Buffer.from("kv") }
  ])("$label: the open fails with LogCorrupted at offset 0 and the file is left as it was", ({ bytes }) =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("notalog")
      const logPath = yield* copyOf(directory, bytes)
      const error = yield* expectCorrupted(logPath)
      assert.strictEqual(error.offset, 0)
      assert.isTrue(fs.readFileSync(logPath).equals(bytes))
      // Not even "truncate" turns someone else's file into a log.
      const again = yield* expectCorrupted(logPath, { onCorruption: "truncate" })
      assert.strictEqual(again.offset, 0)
      assert.isTrue(fs.readFileSync(logPath).equals(bytes))
    }))

  it.effect("a log of format version 1 fails the open with LogCorrupted at offset 0, naming version 1", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("version")
      // Version 1: magic, version, CRC32 of the first 12 bytes; then records L, ~L, crc, payload.
      const header = Buffer.alloc(16)
      header.set(magic, 0)
      header.writeUInt32LE(1, 8)
      header.writeUInt32LE(zlib.crc32(header.subarray(0, 12)), 12)
      const payload = Buffer.from([1, 0, 1, 0, 0, 0, 0x6b, 0x76])
      const frame = Buffer.alloc(12)
      frame.writeUInt32LE(payload.length, 0)
      frame.writeUInt32LE(~payload.length >>> 0, 4)
      frame.writeUInt32LE(zlib.crc32(payload), 8)
      const bytes = Buffer.concat([header, frame, payload])
      const logPath = yield* copyOf(directory, bytes)
      const error = yield* expectCorrupted(logPath)
      assert.strictEqual(error.offset, 0)
      assert.include(error.message, "version 1")
      assert.include(error.message, "version 2")
      assert.isTrue(fs.readFileSync(logPath).equals(bytes), "the failed open changed the file")
    }))
})
