/**
 * Reads a `SharedIndex` from another thread, without copying it, while its
 * owner writes: the reader's side of the seqlock (`docs/design.md`, "The
 * shared index").
 *
 * A read loads the sequence, reads, and loads the sequence again; only a read
 * that saw the same even sequence at both ends is answered, and it saw the
 * index between two writes. Everything read before that check is suspect —
 * an offset into a segment being dropped, a probe through a table being
 * doubled — so every offset, length and probe count is checked against the
 * buffers at hand, and anything out of bounds is a retry, never an exception.
 *
 * A walk of the whole index (`liveSize` when it must count, `liveEntries`)
 * may take long enough that, under steady writes, some write overlaps every
 * attempt. After `walksBeforeRequest` such attempts the reader raises its
 * walk request; the owner holds its next write until the walk is done
 * (`SharedIndex.waitForWalks`), so the walk ends.
 */
import { type MessagePort, receiveMessageOnPort } from "node:worker_threads"
import { maxKeyLength } from "../../Limits.ts"
import type { Value } from "../../Value.ts"
import { hashBytes } from "./ByteHash.ts"
import {
  controlDeadlines,
  controlEarliestDeadline,
  controlEntriesEnd,
  controlEpoch,
  controlLive,
  controlSeed0,
  controlSeed1,
  controlSequence,
  controlWalkRequests,
  flagBytes,
  flagDeadline,
  flagKeyAscii,
  flagValueAscii,
  keyLengthMask,
  keyStart,
  refOffset,
  refSegment,
  type Segment,
  segmentOf,
  type SharedLayout,
  walkAbandoned,
  walkProgress,
  walkProgressEvery,
  walkToken
} from "./SharedLayout.ts"
import { decodeAscii, decodeUtf8, utf8Length, writeUtf8 } from "./Utf8.ts"

/** What a read found, before the sequence says whether to believe it. */
const retry = -1
const absent = 0

/** Inconsistent reads in a row, with no write to explain them, before a reader gives up. */
const maxUnexplainedRetries = 1000
/** Spins on an odd sequence this many times before sleeping on it. */
const spinsBeforeWait = 64
/** How long a reader sleeps on a write in progress, in ms, before it looks again. */
const waitMillis = 0.05

/** What a worker needs to read an index (`SharedIndex.attachReader`). */
export interface ReaderAttachment {
  readonly layout: SharedLayout
  readonly port: MessagePort
  readonly walkRequest: SharedArrayBuffer
}

/** Thresholds that tests change. */
export interface SharedIndexReaderTuning {
  /** Walks overlapped by a write before the reader asks the owner to hold its writes (default 2). */
  readonly walksBeforeRequest?: number
}

export class SharedIndexReader {
  private readonly control: Int32Array
  private readonly controlFloats: Float64Array
  private readonly walkRequest: Int32Array
  private readonly walksBeforeRequest: number
  private readonly port: MessagePort
  private readonly k0: number
  private readonly k1: number
  private epoch: number
  private slots!: Int32Array
  private entries!: Uint32Array
  private segments: Array<Segment | undefined> = []
  private readonly key = new Uint8Array(3 * maxKeyLength)
  private keyLength = 0
  private retries = 0
  private unexplained = 0
  private lastToken = 0
  private requests = 0

  constructor({ layout, port, walkRequest }: ReaderAttachment, tuning: SharedIndexReaderTuning = {}) {
    this.control = new Int32Array(layout.control)
    this.controlFloats = new Float64Array(layout.control)
    this.walkRequest = new Int32Array(walkRequest)
    this.walksBeforeRequest = tuning.walksBeforeRequest ?? 2
    this.port = port
    this.k0 = this.control[controlSeed0]
    this.k1 = this.control[controlSeed1]
    this.epoch = -1
    this.adopt(layout)
    // A reader takes posted layouts when it reads. One that stops reading
    // would keep every buffer posted since (dropped segments, outgrown tables)
    // alive in its port's queue, for as long as it idles: so it also takes
    // them as they arrive, whenever its thread's event loop runs. The listener
    // must not keep the thread alive.
    port.on("message", (layout: SharedLayout) => this.adopt(layout))
    port.unref()
  }

  /** The layout epoch this reader has taken (the owner's moves on with each replaced buffer). */
  get adoptedEpoch(): number {
    return this.epoch
  }

  /** Reads retried because a write overlapped them (or a buffer was replaced). */
  get retried(): number {
    return this.retries
  }

  /** Walks for which this reader raised its request (asked the owner to hold its writes). */
  get walkRequests(): number {
    return this.requests
  }

  /** The value of `key` live at `now`, or `undefined`. */
  lookup(key: string, now: number): Value | undefined {
    const hash = this.encodeKey(key)
    for (;;) {
      const sequence = this.stableSequence()
      let value: Value | undefined | typeof retryValue = undefined
      const ref = this.find(hash)
      if (ref > 0) {
        const segment = this.segments[refSegment(ref)]!
        const at = refOffset(ref)
        const header = segment.words[at >> 2]
        if ((header & flagDeadline) === 0 || segment.floats[(at >> 3) + 1] > now) {
          value = readValueChecked(segment, at, header)
        }
      }
      const settled = Atomics.load(this.control, controlSequence) === sequence
      if (ref !== retry && value !== retryValue && settled) {
        this.unexplained = 0
        return value as Value | undefined
      }
      this.retried_(settled)
    }
  }

  /** The deadline of `key` live at `now` (`Infinity` without TTL), or `undefined`. */
  deadlineOf(key: string, now: number): number | undefined {
    const hash = this.encodeKey(key)
    for (;;) {
      const sequence = this.stableSequence()
      const ref = this.find(hash)
      let deadline: number | undefined = undefined
      if (ref > 0) {
        const segment = this.segments[refSegment(ref)]!
        const at = refOffset(ref)
        deadline = (segment.words[at >> 2] & flagDeadline) === 0 ? Infinity : segment.floats[(at >> 3) + 1]
        if (!(deadline > now)) deadline = undefined
      }
      const settled = Atomics.load(this.control, controlSequence) === sequence
      if (ref !== retry && settled) {
        this.unexplained = 0
        return deadline
      }
      this.retried_(settled)
    }
  }

  /**
   * Entries live at `now`, as of one instant, without making a string: the
   * counts the owner publishes answer at once when no deadline has come
   * (`now` before the earliest); otherwise a walk counts the live records.
   */
  liveSize(now: number): number {
    return this.walk(() => {
      const live = this.control[controlLive]
      if (this.control[controlDeadlines] === 0 || this.controlFloats[controlEarliestDeadline] > now) return live
      return this.countLive(now)
    })
  }

  /** Entries stored (expired or not) and, of those, entries with a deadline, as of one instant. */
  storedCounts(): { readonly stored: number; readonly withDeadline: number } {
    return this.walk(() => ({ stored: this.control[controlLive], withDeadline: this.control[controlDeadlines] }))
  }

  /**
   * Every live entry at `now`, in insertion order, as of one instant: the
   * whole walk happens between two writes.
   */
  liveEntries(now: number, withValues: boolean): { keys: Array<string>; values: Array<Value> } {
    return this.walk(() => {
      const keys: Array<string> = []
      const values: Array<Value> = []
      const end = Math.min(this.control[controlEntriesEnd], this.entries.length)
      for (let entry = 0; entry < end; entry++) {
        if ((entry & (walkProgressEvery - 1)) === 0) Atomics.add(this.walkRequest, walkProgress, 1)
        const ref = this.entries[entry]
        if (ref === 0) continue
        const segment = this.segments[refSegment(ref)]
        const at = refOffset(ref)
        if (segment === undefined || at + 8 > segment.bytes.length) return retryValue
        const header = segment.words[at >> 2]
        if ((header & flagDeadline) !== 0) {
          if (at + 16 > segment.bytes.length) return retryValue
          if (!(segment.floats[(at >> 3) + 1] > now)) continue
        }
        const key = readKeyChecked(segment, at, header)
        if (key === retryValue) return retryValue
        keys.push(key)
        if (withValues) {
          const value = readValueChecked(segment, at, header)
          if (value === retryValue) return retryValue
          values.push(value)
        }
      }
      return { keys, values }
    })
  }

  /** Records live at `now`, counted from their headers. */
  private countLive(now: number): number | typeof retryValue {
    let count = 0
    const end = Math.min(this.control[controlEntriesEnd], this.entries.length)
    for (let entry = 0; entry < end; entry++) {
      if ((entry & (walkProgressEvery - 1)) === 0) Atomics.add(this.walkRequest, walkProgress, 1)
      const ref = this.entries[entry]
      if (ref === 0) continue
      const segment = this.segments[refSegment(ref)]
      const at = refOffset(ref)
      if (segment === undefined || at + 8 > segment.bytes.length) return retryValue
      if ((segment.words[at >> 2] & flagDeadline) !== 0) {
        if (at + 16 > segment.bytes.length) return retryValue
        if (!(segment.floats[(at >> 3) + 1] > now)) continue
      }
      count++
    }
    return count
  }

  /**
   * Runs `read` between two writes: retried until no write overlapped it.
   * After `walksBeforeRequest` overlapped attempts the reader raises its walk
   * request, and keeps it raised until an attempt succeeds: the owner's next
   * write waits for it, so at most the write that had begun before the
   * request was seen can overlap one more attempt. If the owner gave up on
   * the request (it saw no progress for too long), the reader asks anew.
   */
  private walk<A>(read: () => A | typeof retryValue): A {
    let token = 0
    let overlapped = 0
    try {
      for (;;) {
        if (token === 0 ? overlapped >= this.walksBeforeRequest : Atomics.load(this.walkRequest, walkAbandoned) === token) {
          token = this.raiseWalkRequest(token !== 0)
        }
        const sequence = this.stableSequence()
        const result = read()
        const settled = Atomics.load(this.control, controlSequence) === sequence
        if (result !== retryValue && settled) {
          this.unexplained = 0
          return result
        }
        this.retried_(settled)
        overlapped++
      }
    } finally {
      if (token !== 0) this.withdrawWalkRequest(token)
    }
  }

  /** Raises the walk request with a token never used before (or replaces one the owner gave up on). */
  private raiseWalkRequest(raised: boolean): number {
    let token = this.lastToken + 1
    if (token > 0x3fffffff) token = 1
    this.lastToken = token
    Atomics.add(this.walkRequest, walkProgress, 1)
    Atomics.store(this.walkRequest, walkToken, token)
    // The token is in place before the count says to look for it.
    if (!raised) Atomics.add(this.control, controlWalkRequests, 1)
    this.requests++
    return token
  }

  private withdrawWalkRequest(token: number): void {
    // The owner takes back the request of a reader whose port closed with
    // it raised: whichever of the two exchanges first takes it.
    if (Atomics.compareExchange(this.walkRequest, walkToken, token, 0) === token) {
      Atomics.sub(this.control, controlWalkRequests, 1)
    }
    Atomics.notify(this.walkRequest, walkToken)
  }

  /**
   * Counts a retry. One whose read was inconsistent although no write
   * overlapped it (`settled`) has no explanation but a broken layout or
   * owner: after `maxUnexplainedRetries` in a row the reader fails loudly
   * rather than spin for ever.
   */
  private retried_(settled: boolean): void {
    this.retries++
    if (!settled) return
    if (++this.unexplained > maxUnexplainedRetries) {
      this.unexplained = 0
      throw new Error(
        "kvlog: a shared index read found an inconsistent index while no write was in progress; " +
          "the reader's buffers do not match its owner's"
      )
    }
  }

  /**
   * An even sequence with the buffers of the current epoch: no write in
   * progress, and every replaced buffer adopted.
   */
  private stableSequence(): number {
    const control = this.control
    let spins = 0
    for (;;) {
      const sequence = Atomics.load(control, controlSequence)
      if ((sequence & 1) !== 0) {
        // A write is in progress in the owner: it takes microseconds unless
        // the owner is paused (a collection), so spin a little, then sleep.
        if (++spins > spinsBeforeWait) Atomics.wait(control, controlSequence, sequence, waitMillis)
        continue
      }
      if (Atomics.load(control, controlEpoch) !== this.epoch) {
        this.catchUp()
        continue
      }
      return sequence
    }
  }

  /** Takes the layouts the owner posted, up to the current epoch. */
  private catchUp(): void {
    const target = Atomics.load(this.control, controlEpoch)
    while (this.epoch !== target) {
      const message = receiveMessageOnPort(this.port)
      // The owner posts before it moves the epoch, so the message is there.
      if (message === undefined) return
      this.adopt(message.message as SharedLayout)
    }
  }

  private adopt(layout: SharedLayout): void {
    this.epoch = layout.epoch
    this.slots = new Int32Array(layout.slots)
    this.entries = new Uint32Array(layout.entries)
    const segments = this.segments
    segments.length = layout.segments.length
    for (let id = 0; id < layout.segments.length; id++) {
      const buffer = layout.segments[id]
      const held = segments[id]
      if (buffer === undefined) segments[id] = undefined
      else if (held === undefined || held.buffer !== buffer) segments[id] = segmentOf(buffer)
    }
  }

  private encodeKey(key: string): number {
    const length = utf8Length(key)
    const ascii = length <= 0
    this.keyLength = ascii ? -length : length
    writeUtf8(key, ascii, this.key, undefined, 0)
    return hashBytes(this.key, 0, this.keyLength, this.k0, this.k1)
  }

  /** The record of the key in `this.key`: its reference, `absent`, or `retry` if what was read cannot be. */
  private find(hash: number): number {
    const slots = this.slots
    const entries = this.entries
    const capacity = slots.length >> 1
    const mask = capacity - 1
    let slot = hash & mask
    for (let probes = 0; probes < capacity; probes++) {
      const stored = slots[2 * slot]
      if (stored === 0) return absent
      if (slots[2 * slot + 1] === hash) {
        const entry = stored - 1
        if (entry >= entries.length) return retry
        const ref = entries[entry]
        const segment = this.segments[refSegment(ref)]
        if (ref === 0 || segment === undefined) return retry
        const at = refOffset(ref)
        if (at + 8 > segment.bytes.length) return retry
        const header = segment.words[at >> 2]
        if ((header & flagDeadline) !== 0 && at + 16 > segment.bytes.length) return retry
        const length = header & keyLengthMask
        const start = keyStart(at, header)
        if (start + length > segment.bytes.length) return retry
        if (length === this.keyLength && this.sameKey(segment.bytes, start)) return ref
      }
      slot = (slot + 1) & mask
    }
    return retry
  }

  private sameKey(bytes: Uint8Array, start: number): boolean {
    const key = this.key
    for (let i = 0; i < this.keyLength; i++) if (bytes[start + i] !== key[i]) return false
    return true
  }
}

/** What a checked read returns when the record's lengths run past its segment. */
const retryValue: unique symbol = Symbol("retry")

const readKeyChecked = (segment: Segment, at: number, header: number): string | typeof retryValue => {
  const start = keyStart(at, header)
  const length = header & keyLengthMask
  if (start + length > segment.bytes.length) return retryValue
  return (header & flagKeyAscii) !== 0
    ? decodeAscii(segment.bytes, segment.node, start, length)
    : decodeUtf8(segment.node, start, length)
}

const readValueChecked = (segment: Segment, at: number, header: number): Value | typeof retryValue => {
  const start = keyStart(at, header) + (header & keyLengthMask)
  const length = segment.words[(at >> 2) + 1]
  if (start + length > segment.bytes.length) return retryValue
  if ((header & flagBytes) !== 0) return segment.bytes.slice(start, start + length)
  return (header & flagValueAscii) !== 0
    ? decodeAscii(segment.bytes, segment.node, start, length)
    : decodeUtf8(segment.node, start, length)
}
