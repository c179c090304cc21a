/**
 * Why the index is a `KeyTable` and not a `Map`: both in one process, on the
 * same keys (`key${i}` → `value${i}`), each round into an empty table.
 *
 * - insert: every key fresh, in key order (what replay does);
 * - get: one seeded random order, through other string objects with the same
 *   contents (what a caller's `get` passes in), so no lookup reuses a string
 *   whose hash V8 has already cached from an insert;
 * - delete: every key, in a scattered order (what the reaper does as keys
 *   expire), with the longest single delete beside the mean: the table
 *   squeezes its holes out in one step, a stall for everyone.
 *
 *   npm run bench:table                 # 1M and 10M keys, 5 rounds
 *   npm run bench:table -- 100000 9     # keys, rounds
 */
import { KeyTable } from "../src/internal/index/KeyTable.ts"
import { makeKeys, makeValues, randomReadOrder } from "./dataset.ts"
import { median } from "./stats.ts"

const sizes = process.argv[2] === undefined ? [1_000_000, 10_000_000] : [Number(process.argv[2])]
const rounds = Number(process.argv[3] ?? 5)


/** A flat copy of `s`, a string object of its own. */
const copyOf = (s: string) => Buffer.from(s, "latin1").toString("latin1")

interface Table {
  set(key: string, value: string): unknown
  get(key: string): string | undefined
  delete(key: string): unknown
}

const subjects: ReadonlyArray<readonly [string, () => Table]> = [
  ["Map", () => new Map<string, string>()],
  ["KeyTable", () => new KeyTable<string>()]
]

console.log(`Node ${process.version}, median of ${rounds} rounds, µs per operation`)
console.log("| keys | operation | Map | KeyTable | KeyTable ÷ Map |")
console.log("|---:|---|---:|---:|---:|")
for (const size of sizes) {
  const keys = makeKeys(0, size)
  const values = makeValues(0, size, "short")
  const probes = Array.from(randomReadOrder(size, Math.min(size, 1_000_000)), (i) => copyOf(keys[i]!))
  const insert = new Map<string, Array<number>>()
  const get = new Map<string, Array<number>>()
  const remove = new Map<string, Array<number>>()
  const worstRemove = new Map<string, Array<number>>()
  let checksum = 0
  for (let round = 0; round < rounds; round++) {
    for (const [name, make] of subjects) {
      const table = make()
      let started = performance.now()
      for (let i = 0; i < size; i++) table.set(keys[i], values[i])
      const insertMicros = ((performance.now() - started) * 1000) / size
      started = performance.now()
      for (let i = 0; i < probes.length; i++) checksum += table.get(probes[i])!.length
      const getMicros = ((performance.now() - started) * 1000) / probes.length
      started = performance.now()
      let worst = 0
      for (let j = 0; j < size; j++) {
        const one = performance.now()
        table.delete(keys[(j * 7_919) % size]!)
        worst = Math.max(worst, performance.now() - one)
      }
      const removeMicros = ((performance.now() - started) * 1000) / size
      insert.set(name, [...(insert.get(name) ?? []), insertMicros])
      get.set(name, [...(get.get(name) ?? []), getMicros])
      remove.set(name, [...(remove.get(name) ?? []), removeMicros])
      worstRemove.set(name, [...(worstRemove.get(name) ?? []), worst])
    }
  }
  for (
    const [operation, times] of [
      ["insert (fresh keys)", insert],
      ["get (random order)", get],
      ["delete (every key)", remove],
      ["longest single delete, ms", worstRemove]
    ] as const
  ) {
    const map = median(times.get("Map")!)
    const table = median(times.get("KeyTable")!)
    console.log(`| ${size.toLocaleString("en-US")} | ${operation} | ${map.toFixed(3)} | ${table.toFixed(3)} | ${(table / map).toFixed(2)}× |`)
  }
  if (checksum === 0) throw new Error("nothing was read")
}
