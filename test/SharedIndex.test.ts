/**
 * The shared index against the heap index, which is its specification: after
 * any sequence of writes, removals, reclaims, clears, reserves and trims both
 * answer every read alike, and a cursor walked while the index changes yields
 * what the heap index's cursor yields through the same changes. The shared
 * index is tuned to squeeze, compact and add segments every few operations,
 * so each run crosses all three.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { EntryCursor, Index } from "../src/internal/index/Index.ts"
import { SharedIndex } from "../src/internal/index/shared/SharedIndex.ts"
import { StoreIndex } from "../src/internal/index/StoreIndex.ts"
import type { Value } from "../src/internal/Value.ts"

type Op =
  | { readonly _tag: "set"; readonly key: string; readonly value: Value; readonly deadline: number }
  | { readonly _tag: "remove"; readonly key: string; readonly now: number }
  | { readonly _tag: "reclaim"; readonly now: number; readonly limit: number }
  | { readonly _tag: "step" }
  | { readonly _tag: "clear" }
  | { readonly _tag: "reserve"; readonly entries: number }
  | { readonly _tag: "trim" }

/** Few distinct keys, so writes overwrite and removals hit; short and long, ASCII and not. */
const keyArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 120 }).map((i) => `k${i}`) },
  { weight: 1, arbitrary: fc.constantFrom("", "é", "😀", "a\u0000b", "x".repeat(70), "ключ-" + "y".repeat(20)) }
)

const valueArb: fc.Arbitrary<Value> = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 30 }),
  fc.integer({ min: 0, max: 300 }).map((n) => "v".repeat(n)),
  fc.uint8Array({ maxLength: 40 }),
  fc.constantFrom("", "ü€😀x", "\u0080\u07ff\u0800\uffff")
)

const deadlineArb = fc.oneof({ weight: 3, arbitrary: fc.constant(Infinity) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 100 }) })

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ _tag: fc.constant("set" as const), key: keyArb, value: valueArb, deadline: deadlineArb }) },
  { weight: 6, arbitrary: fc.record({ _tag: fc.constant("remove" as const), key: keyArb, now: fc.integer({ min: 0, max: 100 }) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("reclaim" as const), now: fc.integer({ min: 0, max: 100 }), limit: fc.integer({ min: 1, max: 20 }) }) },
  { weight: 3, arbitrary: fc.constant({ _tag: "step" as const }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "reserve" as const, entries: 500 }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "trim" as const }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "clear" as const }) }
)

const tuned = () => new SharedIndex({ firstSegmentBytes: 64, minHolesToSqueeze: 2, minGarbageToCompact: 256 })

const same = (actual: Value | undefined, expected: Value | undefined, what: string): void => {
  if (expected instanceof Uint8Array) {
    assert.instanceOf(actual, Uint8Array, what)
    assert.deepStrictEqual(Array.from(actual as Uint8Array), Array.from(expected), what)
  } else {
    assert.strictEqual(actual, expected, what)
  }
}

const step = (cursor: EntryCursor): [string, Value, number] | undefined =>
  cursor.next() ? [cursor.key, cursor.value, cursor.deadline] : undefined

/** Every stored entry in the index's order, values made comparable. */
const entriesOf = (index: Index): Array<readonly [string, string | Array<number>, number]> => {
  const cursor = index.storedCursor()
  const entries: Array<readonly [string, string | Array<number>, number]> = []
  while (cursor.next()) {
    entries.push([cursor.key, typeof cursor.value === "string" ? cursor.value : Array.from(cursor.value), cursor.deadline])
  }
  return entries
}

const apply = (index: Index, op: Op, reclaimed: Array<[string, number]>): unknown => {
  switch (op._tag) {
    case "set":
      return index.set(op.key, op.value, op.deadline)
    case "remove":
      return index.removeLive(op.key, op.now)
    case "reclaim":
      return index.reclaimExpired(op.now, op.limit, (key, deadline) => reclaimed.push([key, deadline]))
    case "clear":
      return index.clear()
    case "reserve":
      return index.reserve(op.entries)
    case "trim":
      return index.trim()
    case "step":
      return undefined
  }
}

const checkReads = (shared: Index, heap: Index, keys: ReadonlyArray<string>, now: number): void => {
  assert.strictEqual(shared.storedSize, heap.storedSize, "storedSize")
  assert.strictEqual(shared.deadlineCount, heap.deadlineCount, "deadlineCount")
  assert.strictEqual(shared.earliestDeadline(), heap.earliestDeadline(), "earliestDeadline")
  assert.strictEqual(shared.liveSize(now), heap.liveSize(now), "liveSize")
  for (const key of keys) {
    same(shared.lookup(key, () => now), heap.lookup(key, () => now), `lookup ${key}`)
    assert.strictEqual(shared.deadlineOf(key, now), heap.deadlineOf(key, now), `deadlineOf ${key}`)
    assert.strictEqual(shared.storedDeadline(key), heap.storedDeadline(key), `storedDeadline ${key}`)
  }
  assert.deepStrictEqual(Array.from(shared.liveKeys(() => now)), Array.from(heap.liveKeys(() => now)), "liveKeys")
}

describe("SharedIndex", () => {
  it("answers every read as the heap index does after any sequence of changes, across squeezes, compactions and new segments", () => {
    let squeezes = 0
    let compactions = 0
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 400, size: "max" }), fc.integer({ min: 0, max: 100 }), (ops, now) => {
        const shared = tuned()
        const heap = new StoreIndex()
        const keys = new Set<string>()
        const sharedReclaimed: Array<[string, number]> = []
        const heapReclaimed: Array<[string, number]> = []
        for (const op of ops) {
          if ("key" in op) keys.add(op.key)
          assert.strictEqual(apply(shared, op, sharedReclaimed), apply(heap, op, heapReclaimed), op._tag)
        }
        assert.deepStrictEqual(sharedReclaimed, heapReclaimed, "reclaimed entries")
        checkReads(shared, heap, Array.from(keys), now)
        squeezes += shared.activity.squeezes
        compactions += shared.activity.compactions
      }),
      { numRuns: 300 }
    )
    // The tuning is there to cross these paths: a run that never did proves little.
    assert.isAbove(squeezes, 20)
    assert.isAbove(compactions, 20)
  })

  it("a cursor walked while the index changes yields what the heap index's cursor yields", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300, size: "max" }), fc.array(opArb, { maxLength: 300 }), (before, during) => {
        const shared = tuned()
        const heap = new StoreIndex()
        const ignored: Array<[string, number]> = []
        for (const op of before) apply(shared, op, ignored), apply(heap, op, ignored)
        const sharedCursor = shared.storedCursor()
        const heapCursor = heap.storedCursor()
        for (const op of during) {
          if (op._tag === "step") {
            const expected = step(heapCursor)
            const actual = step(sharedCursor)
            assert.strictEqual(actual?.[0], expected?.[0])
            same(actual?.[1], expected?.[1], "cursor value")
            assert.strictEqual(actual?.[2], expected?.[2])
          } else {
            apply(shared, op, ignored)
            apply(heap, op, ignored)
          }
        }
        for (let expected = step(heapCursor); expected !== undefined; expected = step(heapCursor)) {
          const actual = step(sharedCursor)
          assert.strictEqual(actual?.[0], expected[0])
          same(actual?.[1], expected[1], "cursor value")
          assert.strictEqual(actual?.[2], expected[2], "cursor deadline")
        }
        assert.isUndefined(step(sharedCursor))
      }),
      { numRuns: 300 }
    )
  })

  it("a squeeze that moves a key from past the deadline maps onto a place a TTL key left keeps no stale deadline for it", () => {
    // The maps from entries to the deadline heap are sized when the first key
    // with a TTL arrives and grow only for later ones: entries added after
    // that, without TTL, lie past their end. A squeeze that moved such an
    // entry down onto a place whose TTL key had itself moved down left that
    // key's heap slot there, so the moved key seemed to own it: removing it
    // took the TTL key's deadline out of the heap, and removing the TTL key
    // then removed a free heap slot (an endless loop in the heap).
    const index = new SharedIndex({ minHolesToSqueeze: 2 })
    const contents = () => (index as unknown as { contents: { entries: Uint32Array; heapSlotOf: Int32Array } }).contents
    index.set("a", "a", Infinity) // entry 0, removed below
    index.set("t", "t", 1_000) // entry 1, the one key with a TTL
    const mapped = contents().heapSlotOf.length
    const fillers = Array.from({ length: mapped - 2 }, (_, i) => `f${i}`) // entries 2 .. mapped - 1
    for (const key of fillers) index.set(key, key, Infinity)
    // Past the maps' end: as many as the squeeze that removes a and the fillers needs.
    const late = Array.from({ length: mapped - 2 }, (_, i) => `g${i}`)
    for (const key of late) index.set(key, key, Infinity)
    assert.isAbove(contents().entries.length, mapped, "entries grew past the deadline maps")
    assert.strictEqual(contents().heapSlotOf.length, mapped, "the maps did not grow with them")

    const squeezesBefore = index.activity.squeezes
    index.removeLive("a", 0)
    for (const key of fillers) index.removeLive(key, 0)
    assert.strictEqual(index.activity.squeezes, squeezesBefore + 1, "the removals squeezed the dense array once")

    // g0 now sits where t was: removing it must leave t's deadline alone.
    assert.isTrue(index.removeLive("g0", 0))
    assert.strictEqual(index.deadlineCount, 1, "t keeps its deadline")
    assert.strictEqual(index.earliestDeadline(), 1_000)
    const reclaimed: Array<string> = []
    assert.strictEqual(index.reclaimExpired(1_000, 10, (key) => reclaimed.push(key)), 1)
    assert.deepStrictEqual(reclaimed, ["t"])
    assert.strictEqual(index.lookup("t", () => 0), undefined)
    for (const key of late.slice(1)) assert.strictEqual(index.lookup(key, () => 0), key)
  })

  it("a cursor begun before clear goes on over the old contents", () => {
    const index = tuned()
    for (let i = 0; i < 10; i++) index.set(`k${i}`, `v${i}`, Infinity)
    const cursor = index.storedCursor()
    assert.isTrue(cursor.next())
    index.clear()
    index.set("new", "entry", Infinity)
    const seen = [cursor.key]
    while (cursor.next()) seen.push(cursor.key)
    assert.deepStrictEqual(seen, Array.from({ length: 10 }, (_, i) => `k${i}`))
  })

  it("compaction gives the arena's space back: a million overwrites of 1,000 keys end in the memory of 1,000 entries", () => {
    const index = new SharedIndex()
    for (let round = 0; round < 1000; round++) {
      for (let i = 0; i < 1000; i++) index.set(`key${i}`, `value ${round} of ${i}`, Infinity)
    }
    index.trim()
    assert.strictEqual(index.lookup("key999", () => 0), "value 999 of 999")
    assert.isAbove(index.activity.compactions, 10)
    assert.isBelow(index.sharedBytes, 256 * 1024)
  })
  it("writes told of their keys ahead, as replay tells them, take the noted hashes and end as untold writes end", () => {
    const encoder = new TextEncoder()
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: keyArb, value: fc.string({ maxLength: 12 }), remove: fc.boolean() }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 80 }),
        (writes, group) => {
          // Every key and value in one buffer, as a replay chunk holds its records.
          const parts = writes.flatMap(({ key, value }) => [encoder.encode(key), encoder.encode(value)])
          const buffer = new Uint8Array(parts.reduce((total, part) => total + part.length, 0))
          const at: Array<number> = []
          let offset = 0
          for (const part of parts) {
            at.push(offset)
            buffer.set(part, offset)
            offset += part.length
          }
          const told = tuned()
          const untold = tuned()
          const apply = (index: SharedIndex, i: number) => {
            const key = parts[2 * i]!
            if (writes[i]!.remove) {
              index.removeLiveBytes(buffer, at[2 * i]!, key.length, 0)
            } else {
              index.setBytes(buffer, at[2 * i]!, key.length, at[2 * i + 1]!, parts[2 * i + 1]!.length, false, Infinity)
            }
          }
          for (let first = 0; first < writes.length; first += group) {
            const end = Math.min(writes.length, first + group)
            for (let i = first; i < end; i++) told.lookAheadBytes(buffer, at[2 * i]!, parts[2 * i]!.length)
            for (let i = first; i < end; i++) apply(told, i)
          }
          for (let i = 0; i < writes.length; i++) apply(untold, i)
          // At most 64 notes are kept: a longer group's writes past them hash their own keys.
          let expectedNoted = 0
          for (let first = 0; first < writes.length; first += group) expectedNoted += Math.min(64, group, writes.length - first)
          assert.strictEqual(told.activity.hashesNoted, expectedNoted)
          assert.strictEqual(untold.activity.hashesNoted, 0)
          assert.deepStrictEqual(entriesOf(told), entriesOf(untold))
          for (const { key } of writes) same(told.lookup(key, () => 0), untold.lookup(key, () => 0), key)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("a write that is not of the key noted next drops the notes instead of trusting them", () => {
    const index = new SharedIndex()
    const buffer = new TextEncoder().encode("aaaabbbbvalue")
    index.lookAheadBytes(buffer, 0, 4)
    index.lookAheadBytes(buffer, 4, 4)
    // Told "aaaa" then "bbbb", given "bbbb" first: its hash is its own.
    index.setBytes(buffer, 4, 4, 8, 5, false, Infinity)
    index.setBytes(buffer, 0, 4, 8, 5, false, Infinity)
    assert.strictEqual(index.activity.hashesNoted, 0)
    // The same offsets in another buffer are another key.
    const other = new TextEncoder().encode("ccccdddd")
    index.lookAheadBytes(buffer, 0, 4)
    index.setBytes(other, 0, 4, 4, 4, false, Infinity)
    assert.strictEqual(index.activity.hashesNoted, 0)
    assert.strictEqual(index.lookup("aaaa", () => 0), "value")
    assert.strictEqual(index.lookup("bbbb", () => 0), "value")
    assert.strictEqual(index.lookup("cccc", () => 0), "dddd")
    assert.strictEqual(index.storedSize, 3)
  })
})
