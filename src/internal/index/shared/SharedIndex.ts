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

/**
 * Where an index gets its shared memory and how much it may take: the
 * arena's limits (at most the layout's `maxSegments` segments of
 * `maxSegmentBytes`) and the allocation itself. Tests lower the limits to a
 * few tiny segments, and make the allocation fail, through
 * `setSharedMemoryForTests`; an index keeps the one in force when it was made.
 */
export interface SharedMemory {
  readonly maxSegments: number
  readonly maxSegmentBytes: number
  /** Throws a `RangeError` when the system refuses the memory, as `new SharedArrayBuffer` does. */
  readonly allocate: (bytes: number) => SharedArrayBuffer
}

export const defaultSharedMemory: SharedMemory = {
  maxSegments,
  maxSegmentBytes,
  allocate: (bytes) => new SharedArrayBuffer(bytes)
}

let sharedMemoryOfNewIndexes = defaultSharedMemory

/** For tests only: the memory of the indexes made from now on (`undefined`: the default again). */
export const setSharedMemoryForTests = (memory: SharedMemory | undefined): void => {
  if (memory !== undefined && !(memory.maxSegments >= 1 && memory.maxSegments <= maxSegments)) {
    throw new RangeError(`maxSegments must be between 1 and ${maxSegments}, got ${memory.maxSegments}`)
  }
  if (memory !== undefined && !(memory.maxSegmentBytes >= 64 && memory.maxSegmentBytes <= maxSegmentBytes)) {
    throw new RangeError(`maxSegmentBytes must be between 64 and ${maxSegmentBytes}, got ${memory.maxSegmentBytes}`)
  }
  sharedMemoryOfNewIndexes = memory ?? defaultSharedMemory
}

/**
 * What the index throws when a write it was asked to make without a room
 * (`roomForSet`) cannot get the memory it needs: the index is unchanged.
 */
export class SharedIndexFull extends Error {
  override readonly name = "SharedIndexFull"
}

/** Thresholds that tests lower, to squeeze, compact and add segments often. */
export interface SharedIndexTuning {
  /** Size of the first segment; each next one doubles, up to 64 MiB (default 64 KiB). */
  readonly firstSegmentBytes?: number
  /** Holes tolerated in the dense array however small it is (default 64). */
  readonly minHolesToSqueeze?: number
  /** Garbage tolerated in the arena however small it is (default 1 MiB). */
  readonly minGarbageToCompact?: number
  /** The memory to take (default: what `setSharedMemoryForTests` last set, or the system's). */
  readonly memory?: SharedMemory
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
  /** Bytes of live records in each segment: what a compaction of it would copy. */
  readonly segmentLive: Array<number> = []
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

  constructor(slots: Int32Array, entries: Uint32Array, firstSegmentBytes: number) {
    this.nextSegmentBytes = firstSegmentBytes
    this.slots = slots
    this.mask = slots.length / 2 - 1
    this.entries = entries
  }
}

export class SharedIndex implements Index {
  readonly kind = "shared"
  readonly returnsFreshBytes = true
  private readonly control: Int32Array
  private readonly controlFloats: Float64Array
  private readonly memory: SharedMemory
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
  /**
   * Rooms made (`roomForSet`) and not yet used by a `set` or given back:
   * the table and the dense array have room for this many more keys, and no
   * compaction begins while any is out (its record could land in from-space
   * and be linked after the walk passed its entry).
   */
  private roomsOut = 0
  /** Contents made ahead for the next `clear` (`roomForClear`). */
  private clearedContents: Contents | undefined = undefined
  /** Why the last allocation that failed did. */
  private shortage = ""
  /** Whether it failed for want of a segment the arena may take (not memory the system refused). */
  private arenaFull = false
  /** Rooms refused, compactions put off for want of to-space, compaction steps stopped short. */
  private refusals = 0
  private compactionsDeferred = 0
  private compactionStalls = 0
  /** Garbage at which a compaction put off for want of to-space is considered again. */
  private retryCompactionAt = 0

  constructor(tuning: SharedIndexTuning = {}) {
    this.memory = tuning.memory ?? sharedMemoryOfNewIndexes
    this.firstSegmentBytes = Math.min(tuning.firstSegmentBytes ?? 64 * 1024, this.memory.maxSegmentBytes)
    this.minHolesToSqueeze = tuning.minHolesToSqueeze ?? 64
    this.minGarbageToCompact = tuning.minGarbageToCompact ?? 1024 * 1024
    this.walkStallMillis = tuning.walkStallMillis ?? 500
    // Memory an index cannot be made without: a failure here fails the
    // store's open (or the `makeIndex` call) as a defect, before any write.
    this.control = new Int32Array(this.memory.allocate(4 * controlLength))
    this.controlFloats = new Float64Array(this.control.buffer)
    this.contents = this.tryContents() ?? failToMake(this.shortage)
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
   * rooms refused, compactions put off and steps stopped for want of memory,
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
    readonly refusals: number
    readonly compactionsDeferred: number
    readonly compactionStalls: number
    readonly roomsOut: number
  } {
    const c = this.contents
    return {
      compactions: this.compactions,
      squeezes: this.squeezes,
      walksWaitedFor: this.walksWaitedFor,
      walksAbandoned: this.walksAbandoned,
      hashesNoted: this.hashesNoted,
      refusals: this.refusals,
      compactionsDeferred: this.compactionsDeferred,
      compactionStalls: this.compactionStalls,
      roomsOut: this.roomsOut,
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
    // A hint: growing ahead is only to save re-placing keys, so memory
    // refused here is no failure (each write still makes its own room).
    this.write(() => {
      const c = this.contents
      const capacity = capacityFor(c.live + this.roomsOut + entries)
      if (capacity > c.mask + 1) this.rebuildSlots(capacity)
      if (c.entriesEnd + this.roomsOut + entries > c.entries.length) {
        this.resizeEntries(c.entriesEnd + this.roomsOut + entries)
      }
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
      // A step that cannot get its to-space stops; the compaction then
      // waits for later writes (or `compactArena`) to move it along.
      while (c.compaction !== undefined && this.compactionStep(Infinity)) {
        // until it ends or stalls
      }
      // Shrinking is a saving, not a need: refused memory leaves the larger
      // buffers in place.
      const capacity = capacityFor(c.live + this.roomsOut)
      if (capacity < c.mask + 1) this.rebuildSlots(capacity)
      if (c.entries.length > Math.max(minEntries, Math.ceil(c.entriesEnd * 1.5))) {
        this.resizeEntries(Math.max(minEntries, c.entriesEnd + this.roomsOut))
      }
    })
  }

  /**
   * Makes room now for a `set(key, value, deadline, room)` to come: the
   * record's bytes in the arena, and a slot in the table and the dense array
   * as if the key were new (an overwrite gives its slot back unused). The
   * `set` given the room allocates nothing that can fail, so the store
   * makes the room before the write becomes irrevocable (appended to the
   * log) and a write the index cannot take is refused with nothing written.
   *
   * Returns the room (a record reference, never 0), or, the index unchanged,
   * why there is none. A room not used by a `set` is given back with
   * `releaseRoom`; its bytes are garbage that compaction reclaims. A `clear`
   * voids every room.
   */
  roomForSet(key: string, value: Value, deadline: number): number | string {
    const keyBytes = Math.abs(utf8Length(key))
    const valueBytes = typeof value === "string" ? Math.abs(utf8Length(value)) : value.byteLength
    const size = recordBytes(keyBytes, valueBytes, deadline !== Infinity)
    // The hot path of every put: no closure for `write` when no reader needs the seqlock.
    return this.readers.ports.size === 0 ? this.makeRoom(size) : this.write(() => this.makeRoom(size))
  }

  releaseRoom(room: number): void {
    if (room !== 0 && this.roomsOut > 0) this.roomsOut--
  }

  /**
   * Makes, ahead, the empty contents the next `clear` switches to, so that
   * a `clear` allocates nothing; why it could not, or `undefined`.
   */
  roomForClear(): string | undefined {
    if (this.clearedContents !== undefined) return undefined
    this.clearedContents = this.tryContents()
    return this.clearedContents === undefined ? this.refuse() : undefined
  }

  /**
   * Runs a compaction of the arena, in steps of about `budgetBytes` copied:
   * begins one (if `begin` and the arena holds garbage), and moves it along.
   * Returns true once none is under way, false while one is, or why it
   * cannot go on (it is then put off: later writes try again).
   */
  compactArena(budgetBytes: number, begin: boolean): boolean | string {
    return this.write(() => {
      const c = this.contents
      if (c.compaction === undefined) {
        if (!begin) return true
        if (c.allocatedBytes === c.liveBytes) return true
        // A write between its room and its `set`: compact once it is in.
        if (this.roomsOut > 0) return false
        if (!this.beginCompaction()) return this.refuse()
      }
      if (!this.compactionStep(budgetBytes)) return this.refuse()
      return c.compaction === undefined
    })
  }

  /** Stores `value` under `key`, in the room `roomForSet` made for it, or in one made now (0). */
  set(key: string, value: Value, deadline: number, room: number = 0): void {
    if (this.readers.ports.size > 0) {
      this.write(() => this.setUnguarded(key, value, deadline, room))
    } else {
      this.setUnguarded(key, value, deadline, room)
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
      const cleared = this.clearedContents ?? this.tryContents()
      if (cleared === undefined) throw new SharedIndexFull(this.refuse())
      this.clearedContents = undefined
      this.contents = cleared
      this.roomsOut = 0
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

  private setUnguarded(key: string, value: Value, deadline: number, room: number): void {
    const hash = this.encodeKey(key)
    if (typeof value === "string") {
      const length = utf8Length(value)
      const ascii = length <= 0
      const ref = this.newRecord(room, ascii ? -length : length, false, ascii, deadline)
      const segment = this.contents.segments[refSegment(ref)]!
      writeUtf8(value, ascii, segment.bytes, segment.node, this.valueAt)
      this.link(hash, ref, deadline)
    } else {
      const ref = this.newRecord(room, value.byteLength, true, false, deadline)
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
      const ref = this.newRecord(0, valueLength, valueIsBytes, ascii, deadline)
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
   * Takes `room`, or makes one now (0: throws `SharedIndexFull`, the index
   * unchanged, when it cannot), for a record of the key in `this.key` and a
   * value of `valueLength` bytes; writes all but the value, and sets
   * `valueAt` to where the value goes. The record is not in the table until
   * `link`, which allocates nothing that can fail.
   */
  private newRecord(room: number, valueLength: number, valueIsBytes: boolean, valueAscii: boolean, deadline: number): number {
    const withDeadline = deadline !== Infinity
    let ref = room
    if (ref === 0) {
      const made = this.makeRoom(recordBytes(this.keyLength, valueLength, withDeadline))
      if (typeof made === "string") throw new SharedIndexFull(made)
      ref = made
    }
    if (this.roomsOut === 0) throw new Error("kvlog: a room of the shared index was used twice, or after a clear")
    this.roomsOut--
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

  /**
   * Points the key in `this.key` (hash `hash`) at the whole record `ref`, and
   * keeps the heap and the arena in order. Its room was made (`makeRoom`):
   * the table and the dense array hold a new key without growing.
   */
  private link(hash: number, ref: number, deadline: number): void {
    const c = this.contents
    const size = this.sizeOfRecord(ref)
    const slot = this.probe(hash)
    const stored = c.slots[2 * slot]
    let entry: number
    if (stored !== 0) {
      entry = stored - 1
      this.unlive(c.entries[entry])
      c.entries[entry] = ref
    } else {
      if (c.entriesEnd === c.entries.length) throw new Error("kvlog: a key was linked without its room in the dense array")
      entry = c.entriesEnd++
      c.entries[entry] = ref
      c.slots[2 * slot] = entry + 1
      c.slots[2 * slot + 1] = hash
      c.live++
    }
    c.liveBytes += size
    c.segmentLive[refSegment(ref)] += size
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
    this.unlive(c.entries[entry])
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

  /**
   * Moves a compaction along, or starts one once half the arena is garbage.
   * Never fails: a compaction that cannot get its to-space waits (see
   * `beginCompaction`, `compactionStep`), and the write stands.
   */
  private afterWrite(written: number): void {
    const c = this.contents
    if (c.compaction !== undefined) {
      this.compactionStep(2 * written + compactionStepBytes)
      return
    }
    if (this.roomsOut > 0) return
    const garbage = c.allocatedBytes - c.liveBytes
    // Half the arena garbage, or an arena down to its last free segments
    // (writes would soon be refused while garbage could make room).
    if (
      garbage >= this.minGarbageToCompact && garbage >= this.retryCompactionAt &&
      (garbage >= c.liveBytes ||
        (garbage >= this.memory.maxSegmentBytes && this.memory.maxSegments - this.segmentsInUse() <= 2))
    ) this.beginCompaction()
  }

  /** Counts the record `ref` as garbage from now on. */
  private unlive(ref: number): void {
    const size = this.sizeOfRecord(ref)
    const c = this.contents
    c.liveBytes -= size
    c.segmentLive[refSegment(ref)] -= size
  }

  /**
   * Makes room for a record of `size` bytes and a new key (see
   * `roomForSet`): grows the dense array and the table now if the rooms out
   * could need it, then takes the record's bytes. Returns the record's
   * reference, or why there is no room; what it grew stays grown (nothing a
   * reader or a write can tell apart), nothing else changes.
   */
  private makeRoom(size: number): number | string {
    const c = this.contents
    const keys = this.roomsOut + 1
    if (
      c.entriesEnd + keys > c.entries.length &&
      !this.resizeEntries(Math.max(Math.ceil(c.entries.length * 1.5), c.entriesEnd + keys))
    ) return this.refuse()
    const capacity = capacityFor(c.live + keys)
    if (capacity > c.mask + 1 && !this.rebuildSlots(capacity)) return this.refuse()
    let ref = this.tryAllocate(size, false)
    // Compact first: a write refused for want of a segment while the arena
    // holds garbage would be refused again and again (a refused write moves
    // no compaction along), deletes would never make room, and the caller
    // could do nothing about it. The last free segment is kept for this
    // (`tryAddSegment`), so the compaction can copy at most what that
    // segment holds (`beginCompaction` picks segments to fit): a pause of
    // one segment's copy, and only for a write that would fail otherwise.
    // Not while other rooms are out (their records must not become from-space).
    if (ref === 0 && this.arenaFull && this.roomsOut === 0) {
      const why = this.shortage
      if (this.compactToMakeRoom()) ref = this.tryAllocate(size, false)
      else this.shortage = why
    }
    if (ref === 0) return this.refuse()
    this.roomsOut = keys
    return ref
  }

  /**
   * Runs a compaction to its end, if one can run and its copying is bounded
   * by the last free segment's size (`compactionStep` copies until then):
   * whether it ended, giving back segments.
   */
  private compactToMakeRoom(): boolean {
    const c = this.contents
    if (c.compaction === undefined && !this.beginCompaction()) return false
    this.compactionStep(2 * this.memory.maxSegmentBytes)
    return c.compaction === undefined
  }

  /** Counts a refusal and says why, with what a compaction would give back. */
  private refuse(): string {
    this.refusals++
    const c = this.contents
    const garbage = c.allocatedBytes - c.liveBytes
    if (garbage === 0) return this.shortage
    return `${this.shortage}; ${garbage} bytes of the arena are garbage, which ${
      c.compaction !== undefined
        ? "the compaction under way gives back when it ends"
        : "a compaction would give back, once it can get segments to copy the live records into"
    }`
  }

  /** Empty contents in fresh buffers, or `undefined` (and `shortage` says why). */
  private tryContents(): Contents | undefined {
    const slots = this.tryShared(8 * minCapacity, "its table")
    const entries = slots === undefined ? undefined : this.tryShared(4 * minEntries, "its dense array of entries")
    if (entries === undefined) return undefined
    return new Contents(new Int32Array(slots!), new Uint32Array(entries), this.firstSegmentBytes)
  }

  /** A buffer of `bytes`, or `undefined` when the system refuses it (and `shortage` says so). */
  private tryShared(bytes: number, what: string): SharedArrayBuffer | undefined {
    try {
      return this.memory.allocate(bytes)
    } catch (error) {
      if (!(error instanceof RangeError)) throw error
      this.shortage = `the shared index could not get ${bytes} bytes of shared memory for ${what}: ${error.message}`
      return undefined
    }
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

  /**
   * Moves the table to `capacity` slots, in a new buffer (readers get it
   * through `publish`); false, the table unchanged, if the memory is refused.
   */
  private rebuildSlots(capacity: number): boolean {
    const c = this.contents
    const old = c.slots
    const mask = capacity - 1
    const buffer = this.tryShared(8 * capacity, "its table")
    if (buffer === undefined) return false
    const slots = new Int32Array(buffer)
    placeAll(old, slots, mask)
    c.slots = slots
    c.mask = mask
    this.publish()
    return true
  }

  /** Moves the dense array to `length` entries; false, unchanged, if the memory is refused. */
  private resizeEntries(length: number): boolean {
    const c = this.contents
    const buffer = this.tryShared(4 * Math.max(length, minEntries), "its dense array of entries")
    if (buffer === undefined) return false
    const entries = new Uint32Array(buffer)
    entries.set(c.entries.subarray(0, c.entriesEnd))
    c.entries = entries
    this.publish()
    return true
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

  /**
   * A reference to `size` fresh bytes (a multiple of 8), or 0 when that
   * takes a segment and none can be had (`shortage` says why); the arena is
   * then unchanged. Only a compaction's copy (`forCompaction`) may take the
   * last free segment.
   */
  private tryAllocate(size: number, forCompaction: boolean): number {
    const c = this.contents
    if (c.current >= 0) {
      const used = c.segmentUsed[c.current]
      if (used + size <= c.segments[c.current]!.bytes.byteLength) {
        c.segmentUsed[c.current] = used + size
        c.allocatedBytes += size
        return (c.current << offsetBits) | (used >> 3)
      }
    }
    const largest = this.memory.maxSegmentBytes
    const own = segmentStart + size > largest
    let bytes = segmentStart + size
    let next = c.nextSegmentBytes
    if (!own) {
      while (next < bytes) next *= 2
      bytes = next
      next = Math.min(2 * next, largest)
    }
    const segment = this.tryAddSegment(bytes, forCompaction)
    if (segment < 0) return 0
    if (!own) {
      c.current = segment
      c.nextSegmentBytes = next
    }
    c.segmentUsed[segment] = segmentStart + size
    c.allocatedBytes += size
    return (segment << offsetBits) | (segmentStart >> 3)
  }

  /**
   * A new segment's number, or -1 when none may be taken or the memory is
   * refused. Writes leave the last free segment to compaction: with every
   * segment taken no compaction could run, and no delete would ever make
   * room again.
   */
  private tryAddSegment(bytes: number, forCompaction: boolean): number {
    const c = this.contents
    const limit = this.memory.maxSegments
    const inUse = this.segmentsInUse()
    this.arenaFull = inUse >= (forCompaction ? limit : limit - 1)
    if (this.arenaFull) {
      this.shortage = forCompaction
        ? `all ${limit} segments of the shared index's arena are in use`
        : `the shared index's arena is full: ${inUse} of its ${limit} segments (${this.memory.maxSegmentBytes} bytes each, or one larger record) are in use, and the last is kept for compaction`
      return -1
    }
    let id = 0
    while (id < c.segments.length && c.segments[id] !== undefined) id++
    const buffer = this.tryShared(bytes, "a segment of its arena")
    if (buffer === undefined) return -1
    c.segments[id] = segmentOf(buffer)
    c.segmentUsed[id] = segmentStart
    c.segmentLive[id] = 0
    c.fromSpace[id] = 0
    this.publish()
    return id
  }

  /** Segments the arena holds. */
  private segmentsInUse(): number {
    let count = 0
    for (const segment of this.contents.segments) if (segment !== undefined) count++
    return count
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
   * Starts a compaction: segments holding garbage become from-space,
   * records are appended to new segments from now on, and each write moves
   * the compaction along until every live record is out of from-space.
   * A copying compaction in entry order, in steps, so no write pauses for
   * more than a step.
   *
   * The live records of from-space need a to-space beside it until the end,
   * so from-space is only as much as the free segments can take: the
   * segments with the least live bytes for their garbage first, while what
   * they hold live fits in seven eighths of the free segments (the rest for
   * the tails a record does not fit in, and for the writes meanwhile). So
   * an arena near its limit still compacts, a few segments at a time,
   * rather than needing as much free memory as it holds live. If no segment
   * fits, the compaction is put off (false, `shortage` says why) and
   * considered again once the garbage grew by an eighth of the arena; a
   * step that cannot get a segment anyway waits for the next (see
   * `compactionStep`).
   */
  private beginCompaction(): boolean {
    const c = this.contents
    const largest = this.memory.maxSegmentBytes
    const free = this.memory.maxSegments - this.segmentsInUse()
    const budget = Math.floor((free * (largest - segmentStart) * 7) / 8)
    const candidates: Array<number> = []
    for (let id = 0; id < c.segments.length; id++) {
      if (c.segments[id] !== undefined && c.segmentUsed[id] - segmentStart > c.segmentLive[id]) candidates.push(id)
    }
    const liveShare = (id: number) => c.segmentLive[id] / (c.segmentUsed[id] - segmentStart)
    candidates.sort((a, b) => liveShare(a) - liveShare(b))
    let copying = 0
    let chosen = 0
    for (const id of candidates) {
      const live = c.segmentLive[id]
      // A live record larger than a segment would need a to-space segment of its own.
      if (copying + live > budget || (live > 0 && c.segments[id]!.bytes.byteLength > largest)) continue
      c.fromSpace[id] = 1
      copying += live
      chosen++
    }
    if (chosen === 0) {
      this.shortage = `compacting the shared index's arena needs room to copy live records into, and ${free} of its ${this.memory.maxSegments} segments are free`
      this.compactionsDeferred++
      const garbage = c.allocatedBytes - c.liveBytes
      this.retryCompactionAt = garbage + Math.max(this.minGarbageToCompact, Math.ceil(c.allocatedBytes / 8))
      return false
    }
    this.retryCompactionAt = 0
    if (c.current >= 0 && c.fromSpace[c.current] === 1) c.current = -1
    // One to-space segment for what is copied, if one can hold it.
    let first = this.firstSegmentBytes
    while (first < copying + segmentStart && first < largest) first *= 2
    c.nextSegmentBytes = Math.min(first, largest)
    c.compaction = new ContentsCursor(c)
    return true
  }

  /**
   * Copies live records out of from-space, about `budget` bytes' worth.
   * False if it stopped short for want of a to-space segment (`shortage`
   * says why): the record it could not copy stays where it is, and the next
   * step tries it again.
   */
  private compactionStep(budget: number): boolean {
    const c = this.contents
    const walk = c.compaction!
    let copied = 0
    while (copied < budget) {
      const entry = walk.nextEntry()
      if (entry < 0) {
        this.endCompaction()
        return true
      }
      const ref = c.entries[entry]
      const from = refSegment(ref)
      if (c.fromSpace[from] === 0) continue
      const size = this.sizeOfRecord(ref)
      const to = this.tryAllocate(size, true)
      if (to === 0) {
        walk.again()
        this.compactionStalls++
        return false
      }
      const source = c.segments[from]!
      const target = c.segments[refSegment(to)]!
      const at = refOffset(ref)
      target.bytes.set(source.bytes.subarray(at, at + size), refOffset(to))
      c.entries[entry] = to
      c.segmentLive[from] -= size
      c.segmentLive[refSegment(to)] += size
      copied += size
    }
    return true
  }

  private endCompaction(): void {
    const c = this.contents
    c.compaction = undefined
    this.compactions++
    this.retryCompactionAt = 0
    for (let id = 0; id < c.segments.length; id++) {
      if (c.fromSpace[id] === 0) continue
      c.allocatedBytes -= c.segmentUsed[id] - segmentStart
      c.segments[id] = undefined
      c.segmentUsed[id] = 0
      c.segmentLive[id] = 0
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

  /** Steps back before the entry `nextEntry` just returned, so that the next call returns it again. */
  again(): void {
    this.position--
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

const failToMake = (shortage: string): never => {
  throw new SharedIndexFull(shortage)
}
