/**
 * The shared index: keys and values as bytes in `SharedArrayBuffer`s, off
 * the V8 heap, readable by worker threads (`SharedIndexReader`) while the
 * thread that owns it writes. `SharedLayout.ts` has the memory layout;
 * `docs/design.md` ("The shared index") the reasoning.
 *
 * Only the owning thread calls the methods here. Worker threads read the
 * same memory under a seqlock: once a reader is attached, every change
 * made here happens between two increments of the control block's sequence
 * (odd while it changes), so a reader that saw the same even sequence
 * before and after its read saw no change at all. A buffer that is replaced
 * (the slots doubled, a new segment, a compaction's end) is posted to each
 * reader's port before the layout epoch moves, so a reader that sees the new
 * epoch finds its buffers waiting (`receiveMessageOnPort`).
 *
 * Strings are made only when a caller asks for a key or a value.
 */
import { getRandomValues } from "node:crypto"
import { MessageChannel, type MessagePort } from "node:worker_threads"
import { maxKeyLength } from "../../Limits.ts"
import type { Value } from "../../Value.ts"
import { DeadlineHeap } from "../DeadlineHeap.ts"
import type { EntryCursor, Index } from "../Index.ts"
import { placeAll, vacateSlot } from "../SlotTable.ts"
import { hashBytes } from "./ByteHash.ts"
import {
  controlDeadlines,
  controlEarliestDeadline,
  controlEntriesEnd,
  controlEpoch,
  controlLength,
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
  maxSegmentBytes,
  maxSegments,
  offsetBits,
  recordBytes,
  recordHeaderBytes,
  refOffset,
  refSegment,
  type Segment,
  segmentOf,
  segmentStart,
  type SharedLayout,
  walkAbandoned,
  walkProgress,
  walkRequestLength,
  walkToken
} from "./SharedLayout.ts"
import { decodeAscii, decodeUtf8, utf8Length, writeUtf8 } from "./Utf8.ts"

const minCapacity = 8
const minEntries = 64
/** The most keys `lookAheadBytes` keeps notes of. */
const maxAhead = 64

/** Thresholds that tests lower, to squeeze, compact and add segments often. */
export interface SharedIndexTuning {
  /** Size of the first segment; each next one doubles, up to 64 MiB (default 64 KiB). */
  readonly firstSegmentBytes?: number
  /** Holes tolerated in the dense array however small it is (default 64). */
  readonly minHolesToSqueeze?: number
  /** Garbage tolerated in the arena however small it is (default 1 MiB). */
  readonly minGarbageToCompact?: number
  /**
   * How long a write waits for a reader's walk that makes no progress before
   * it gives up on that walk (default 500 ms): the most a reader that dies
   * mid-walk can hold the owner.
   */
  readonly walkStallMillis?: number
}
/** Bytes a compaction step copies at least, besides twice what the write that runs it wrote. */
const compactionStepBytes = 16 * 1024

/** Position translation for cursors that began before a squeeze (as in `KeyTable`). */
class Generation {
  next: Generation | undefined = undefined
  removed: Int32Array | undefined = undefined
}

/** The worker threads reading an index: the port the owner posts to, and the reader's walk request. */
class Readers {
  readonly ports = new Map<MessagePort, Int32Array>()
  epoch = 0
}

/**
 * One generation of the index's contents; `clear` starts a new one, so that
 * a cursor begun before a `clear` goes on over the old contents.
 */
class Contents {
  slots: Int32Array
  mask: number
  entries: Uint32Array
  entriesEnd = 0
  live = 0
  readonly segments: Array<Segment | undefined> = []
  /** Bytes allocated in each segment, the unused first 8 included. */
  readonly segmentUsed: Array<number> = []
  /** The segment records are appended to; -1 before the first. */
  current = -1
  nextSegmentBytes: number
  allocatedBytes = 0
  liveBytes = 0
  generation = new Generation()
  readonly heap = new DeadlineHeap()
  /** Entry → heap slot + 1 (0: no deadline); grown on demand. */
  heapSlotOf = new Int32Array(0)
  /** Heap slot → entry. */
  entryOfHeapSlot = new Int32Array(0)
  /** Segments being emptied by a compaction (1), or not (0). */
  readonly fromSpace = new Uint8Array(maxSegments)
  compaction: ContentsCursor | undefined = undefined

  constructor(capacity: number, entries: number, firstSegmentBytes: number) {
    this.nextSegmentBytes = firstSegmentBytes
    this.slots = new Int32Array(new SharedArrayBuffer(8 * capacity))
    this.mask = capacity - 1
    this.entries = new Uint32Array(new SharedArrayBuffer(4 * entries))
  }
}

export class SharedIndex implements Index {
  readonly kind = "shared"
  readonly returnsFreshBytes = true
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * controlLength))
  private readonly controlFloats = new Float64Array(this.control.buffer)
  private readonly k0: number
  private readonly k1: number
  private contents: Contents
  private readonly firstSegmentBytes: number
  private readonly minHolesToSqueeze: number
  private readonly minGarbageToCompact: number
  private readonly walkStallMillis: number
  private readonly readers = new Readers()
  /** The key of the operation in progress, as UTF-8. */
  private readonly key = new Uint8Array(3 * maxKeyLength)
  private keyLength = 0
  private keyAscii = false
  /** Where `newRecord` left room for the value. */
  private valueAt = 0
  private compactions = 0
  private squeezes = 0
  private walksWaitedFor = 0
  private walksAbandoned = 0
  /** Keys noted by `lookAheadBytes`, three numbers each: hash, offset in `aheadSource`, length. */
  private readonly ahead = new Int32Array(3 * maxAhead)
  private aheadSource: Uint8Array | undefined = undefined
  /** The next note to use, the end of the notes, and the end of those whose slot was loaded. */
  private aheadNext = 0
  private aheadEnd = 0
  private aheadLoaded = 0
  /** What `loadAhead` loaded, folded together: never read. */
  private aheadFolded = 0
  /** Keys whose hash a write took from a note of `lookAheadBytes`. */
  private hashesNoted = 0

  constructor(tuning: SharedIndexTuning = {}) {
    this.firstSegmentBytes = tuning.firstSegmentBytes ?? 64 * 1024
    this.minHolesToSqueeze = tuning.minHolesToSqueeze ?? 64
    this.minGarbageToCompact = tuning.minGarbageToCompact ?? 1024 * 1024
    this.walkStallMillis = tuning.walkStallMillis ?? 500
    this.contents = new Contents(minCapacity, minEntries, this.firstSegmentBytes)
    const seed = getRandomValues(new Int32Array(2))
    this.k0 = seed[0]
    this.k1 = seed[1]
    this.control[controlSeed0] = this.k0
    this.control[controlSeed1] = this.k1
  }

  get storedSize(): number {
    return this.contents.live
  }

  get deadlineCount(): number {
    return this.contents.heap.size
  }

  earliestDeadline(): number {
    return this.contents.heap.peekDeadline()
  }

  liveSize(now: number): number {
    return this.contents.live - this.contents.heap.countExpired(now)
  }

  /**
   * What tests check they exercised: compactions and squeezes so far,
   * segments held, writes that took their key's hash from `lookAheadBytes`,
   * readers' walks that a write waited for, and those it gave up on.
   */
  get activity(): {
    readonly compactions: number
    readonly squeezes: number
    readonly walksWaitedFor: number
    readonly walksAbandoned: number
    readonly compacting: boolean
    readonly segments: number
    readonly garbageBytes: number
    readonly hashesNoted: number
  } {
    const c = this.contents
    return {
      compactions: this.compactions,
      squeezes: this.squeezes,
      walksWaitedFor: this.walksWaitedFor,
      walksAbandoned: this.walksAbandoned,
      hashesNoted: this.hashesNoted,
      compacting: c.compaction !== undefined,
      segments: c.segments.filter((segment) => segment !== undefined).length,
      garbageBytes: c.allocatedBytes - c.liveBytes
    }
  }

  /** Bytes of shared memory the index holds (`process.memoryUsage()` counts them in `external`). */
  get sharedBytes(): number {
    const c = this.contents
    let bytes = this.control.byteLength + c.slots.byteLength + c.entries.byteLength
    for (const segment of c.segments) if (segment !== undefined) bytes += segment.bytes.byteLength
    return bytes
  }

  lookup(key: string, now: () => number): Value | undefined {
    const ref = this.refOf(key)
    if (ref === 0) return undefined
    const c = this.contents
    const segment = c.segments[refSegment(ref)]!
    const at = refOffset(ref)
    const header = segment.words[at >> 2]
    if ((header & flagDeadline) !== 0 && !(segment.floats[(at >> 3) + 1] > now())) return undefined
    return readValue(segment, at, header)
  }

  deadlineOf(key: string, now: number): number | undefined {
    const deadline = this.storedDeadline(key)
    return deadline === undefined || deadline > now ? deadline : undefined
  }

  storedDeadline(key: string): number | undefined {
    const ref = this.refOf(key)
    if (ref === 0) return undefined
    const segment = this.contents.segments[refSegment(ref)]!
    const at = refOffset(ref)
    return (segment.words[at >> 2] & flagDeadline) !== 0 ? segment.floats[(at >> 3) + 1] : Infinity
  }

  reserve(entries: number): void {
    this.write(() => {
      const c = this.contents
      const capacity = capacityFor(c.live + entries)
      if (capacity > c.mask + 1) this.rebuildSlots(capacity)
      if (c.entriesEnd + entries > c.entries.length) this.resizeEntries(c.entriesEnd + entries)
    })
  }

  trim(): void {
    this.write(() => {
      const c = this.contents
      // Whatever the minimum a write waits for, a trim compacts an arena
      // that is half garbage: it is the moment to give memory back.
      if (c.compaction === undefined && c.allocatedBytes > c.liveBytes && c.allocatedBytes - c.liveBytes >= c.liveBytes) {
        this.beginCompaction()
      }
      while (c.compaction !== undefined) this.compactionStep(Infinity)
      const capacity = capacityFor(c.live)
      if (capacity < c.mask + 1) this.rebuildSlots(capacity)
      if (c.entries.length > Math.max(minEntries, Math.ceil(c.entriesEnd * 1.5))) {
        this.resizeEntries(Math.max(minEntries, c.entriesEnd))
      }
    })
  }

  set(key: string, value: Value, deadline: number): void {
    if (this.readers.ports.size > 0) {
      this.write(() => this.setUnguarded(key, value, deadline))
    } else {
      this.setUnguarded(key, value, deadline)
    }
  }

  removeLive(key: string, now: number): boolean {
    if (this.readers.ports.size > 0) return this.write(() => this.removeLiveUnguarded(key, now))
    return this.removeLiveUnguarded(key, now)
  }

  reclaimExpired(now: number, limit: number, onReclaim?: (key: string, deadline: number) => void): number {
    return this.write(() => {
      const c = this.contents
      const heap = c.heap
      let reclaimed = 0
      while (reclaimed < limit && heap.size > 0 && heap.peekDeadline() <= now) {
        const entry = c.entryOfHeapSlot[heap.peekSlot()]
        const deadline = heap.peekDeadline()
        const ref = c.entries[entry]
        const key = onReclaim === undefined ? "" : this.keyOfRecord(ref)
        this.removeEntry(entry, this.slotOfRef(ref))
        reclaimed++
        if (onReclaim !== undefined) onReclaim(key, deadline)
      }
      return reclaimed
    })
  }

  clear(): void {
    this.write(() => {
      this.contents = new Contents(minCapacity, minEntries, this.firstSegmentBytes)
      this.publish()
    })
  }

  *liveEntries(now: () => number): Generator<readonly [string, Value]> {
    const cursor = this.storedCursor()
    while (cursor.next()) {
      if (cursor.deadline === Infinity || cursor.deadline > now()) yield [cursor.key, cursor.value]
    }
  }

  *liveKeys(now: () => number): Generator<string> {
    const cursor = new ContentsCursor(this.contents)
    while (cursor.next()) {
      const deadline = cursor.deadline()
      if (deadline === Infinity || deadline > now()) yield cursor.key()
    }
  }

  storedCursor(): EntryCursor {
    return new StoredCursor(new ContentsCursor(this.contents))
  }

  /**
   * Lets one more worker thread read the index: the layout to give it, the
   * port through which the owner will post replaced buffers, and the
   * reader's walk request. All go to the worker (`SharedIndexReader`); the
   * port must be transferred.
   */
  attachReader(): {
    readonly layout: SharedLayout
    readonly port: MessagePort
    readonly walkRequest: SharedArrayBuffer
  } {
    const channel = new MessageChannel()
    const own = channel.port1
    const walkRequest = new Int32Array(new SharedArrayBuffer(4 * walkRequestLength))
    this.readers.ports.set(own, walkRequest)
    // Writes publish the counts readers walk by only while a reader is
    // attached: entries written before this one came (a replay, a fill) are
    // not counted there yet. An empty write publishes them.
    this.write(() => undefined)
    // A reader that closes its end (or whose worker ends) closes ours: from
    // then on writes no longer pay for it. A worker that ended mid-walk left
    // its request raised; the exchange takes it back unless the reader did.
    own.once("close", () => {
      this.readers.ports.delete(own)
      if (Atomics.exchange(walkRequest, walkToken, 0) !== 0) Atomics.sub(this.control, controlWalkRequests, 1)
    })
    // Posting never waits for the worker; an owner must not be kept alive
    // by a port nobody reads.
    own.unref()
    return { layout: this.layout(), port: channel.port2, walkRequest: walkRequest.buffer as SharedArrayBuffer }
  }

  /** How many worker threads read the index. */
  get readerCount(): number {
    return this.readers.ports.size
  }

  // ===========================================================================
  // Writes
  // ===========================================================================

  /**
   * Runs `change` as one write of the seqlock when workers read the index:
   * the sequence is odd while it runs, so a reader that overlaps it retries.
   */
  private write<A>(change: () => A): A {
    if (this.readers.ports.size === 0) return change()
    this.beginGuard()
    try {
      return change()
    } finally {
      this.endGuard()
    }
  }

  /**
   * Begins a write of the seqlock: an odd sequence, once the walks readers
   * asked for have finished. With none asked for, that is one more load.
   */
  private beginGuard(): void {
    if (Atomics.load(this.control, controlWalkRequests) !== 0) this.waitForWalks()
    Atomics.add(this.control, controlSequence, 1)
  }

  /**
   * Ends a write of the seqlock: the counts readers see, then an even
   * sequence. The deadline figures are plain stores: nothing reads them but
   * a reader between two loads of the sequence, and the closing
   * `Atomics.add` orders them before the sequence moves.
   */
  private endGuard(): void {
    const c = this.contents
    Atomics.store(this.control, controlEntriesEnd, c.entriesEnd)
    Atomics.store(this.control, controlLive, c.live)
    this.control[controlDeadlines] = c.heap.size
    this.controlFloats[controlEarliestDeadline] = c.heap.peekDeadline()
    Atomics.add(this.control, controlSequence, 1)
  }

  /**
   * Holds the write about to begin until each walk a reader had asked for
   * when it began has finished: a reader whose walks of the whole index kept
   * being overlapped by writes then gets one that none overlaps. A request
   * raised while this waits is the next write's to wait for, so walks cannot
   * hold off writes for good either. A walk whose progress stands still for
   * `walkStallMillis` (its worker ended, or is paused) is given up on: the
   * write goes ahead, and the reader, if it lives, asks again.
   */
  private waitForWalks(): void {
    const stall = this.walkStallMillis
    for (const request of this.readers.ports.values()) {
      const token = Atomics.load(request, walkToken)
      if (token === 0 || token === Atomics.load(request, walkAbandoned)) continue
      this.walksWaitedFor++
      let progress = Atomics.load(request, walkProgress)
      let stillSince = performance.now()
      while (Atomics.load(request, walkToken) === token) {
        // Woken by the reader's withdrawal; the timeout is only to look at its progress.
        Atomics.wait(request, walkToken, token, stall / 8)
        const moved = Atomics.load(request, walkProgress)
        const now = performance.now()
        if (moved !== progress) {
          progress = moved
          stillSince = now
        } else if (now - stillSince >= stall && Atomics.load(request, walkToken) === token) {
          Atomics.store(request, walkAbandoned, token)
          this.walksAbandoned++
          break
        }
      }
    }
  }

  private setUnguarded(key: string, value: Value, deadline: number): void {
    const hash = this.encodeKey(key)
    if (typeof value === "string") {
      const length = utf8Length(value)
      const ascii = length <= 0
      const ref = this.newRecord(ascii ? -length : length, false, ascii, deadline)
      const segment = this.contents.segments[refSegment(ref)]!
      writeUtf8(value, ascii, segment.bytes, segment.node, this.valueAt)
      this.link(hash, ref, deadline)
    } else {
      const ref = this.newRecord(value.byteLength, true, false, deadline)
      this.contents.segments[refSegment(ref)]!.bytes.set(value, this.valueAt)
      this.link(hash, ref, deadline)
    }
  }

  /**
   * `set` from bytes: the key is `source[keyAt, keyAt + keyLength)` as UTF-8,
   * the value `source[valueAt, valueAt + valueLength)`, UTF-8 of a string or
   * a `Uint8Array`'s bytes. Replay calls it with its read buffer: a record
   * goes from the log to the arena without becoming a string.
   */
  setBytes(
    source: Uint8Array,
    keyAt: number,
    keyLength: number,
    valueAt: number,
    valueLength: number,
    valueIsBytes: boolean,
    deadline: number
  ): void {
    const guarded = this.readers.ports.size > 0
    if (guarded) this.beginGuard()
    try {
      const hash = this.loadKey(source, keyAt, keyLength)
      let ascii = false
      if (!valueIsBytes) {
        let bits = 0
        for (let i = valueAt; i < valueAt + valueLength; i++) bits |= source[i]
        ascii = bits < 0x80
      }
      const ref = this.newRecord(valueLength, valueIsBytes, ascii, deadline)
      const bytes = this.contents.segments[refSegment(ref)]!.bytes
      const at = this.valueAt
      if (valueLength <= 32) {
        for (let i = 0; i < valueLength; i++) bytes[at + i] = source[valueAt + i]
      } else {
        bytes.set(source.subarray(valueAt, valueAt + valueLength), at)
      }
      this.link(hash, ref, deadline)
    } finally {
      if (guarded) this.endGuard()
    }
  }

  /**
   * Takes note of the UTF-8 key `source[keyAt, keyAt + keyLength)`, which a
   * `setBytes` or `removeLiveBytes` will be given next (after the keys
   * noted before it), with `source` unchanged until then. The first of
   * those calls hashes nothing: it loads the slots of every key noted, one
   * load right after another, so that the processor overlaps their cache
   * misses (loads with a hash computed between them do not overlap: the
   * hashing fills the processor's window), and each call then takes its
   * key's hash from the note.
   */
  lookAheadBytes(source: Uint8Array, keyAt: number, keyLength: number): void {
    if (this.aheadNext === this.aheadEnd || source !== this.aheadSource) this.forgetAhead(source)
    const end = this.aheadEnd
    if (end === maxAhead) return
    const notes = this.ahead
    notes[3 * end] = hashBytes(source, keyAt, keyLength, this.k0, this.k1)
    notes[3 * end + 1] = keyAt
    notes[3 * end + 2] = keyLength
    this.aheadEnd = end + 1
  }

  private forgetAhead(source: Uint8Array | undefined): void {
    this.aheadSource = source
    this.aheadNext = 0
    this.aheadEnd = 0
    this.aheadLoaded = 0
  }

  /** Loads the first slot of every key noted and not loaded yet. */
  private loadAhead(): void {
    const c = this.contents
    const slots = c.slots
    const mask = c.mask
    const notes = this.ahead
    let folded = this.aheadFolded
    for (let i = this.aheadLoaded; i < this.aheadEnd; i++) folded ^= slots[2 * (notes[3 * i] & mask)]
    // Kept, so that the compiler cannot drop the loads as unused.
    this.aheadFolded = folded
    this.aheadLoaded = this.aheadEnd
  }

  /** `removeLive` from bytes: the key is `source[keyAt, keyAt + keyLength)` as UTF-8. */
  removeLiveBytes(source: Uint8Array, keyAt: number, keyLength: number, now: number): boolean {
    return this.write(() => this.removeHashed(this.loadKey(source, keyAt, keyLength), now))
  }

  /**
   * Allocates a record for the key in `this.key` and a value of
   * `valueLength` bytes, writes all but the value, and sets `valueAt` to
   * where the value goes. The record is not in the table until `link`.
   */
  private newRecord(valueLength: number, valueIsBytes: boolean, valueAscii: boolean, deadline: number): number {
    const withDeadline = deadline !== Infinity
    const ref = this.allocate(recordBytes(this.keyLength, valueLength, withDeadline))
    const segment = this.contents.segments[refSegment(ref)]!
    const at = refOffset(ref)
    segment.words[at >> 2] = this.keyLength | (valueIsBytes ? flagBytes : 0) | (withDeadline ? flagDeadline : 0) |
      (this.keyAscii ? flagKeyAscii : 0) | (valueAscii ? flagValueAscii : 0)
    segment.words[(at >> 2) + 1] = valueLength
    let next = at + recordHeaderBytes
    if (withDeadline) {
      segment.floats[(at >> 3) + 1] = deadline
      next += 8
    }
    const length = this.keyLength
    const bytes = segment.bytes
    if (length <= 32) {
      const key = this.key
      for (let i = 0; i < length; i++) bytes[next + i] = key[i]
    } else {
      bytes.set(this.key.subarray(0, length), next)
    }
    this.valueAt = next + length
    return ref
  }

  /** Points the key in `this.key` (hash `hash`) at the whole record `ref`, and keeps the heap and the arena in order. */
  private link(hash: number, ref: number, deadline: number): void {
    const c = this.contents
    const size = this.sizeOfRecord(ref)
    const slot = this.probe(hash)
    const stored = c.slots[2 * slot]
    let entry: number
    if (stored !== 0) {
      entry = stored - 1
      c.liveBytes -= this.sizeOfRecord(c.entries[entry])
      c.entries[entry] = ref
    } else {
      if (c.entriesEnd === c.entries.length) this.resizeEntries(Math.ceil(c.entriesEnd * 1.5))
      entry = c.entriesEnd++
      c.entries[entry] = ref
      c.slots[2 * slot] = entry + 1
      c.slots[2 * slot + 1] = hash
      c.live++
    }
    c.liveBytes += size
    const heapSlot = entry < c.heapSlotOf.length ? c.heapSlotOf[entry] - 1 : -1
    if (deadline !== Infinity) {
      if (heapSlot >= 0) {
        c.heap.reschedule(heapSlot, "", deadline)
      } else {
        this.ensureHeapMaps(entry + 1)
        const inserted = c.heap.insert("", "", deadline)
        if (inserted >= c.entryOfHeapSlot.length) this.growHeapSlots(inserted + 1)
        c.heapSlotOf[entry] = inserted + 1
        c.entryOfHeapSlot[inserted] = entry
      }
    } else if (heapSlot >= 0) {
      c.heap.remove(heapSlot)
      c.heapSlotOf[entry] = 0
    }
    if (stored === 0 && c.live * 4 > (c.mask + 1) * 3) this.rebuildSlots(2 * (c.mask + 1))
    this.afterWrite(size)
  }

  private removeLiveUnguarded(key: string, now: number): boolean {
    return this.removeHashed(this.encodeKey(key), now)
  }

  private removeHashed(hash: number, now: number): boolean {
    const c = this.contents
    const slot = this.probe(hash)
    const stored = c.slots[2 * slot]
    if (stored === 0) return false
    const entry = stored - 1
    const ref = c.entries[entry]
    const segment = c.segments[refSegment(ref)]!
    const at = refOffset(ref)
    const live = (segment.words[at >> 2] & flagDeadline) === 0 || segment.floats[(at >> 3) + 1] > now
    this.removeEntry(entry, slot)
    this.afterWrite(0)
    return live
  }

  /** Removes `entry`, whose slot is `slot`, from the table, the dense array and the heap. */
  private removeEntry(entry: number, slot: number): void {
    const c = this.contents
    c.liveBytes -= this.sizeOfRecord(c.entries[entry])
    c.entries[entry] = 0
    c.live--
    const heapSlot = entry < c.heapSlotOf.length ? c.heapSlotOf[entry] - 1 : -1
    if (heapSlot >= 0) {
      c.heap.remove(heapSlot)
      c.heapSlotOf[entry] = 0
    }
    vacateSlot(c.slots, c.mask, slot)
    const holes = c.entriesEnd - c.live
    if (holes >= this.minHolesToSqueeze && 2 * holes >= c.entriesEnd) this.squeeze()
  }

  /** Moves a compaction along, or starts one once half the arena is garbage. */
  private afterWrite(written: number): void {
    const c = this.contents
    if (c.compaction !== undefined) {
      this.compactionStep(2 * written + compactionStepBytes)
      return
    }
    const garbage = c.allocatedBytes - c.liveBytes
    if (garbage >= this.minGarbageToCompact && garbage >= c.liveBytes) this.beginCompaction()
  }

  // ===========================================================================
  // The table
  // ===========================================================================

  /** Writes `key`'s UTF-8 form into `this.key` and returns its hash. */
  private encodeKey(key: string): number {
    const length = utf8Length(key)
    this.keyAscii = length < 0 || key.length === 0
    this.keyLength = length < 0 ? -length : length
    writeUtf8(key, this.keyAscii, this.key, undefined, 0)
    return hashBytes(this.key, 0, this.keyLength, this.k0, this.k1)
  }

  /** Copies a UTF-8 key into `this.key` and returns its hash. */
  private loadKey(source: Uint8Array, at: number, length: number): number {
    const key = this.key
    let bits = 0
    for (let i = 0; i < length; i++) bits |= key[i] = source[at + i]
    this.keyLength = length
    this.keyAscii = bits < 0x80
    const next = this.aheadNext
    if (next < this.aheadEnd) {
      if (this.aheadLoaded < this.aheadEnd) this.loadAhead()
      const notes = this.ahead
      if (source === this.aheadSource && notes[3 * next + 1] === at && notes[3 * next + 2] === length) {
        this.aheadNext = next + 1
        this.hashesNoted++
        return notes[3 * next]
      }
      // Not the key noted next: the notes are out of step, and worth nothing.
      this.forgetAhead(undefined)
    }
    return hashBytes(key, 0, length, this.k0, this.k1)
  }

  /** The record of `key`, or 0. */
  private refOf(key: string): number {
    const c = this.contents
    const stored = c.slots[2 * this.probe(this.encodeKey(key))]
    return stored === 0 ? 0 : c.entries[stored - 1]
  }

  /** The slot holding the key in `this.key`, or the empty slot where it would go. */
  private probe(hash: number): number {
    const c = this.contents
    const slots = c.slots
    const mask = c.mask
    let slot = hash & mask
    for (;;) {
      const stored = slots[2 * slot]
      if (stored === 0) return slot
      if (slots[2 * slot + 1] === hash && this.recordHasKey(c.entries[stored - 1])) return slot
      slot = (slot + 1) & mask
    }
  }

  private recordHasKey(ref: number): boolean {
    const segment = this.contents.segments[refSegment(ref)]!
    const at = refOffset(ref)
    const header = segment.words[at >> 2]
    const length = this.keyLength
    if ((header & keyLengthMask) !== length) return false
    const bytes = segment.bytes
    const start = keyStart(at, header)
    const key = this.key
    for (let i = 0; i < length; i++) if (bytes[start + i] !== key[i]) return false
    return true
  }

  /** The slot whose entry points at `ref` (which is stored). */
  private slotOfRef(ref: number): number {
    const c = this.contents
    const segment = c.segments[refSegment(ref)]!
    const at = refOffset(ref)
    const header = segment.words[at >> 2]
    const hash = hashBytes(segment.bytes, keyStart(at, header), header & keyLengthMask, this.k0, this.k1)
    const slots = c.slots
    let slot = hash & c.mask
    while (c.entries[slots[2 * slot] - 1] !== ref) slot = (slot + 1) & c.mask
    return slot
  }

  /** Moves the table to `capacity` slots, in a new buffer (readers get it through `publish`). */
  private rebuildSlots(capacity: number): void {
    const c = this.contents
    const old = c.slots
    const mask = capacity - 1
    const slots = new Int32Array(new SharedArrayBuffer(8 * capacity))
    placeAll(old, slots, mask)
    c.slots = slots
    c.mask = mask
    this.publish()
  }

  private resizeEntries(length: number): void {
    const c = this.contents
    const entries = new Uint32Array(new SharedArrayBuffer(4 * Math.max(length, minEntries)))
    entries.set(c.entries.subarray(0, c.entriesEnd))
    c.entries = entries
    this.publish()
  }

  /**
   * Squeezes the holes out of the dense array, in place, and starts a new
   * generation for the cursors (as `KeyTable` does).
   */
  private squeeze(): void {
    const c = this.contents
    const entries = c.entries
    const length = c.entriesEnd
    const moved = new Int32Array(length) // old position → new position + 1
    const removed = new Int32Array(length - c.live)
    let kept = 0
    let holes = 0
    for (let entry = 0; entry < length; entry++) {
      const ref = entries[entry]
      if (ref === 0) {
        removed[holes++] = entry
        continue
      }
      if (kept !== entry) {
        entries[kept] = ref
        // An entry past the maps' end has no deadline, but the place it moves
        // to may still hold the heap slot of the entry that moved out of it.
        if (kept < c.heapSlotOf.length) {
          const heapSlot = entry < c.heapSlotOf.length ? c.heapSlotOf[entry] : 0
          c.heapSlotOf[kept] = heapSlot
          if (heapSlot !== 0) c.entryOfHeapSlot[heapSlot - 1] = kept
        }
      }
      moved[entry] = ++kept
    }
    entries.fill(0, kept, length)
    if (c.heapSlotOf.length > kept) c.heapSlotOf.fill(0, kept, Math.min(length, c.heapSlotOf.length))
    c.entriesEnd = kept
    const slots = c.slots
    for (let i = 0; i < slots.length; i += 2) {
      const stored = slots[i]
      if (stored !== 0) slots[i] = moved[stored - 1]
    }
    const ended = c.generation
    ended.removed = removed
    ended.next = c.generation = new Generation()
    this.squeezes++
  }

  private ensureHeapMaps(entries: number): void {
    const c = this.contents
    if (c.heapSlotOf.length >= entries) return
    const grown = new Int32Array(Math.max(entries, c.entries.length))
    grown.set(c.heapSlotOf)
    c.heapSlotOf = grown
  }

  private growHeapSlots(slots: number): void {
    const c = this.contents
    const grown = new Int32Array(Math.max(slots, 2 * c.entryOfHeapSlot.length, 64))
    grown.set(c.entryOfHeapSlot)
    c.entryOfHeapSlot = grown
  }

  // ===========================================================================
  // The arena
  // ===========================================================================

  /** A reference to `size` fresh bytes (a multiple of 8). */
  private allocate(size: number): number {
    const c = this.contents
    if (c.current >= 0) {
      const used = c.segmentUsed[c.current]
      if (used + size <= c.segments[c.current]!.bytes.byteLength) {
        c.segmentUsed[c.current] = used + size
        c.allocatedBytes += size
        return (c.current << offsetBits) | (used >> 3)
      }
    }
    const own = segmentStart + size > maxSegmentBytes
    let bytes = segmentStart + size
    if (!own) {
      while (c.nextSegmentBytes < bytes) c.nextSegmentBytes *= 2
      bytes = c.nextSegmentBytes
      c.nextSegmentBytes = Math.min(2 * c.nextSegmentBytes, maxSegmentBytes)
    }
    const segment = this.addSegment(bytes)
    if (!own) c.current = segment
    c.segmentUsed[segment] = segmentStart + size
    c.allocatedBytes += size
    return (segment << offsetBits) | (segmentStart >> 3)
  }

  private addSegment(bytes: number): number {
    const c = this.contents
    let id = 0
    while (id < c.segments.length && c.segments[id] !== undefined) id++
    if (id >= maxSegments) {
      throw new RangeError(`kvlog: the shared index holds at most ${maxSegments} segments of ${maxSegmentBytes} bytes`)
    }
    c.segments[id] = segmentOf(new SharedArrayBuffer(bytes))
    c.segmentUsed[id] = segmentStart
    c.fromSpace[id] = 0
    this.publish()
    return id
  }

  private sizeOfRecord(ref: number): number {
    const segment = this.contents.segments[refSegment(ref)]!
    const at = refOffset(ref)
    const header = segment.words[at >> 2]
    return recordBytes(header & keyLengthMask, segment.words[(at >> 2) + 1], (header & flagDeadline) !== 0)
  }

  private keyOfRecord(ref: number): string {
    const segment = this.contents.segments[refSegment(ref)]!
    const at = refOffset(ref)
    return readKey(segment, at, segment.words[at >> 2])
  }

  /**
   * Starts a compaction: every segment there is now becomes from-space,
   * records are appended to new segments from now on, and each write moves
   * the compaction along until every live record is out of from-space.
   * A copying compaction in entry order, in steps, so no write pauses for
   * more than a step.
   */
  private beginCompaction(): void {
    const c = this.contents
    for (let id = 0; id < c.segments.length; id++) if (c.segments[id] !== undefined) c.fromSpace[id] = 1
    c.current = -1
    c.nextSegmentBytes = this.firstSegmentBytes
    c.compaction = new ContentsCursor(c)
  }

  /** Copies live records out of from-space, about `budget` bytes' worth. */
  private compactionStep(budget: number): void {
    const c = this.contents
    const walk = c.compaction!
    let copied = 0
    while (copied < budget) {
      const entry = walk.nextEntry()
      if (entry < 0) {
        this.endCompaction()
        return
      }
      const ref = c.entries[entry]
      const from = refSegment(ref)
      if (c.fromSpace[from] === 0) continue
      const size = this.sizeOfRecord(ref)
      const to = this.allocate(size)
      const source = c.segments[from]!
      const target = c.segments[refSegment(to)]!
      const at = refOffset(ref)
      target.bytes.set(source.bytes.subarray(at, at + size), refOffset(to))
      c.entries[entry] = to
      copied += size
    }
  }

  private endCompaction(): void {
    const c = this.contents
    c.compaction = undefined
    this.compactions++
    for (let id = 0; id < c.segments.length; id++) {
      if (c.fromSpace[id] === 0) continue
      c.allocatedBytes -= c.segmentUsed[id] - segmentStart
      c.segments[id] = undefined
      c.segmentUsed[id] = 0
      c.fromSpace[id] = 0
    }
    this.publish()
  }

  // ===========================================================================
  // Readers
  // ===========================================================================

  private layout(): SharedLayout {
    const c = this.contents
    return {
      epoch: this.readers.epoch,
      control: this.control.buffer as SharedArrayBuffer,
      slots: c.slots.buffer as SharedArrayBuffer,
      entries: c.entries.buffer as SharedArrayBuffer,
      segments: c.segments.map((segment) => segment?.buffer)
    }
  }

  /**
   * Gives every reader the current buffers, then moves the epoch: a reader
   * that sees the new epoch finds the message already in its port's queue.
   * Called inside a write, so readers retry anything they read meanwhile.
   */
  private publish(): void {
    const readers = this.readers
    if (readers.ports.size === 0) return
    readers.epoch++
    const layout = this.layout()
    for (const port of readers.ports.keys()) port.postMessage(layout)
    Atomics.store(this.control, controlEpoch, readers.epoch)
  }
}

/** A `StoredEntryCursor` with decoded strings, for compaction and iteration. */
class StoredCursor implements EntryCursor {
  key = ""
  value: Value = ""
  deadline = Infinity
  private readonly walk: ContentsCursor
  private done = false

  constructor(walk: ContentsCursor) {
    this.walk = walk
  }

  next(): boolean {
    // Finished is finished, as for a `Map` iterator: entries added after the
    // end was reached are not walked.
    if (this.done) return false
    if (!this.walk.next()) {
      this.done = true
      return false
    }
    this.key = this.walk.key()
    this.value = this.walk.value()
    this.deadline = this.walk.deadline()
    return true
  }
}

/**
 * Walks one `Contents`' dense array in insertion order while it changes:
 * every entry present at the start and not removed since, once.
 */
class ContentsCursor {
  private position = 0
  private entry = -1
  private readonly contents: Contents
  private generation: Generation

  constructor(contents: Contents) {
    this.contents = contents
    this.generation = contents.generation
  }

  /** The next entry's position in the dense array, or -1 at the end. */
  nextEntry(): number {
    let generation = this.generation
    if (generation.next !== undefined) {
      let position = this.position
      while (generation.next !== undefined) {
        position -= countBelow(generation.removed!, position)
        generation = generation.next
      }
      this.position = position
      this.generation = generation
    }
    const c = this.contents
    const end = c.entriesEnd
    for (let entry = this.position; entry < end; entry++) {
      if (c.entries[entry] !== 0) {
        this.position = entry + 1
        return entry
      }
    }
    this.position = end
    return -1
  }

  next(): boolean {
    this.entry = this.nextEntry()
    return this.entry >= 0
  }

  private at(): [Segment, number, number] {
    const ref = this.contents.entries[this.entry]
    const segment = this.contents.segments[refSegment(ref)]!
    const at = refOffset(ref)
    return [segment, at, segment.words[at >> 2]]
  }

  key(): string {
    const [segment, at, header] = this.at()
    return readKey(segment, at, header)
  }

  value(): Value {
    const [segment, at, header] = this.at()
    return readValue(segment, at, header)
  }

  deadline(): number {
    const [segment, at, header] = this.at()
    return (header & flagDeadline) !== 0 ? segment.floats[(at >> 3) + 1] : Infinity
  }
}

/** The key of the record at `at`, whose header word is `header`, as a string. */
export const readKey = (segment: Segment, at: number, header: number): string => {
  const start = keyStart(at, header)
  const length = header & keyLengthMask
  return (header & flagKeyAscii) !== 0
    ? decodeAscii(segment.bytes, segment.node, start, length)
    : decodeUtf8(segment.node, start, length)
}

/** The value of the record at `at`: a new string, or a new `Uint8Array`. */
export const readValue = (segment: Segment, at: number, header: number): Value => {
  const start = keyStart(at, header) + (header & keyLengthMask)
  const length = segment.words[(at >> 2) + 1]
  if ((header & flagBytes) !== 0) return segment.bytes.slice(start, start + length)
  return (header & flagValueAscii) !== 0
    ? decodeAscii(segment.bytes, segment.node, start, length)
    : decodeUtf8(segment.node, start, length)
}

/** The table capacity (a power of two) that holds `entries` at most 3/4 full. */
const capacityFor = (entries: number): number => {
  let capacity = minCapacity
  while (entries * 4 > capacity * 3) capacity *= 2
  return capacity
}

/** How many of the ascending `positions` are below `position`. */
const countBelow = (positions: Int32Array, position: number): number => {
  let low = 0
  let high = positions.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (positions[middle] < position) low = middle + 1
    else high = middle
  }
  return low
}
