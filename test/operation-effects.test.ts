/**
 * `get` and `put` are effects of their own kind (one object per call, see
 * `src/internal/store/Operation.ts`), and still effects: the work happens
 * when the effect runs, and again each time it runs, never when it is built;
 * failures are typed, and the effects compose like any other.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { KeyValueStore } from "../src/index.ts"
import { assertKeyNotFound } from "./support/StoreAssertions.ts"

const withStore = <A, E>(test: (store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    return yield* test(yield* KeyValueStore.KeyValueStore)
  }).pipe(Effect.provide(KeyValueStore.layerMemory))

describe("get and put do their work when they run, each time they run", () => {
  it.effect("a get built before a put reads the value the put stored, once it runs after it", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const read = store.get("k")
        yield* assertKeyNotFound(read, "k")
        yield* store.put("k", "1")
        assert.strictEqual(yield* read, "1")
        yield* store.put("k", "2")
        assert.strictEqual(yield* read, "2")
      })))

  it.effect("a put built and never run stores nothing; run twice, it stores twice", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const write = store.put("k", "v", { duration: 1_000 })
        yield* assertKeyNotFound(store.get("k"), "k")
        yield* write
        yield* store.delete("k")
        yield* write
        assert.strictEqual(yield* store.get("k"), "v")
      })))

  it.effect("they compose like any effect: mapped, zipped, and their typed failures caught", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("a", "1")
        const both = yield* Effect.all([store.get("a"), Effect.map(store.get("a"), (value) => `${value}!`)])
        assert.deepStrictEqual(both, ["1", "1!"])
        const missing = yield* Effect.exit(store.get("missing"))
        assert.isTrue(Exit.isFailure(missing))
        const recovered = yield* Effect.catchTag(store.get("missing"), "KeyNotFound", () => Effect.succeed("default"))
        assert.strictEqual(recovered, "default")
        const refused = yield* Effect.flip(store.put("bad\ud800", "v"))
        assert.strictEqual(refused._tag, "InvalidInput")
      })))
})
