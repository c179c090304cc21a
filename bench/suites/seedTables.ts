/**
 * The original Python library's tables for one subject at one size, in a fresh child process:
 * write µs/op, read µs/op (random order), and memory per key.
 *
 * Keys and values are built before any timing. A warm-up run on up to 100k
 * keys comes first; each repetition then opens an empty store, times one
 * loop putting all N keys, measures the heap growth after a forced GC,
 * times one loop reading `min(N, readSample)` keys in random order, checks
 * what was read, and closes the store.
 */
import { makeKeys, makeValues, randomReadOrder, uniformTtls, valueOf, type ValueShape } from "../dataset.ts"
import type { SeedJob, SeedResult, TtlJob, TtlResult } from "../jobs.ts"
import { bytesPerKey, peakRssBytes, snapshot } from "../MemoryProbe.ts"
import { median } from "../stats.ts"
import type { BenchSubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** Keys of the warm-up run. */
const warmUpKeys = 100_000

/** The data of a run and what the strings themselves cost per key. */
interface PreparedData {
  readonly keys: ReadonlyArray<string>
  readonly values: ReadonlyArray<string>
  /** Heap bytes of one key string plus one value string (array slots excluded). */
  readonly stringBytesPerKey: number
}

/** Strings whose heap cost is measured: an evenly spaced sample, so their lengths are distributed as in the run. */
const stringSample = 100_000

/**
 * What one key string plus one value string occupy, measured on an evenly
 * spaced sample of them (measuring all N strings at once adds the noise of
 * V8's page bookkeeping at large sizes).
 */
const measureStringBytes = (count: number, shape: ValueShape): number => {
  const sampled = Math.min(count, stringSample)
  const stride = count / sampled
  // The arrays first, so that only the strings are measured.
  const keys = Array.from({ length: sampled }, () => "").slice()
  const values = keys.slice()
  const slots = snapshot()
  for (let j = 0; j < sampled; j++) {
    const i = Math.floor(j * stride)
    keys[j] = makeKeys(i, i + 1)[0]!
    values[j] = valueOf(i, shape)
  }
  const after = snapshot()
  // Used after the snapshot, so the sample is certainly alive when measured.
  const pairs = (keys.length + values.length) / 2
  return (after.liveBytes - slots.liveBytes) / pairs
}

/** Builds the keys and values, and measures what their strings occupy. */
const prepare = (count: number, shape: ValueShape): PreparedData => {
  const stringBytesPerKey = measureStringBytes(count, shape)
  return { keys: makeKeys(0, count), values: makeValues(0, count, shape), stringBytesPerKey }
}

const expectedChecksum = (values: ReadonlyArray<string>, order: Uint32Array): number => {
  let sum = 0
  for (let j = 0; j < order.length; j++) sum += values[order[j]!]!.length
  return sum
}

/** Opens, fills and reads a small store so the measured code is compiled and warm. */
const warmUp = async (subject: BenchSubject, data: PreparedData, workDir: string, ttls?: Float64Array) => {
  const count = Math.min(warmUpKeys, data.keys.length)
  const keys = data.keys.slice(0, count)
  const order = randomReadOrder(count, count, 1)
  for (let round = 0; round < 2; round++) {
    const store = await subject.open({ capacity: count, workDir })
    await store.fill(keys, data.values.slice(0, count), ttls?.subarray(0, count))
    await store.read(keys, order)
    await store.close()
  }
}

/** What one repetition measured. */
interface Repetition {
  readonly writeMillis: number
  readonly readMillis: number
  readonly storeBytesPerKey: number
  readonly rssBytesPerKey: number
}

/**
 * One repetition: memory, open, timed fill, memory, timed reads (when
 * `order` is given), close. A function of its own, so that nothing of the
 * store outlives it: a variable of the caller's loop would keep the previous
 * store alive into the next repetition's first measurement.
 */
const measureRepetition = async (
  subject: BenchSubject,
  job: { readonly keys: number; readonly workDir: string },
  data: PreparedData,
  ttls: Float64Array | undefined,
  order: Uint32Array | undefined,
  checksum: number
): Promise<Repetition> => {
  // Measured from before the store exists: some allocate their tables up front.
  const empty = snapshot()
  const store = await subject.open({ capacity: job.keys, workDir: job.workDir })
  const externalBefore = await store.externalBytes?.()
  const writeMillis = await store.fill(data.keys, data.values, ttls)
  const full = snapshot()
  const externalAfter = await store.externalBytes?.()
  const growth = bytesPerKey(empty, full, job.keys)
  const read = order === undefined ? undefined : await store.read(data.keys, order)
  await store.close()
  if (read !== undefined && read.checksum !== checksum) {
    throw new Error(`${subject.id} read wrong values: checksum ${read.checksum}, expected ${checksum}`)
  }
  return {
    writeMillis,
    readMillis: read?.elapsedMillis ?? Number.NaN,
    // A server's memory counts as the store's (its keys live there, not in
    // this process), and so do the shared index's buffers, which
    // `process.memoryUsage()` leaves out.
    storeBytesPerKey: growth.liveBytesPerKey +
      (externalBefore === undefined || externalAfter === undefined ? 0 : (externalAfter - externalBefore) / job.keys),
    rssBytesPerKey: growth.rssBytesPerKey
  }
}

/** Runs a seed-table job. */
export const runSeedJob = async (job: SeedJob, subject: BenchSubject): Promise<SeedResult> => {
  const data = prepare(job.keys, job.values)
  const order = randomReadOrder(job.keys, Math.min(job.keys, job.readSample))
  const checksum = expectedChecksum(data.values, order)
  progress(`data ready: ${job.keys} keys, strings ${fmt(data.stringBytesPerKey)} B/key`)
  await warmUp(subject, data, job.workDir)

  const repetitions: Array<Repetition> = []
  for (let rep = 1; rep <= job.reps; rep++) {
    const measured = await measureRepetition(subject, job, data, undefined, order, checksum)
    repetitions.push(measured)
    progress(
      `rep ${rep}/${job.reps}: write ${fmt((measured.writeMillis * 1000) / job.keys)} µs/op, ` +
        `read ${fmt((measured.readMillis * 1000) / order.length)} µs/op, store ${fmt(measured.storeBytesPerKey)} B/key`
    )
  }
  const storeBytesPerKey = median(repetitions.map((r) => r.storeBytesPerKey))
  return {
    suite: "tables",
    writeMicros: median(repetitions.map((r) => (r.writeMillis * 1000) / job.keys)),
    readMicros: median(repetitions.map((r) => (r.readMillis * 1000) / order.length)),
    storeBytesPerKey,
    totalBytesPerKey: storeBytesPerKey + data.stringBytesPerKey,
    // The first fill is the one that grows the process; later ones reuse its pages.
    rssBytesPerKey: repetitions[0]!.rssBytesPerKey,
    peakRssBytes: peakRssBytes(),
    reads: order.length,
    reps: job.reps
  }
}

/** Runs a TTL-heavy job: the same fills, every key with its own TTL; no reads. */
export const runTtlJob = async (job: TtlJob, subject: BenchSubject): Promise<TtlResult> => {
  const data = prepare(job.keys, "short")
  const ttls = uniformTtls(job.keys, job.ttlMinMillis, job.ttlMaxMillis)
  progress(`data ready: ${job.keys} keys, TTL ${job.ttlMinMillis}–${job.ttlMaxMillis} ms`)
  await warmUp(subject, data, job.workDir, ttls)
  const repetitions: Array<Repetition> = []
  for (let rep = 1; rep <= job.reps; rep++) {
    const measured = await measureRepetition(subject, job, data, ttls, undefined, 0)
    repetitions.push(measured)
    progress(
      `rep ${rep}/${job.reps}: put ${fmt((measured.writeMillis * 1000) / job.keys)} µs/op, ` +
        `store ${fmt(measured.storeBytesPerKey)} B/key`
    )
  }
  const storeBytesPerKey = median(repetitions.map((r) => r.storeBytesPerKey))
  return {
    suite: "ttl",
    putMicros: median(repetitions.map((r) => (r.writeMillis * 1000) / job.keys)),
    storeBytesPerKey,
    totalBytesPerKey: storeBytesPerKey + data.stringBytesPerKey,
    peakRssBytes: peakRssBytes(),
    reps: job.reps
  }
}
