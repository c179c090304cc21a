/**
 * Replay into the shared index takes each record as bytes (no string per
 * record): a log replays to the same contents whichever index wrote it and
 * whichever reads it back — strings of every UTF-8 length, bytes, empty keys
 * and values, overwrites, deletes, TTLs live and run out, and enough
 * overwrites that the arena compacts during replay.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as KeyValueStore from "../src/KeyValueStore.ts"
import { sharedIndexOf } from "../src/internal/store/sharedReader.ts"
import { freshLogPath, withLogStore } from "./support/logHarness.ts"

type Kind = "heap" | "shared"

const contents = (store: KeyValueStore.KeyValueStoreService) =>
  Effect.map(Stream.runCollect(store.entries), (entries) =>
    Array.from(entries, ([key, value]) => [key, typeof value === "string" ? value : Array.from(value)] as const))

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
      for (let i = 0; i < 1_000; i++) yield* store.put(`k${i}`, `round ${round} of ${i}`)
    }
    for (let i = 0; i < 1_000; i += 3) yield* store.delete(`k${i}`)
  })

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
          const expected = written.filter(([key]) => key !== "ttl out")
          assert.deepStrictEqual(replayed, expected)
          assert.strictEqual(replayed.length, 6 + 1_000 - 334)
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
