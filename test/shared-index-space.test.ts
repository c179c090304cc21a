/**
 * The shared index out of memory: its arena's segments all taken, or the
 * system refusing a `SharedArrayBuffer`. A write it cannot store fails with
 * `StorageError` before anything changed — the index, the counters, and the
 * log, whose replay must never apply a write the store refused. A compaction
 * that cannot get its to-space waits instead of failing a write; a manual
 * `compact` reports it. A replay that runs out fails the open, typed.
 *
 * The limits are lowered (`setSharedMemoryForTests`) to a few 4 KiB
 * segments, each holding four records of a 1,000-byte value; the last free
 * segment is kept for compaction, so writes get `segments - 1` of them.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { setSharedMemoryForTests, SharedIndex, type SharedMemory } from "../src/internal/index/shared/SharedIndex.ts"
import { sharedIndexOf } from "../src/internal/store/sharedReader.ts"
import {
  assertSameState,
  assertStorageError,
  freshLogPath,
  openLog,
  readState,
  stateOfLog,
  withLogStore
} from "./support/logHarness.ts"

const segmentBytes = 4096
/** A 1,000-byte value: with a 3-byte key, a record of 1,016 bytes, four to a segment. */
const big = "x".repeat(1000)
const key = (i: number) => `k${String(i).padStart(2, "0")}`

/** The limits, and an allocation that throws as V8 does whenever `refuse` says so, counting each. */
interface TestMemory extends SharedMemory {
  refuse: (bytes: number) => boolean
  refused: number
}

const testMemory = (maxSegments: number): TestMemory => {
  const memory: TestMemory = {
    maxSegments,
    maxSegmentBytes: segmentBytes,
    refuse: () => false,
    refused: 0,
    allocate: (bytes) => {
      if (memory.refuse(bytes)) {
        memory.refused++
        throw new RangeError("Array buffer allocation failed")
      }
      return new SharedArrayBuffer(bytes)
    }
  }
  setSharedMemoryForTests(memory)
  return memory
}

/** Refuses the next allocation only. */
const refuseNext = (memory: TestMemory): void => {
  let armed = true
  memory.refuse = () => {
    const now = armed
    armed = false
    return now
  }
}

afterEach(() => setSharedMemoryForTests(undefined))

/**
 * Everything a caller can observe of a store, values made comparable. The
 * log's counts are left out under `acknowledge: "buffered"`, whose writer
 * fiber writes records out whenever it gets a turn.
 */
const observe = (store: KeyValueStore.KeyValueStoreService, logCounts = true) =>
  Effect.gen(function*() {
    const entries = Array.from(yield* Stream.runCollect(store.entries), ([k, v]) => [k, typeof v === "string" ? v : Array.from(v)] as const)
    const stats = yield* store.stats
    return {
      entries,
      size: yield* store.size,
      storedEntries: stats.storedEntries,
      logRecords: logCounts ? stats.log?.records : undefined,
      logBytes: logCounts ? stats.log?.fileBytes : undefined
    }
  })

const indexOf = (store: KeyValueStore.KeyValueStoreService): SharedIndex => sharedIndexOf(store)!

const fill = (store: KeyValueStore.KeyValueStoreService, count: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < count; i++) yield* store.put(key(i), big)
  })

type Body<A, E> = (store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>

/**
 * A memory store and log stores under each writer, all on the shared index.
 * `use` sets the memory (before the store's index is made) and runs `body`;
 * for a log, it then closes the store, replays its log into the heap index
 * (no limits there) and asserts that it holds exactly what the store held at
 * the end of `body`: no refused write reached the log.
 */
const stores: ReadonlyArray<{
  readonly name: string
  readonly logCounts: boolean
  readonly use: <A, E>(memory: () => TestMemory, body: Body<A, E>) => Effect.Effect<A, unknown>
}> = [
  {
    name: "memory",
    logCounts: true,
    use: (memory, body) =>
      Effect.scoped(Effect.suspend(() => {
        memory()
        return Effect.flatMap(KeyValueStore.make({ index: "shared" }), body)
      }))
  },
  ...([["always", "written"], ["never", "written"], ["never", "buffered"]] as const).map(([fsync, acknowledge]) => ({
    name: acknowledge === "buffered" ? "log, acknowledge buffered" : `log, fsync ${fsync}`,
    logCounts: acknowledge !== "buffered",
    use: <A, E>(memory: () => TestMemory, body: Body<A, E>) =>
      Effect.scoped(Effect.gen(function*() {
        const path = yield* freshLogPath("space")
        memory()
        const options = { path, fsync, acknowledge, index: "shared", compaction: { auto: false } } as const
        const [result, final] = yield* withLogStore(options, (store) =>
          Effect.flatMap(body(store), (result) => Effect.map(readState(store), (final) => [result, final] as const)))
        setSharedMemoryForTests(undefined)
        assertSameState(yield* stateOfLog(path, { index: "heap" }), final, "the log replays to what the store held")
        return result
      }))
  }))
]

describe("a write the shared index has no room for", () => {
  for (const { logCounts, name, use } of stores) {
    it.effect(`${name}: a put fails with StorageError naming the full arena; entries, size, stats and the log are as before`, () => {
      let memory: TestMemory
      return use(() => (memory = testMemory(4)), (store) =>
        Effect.gen(function*() {
          // Three segments for writes, four records each.
          yield* fill(store, 12)
          const before = yield* observe(store, logCounts)
          const message = yield* assertStorageError(store.put(key(12), big))
          assert.include(message, `put of "${key(12)}" refused, the store unchanged`)
          assert.include(message, "arena is full: 3 of its 4 segments")
          assert.strictEqual(indexOf(store).activity.refusals, 1)
          assert.deepStrictEqual(yield* observe(store, logCounts), before)
          // A put that fits in the room there is still succeeds: the refusal left nothing behind.
          yield* store.put(key(0), "small")
          assert.strictEqual(yield* store.get(key(0)), "small")
          assert.strictEqual(memory.refused, 0, "no allocation was refused: the arena's limit was")
        }))
    })

    it.effect(`${name}: a put fits once a delete and a compaction made room`, () =>
      use(() => testMemory(4), (store) =>
        Effect.gen(function*() {
          yield* fill(store, 12)
          yield* assertStorageError(store.put(key(12), big))
          for (let i = 0; i < 8; i++) yield* store.delete(key(i))
          const index = indexOf(store)
          yield* store.compact
          assert.strictEqual(index.activity.compactions, 1, "compact compacted the arena")
          yield* store.put(key(12), big)
          assert.strictEqual(index.activity.compactions, 1, "the put found room without compacting")
          assert.deepStrictEqual((yield* store.keys).toSorted(), [8, 9, 10, 11, 12].map(key))
          assert.strictEqual(yield* store.get(key(12)), big)
        })))

    it.effect(`${name}: the system refusing a segment fails the put with StorageError, the store unchanged`, () => {
      let memory: TestMemory
      return use(() => (memory = testMemory(8)), (store) =>
        Effect.gen(function*() {
          yield* fill(store, 4) // one segment, full
          const before = yield* observe(store, logCounts)
          refuseNext(memory)
          const message = yield* assertStorageError(store.put(key(4), big))
          assert.strictEqual(memory.refused, 1, "the fault was injected")
          assert.include(message, `could not get ${segmentBytes} bytes of shared memory for a segment of its arena: Array buffer allocation failed`)
          assert.deepStrictEqual(yield* observe(store, logCounts), before)
        }))
    })

    for (const [what, keys] of [["its table", 6], ["its dense array of entries", 64]] as const) {
      it.effect(`${name}: the system refusing ${what} fails the put of a new key with StorageError, the store unchanged`, () => {
        let memory: TestMemory
        return use(() => (memory = testMemory(8)), (store) =>
          Effect.gen(function*() {
            // The table takes 6 keys before it doubles (8 slots, 3/4 full), the dense array 64.
            for (let i = 0; i < keys; i++) yield* store.put(`s${i}`, "v")
            const before = yield* observe(store, logCounts)
            refuseNext(memory)
            const message = yield* assertStorageError(store.put("new", "v"))
            assert.strictEqual(memory.refused, 1, "the fault was injected")
            assert.include(message, `shared memory for ${what}: Array buffer allocation failed`)
            assert.deepStrictEqual(yield* observe(store, logCounts), before)
          }))
      })
    }

    it.effect(`${name}: clear refused for want of memory fails with StorageError, the store and its log unchanged`, () => {
      let memory: TestMemory
      return use(() => (memory = testMemory(8)), (store) =>
        Effect.gen(function*() {
          yield* fill(store, 3)
          const before = yield* observe(store, logCounts)
          refuseNext(memory)
          const message = yield* assertStorageError(store.clear)
          assert.strictEqual(memory.refused, 1, "the fault was injected")
          assert.include(message, "clear refused, the store unchanged")
          assert.deepStrictEqual(yield* observe(store, logCounts), before)
        }))
    })
  }

  it.effect("a put refused only for want of a compaction compacts first, and is stored", () =>
    Effect.scoped(Effect.gen(function*() {
      testMemory(4)
      const store = yield* KeyValueStore.make({ index: "shared" })
      yield* fill(store, 12)
      for (let i = 0; i < 8; i++) yield* store.delete(key(i))
      const index = indexOf(store)
      assert.strictEqual(index.activity.compactions, 0)
      // The arena is full for writes, and two of its segments are garbage.
      yield* store.put(key(12), big)
      assert.strictEqual(index.activity.compactions, 1, "the put compacted first")
      assert.strictEqual(index.activity.refusals, 0)
      assert.deepStrictEqual((yield* store.keys).toSorted(), [8, 9, 10, 11, 12].map(key))
    })))
})

describe("a compaction of the shared index that cannot get its to-space", () => {
  it.effect("is put off when no segment's live records fit in the free ones: compact fails typed, the data intact", () =>
    Effect.scoped(Effect.gen(function*() {
      testMemory(4)
      const store = yield* KeyValueStore.make({ index: "shared" })
      // Each of the three segments: a small record, then four big ones.
      for (let segment = 0; segment < 3; segment++) {
        yield* store.put(`small${segment}`, "v")
        for (let i = 0; i < 4; i++) yield* store.put(key(4 * segment + i), big)
      }
      for (let segment = 0; segment < 3; segment++) yield* store.delete(`small${segment}`)
      const before = yield* observe(store)
      const index = indexOf(store)
      // Copying any segment's 4,064 live bytes needs more than the one free segment leaves.
      const message = yield* assertStorageError(store.compact)
      assert.include(message, "compacting the index's memory failed, the store unchanged")
      assert.include(message, "1 of its 4 segments are free")
      assert.strictEqual(index.activity.compactionsDeferred, 1)
      assert.isFalse(index.activity.compacting)
      assert.deepStrictEqual(yield* observe(store), before)
    })))

  it.effect("stops short when a to-space segment is refused: compact fails typed, writes go on and finish it", () =>
    Effect.scoped(Effect.gen(function*() {
      const memory = testMemory(8)
      const store = yield* KeyValueStore.make({ index: "shared" })
      yield* fill(store, 8)
      for (let i = 0; i < 8; i += 2) yield* store.delete(key(i))
      const before = yield* observe(store)
      const index = indexOf(store)
      refuseNext(memory)
      const message = yield* assertStorageError(store.compact)
      assert.strictEqual(memory.refused, 1, "the fault was injected")
      assert.include(message, "for a segment of its arena: Array buffer allocation failed")
      assert.strictEqual(index.activity.compactionStalls, 1)
      assert.isTrue(index.activity.compacting, "the compaction waits, under way")
      assert.deepStrictEqual(yield* observe(store), before)
      // The next write succeeds and moves the compaction to its end.
      yield* store.put("after", "v")
      assert.isFalse(index.activity.compacting)
      assert.strictEqual(index.activity.compactions, 1)
      assert.deepStrictEqual((yield* store.keys).toSorted(), [1, 3, 5, 7].map(key).concat("after").toSorted())
      for (const k of [1, 3, 5, 7].map(key)) assert.strictEqual(yield* store.get(k), big)
    })))
})

describe("replay into a shared index that runs out", () => {
  it.effect("fails the open with StorageError naming the full arena", () =>
    Effect.scoped(Effect.gen(function*() {
      const path = yield* freshLogPath("space-replay")
      yield* withLogStore({ path, fsync: "never", index: "heap" }, (store) => fill(store, 13))
      testMemory(4)
      const message = yield* assertStorageError(openLog({ path, index: "shared" }))
      assert.include(message, "into the shared index failed, the log unchanged")
      assert.include(message, "arena is full: 3 of its 4 segments")
      setSharedMemoryForTests(undefined)
      const state = yield* stateOfLog(path, { index: "shared" })
      assert.strictEqual(state.size, 13, "the log is whole")
    })))

  it.effect("fails the open with StorageError when the system refuses a segment", () =>
    Effect.scoped(Effect.gen(function*() {
      const path = yield* freshLogPath("space-replay")
      yield* withLogStore({ path, fsync: "never", index: "heap" }, (store) => fill(store, 6))
      const memory = testMemory(8)
      // The control block, the table, the dense array, then the first segment.
      let allocations = 0
      memory.refuse = () => ++allocations === 4
      const message = yield* assertStorageError(openLog({ path, index: "shared" }))
      assert.strictEqual(memory.refused, 1, "the fault was injected")
      assert.include(message, "for a segment of its arena: Array buffer allocation failed")
    })))
})

describe("rooms made ahead of their writes", () => {
  it("no compaction begins while a room is out: its record would be in from-space, linked after the walk passed it", () => {
    const index = new SharedIndex({ firstSegmentBytes: 4096, minGarbageToCompact: 0 })
    index.set("a", "1".repeat(500), Infinity)
    index.set("b", "1".repeat(500), Infinity)
    // A batch of two overwrites: both rooms first, as the log writer makes them.
    const roomB = index.roomForSet("b", "2".repeat(500), Infinity)
    const roomA = index.roomForSet("a", "2".repeat(500), Infinity)
    assert.isNumber(roomB)
    assert.isNumber(roomA)
    // Half the arena is garbage after this one: a compaction would begin here.
    index.set("b", "2".repeat(500), Infinity, roomB as number)
    assert.isFalse(index.activity.compacting, "no compaction began with a room out")
    index.set("a", "2".repeat(500), Infinity, roomA as number)
    assert.strictEqual(index.activity.roomsOut, 0)
    assert.strictEqual(index.lookup("a", () => 0), "2".repeat(500))
    assert.strictEqual(index.lookup("b", () => 0), "2".repeat(500))
    // The next write begins it, and the data survives it.
    index.set("c", "3", Infinity)
    index.trim()
    assert.isAtLeast(index.activity.compactions, 1)
    assert.strictEqual(index.lookup("a", () => 0), "2".repeat(500))
    assert.strictEqual(index.lookup("b", () => 0), "2".repeat(500))
  })
})
