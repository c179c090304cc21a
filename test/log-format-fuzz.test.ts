/**
 * Replay under random damage: valid logs are mutated (bit flips, truncations,
 * lost pages and sectors, spliced chunks, random garbage, huge declared
 * lengths, records re-sealed with matching checksums) and replayed from
 * memory. Replay must never throw, must do bounded work, and may only ever
 * apply a prefix of the original log's batches, whole. Two kinds of damage
 * have an exact answer, checked too: pages lost after the last completed sync
 * are a torn tail at the first damaged batch; a bit flipped in a batch that a
 * later batch records as synced is corruption at that batch.
 *
 * Seeded: every input replays from the run's seed and its index.
 *   KVLOG_FUZZ_SEED=1234 KVLOG_FUZZ_INPUTS=2000000 vitest run test/log-format-fuzz.test.ts
 *   KVLOG_FUZZ_SEED=1234 KVLOG_FUZZ_ONLY=849 ...   # just that input, its result printed
 */
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { batchHeaderLength, crc32, fileHeaderLength, writeU32 } from "../src/internal/log/format/LogFormat.ts"
import { RecordEncoder } from "../src/internal/log/format/LogRecord.ts"
import type { ReplayOptions, ReplayResult } from "../src/internal/log/format/LogReplay.ts"
import { del, encodeLog, type EncodedLog, type Op, put, replayBytes } from "./support/logBatches.ts"
import { tempDirectory } from "./support/logHarness.ts"
import { seededRandom } from "./support/seededRandom.ts"
import { assertVerifyAgreesWithOpen } from "./support/verifyAgreement.ts"

const seed = process.env.KVLOG_FUZZ_SEED !== undefined
  ? Number(process.env.KVLOG_FUZZ_SEED) >>> 0
  : Math.floor(Math.random() * 2 ** 32)
const inputs = Number(process.env.KVLOG_FUZZ_INPUTS ?? 100_000)
const verifyEvery = 100

type Random = () => number
const below = (random: Random, n: number): number => Math.floor(random() * n)
const pick = <A>(random: Random, items: ReadonlyArray<A>): A => items[below(random, items.length)]

// =============================================================================
// Valid logs
// =============================================================================

/** A log, and the end of its durable prefix: the last completed sync covered everything before it. */
interface BaseLog {
  readonly log: EncodedLog
  readonly durable: number
}

const randomString = (random: Random, length: number): string => {
  let s = ""
  for (let i = 0; i < length; i++) {
    const r = random()
    s += r < 0.8 ? String.fromCharCode(32 + below(random, 95)) : r < 0.95 ? pick(random, ["é", "€", "ключ", "\u0000"]) : "😀"
  }
  return s
}

const randomOp = (random: Random): Op => {
  const key = randomString(random, below(random, 20))
  const r = random()
  if (r < 0.2) return del(key)
  const deadline = random() < 0.3 ? 1_700_000_000_000 + below(random, 1e9) + 0.5 : Infinity
  const size = random() < 0.9 ? below(random, 60) : below(random, 5000)
  if (r < 0.4) return put(key, Uint8Array.from({ length: size }, () => below(random, 256)), deadline)
  return put(key, randomString(random, size), deadline)
}

/**
 * A log whose batches carry syncedThrough values a writer could have given:
 * under "always" the end of the previous batch; under "interval" the end of
 * some earlier batch that the last sync covered; under "never" the header.
 */
const makeBase = (random: Random, encoder: RecordEncoder): BaseLog => {
  const batchCount = 1 + below(random, random() < 0.8 ? 8 : 30)
  const batches = Array.from({ length: batchCount }, () => Array.from({ length: 1 + below(random, 6) }, () => randomOp(random)))
  const policy = pick(random, ["always", "interval", "never"] as const)
  let lastSync = fileHeaderLength
  const log = encodeLog(batches, {
    salt: 1 + below(random, 2 ** 32 - 1),
    encoder,
    syncedThrough: (_index, ends) => {
      const previous = ends.at(-1) ?? fileHeaderLength
      if (policy === "always") return (lastSync = previous)
      if (policy === "interval" && random() < 0.3) lastSync = pick(random, [lastSync, previous])
      return lastSync
    }
  })
  // The last completed sync: at least what the batches record, at most the whole log.
  const candidates = [fileHeaderLength, ...log.ends].filter((end) => end >= lastSync)
  const durable = policy === "always" ? Math.max(lastSync, pick(random, candidates)) : pick(random, candidates)
  return { log, durable }
}

// =============================================================================
// Mutations
// =============================================================================

const mutations = [
  "bit flips",
  "truncation",
  "lost pages",
  "splice",
  "garbage",
  "huge lengths",
  "resealed records",
  "zeros ahead",
  "power cut",
  "synced bit flip"
] as const
type Mutation = typeof mutations[number]

/** Recomputes the CRCs of the batch at `start` (after its records were changed on purpose). */
const reseal = (bytes: Buffer, start: number): void => {
  if (start + batchHeaderLength > bytes.length) return // an earlier mutation cut it off
  const recordsLength = bytes.readUInt32LE(start)
  const end = Math.min(bytes.length, start + batchHeaderLength + recordsLength)
  writeU32(bytes, start + 24, crc32(bytes, start + batchHeaderLength, end))
  writeU32(bytes, start + 28, crc32(bytes, start, start + 28))
}

/** The batches mutations re-sealed on purpose in the current input. */
const resealedBatches = new Set<number>()

/** Applies one random damage of kind `kind` to `bytes` (a copy of `other`'s log may be spliced in). */
const damage = (random: Random, kind: Mutation, bytes: Buffer, base: BaseLog, other: BaseLog): Buffer => {
  const { log } = base
  switch (kind) {
    case "bit flips": {
      for (let n = 1 + below(random, 4); n > 0; n--) bytes[below(random, bytes.length)] ^= 1 << below(random, 8)
      return bytes
    }
    case "truncation":
      return bytes.subarray(0, below(random, bytes.length + 1))
    case "lost pages": {
      const unit = pick(random, [512, 4096])
      for (let n = 1 + below(random, 3); n > 0; n--) {
        const at = below(random, Math.ceil(bytes.length / unit)) * unit
        bytes.fill(0, at, Math.min(bytes.length, at + unit))
      }
      return bytes
    }
    case "splice": {
      const source = random() < 0.5 ? base.log.bytes : other.log.bytes
      const from = below(random, source.length)
      const piece = source.subarray(from, from + below(random, 300))
      const at = below(random, bytes.length + 1)
      return random() < 0.5
        ? Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at)])
        : Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(Math.min(bytes.length, at + piece.length))])
    }
    case "garbage": {
      const garbage = Buffer.from(Array.from({ length: 1 + below(random, 200) }, () => below(random, 256)))
      if (random() < 0.3) return Buffer.concat([bytes, garbage])
      const at = below(random, bytes.length)
      garbage.copy(bytes, at, 0, Math.min(garbage.length, bytes.length - at))
      return bytes
    }
    case "huge lengths": {
      if (log.starts.length === 0) return bytes
      const batch = below(random, log.starts.length)
      const huge = pick(random, [0xffffffff, 0x80000000, 2 ** 30, 2 ** 30 + 1, 2 ** 28, bytes.length])
      if (random() < 0.5) {
        // The batch's records length, its header CRC made to match.
        writeU32(bytes, log.starts[batch]!, huge)
        writeU32(bytes, log.starts[batch]! + 28, crc32(bytes, log.starts[batch]!, log.starts[batch]! + 28))
      } else {
        // A record's payload length, both CRCs made to match.
        writeU32(bytes, log.starts[batch]! + batchHeaderLength, huge)
        reseal(bytes, log.starts[batch]!)
        resealedBatches.add(batch)
      }
      return bytes
    }
    case "resealed records": {
      if (log.starts.length === 0) return bytes
      const batch = below(random, log.starts.length)
      const start = log.starts[batch]!
      for (let n = 1 + below(random, 3); n > 0; n--) {
        const at = start + batchHeaderLength + below(random, log.ends[batch]! - start - batchHeaderLength)
        bytes[at] ^= 1 << below(random, 8)
      }
      if (random() < 0.3) writeU32(bytes, start + 4, below(random, 10)) // the count
      reseal(bytes, start)
      resealedBatches.add(batch)
      return bytes
    }
    case "zeros ahead":
      return Buffer.concat([bytes, Buffer.alloc(below(random, 5000))])
    case "power cut":
    case "synced bit flip":
      return bytes // applied by `run`, which knows the exact answer
  }
}

// =============================================================================
// Checks
// =============================================================================

const fail = (message: string): never => {
  throw new Error(message)
}

/**
 * The records applied are the first batches of the original, whole. A batch
 * re-sealed on purpose (`resealed`: its index → the count its header now
 * gives) is a batch a writer could have written: any that many records stand
 * for it.
 */
const checkPrefix = (
  base: BaseLog,
  result: ReplayResult,
  ops: ReadonlyArray<Op>,
  size: number,
  resealed: ReadonlyMap<number, number>
): number => {
  const sizes = base.log.batches.map((batch, i) => resealed.get(i) ?? batch.length)
  // The whole batches that `ops` holds.
  let k = 0
  let total = 0
  // (A batch re-sealed with count 0 is malformed: it is never applied.)
  while (k < sizes.length && sizes[k] > 0 && total + sizes[k] <= ops.length) total += sizes[k++]
  if (total !== ops.length) fail(`applied ${ops.length} records: not a number of whole batches`)
  if (result._tag === "Ok" && result.batches !== k) fail(`batches ${result.batches} but ${k} applied`)
  for (let batch = 0, i = 0; batch < k; i += sizes[batch++]) {
    if (resealed.has(batch)) continue
    for (let j = 0; j < sizes[batch]; j++) {
      if (!sameOp(ops[i + j], base.log.batches[batch][j])) fail(`record ${i + j} differs from the original: ${JSON.stringify(ops[i + j])}`)
    }
  }
  if (result._tag === "Ok") {
    if (result.records !== ops.length) fail(`records ${result.records} but ${ops.length} applied`)
    if (result.validEnd > size) fail(`validEnd ${result.validEnd} past the file's ${size} bytes`)
    if (result.validEnd === 0 && ops.length > 0) fail("validEnd 0 after applying records")
  } else if (result._tag === "Corrupt" && !(result.offset >= fileHeaderLength && result.offset <= size)) {
    fail(`Corrupt at ${result.offset}, outside the file`)
  } else if (result._tag === "NotALog" && ops.length > 0) {
    fail("NotALog after applying records")
  }
  return k
}

const sameOp = (a: Op, b: Op): boolean => {
  if (a._tag !== b._tag || a.key !== b.key) return false
  if (a._tag === "Delete" || b._tag === "Delete") return true
  if (a.deadline !== b.deadline || typeof a.value !== typeof b.value) return false
  return typeof a.value === "string" ? a.value === b.value : Buffer.compare(a.value, b.value as Uint8Array) === 0
}

// =============================================================================
// The run
// =============================================================================

describe("replay fuzz", () => {
  it(`never throws, does bounded work, and applies only a prefix of the original batches (${inputs} inputs)`, async () => {
    const poolRandom = seededRandom(seed)
    const encoder = new RecordEncoder(64)
    const pool = Array.from({ length: 96 }, () => makeBase(poolRandom, encoder))
    const byMutation = new Map<Mutation, number>(mutations.map((m) => [m, 0]))
    const outcomes = new Map<string, number>()
    const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
    let run = 0
    // One input in `verifyEvery` is also written to a file, where `kvlog verify` must say what an open does.
    const verifySamples: Array<{ readonly input: number; readonly bytes: Uint8Array }> = []
    for (let input = 0; input < inputs; input++) {
      const random = seededRandom((seed ^ Math.imul(input + 1, 0x9e3779b1)) >>> 0)
      const base = pick(random, pool)
      const kind = pick(random, mutations)
      const options: ReplayOptions = {
        onCorruption: random() < 0.8 ? "fail" : "truncate",
        ...(random() < 0.9 ? { chunkSize: pick(random, [64, 100, 256, 4096]) } : {})
      }
      if (process.env.KVLOG_FUZZ_ONLY !== undefined && Number(process.env.KVLOG_FUZZ_ONLY) !== input) continue
      const where = `seed ${seed} (KVLOG_FUZZ_SEED), input ${input}, ${kind}, ${JSON.stringify(options)}`
      try {
        let bytes: Buffer = Buffer.from(base.log.bytes)
        let firstDamaged: number | undefined // an exact answer, when the damage has one
        resealedBatches.clear()
        if (kind === "power cut") {
          // Pages after the last completed sync are lost (read as zeros); the synced part of a page stays.
          const unit = pick(random, [512, 4096])
          bytes = Buffer.concat([bytes, Buffer.alloc(below(random, 2) * unit)])
          for (let page = Math.floor(base.durable / unit); page * unit < bytes.length; page++) {
            if (random() < 0.4) bytes.fill(0, Math.max(page * unit, base.durable), Math.min(bytes.length, (page + 1) * unit))
          }
          const { starts, ends } = base.log
          const first = starts.findIndex((s, i) => !bytes.subarray(s, ends[i]).equals(base.log.bytes.subarray(s, ends[i])))
          firstDamaged = first === -1 ? base.log.batches.length : first
        } else if (kind === "synced bit flip") {
          const { starts, ends, syncedThrough } = base.log
          const synced = starts.filter((start, i) => syncedThrough.slice(i + 1).some((s) => s > start))
          if (synced.length > 0) {
            const batch = starts.indexOf(pick(random, synced))
            bytes[starts[batch]! + below(random, ends[batch]! - starts[batch]!)] ^= 1 << below(random, 8)
            firstDamaged = batch
          }
        } else {
          for (let n = 1 + (random() < 0.2 ? below(random, 3) : 0); n > 0; n--) {
            bytes = damage(random, n === 1 ? kind : pick(random, mutations), bytes, base, pick(random, pool))
          }
        }
        const { result, ops, bytesRead } = replayBytes(bytes, options)
        if (input % verifyEvery === 0) verifySamples.push({ input, bytes: Uint8Array.from(bytes) })
        if (process.env.KVLOG_FUZZ_ONLY !== undefined) console.log(JSON.stringify({ resealed: [...resealedBatches], result, starts: base.log.starts, sizes: base.log.batches.map((b) => b.length), ops: ops.length }))
        run++
        byMutation.set(kind, byMutation.get(kind)! + 1)
        count(result._tag === "Ok" ? (result.tornTail ? "torn tail" : result.truncated ? "truncated" : "Ok") : result._tag)
        // Bounded work: the log once, the tail twice more (zeros, then the header search), with overlaps.
        if (bytesRead > 4 * bytes.length + 4096) fail(`read ${bytesRead} bytes of a ${bytes.length}-byte file`)
        // The count each re-sealed batch's header now gives (later damage may have changed it).
        const resealed = new Map([...resealedBatches].map((batch) => {
          const at = base.log.starts[batch]! + 4
          return [batch, at + 4 <= bytes.length ? bytes.readUInt32LE(at) : 0] as const
        }))
        const applied = checkPrefix(base, result, ops, bytes.length, resealed)
        if (kind === "power cut") {
          if (result._tag !== "Ok" || result.truncated !== undefined) fail(`a power cut after the last sync gave ${JSON.stringify(result)}`)
          if (applied !== firstDamaged) fail(`applied ${applied} batches, the first damaged is ${firstDamaged}`)
          if (result._tag === "Ok" && result.validEnd !== (base.log.starts[applied] ?? bytes.length) && applied < base.log.batches.length) {
            fail(`validEnd ${result.validEnd}, the first damaged batch starts at ${base.log.starts[applied]}`)
          }
        }
        if (kind === "synced bit flip" && firstDamaged !== undefined) {
          const at = base.log.starts[firstDamaged]
          const ok = options.onCorruption === "fail"
            ? result._tag === "Corrupt" && result.offset === at
            : result._tag === "Ok" && result.truncated?.offset === at
          if (!ok || applied !== firstDamaged) fail(`a flip in synced batch ${firstDamaged} at ${at} gave ${JSON.stringify(result)}`)
        }
        // Cut at validEnd, the log replays the same batches cleanly.
        if (result._tag === "Ok" && result.validEnd > 0 && input % 8 === 0) {
          const again = replayBytes(bytes.subarray(0, result.validEnd), { onCorruption: "fail" })
          if (again.result._tag !== "Ok" || again.result.batches !== result.batches || again.result.tornTail !== undefined) {
            fail(`cut at validEnd ${result.validEnd}, the log replays as ${JSON.stringify(again.result)}`)
          }
        }
      } catch (error) {
        throw new Error(`${where}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
      }
    }
    if (process.env.KVLOG_FUZZ_ONLY !== undefined) return
    // Thrown or hung inputs never get here: a throw fails the test with its input, a hang its timeout.
    console.log(JSON.stringify({
      replayFuzz: { seed, inputs: run, throws: 0, outcomes: Object.fromEntries(outcomes), mutations: Object.fromEntries(byMutation) }
    }))
    expect(run).toBe(inputs)
    const verdicts = { Clean: 0, TornTail: 0, Corrupt: 0 }
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const directory = yield* tempDirectory("fuzz-verify")
      for (const sample of verifySamples) {
        verdicts[(yield* assertVerifyAgreesWithOpen(directory, sample.bytes, `seed ${seed}, input ${sample.input}`))._tag]++
      }
    })))
    console.log(JSON.stringify({ replayFuzzVerify: verdicts }))
    if (inputs >= 10_000) for (const [verdict, n] of Object.entries(verdicts)) expect(n, verdict).toBeGreaterThan(0)
    // Every kind of damage ran, and replay reached every outcome.
    for (const [kind, n] of byMutation) expect(n, kind).toBeGreaterThan(inputs / mutations.length / 2)
    for (const outcome of ["Ok", "torn tail", "truncated", "Corrupt", "NotALog"]) {
      expect(outcomes.get(outcome) ?? 0, outcome).toBeGreaterThan(0)
    }
  })
})
