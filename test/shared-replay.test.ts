/**
 * Replay into the shared index takes each record as bytes (no string per
 * record): a log replays to the same contents whichever index wrote it and
 * whichever reads it back — strings of every UTF-8 length, bytes, empty keys
 * and values, overwrites, deletes, TTLs live and run out (each key's time
 * to live compared to the millisecond), TTLs set then cleared by a plain
 * put, and enough overwrites that the arena compacts during replay.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { sharedIndexOf } from "../src/internal/store/sharedReader.ts"
import { freshLogPath, withLogStore } from "./support/logHarness.ts"

type Kind = "heap" | "shared"

/** Every entry with its time to live in milliseconds (`null` for none), in the stream's order. */
const contents = (store: KeyValueStore.KeyValueStoreService) =>
  Effect.flatMap(Stream.runCollect(store.entries), (entries) =>
    Effect.forEach(entries, ([key, value]) =>
      Effect.map(store.timeToLive(key), (ttl) =>
        [
          key,
          typeof value === "string" ? value : Array.from(value),
          Option.match(ttl, { onNone: () => null, onSome: Duration.toMillis })
        ] as const)))

const write = (store: KeyValueStore.KeyValueStoreService) =>
  Effect.gen(function*() {
    yield* store.put("", "empty key")
    yield* store.put("empty value", "")
    yield* store.put("ü€😀", "ключ 😀 значение")
    yield* store.put("bytes", new Uint8Array([0, 128, 255]))
    yield* store.put("long", "x".repeat(5_000))
    yield* store.put("ttl live", "v", { duration: "1 hour" })
    yield* store.put("ttl out", "v", { duration: "1 second" })
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 1_000; i++) {
        // Every 7th key takes a TTL of its own in even rounds and loses it in
        // odd ones; in the last round every 5th key takes one (some both).
        const ttl = (i % 7 === 0 && round % 2 === 0) || (round === 29 && i % 5 === 0)
        yield* ttl
          ? store.put(`k${i}`, `round ${round} of ${i}`, { duration: 60_000 + i * 1_000 + round })
          : store.put(`k${i}`, `round ${round} of ${i}`)
      }
    }
    for (let i = 0; i < 1_000; i += 3) yield* store.delete(`k${i}`)
  })

/** How many entries of `contents` have a time to live. */
const withTtl = (entries: ReadonlyArray<readonly [string, unknown, number | null]>) =>
  entries.filter(([, , ttl]) => ttl !== null).length

describe("replay gives the same contents whichever index wrote the log and whichever reads it", () => {
  for (const writer of ["heap", "shared"] as const) {
    for (const reader of ["heap", "shared"] as const) {
      it.effect(`written on the ${writer} index, replayed into the ${reader} index`, () =>
        Effect.gen(function*() {
          yield* TestClock.adjust(1_000_000)
          const path = yield* freshLogPath("shared-replay")
          const written = yield* withLogStore({ path, fsync: "never", index: writer as Kind }, (store) =>
            Effect.flatMap(write(store), () => contents(store)))
          yield* TestClock.adjust(2_000)
          const replayed = yield* withLogStore({ path, fsync: "never", index: reader as Kind }, contents)
          // Two seconds passed while closed: every remaining TTL is that much shorter.
          const expected = written
            .filter(([key]) => key !== "ttl out")
            .map(([key, value, ttl]) => [key, value, ttl === null ? null : ttl - 2_000] as const)
          assert.deepStrictEqual(replayed, expected)
          assert.strictEqual(replayed.length, 6 + 1_000 - 334)
          // "ttl live" and the k-keys of the last round with i % 5 === 0 that were not deleted.
          assert.strictEqual(withTtl(replayed), 1 + 200 - 67)
        }))
    }
  }
})

describe("replay into the shared index looks ahead", () => {
  it.effect("every record's key is hashed once, before the group it is in is applied", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(1_000_000)
      const path = yield* freshLogPath("shared-replay-ahead")
      yield* withLogStore({ path, fsync: "never" }, write)
      yield* TestClock.adjust(2_000)
      const noted = yield* withLogStore({ path, fsync: "never", index: "shared" }, (store) =>
        Effect.sync(() => sharedIndexOf(store)!.activity.hashesNoted))
      // 7 puts, 30 rounds of 1,000, 334 deletes: the put whose TTL ran out
      // and the deletes take their hash from a note as the puts do.
      assert.strictEqual(noted, 7 + 30_000 + 334)
    }))
})
