/**
 * Effect's `KeyValueStore` (`effect/persistence/KeyValueStore`) on kvlog,
 * on an in-memory store and on a log: every clause of Effect's own suite for
 * that module, written anew; then what the clauses leave open: each value
 * keeps its type (strings that look like base64, empty string against empty
 * bytes, unicode, across a reopen of the log), kvlog's errors as Effect's
 * `KeyValueStoreError`, and the derived operations.
 *
 * Checked against effect 4.1.0 (node_modules/effect/src/persistence/KeyValueStore.ts)
 * and Effect's suite for it in the Effect-TS/effect repository:
 * - packages/effect/test/persistence/KeyValueStore.test.ts at commit
 *   8e960bab9764c04f52715d8e2e5d37233575fa22;
 * - packages/effect/test/persistence/KeyValueStoreTest.ts (the shared suite)
 *   at commit 40f2af98f402218e5aded58a1a42546f6b066979.
 * docs/persistence.md maps each of their clauses to a test here.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Base64 from "effect/encoding/Base64"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as EffectKeyValueStore from "effect/persistence/KeyValueStore"
import * as EffectPersistence from "effect/persistence/Persistence"
import * as Schema from "effect/Schema"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { KeyValueStore } from "../src/index.ts"
import * as Persistence from "../src/Persistence.ts"
import { makeFaultyFileOps, ioFailure } from "./support/logHarness.ts"
import {
  type Backend,
  backends,
  freshPersistenceLogPath,
  failureOf,
  openPersistenceLog,
  withKvlogStore
} from "./support/persistenceStores.ts"

type Kvs = EffectKeyValueStore.KeyValueStore

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** The bytes of `value` as plain numbers, so that a mismatch prints readably; fails unless it is a `Uint8Array`. */
const bytesOf = (value: unknown): Array<number> => {
  assert.instanceOf(value, Uint8Array)
  return Array.from(value as Uint8Array)
}

/** The `KeyValueStoreError` `effect` fails with; fails the test if it succeeds or fails otherwise. */
const kvsError = <A, E, R>(effect: Effect.Effect<A, E, R>) => failureOf(effect, EffectKeyValueStore.KeyValueStoreError)

/**
 * Runs `test` with Effect's `KeyValueStore` built by `layerKeyValueStore` on a
 * fresh kvlog store of kind `backend`, and that kvlog store beside it.
 */
const withKvs = <A, E>(
  backend: Backend,
  test: (kv: Kvs, store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>
) =>
  withKvlogStore(backend, ({ store }) =>
    Effect.gen(function*() {
      return yield* test(yield* EffectKeyValueStore.KeyValueStore, store)
    }).pipe(
      Effect.provide(Layer.provide(Persistence.layerKeyValueStore, Layer.succeed(KeyValueStore.KeyValueStore, store)))
    ))

describe.each(backends)("Effect's KeyValueStore on kvlog (%s)", (backend) => {
  // ===========================================================================
  // The clauses of Effect's suite
  // ===========================================================================

  describe("Effect's contract", () => {
    it.effect("set then get gives the string back, and size counts the key once", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("/foo/bar", "bar")
          assert.strictEqual(yield* kv.get("/foo/bar"), "bar")
          assert.strictEqual(yield* kv.size, 1)
        })
      ))

    it.effect("set over an existing key replaces its value and size stays 1", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("key", "value")
          yield* kv.set("key", "value-2")
          assert.strictEqual(yield* kv.get("key"), "value-2")
          assert.strictEqual(yield* kv.size, 1)
        })
      ))

    it.effect("get of a key never set succeeds with undefined", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("other", "x")
          assert.strictEqual(yield* kv.get("foo"), undefined)
          assert.strictEqual(yield* kv.getUint8Array("foo"), undefined)
        })
      ))

    it.effect("remove deletes the key: get gives undefined and size 0", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("foo", "bar")
          yield* kv.remove("foo")
          assert.strictEqual(yield* kv.get("foo"), undefined)
          assert.strictEqual(yield* kv.size, 0)
        })
      ))

    it.effect("clear removes every key", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("a", "1")
          yield* kv.set("b", "2")
          yield* kv.clear
          assert.strictEqual(yield* kv.size, 0)
          assert.strictEqual(yield* kv.get("a"), undefined)
          assert.strictEqual(yield* kv.get("b"), undefined)
        })
      ))

    it.effect("modify stores f of the value and returns it; size stays 1", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("foo", "bar")
          assert.strictEqual(yield* kv.modify("foo", (v) => v + "bar"), "barbar")
          assert.strictEqual(yield* kv.get("foo"), "barbar")
          assert.strictEqual(yield* kv.size, 1)
        })
      ))

    it.effect("modify of an absent key returns undefined, never calls f and stores nothing", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          let calls = 0
          const result = yield* kv.modify("foo", (v) => {
            calls++
            return v + "bar"
          })
          assert.strictEqual(result, undefined)
          assert.strictEqual(calls, 0)
          assert.strictEqual(yield* kv.size, 0)
        })
      ))

    it.effect("bytes come back from getUint8Array as the same bytes and from get as their base64", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const bytes = new Uint8Array([0, 42, 255, 128])
          yield* kv.set("binary", bytes)
          assert.strictEqual(yield* kv.get("binary"), Base64.encode(bytes))
          assert.strictEqual(yield* kv.get("binary"), "ACr/gA==")
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("binary")), [0, 42, 255, 128])
        })
      ))

    it.effect("a string that is valid base64 comes back from get as itself and from getUint8Array as its UTF-8", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("string", "Zm9v")
          assert.strictEqual(yield* kv.get("string"), "Zm9v")
          // "Zm9v" decoded as base64 would be "foo": the string's own bytes come back instead.
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("string")), Array.from(utf8("Zm9v")))
        })
      ))

    it.effect("a UTF-8 string with accents and an emoji comes back whole, and as its UTF-8 bytes", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const value = "héllo 👋"
          yield* kv.set("utf8", value)
          assert.strictEqual(yield* kv.get("utf8"), value)
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("utf8")), Array.from(utf8(value)))
        })
      ))

    it.effect("through KeyValueStore.prefix, set, modify, get and has use the prefixed key of the store below", () =>
      withKvs(backend, (kv, store) =>
        Effect.gen(function*() {
          const prefixed = EffectKeyValueStore.prefix(kv, "prefix/")
          yield* prefixed.set("foo", "bar")
          yield* prefixed.modify("foo", (v) => v + "bar")
          assert.strictEqual(yield* prefixed.get("foo"), "barbar")
          assert.isTrue(yield* prefixed.has("foo"))
          assert.strictEqual(yield* kv.get("prefix/foo"), "barbar")
          assert.isTrue(yield* kv.has("prefix/foo"))
          assert.deepStrictEqual(yield* store.keys, ["prefix/foo"], "kvlog holds the prefixed key, and only it")
        })
      ))

    describe("toSchemaStore", () => {
      class User extends Schema.Class<User>("User")({ name: Schema.String, age: Schema.Number }) {}

      it.effect("a Schema.Class value is stored as JSON, modified and decoded back", () =>
        withKvs(backend, (kv, store) =>
          Effect.gen(function*() {
            const users = EffectKeyValueStore.toSchemaStore(kv, User)
            yield* users.set("foo", new User({ name: "foo", age: 42 }))
            assert.deepStrictEqual(JSON.parse((yield* store.get("foo")) as string), { name: "foo", age: 42 })
            yield* users.modify("foo", (user) => new User({ ...user, age: 43 }))
            const value = yield* users.get("foo")
            assert.isTrue(Option.isSome(value))
            const user = Option.getOrThrow(value)
            assert.instanceOf(user, User)
            assert.strictEqual(user.name, "foo")
            assert.strictEqual(user.age, 43)
          })
        ))

      it.effect("a key with a slash in it stores and reads back", () =>
        withKvs(backend, (kv) =>
          Effect.gen(function*() {
            const users = EffectKeyValueStore.toSchemaStore(kv, User)
            yield* users.set("prefix/foo", new User({ name: "foo", age: 42 }))
            const user = Option.getOrThrow(yield* users.get("prefix/foo"))
            assert.strictEqual(user.name, "foo")
            assert.strictEqual(user.age, 42)
          })
        ))

      it.effect("a Date goes through its JSON form and comes back as the same Date", () =>
        withKvs(backend, (kv) =>
          Effect.gen(function*() {
            const dated = EffectKeyValueStore.toSchemaStore(kv, Schema.Struct({ a: Schema.Date }))
            yield* dated.set("foo", { a: new Date(0) })
            assert.strictEqual(yield* kv.get("foo"), JSON.stringify({ a: "1970-01-01T00:00:00.000Z" }))
            const value = Option.getOrThrow(yield* dated.get("foo"))
            assert.deepStrictEqual(value.a, new Date(0))
          })
        ))
    })

    it.effect("Persistence.layerBackingKvs on it: setMany of an entry without a TTL is read back", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const backing = yield* EffectPersistence.BackingPersistence
          const persisted = yield* backing.make("store")
          yield* persisted.setMany([["key", { value: 1 }, undefined]])
          assert.deepStrictEqual(yield* persisted.get("key"), { value: 1 })
        }).pipe(
          Effect.scoped,
          Effect.provide(EffectPersistence.layerBackingKvs),
          Effect.provideService(EffectKeyValueStore.KeyValueStore, kv)
        )
      ))
  })

  // ===========================================================================
  // Each value keeps its type
  // ===========================================================================

  describe("each value keeps its type", () => {
    it.effect("an empty string is present, and is an empty string, not empty bytes", () =>
      withKvs(backend, (kv, store) =>
        Effect.gen(function*() {
          yield* kv.set("empty", "")
          assert.isTrue(yield* kv.has("empty"))
          assert.strictEqual(yield* kv.get("empty"), "")
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("empty")), [])
          assert.strictEqual(yield* store.get("empty"), "", "kvlog holds a string")
        })
      ))

    it.effect("empty bytes are present, and are empty bytes, not an empty string", () =>
      withKvs(backend, (kv, store) =>
        Effect.gen(function*() {
          yield* kv.set("empty", new Uint8Array(0))
          assert.isTrue(yield* kv.has("empty"))
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("empty")), [])
          assert.strictEqual(yield* kv.get("empty"), "", "the base64 of no bytes")
          assert.deepStrictEqual(bytesOf(yield* store.get("empty")), [], "kvlog holds bytes")
        })
      ))

    it.effect("bytes that spell base64 text stay bytes: get gives their base64, not the text", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const bytes = utf8("Zm9v")
          yield* kv.set("b", bytes)
          assert.strictEqual(yield* kv.get("b"), Base64.encode(bytes))
          assert.notStrictEqual(yield* kv.get("b"), "Zm9v")
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("b")), Array.from(bytes))
        })
      ))

    it.effect("bytes that are not UTF-8 come back unchanged from getUint8Array", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const bytes = new Uint8Array([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0x00])
          yield* kv.set("b", bytes)
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("b")), Array.from(bytes))
        })
      ))

    it.effect("unicode strings come back whole: astral characters, combining marks, NUL, line breaks", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const values = ["𝄞 music", "e\u0301 combined", "nul\u0000inside", "line\r\nbreak", "ключ 🔑 キー", "\uFEFFbom"]
          for (const [i, value] of values.entries()) yield* kv.set(`k${i}`, value)
          for (const [i, value] of values.entries()) {
            assert.strictEqual(yield* kv.get(`k${i}`), value)
            assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array(`k${i}`)), Array.from(utf8(value)))
          }
        })
      ))

    it.effect("for 300 generated strings and byte arrays, each read gives what Effect's layerMemory gives", () =>
      Effect.gen(function*() {
        const strings = fc.sample(fc.string({ unit: "grapheme", maxLength: 12 }), { numRuns: 150, seed: 7 })
        const byteArrays = fc.sample(fc.uint8Array({ maxLength: 12 }), { numRuns: 150, seed: 7 })
        const values: Array<string | Uint8Array> = [...strings, ...byteArrays]
        const reference = yield* EffectKeyValueStore.KeyValueStore.pipe(Effect.provide(EffectKeyValueStore.layerMemory))
        yield* withKvs(backend, (kv) =>
          Effect.gen(function*() {
            for (const [i, value] of values.entries()) {
              yield* kv.set(`k${i}`, value)
              yield* reference.set(`k${i}`, value)
            }
            for (const [i] of values.entries()) {
              assert.strictEqual(yield* kv.get(`k${i}`), yield* reference.get(`k${i}`))
              assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array(`k${i}`)), bytesOf(yield* reference.getUint8Array(`k${i}`)))
            }
          }))
      }))

    it.effect("changing a byte array after set, or the one getUint8Array returned, does not change the stored bytes", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const bytes = new Uint8Array([1, 2, 3])
          yield* kv.set("b", bytes)
          bytes[0] = 42
          const got = (yield* kv.getUint8Array("b"))!
          got[1] = 99
          assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("b")), [1, 2, 3])
        })
      ))
  })

  // ===========================================================================
  // Absence, errors and the derived operations
  // ===========================================================================

  describe("absence and errors", () => {
    it.effect("a key kvlog holds with a TTL reads as absent from its deadline on, and is not counted", () =>
      withKvs(backend, (kv, store) =>
        Effect.gen(function*() {
          yield* store.put("session", "token", { duration: 100 })
          yield* TestClock.adjust(99)
          assert.strictEqual(yield* kv.get("session"), "token")
          yield* TestClock.adjust(1)
          assert.strictEqual(yield* kv.get("session"), undefined)
          assert.strictEqual(yield* kv.getUint8Array("session"), undefined)
          assert.isFalse(yield* kv.has("session"))
          assert.strictEqual(yield* kv.size, 0)
          assert.isTrue(yield* kv.isEmpty)
        })
      ))

    it.effect("remove of an absent key succeeds and changes nothing", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("kept", "v")
          yield* kv.remove("never set")
          assert.strictEqual(yield* kv.size, 1)
        })
      ))

    it.effect("set of a key over kvlog's limit fails with KeyValueStoreError naming method, key and limit; nothing stored", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const key = "k".repeat(KeyValueStore.maxKeyLength + 1)
          const error = yield* kvsError(kv.set(key, "v"))
          assert.strictEqual(error.method, "set")
          assert.strictEqual(error.key, key)
          assert.instanceOf(error.cause, KeyValueStore.InvalidInput)
          assert.include(error.message, `over the limit of ${KeyValueStore.maxKeyLength}`)
          assert.isBelow(error.message.length, 400, "the message quotes a long key cut short")
          assert.strictEqual(yield* kv.size, 0)
        })
      ))

    it.effect("a key at kvlog's limit is stored", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const key = "k".repeat(KeyValueStore.maxKeyLength)
          yield* kv.set(key, "v")
          assert.strictEqual(yield* kv.get(key), "v")
        })
      ))

    it.effect("get of a key with a lone surrogate fails with KeyValueStoreError, not undefined", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const error = yield* kvsError(kv.get("bad\uD800"))
          assert.strictEqual(error.method, "get")
          assert.instanceOf(error.cause, KeyValueStore.InvalidInput)
          assert.include(error.message, "lone UTF-16 surrogate")
        })
      ))

    it.effect("set of a value that is neither string nor Uint8Array fails with KeyValueStoreError; the old value stays", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("k", "old")
          const error = yield* kvsError(kv.set("k", 42 as unknown as string))
          assert.strictEqual(error.method, "set")
          assert.include(error.message, "value must be a string or a Uint8Array, got number 42")
          assert.strictEqual(yield* kv.get("k"), "old")
        })
      ))

    it.effect("set of a string with a lone surrogate fails with KeyValueStoreError; nothing stored", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          const error = yield* kvsError(kv.set("k", "half \uDC00"))
          assert.include(error.message, "lone UTF-16 surrogate")
          assert.isFalse(yield* kv.has("k"))
        })
      ))

    it.effect("clearPrefix removes exactly the keys that start with the prefix", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          for (const key of ["user:1", "user:2", "user", "users:1", "old-user:1", "order:1"]) yield* kv.set(key, "v")
          yield* kv.clearPrefix("user:")
          assert.deepStrictEqual([...(yield* kv.keys)].sort(), ["old-user:1", "order:1", "user", "users:1"])
        })
      ))

    it.effect("clearPrefix of the empty prefix removes every key", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          for (const key of ["a", "b", ""]) yield* kv.set(key, "v")
          yield* kv.clearPrefix("")
          assert.strictEqual(yield* kv.size, 0)
        })
      ))

    it.effect("clearPrefix of a prefix that is not a string fails with KeyValueStoreError and removes nothing", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          yield* kv.set("1", "v")
          const error = yield* kvsError(kv.clearPrefix(1 as unknown as string))
          assert.include(error.message, "prefix must be a string, got number")
          assert.strictEqual(yield* kv.size, 1)
        })
      ))

    it.effect("has, isEmpty and keys follow the live keys", () =>
      withKvs(backend, (kv) =>
        Effect.gen(function*() {
          assert.isTrue(yield* kv.isEmpty)
          assert.isFalse(yield* kv.has("a"))
          yield* kv.set("a", "1")
          yield* kv.set("b", new Uint8Array([1]))
          assert.isFalse(yield* kv.isEmpty)
          assert.isTrue(yield* kv.has("a"))
          assert.isTrue(yield* kv.has("b"))
          assert.deepStrictEqual([...(yield* kv.keys)].sort(), ["a", "b"])
        })
      ))

    it.effect("modifyUint8Array of bytes stores and returns f of the bytes, which stay bytes", () =>
      withKvs(backend, (kv, store) =>
        Effect.gen(function*() {
          yield* kv.set("b", new Uint8Array([1, 2]))
          const result = yield* kv.modifyUint8Array("b", (bytes) => new Uint8Array([...bytes, 3]))
          assert.deepStrictEqual(bytesOf(result), [1, 2, 3])
          assert.deepStrictEqual(bytesOf(yield* store.get("b")), [1, 2, 3])
        })
      ))

    it.effect("modify of bytes hands f their base64 and stores f's string (Effect's contract)", () =>
      withKvs(backend, (kv, store) =>
        Effect.gen(function*() {
          yield* kv.set("b", new Uint8Array([0, 255]))
          let seen: string | undefined
          yield* kv.modify("b", (text) => {
            seen = text
            return "now a string"
          })
          assert.strictEqual(seen, "AP8=")
          assert.strictEqual(yield* store.get("b"), "now a string")
        })
      ))
  })
})

describe("Effect's KeyValueStore on kvlog's log", () => {
  it.effect("strings, bytes, empty string and empty bytes keep their types across a reopen of the log", () =>
    Effect.scoped(Effect.gen(function*() {
      const path = yield* freshPersistenceLogPath
      const values: Array<readonly [string, string | Uint8Array]> = [
        ["s", "Zm9v"],
        ["b", utf8("Zm9v")],
        ["empty-s", ""],
        ["empty-b", new Uint8Array(0)],
        ["unicode", "héllo 👋 𝄞"],
        ["raw", new Uint8Array([0xff, 0x00, 0x80])]
      ]
      yield* Effect.gen(function*() {
        const kv = yield* EffectKeyValueStore.KeyValueStore
        for (const [key, value] of values) yield* kv.set(key, value)
      }).pipe(Effect.provide(Persistence.layerKeyValueStoreLog({ path })))

      const reopened = yield* openPersistenceLog(path)
      for (const [key, value] of values) {
        const stored = yield* reopened.store.get(key)
        if (typeof value === "string") assert.strictEqual(stored, value, key)
        else assert.deepStrictEqual(bytesOf(stored), Array.from(value), key)
      }
      yield* reopened.close
    })))

  it.effect("a write the log fails to sync fails with KeyValueStoreError carrying kvlog's StorageError", () =>
    Effect.scoped(Effect.gen(function*() {
      const path = yield* freshPersistenceLogPath
      const faults = makeFaultyFileOps()
      yield* Effect.gen(function*() {
        const kv = yield* EffectKeyValueStore.KeyValueStore
        faults.failNext("write", ioFailure("write"))
        const error = yield* kvsError(kv.set("k", "v"))
        assert.strictEqual(error.method, "set")
        assert.strictEqual(error.key, "k")
        assert.instanceOf(error.cause, KeyValueStore.StorageError)
        assert.include(error.message, "EIO")
        assert.strictEqual(yield* kv.get("k"), undefined, "the failed write was not applied")
      }).pipe(Effect.provide(Persistence.layerKeyValueStoreLog({ path, fileOps: faults.ops })))
    })))
})

describe("layerKeyValueStoreMemory", () => {
  it.effect("gives Effect's KeyValueStore on a fresh in-memory kvlog store", () =>
    Effect.gen(function*() {
      const kv = yield* EffectKeyValueStore.KeyValueStore
      assert.isTrue(yield* kv.isEmpty)
      yield* kv.set("k", new Uint8Array([7]))
      assert.deepStrictEqual(bytesOf(yield* kv.getUint8Array("k")), [7])
    }).pipe(Effect.provide(Persistence.layerKeyValueStoreMemory)))
})
