/**
 * The index's hash table against a V8 `Map`, which is its specification:
 * after any sequence of sets and deletes both hold the same entries in the
 * same (insertion) order, and a cursor walked while the table changes yields
 * exactly what a `Map` iterator walked through the same changes yields, also
 * across the squeezes that move entries under it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { hashKey, KeyTable, type KeyTableCursor } from "../src/internal/index/KeyTable.ts"

type Op =
  | { readonly _tag: "set"; readonly key: string; readonly value: number }
  | { readonly _tag: "delete"; readonly key: string }
  | { readonly _tag: "step" }
  | { readonly _tag: "reserve"; readonly entries: number }
  | { readonly _tag: "trim" }

/** Few distinct keys, so sets overwrite and deletes hit; short and long, ASCII and not. */
const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 150 }).map((i) => `k${i}`),
  fc.constantFrom("", "é", "😀", "a\u0000b", "x".repeat(70), "x".repeat(71))
)

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ _tag: fc.constant("set" as const), key: keyArb, value: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("delete" as const), key: keyArb }) },
  { weight: 2, arbitrary: fc.constant({ _tag: "step" as const }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("reserve" as const), entries: fc.nat(2000) }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "trim" as const }) }
)

/** Applies the ops that change nothing a caller can see: cursor steps are the test's business. */
const applyHidden = (table: KeyTable<number>, op: Op): void => {
  if (op._tag === "reserve") table.reserve(op.entries)
  else if (op._tag === "trim") table.trim()
}

const contents = <V>(table: KeyTable<V>): Array<[string, V]> => {
  const out: Array<[string, V]> = []
  const cursor = table.cursor()
  for (let at = cursor.next(); at >= 0; at = cursor.next()) out.push([cursor.key(at), cursor.value(at)])
  return out
}

/** One cursor step, or `undefined` at the end. */
const stepCursor = <V>(cursor: KeyTableCursor<V>): [string, V] | undefined => {
  const at = cursor.next()
  return at < 0 ? undefined : [cursor.key(at), cursor.value(at)]
}

const stepIterator = <V>(iterator: Iterator<[string, V]>): [string, V] | undefined => {
  const next = iterator.next()
  return next.done === true ? undefined : next.value
}

describe("KeyTable", () => {
  it("after any sets, deletes, reserves and trims it holds exactly a Map's entries, in the Map's order", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 600, size: "max" }), (ops) => {
        const table = new KeyTable<number>()
        const map = new Map<string, number>()
        for (const op of ops) {
          if (op._tag === "set") {
            table.set(op.key, op.value)
            map.set(op.key, op.value)
          } else if (op._tag === "delete") {
            assert.strictEqual(table.delete(op.key), map.get(op.key))
            map.delete(op.key)
          } else {
            applyHidden(table, op)
          }
          assert.strictEqual(table.size, map.size)
        }
        assert.deepStrictEqual(contents(table), [...map])
        for (const key of ["", "k0", "k1", "k150", "é", "😀", "x".repeat(70), "absent"]) {
          assert.strictEqual(table.get(key), map.get(key))
          assert.strictEqual(table.has(key), map.has(key))
        }
      }),
      { numRuns: 300 }
    )
  })

  it("a cursor walked while the table changes yields what a Map iterator yields, across squeezes", () => {
    let squeezedUnderCursor = 0
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 150 }), { maxLength: 150, size: "max" }),
        fc.array(opArb, { minLength: 1, maxLength: 800, size: "max" }),
        (initial, ops) => {
          const table = new KeyTable<number>(4)
          const map = new Map<string, number>()
          for (const i of initial) {
            table.set(`k${i}`, i)
            map.set(`k${i}`, i)
          }
          const cursor = table.cursor()
          const iterator = map[Symbol.iterator]()
          let squeezed = false
          let ended = false
          for (const op of ops) {
            if (op._tag === "set") {
              table.set(op.key, op.value)
              map.set(op.key, op.value)
            } else if (op._tag === "delete") {
              const squeezes = table.squeezes
              table.delete(op.key)
              map.delete(op.key)
              if (!ended && table.squeezes > squeezes) squeezed = true
            } else if (op._tag !== "step") {
              applyHidden(table, op)
            } else if (!ended) {
              const expected = stepIterator(iterator)
              assert.deepStrictEqual(stepCursor(cursor), expected)
              ended = expected === undefined
            }
          }
          if (squeezed) squeezedUnderCursor++
          // Walk both to the end.
          while (!ended) {
            const expected = stepIterator(iterator)
            assert.deepStrictEqual(stepCursor(cursor), expected)
            ended = expected === undefined
          }
        }
      ),
      { numRuns: 400 }
    )
    // The property above is only as strong as the squeezes it went through.
    assert.isAbove(squeezedUnderCursor, 20)
  })

  it("a cursor begun before several squeezes still finds its place", () => {
    const table = new KeyTable<number>(8)
    const map = new Map<string, number>()
    for (let i = 0; i < 1000; i++) {
      table.set(`k${i}`, i)
      map.set(`k${i}`, i)
    }
    const cursor = table.cursor()
    const iterator = map[Symbol.iterator]()
    for (let i = 0; i < 10; i++) assert.deepStrictEqual(stepCursor(cursor), stepIterator(iterator))
    // Delete most entries on both sides of the cursor, in three rounds, each
    // ending in a squeeze.
    for (const round of [4, 16, 64]) {
      for (let i = 0; i < 1000; i++) {
        if (i % round !== 0) {
          table.delete(`k${i}`)
          map.delete(`k${i}`)
        }
      }
      table.set(`new${round}`, round)
      map.set(`new${round}`, round)
    }
    assert.isAtLeast(table.squeezes, 3)
    for (;;) {
      const expected = stepIterator(iterator)
      assert.deepStrictEqual(stepCursor(cursor), expected)
      if (expected === undefined) break
    }
  })

  it("a million keys go in, are all found, and all come out again", () => {
    const table = new KeyTable<number>()
    const n = 1_000_000
    for (let i = 0; i < n; i++) table.set(`key${i}`, i)
    assert.strictEqual(table.size, n)
    let found = 0
    for (let i = 0; i < n; i++) if (table.get(`key${i}`) === i) found++
    assert.strictEqual(found, n)
    assert.isUndefined(table.get(`key${n}`))
    for (let i = 0; i < n; i++) table.delete(`key${i}`)
    assert.strictEqual(table.size, 0)
    assert.deepStrictEqual(contents(table), [])
    table.set("again", 1)
    assert.deepStrictEqual(contents(table), [["again", 1]])
  })
})

describe("hashKey", () => {
  it("is a function of the key's code units", () => {
    for (const key of ["", "a", "ab", "key12345", "é😀", "x".repeat(16384)]) {
      assert.strictEqual(hashKey(key), hashKey(key.split("").join("")))
    }
  })

  it("spreads similar keys over the 32 bits (no two of 100k sequential keys share a hash's low 16 bits more than chance allows)", () => {
    const buckets = new Uint32Array(1 << 16)
    const n = 100_000
    for (let i = 0; i < n; i++) buckets[hashKey(`key${i}`) & 0xffff]++
    // Poisson with mean 1.53: a bucket of 16 has probability ~1e-11.
    let largest = 0
    for (const count of buckets) largest = Math.max(largest, count)
    assert.isBelow(largest, 16)
  })

  it("tells apart keys that differ only in length or in one code unit", () => {
    const seen = new Set<number>()
    for (const key of ["", "\u0000", "\u0000\u0000", "a", "b", "ab", "ba", "abc", "abd", "é", "e\u0301"]) {
      seen.add(hashKey(key))
    }
    assert.strictEqual(seen.size, 11)
  })
})
