/**
 * The memory layout of the shared index, which its owner writes and worker
 * threads read: every number here is part of the contract between
 * `SharedIndex` (the owner) and `SharedIndexReader` (a worker).
 *
 * Four kinds of `SharedArrayBuffer`:
 * - the **control block** (`Int32Array`, fixed): the seqlock's sequence,
 *   the layout epoch, the hash seed, the dense array's end, the live count,
 *   the count of entries with a deadline and the earliest deadline (so that
 *   a reader counts without walking), and how many readers ask for a walk;
 * - one **walk request** per reader (`Int32Array`, fixed), where a reader
 *   whose walks keep being overlapped asks the owner to hold its next write;
 * - the **slots** (`Int32Array`): open addressing with linear probing, a pair
 *   (entry + 1, hash) per slot, 0 meaning empty, at most 3/4 full;
 * - the **entries** (`Uint32Array`): the dense array in insertion order, one
 *   record reference per entry, 0 for a hole left by a removal;
 * - the **segments** of the arena (`Uint8Array` and views), where each record
 *   is a key and a value, as bytes, with an optional deadline.
 *
 * A record, 8-byte aligned:
 * ```
 * +0  u32  key length in bytes (bits 0–15) | flags (bits 16–19)
 * +4  u32  value length in bytes
 * +8  f64  deadline (epoch ms), present only with flagDeadline
 * …   key bytes (UTF-8), then value bytes (UTF-8, or the Uint8Array's bytes)
 * ```
 * A record never changes once written: an overwrite writes a new record and
 * points the entry at it, so a reader that follows a reference reads bytes
 * that nobody writes while it reads them, unless compaction reclaimed their
 * segment — which the seqlock tells it.
 *
 * A record reference is `segment << 23 | (byte offset / 8)`: up to 512
 * segments of up to 64 MiB each. A value larger than a segment gets a
 * segment of its own, its record at byte 8. Byte 0..7 of every segment is
 * never allocated, so no reference is 0.
 */

/** Indexes into the control block. */
export const controlSequence = 0
export const controlEpoch = 1
export const controlSeed0 = 2
export const controlSeed1 = 3
export const controlEntriesEnd = 4
export const controlLive = 5
/** Entries stored with a deadline, expired or not. */
export const controlDeadlines = 6
/** Readers whose walk request is raised: the one word a write loads to learn that none waits. */
export const controlWalkRequests = 7
/** Index into a `Float64Array` over the control block (bytes 32–39): the earliest deadline, `Infinity` if none. */
export const controlEarliestDeadline = 4
export const controlLength = 10

/**
 * Indexes into a reader's walk request. The reader writes `walkToken`
 * (0: no request; else a number it has not used before) and `walkProgress`
 * (moved on as its walk goes); the owner writes `walkAbandoned`, the token it
 * stopped waiting for because that walk made no progress.
 */
export const walkToken = 0
export const walkProgress = 1
export const walkAbandoned = 2
export const walkRequestLength = 4
/** Entries a walk reads between two moves of its progress. */
export const walkProgressEvery = 1024

export const offsetBits = 23
export const offsetMask = (1 << offsetBits) - 1
export const maxSegments = 512
/** An ordinary segment's largest size; a larger record gets a segment of its own. */
export const maxSegmentBytes = 64 * 1024 * 1024
export const segmentStart = 8

export const recordHeaderBytes = 8
export const keyLengthMask = 0xffff
export const flagBytes = 1 << 16
export const flagDeadline = 1 << 17
export const flagKeyAscii = 1 << 18
export const flagValueAscii = 1 << 19

export const refSegment = (ref: number): number => ref >>> offsetBits
export const refOffset = (ref: number): number => (ref & offsetMask) * 8

/** Bytes a record takes, padding included. */
export const recordBytes = (keyBytes: number, valueBytes: number, withDeadline: boolean): number =>
  (recordHeaderBytes + (withDeadline ? 8 : 0) + keyBytes + valueBytes + 7) & ~7

/** Byte offset of a record's key, from its header word. */
export const keyStart = (at: number, header: number): number =>
  at + recordHeaderBytes + ((header & flagDeadline) !== 0 ? 8 : 0)

/** What a worker needs to read the index: its buffers, at one layout epoch. */
export interface SharedLayout {
  readonly epoch: number
  readonly control: SharedArrayBuffer
  readonly slots: SharedArrayBuffer
  readonly entries: SharedArrayBuffer
  readonly segments: ReadonlyArray<SharedArrayBuffer | undefined>
}

/** The views over one segment. */
export interface Segment {
  readonly buffer: SharedArrayBuffer
  readonly bytes: Uint8Array
  readonly words: Uint32Array
  readonly floats: Float64Array
  readonly node: Buffer
}

export const segmentOf = (buffer: SharedArrayBuffer): Segment => ({
  buffer,
  bytes: new Uint8Array(buffer),
  words: new Uint32Array(buffer),
  floats: new Float64Array(buffer),
  node: Buffer.from(buffer)
})
