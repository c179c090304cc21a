/**
 * Schema-typed views (`SchemaStore`): what a view puts, it gets back decoded
 * — objects, classes, dates and bigints through JSON text or UTF-8 bytes —
 * while the store beneath holds the encoded value, with the same TTL and the
 * same log; a stored value that does not decode fails with a typed decode
 * error, a value the schema rejects with a typed encode error and nothing
 * written; key prefixes keep views apart and are checked like keys.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { TestClock } from "effect/testing"
import { KeyValueStore, SchemaStore } from "../src/index.ts"
// Through its own module until src/index.ts exports the `SchemaStore` namespace.
import { freshLogPath, withLogStore } from "./support/logHarness.ts"
import { assertInvalidInput, assertKeyNotFound } from "./support/StoreAssertions.ts"

type Store = KeyValueStore.KeyValueStoreService

/** Runs `test` against a fresh `layerMemory` store, built on the test's `TestClock`. */
const withStore = <A, E>(test: (store: Store) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.flatMap(Effect.service(KeyValueStore.KeyValueStore), test).pipe(Effect.provide(KeyValueStore.layerMemory))

/** Runs `effect`; asserts that it failed with a typed error (not a defect), and gives that error. */
const typedError = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<E> =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return assert.fail(`expected a typed failure, got success with ${String(exit.value)}`)
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isNone(error)) return assert.fail(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
    return error.value
  })

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const fromUtf8 = (bytes: KeyValueStore.Value): string => {
  assert.instanceOf(bytes, Uint8Array)
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes as Uint8Array)
}

const Point = Schema.Struct({ x: Schema.Number, y: Schema.Number, label: Schema.optional(Schema.String) })

class Account extends Schema.Class<Account>("Account")({
  owner: Schema.String,
  opened: Schema.Date,
  balance: Schema.BigInt,
  tags: Schema.Array(Schema.String)
}) {}

const ada = new Account({
  owner: "Ada",
  opened: new Date("2024-02-29T12:34:56.789Z"),
  balance: 12_345_678_901_234_567_890n,
  tags: ["gold", "ünïcödé 𝄞"]
})
const adaJson =
  "{\"owner\":\"Ada\",\"opened\":\"2024-02-29T12:34:56.789Z\",\"balance\":\"12345678901234567890\",\"tags\":[\"gold\",\"ünïcödé 𝄞\"]}"

/** An age the schema accepts only when it is a positive integer. */
const Person = Schema.Struct({ name: Schema.String, age: Schema.Int.check(Schema.isGreaterThan(0)) })

// =============================================================================
// Round trips
// =============================================================================

describe("a view's get gives back what its put stored, decoded", () => {
  it.effect("a struct through the JSON codec: the store holds its JSON text", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point)
        const value = { x: 1.5, y: -2, label: "origin-ish" }
        assert.strictEqual(yield* points.put("p", value), value)
        assert.deepStrictEqual(yield* points.get("p"), value)
        assert.strictEqual(yield* store.get("p"), "{\"x\":1.5,\"y\":-2,\"label\":\"origin-ish\"}")
        yield* points.put("q", { x: 0, y: 0 })
        assert.deepStrictEqual(yield* points.get("q"), { x: 0, y: 0 })
      })
    ))

  it.effect("a Schema.Class instance comes back as an instance, its Date a Date and its bigint a bigint", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const accounts = yield* SchemaStore.makeView(store, Account)
        yield* accounts.put("ada", ada)
        assert.strictEqual(yield* store.get("ada"), adaJson)
        const got = yield* accounts.get("ada")
        assert.instanceOf(got, Account)
        assert.instanceOf(got.opened, Date)
        assert.strictEqual(got.opened.toISOString(), "2024-02-29T12:34:56.789Z")
        assert.strictEqual(typeof got.balance, "bigint")
        assert.strictEqual(got.balance, 12_345_678_901_234_567_890n)
        assert.deepStrictEqual(got, ada)
      })
    ))

  it.effect("the bytes codec stores the same JSON text as UTF-8 bytes and decodes it back", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const accounts = yield* SchemaStore.makeView(store, Account, { codec: "bytes" })
        assert.strictEqual(accounts.codec, "bytes")
        yield* accounts.put("ada", ada)
        assert.strictEqual(fromUtf8(yield* store.get("ada")), adaJson)
        const got = yield* accounts.get("ada")
        assert.instanceOf(got, Account)
        assert.deepStrictEqual(got, ada)
      })
    ))

  it.effect("a non-finite number and a lone surrogate survive the JSON codec; -0 comes back as 0, as JSON has no -0", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const view = yield* SchemaStore.makeView(store, Schema.Struct({ n: Schema.Number, s: Schema.String }))
        for (const value of [{ n: Infinity, s: "\uD800" }, { n: NaN, s: "x\uDFFFy" }, { n: -Infinity, s: "" }]) {
          yield* view.put("k", value)
          assert.deepStrictEqual(yield* view.get("k"), value)
        }
        yield* view.put("k", { n: -0, s: "" })
        const got = yield* view.get("k")
        assert.isTrue(Object.is(got.n, 0), "-0 is stored as 0")
      })
    ))

  it.effect("a union whose members encode alike comes back as its first match", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const stringFirst = yield* SchemaStore.makeView(store, Schema.Union([Schema.String, Schema.Number]))
        const numberFirst = yield* SchemaStore.makeView(store, Schema.Union([Schema.Number, Schema.String]))
        yield* stringFirst.put("u", NaN)
        assert.strictEqual(yield* store.get("u"), "\"NaN\"")
        assert.strictEqual(yield* stringFirst.get("u"), "NaN")
        assert.isNaN(yield* numberFirst.get("u"))
      })
    ))

  it.effect("fields the stored JSON has and the schema does not are dropped on get", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.put("p", "{\"x\":1,\"y\":2,\"z\":3}")
        const points = yield* SchemaStore.makeView(store, Point)
        assert.deepStrictEqual(yield* points.get("p"), { x: 1, y: 2 })
      })
    ))

  it.effect("forSchema makes a view of the store in context", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      const view = yield* SchemaStore.forSchema(Point, { keyPrefix: "pt:" })
      yield* view.put("a", { x: 3, y: 4 })
      assert.strictEqual(yield* store.get("pt:a"), "{\"x\":3,\"y\":4}")
      assert.deepStrictEqual(yield* view.get("a"), { x: 3, y: 4 })
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("delete, has and timeToLive act on the view's key", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const view = yield* SchemaStore.makeView(store, Point, { keyPrefix: "pt:" })
        yield* view.put("a", { x: 1, y: 1 })
        assert.isTrue(yield* view.has("a"))
        assert.isTrue(Option.isNone(yield* view.timeToLive("a")))
        yield* view.delete("a")
        assert.isFalse(yield* view.has("a"))
        assert.isFalse(yield* store.has("pt:a"))
        yield* assertKeyNotFound(view.delete("a"), "a")
        yield* assertKeyNotFound(view.timeToLive("a"), "a")
      })
    ))
})

describe("put → get round-trips every value the schema's arbitrary generates", () => {
  const equivalent = Schema.toEquivalence(Account)
  for (const codec of ["json", "bytes"] as const) {
    it.effect.prop(`Account through the ${codec} codec`, [Account], ([account]) =>
      withStore((store) =>
        Effect.gen(function*() {
          const view = yield* SchemaStore.makeView(store, Account, { codec })
          yield* view.put("k", account)
          const got = yield* view.get("k")
          assert.instanceOf(got, Account)
          // The schema's equivalence: -0 and 0 are one number to it, as to JSON.
          assert.isTrue(equivalent(got, account), `${String(got)} is not ${String(account)}`)
        })
      ), { timeout: 60_000, arbitrary: { runs: 200 } })
  }
})

// =============================================================================
// Decode failures
// =============================================================================

describe("a stored value that does not decode fails with SchemaDecodeError, not a defect, not KeyNotFound", () => {
  const foreign: ReadonlyArray<{
    readonly label: string
    readonly codec: SchemaStore.Codec
    readonly stored: KeyValueStore.Value
    readonly reason: RegExp
  }> = [
    { label: "text that is not JSON", codec: "json", stored: "{\"name\": \"Ada\"", reason: /valid JSON/ },
    { label: "JSON of the wrong shape", codec: "json", stored: "{\"name\":42,\"age\":3}", reason: /Expected string[\s\S]*name/ },
    { label: "JSON missing a field", codec: "json", stored: "{\"name\":\"Ada\"}", reason: /Missing key[\s\S]*age/ },
    { label: "JSON failing the schema's check", codec: "json", stored: "{\"name\":\"Ada\",\"age\":-1}", reason: /greater than 0/ },
    { label: "bytes under the JSON codec", codec: "json", stored: utf8("{\"name\":\"Ada\",\"age\":3}"), reason: /codec is "json"/ },
    { label: "a string under the bytes codec", codec: "bytes", stored: "{\"name\":\"Ada\",\"age\":3}", reason: /codec is "bytes"/ },
    { label: "bytes that are not UTF-8", codec: "bytes", stored: new Uint8Array([0x7b, 0xff, 0x7d]), reason: /UTF-8/ },
    { label: "UTF-8 bytes that are not JSON", codec: "bytes", stored: utf8("not json"), reason: /valid JSON/ }
  ]
  for (const { codec, label, reason, stored } of foreign) {
    it.effect(`${label} (codec ${codec})`, () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.put("people:someone", stored)
          const people = yield* SchemaStore.makeView(store, Person, { codec, keyPrefix: "people:" })
          const error = yield* typedError(people.get("someone"))
          assert.instanceOf(error, SchemaStore.SchemaDecodeError)
          assert.strictEqual(error._tag, "SchemaDecodeError")
          assert.strictEqual(error.key, "someone")
          assert.match(error.message, /^the value of key "someone" does not decode with the view's schema: /)
          assert.match(error.message, reason)
          // Reading is not repairing: the foreign value is still there, as it was.
          assert.deepStrictEqual(yield* store.get("people:someone"), stored)
          assert.isTrue(yield* people.has("someone"))
        })
      ))
  }

  it.effect("a view of one schema cannot read what a view of another put under the same key", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point)
        const accounts = yield* SchemaStore.makeView(store, Account)
        yield* points.put("k", { x: 1, y: 2 })
        const error = yield* typedError(accounts.get("k"))
        assert.instanceOf(error, SchemaStore.SchemaDecodeError)
        assert.match(error.message, /Missing key/)
      })
    ))

  it.effect("an absent key still fails with KeyNotFound carrying the view's key", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const people = yield* SchemaStore.makeView(store, Person, { keyPrefix: "people:" })
        yield* assertKeyNotFound(people.get("nobody"), "nobody")
      })
    ))
})

// =============================================================================
// Encode failures
// =============================================================================

describe("a value the schema rejects fails put with SchemaEncodeError and leaves the store unchanged", () => {
  const rejected: ReadonlyArray<{ readonly label: string; readonly value: unknown; readonly reason: RegExp }> = [
    { label: "a value failing a check", value: { name: "Ada", age: -1 }, reason: /greater than 0[\s\S]*age/ },
    { label: "a value failing an Int check", value: { name: "Ada", age: 1.5 }, reason: /integer[\s\S]*age/ },
    { label: "a field of the wrong type", value: { name: 7, age: 3 }, reason: /Expected string[\s\S]*name/ },
    { label: "a missing field", value: { name: "Ada" }, reason: /Missing key[\s\S]*age/ },
    { label: "not an object", value: "Ada", reason: /Expected/ }
  ]
  for (const codec of ["json", "bytes"] as const) {
    for (const { label, reason, value } of rejected) {
      it.effect(`${label} (codec ${codec})`, () =>
        withStore((store) =>
          Effect.gen(function*() {
            const people = yield* SchemaStore.makeView(store, Person, { codec, keyPrefix: "p:" })
            yield* people.put("ada", { name: "Ada", age: 36 })
            const before = yield* store.get("p:ada")
            const error = yield* typedError(people.put("ada", value as typeof Person.Type))
            assert.instanceOf(error, SchemaStore.SchemaEncodeError)
            assert.strictEqual(error._tag, "SchemaEncodeError")
            assert.strictEqual(error.key, "ada")
            assert.match(error.message, /^the value for key "ada" does not encode with the view's schema: /)
            assert.match(error.message, reason)
            assert.deepStrictEqual(yield* store.get("p:ada"), before)
            yield* typedError(people.put("new", value as typeof Person.Type))
            assert.isFalse(yield* store.has("p:new"))
            assert.strictEqual(yield* store.size, 1)
          })
        ))
    }
  }

  it.effect("an invalid Date, a plain object for a class, and a cycle under Schema.Unknown are encode errors", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const accounts = yield* SchemaStore.makeView(store, Account)
        const invalidDate = new Account({ ...ada, opened: new Date("2024-01-01") })
        // Mutated after construction, as a caller's code could: the schema sees it at encoding.
        invalidDate.opened.setTime(NaN)
        const dateError = yield* typedError(accounts.put("a", invalidDate))
        assert.instanceOf(dateError, SchemaStore.SchemaEncodeError)
        assert.match(dateError.message, /valid Date[\s\S]*opened/)
        const plainError = yield* typedError(accounts.put("a", { ...ada } as Account))
        assert.instanceOf(plainError, SchemaStore.SchemaEncodeError)
        assert.match(plainError.message, /Expected Account/)

        const anything = yield* SchemaStore.makeView(store, Schema.Unknown)
        const cycle: { self?: unknown } = {}
        cycle.self = cycle
        const cycleError = yield* typedError(anything.put("c", cycle))
        assert.instanceOf(cycleError, SchemaStore.SchemaEncodeError)
        const bigintError = yield* typedError(anything.put("c", 1n))
        assert.instanceOf(bigintError, SchemaStore.SchemaEncodeError)
        assert.strictEqual(yield* store.size, 0)
      })
    ))

  it.effect("an encoded value over the store's limit is refused by the store with InvalidInput", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const texts = yield* SchemaStore.makeView(store, Schema.String)
        // Two quotes around the string push it past the limit.
        yield* assertInvalidInput(texts.put("t", "x".repeat(KeyValueStore.maxValueLength - 1)), [/over the limit/])
        assert.isFalse(yield* store.has("t"))
        yield* texts.put("t", "x".repeat(KeyValueStore.maxValueLength - 2))
        assert.strictEqual((yield* texts.get("t")).length, KeyValueStore.maxValueLength - 2)
      })
    ))
})

// =============================================================================
// TTL
// =============================================================================

describe("a view's put with a duration expires exactly like a raw put", () => {
  it.effect("readable at t+d−1 ms, KeyNotFound at t+d, for the view and the raw key alike", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* TestClock.adjust(1_000)
        const accounts = yield* SchemaStore.makeView(store, Account, { keyPrefix: "acct:" })
        yield* accounts.put("ada", ada, { duration: Duration.millis(100) })
        yield* store.put("raw", "raw value", { duration: Duration.millis(100) })
        assert.deepStrictEqual(yield* accounts.timeToLive("ada"), yield* store.timeToLive("raw"))
        assert.deepStrictEqual(yield* accounts.timeToLive("ada"), Option.some(Duration.millis(100)))

        yield* TestClock.adjust(99)
        assert.deepStrictEqual(yield* accounts.get("ada"), ada)
        assert.strictEqual(yield* store.get("raw"), "raw value")
        assert.deepStrictEqual(yield* accounts.timeToLive("ada"), Option.some(Duration.millis(1)))

        yield* TestClock.adjust(1)
        yield* assertKeyNotFound(accounts.get("ada"), "ada")
        yield* assertKeyNotFound(store.get("acct:ada"), "acct:ada")
        yield* assertKeyNotFound(store.get("raw"), "raw")
        assert.isFalse(yield* accounts.has("ada"))
      })
    ))

  it.effect("a put without a duration clears an earlier TTL, as for a raw put", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point)
        yield* points.put("p", { x: 1, y: 1 }, { duration: 10 })
        yield* points.put("p", { x: 2, y: 2 })
        yield* TestClock.adjust(10)
        assert.deepStrictEqual(yield* points.get("p"), { x: 2, y: 2 })
        assert.isTrue(Option.isNone(yield* points.timeToLive("p")))
      })
    ))

  it.effect("a bad duration is refused with InvalidInput and nothing is written", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point)
        yield* assertInvalidInput(points.put("p", { x: 1, y: 1 }, { duration: -5 }), [/duration must be positive/])
        assert.isFalse(yield* store.has("p"))
      })
    ))
})

// =============================================================================
// The log
// =============================================================================

describe("a view over a log-backed store", () => {
  it.effect("writes the encoded value to the log; after a reopen a view reads it back decoded", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("schema-view")
      yield* withLogStore({ path: logPath }, (store) =>
        Effect.gen(function*() {
          const accounts = yield* SchemaStore.makeView(store, Account, { keyPrefix: "acct:" })
          const points = yield* SchemaStore.makeView(store, Point, { codec: "bytes", keyPrefix: "pt:" })
          yield* accounts.put("ada", ada)
          yield* points.put("home", { x: 7, y: 8 })
          yield* points.put("gone", { x: 0, y: 0 })
          yield* points.delete("gone")
        }))
      yield* withLogStore({ path: logPath }, (store) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* store.get("acct:ada"), adaJson)
          assert.strictEqual(fromUtf8(yield* store.get("pt:home")), "{\"x\":7,\"y\":8}")
          assert.sameMembers([...(yield* store.keys)], ["acct:ada", "pt:home"])
          const accounts = yield* SchemaStore.makeView(store, Account, { keyPrefix: "acct:" })
          const points = yield* SchemaStore.makeView(store, Point, { codec: "bytes", keyPrefix: "pt:" })
          const got = yield* accounts.get("ada")
          assert.instanceOf(got, Account)
          assert.deepStrictEqual(got, ada)
          assert.deepStrictEqual(yield* points.get("home"), { x: 7, y: 8 })
          yield* assertKeyNotFound(points.get("gone"), "gone")
        }))
    }))
})

// =============================================================================
// Key prefixes
// =============================================================================

describe("keyPrefix keeps views apart and is checked like a key", () => {
  it.effect("two views with distinct prefixes use the same key without touching each other", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point, { keyPrefix: "pt:" })
        const accounts = yield* SchemaStore.makeView(store, Account, { keyPrefix: "acct:" })
        yield* points.put("x", { x: 1, y: 2 })
        yield* accounts.put("x", ada)
        yield* store.put("x", "raw")
        assert.deepStrictEqual(yield* points.get("x"), { x: 1, y: 2 })
        assert.deepStrictEqual(yield* accounts.get("x"), ada)
        assert.sameMembers([...(yield* store.keys)], ["pt:x", "acct:x", "x"])
        assert.deepStrictEqual(yield* points.keys, ["x"])
        yield* points.delete("x")
        assert.deepStrictEqual(yield* accounts.get("x"), ada)
        assert.deepStrictEqual(yield* points.keys, [])
      })
    ))

  it.effect("a view without a prefix lists every key of the store", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point)
        yield* points.put("a", { x: 1, y: 2 })
        yield* store.put("pt:b", "raw")
        assert.sameMembers([...(yield* points.keys)], ["a", "pt:b"])
      })
    ))

  it.effect("a key that fits the limit with the prefix is accepted; one code unit more is InvalidInput", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const prefix = "p".repeat(10)
        const points = yield* SchemaStore.makeView(store, Point, { keyPrefix: prefix })
        const longest = "k".repeat(KeyValueStore.maxKeyLength - prefix.length)
        yield* points.put(longest, { x: 1, y: 1 })
        assert.isTrue(yield* store.has(prefix + longest))
        const tooLong = longest + "k"
        const refusals: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
          points.get(tooLong),
          points.has(tooLong),
          points.delete(tooLong),
          points.timeToLive(tooLong)
        ]
        for (const refused of refusals) {
          yield* assertInvalidInput(refused, [/keyPrefix of 10/, /over the key limit of 16384/])
        }
        yield* assertInvalidInput(points.put(longest + "k", { x: 1, y: 1 }), [/keyPrefix/])
        assert.strictEqual(yield* store.size, 1)
      })
    ))

  for (const keyPrefix of ["", "n:"]) {
    it.effect(`a key that is not a string is refused by every operation, not turned into one (keyPrefix ${JSON.stringify(keyPrefix)})`, () =>
      withStore((store) =>
        Effect.gen(function*() {
          const points = yield* SchemaStore.makeView(store, Point, { keyPrefix })
          for (const key of [5, undefined, null, { toString: () => "x" }] as ReadonlyArray<unknown>) {
            const refusals: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
              points.put(key as string, { x: 1, y: 1 }),
              points.get(key as string),
              points.has(key as string),
              points.delete(key as string),
              points.timeToLive(key as string)
            ]
            for (const refused of refusals) yield* assertInvalidInput(refused, [/key must be a string/])
          }
          assert.strictEqual(yield* store.size, 0)
        })
      ))
  }

  it.effect("a bad key is refused as a bad key even when the value would not encode either", () =>
    withStore((store) =>
      Effect.gen(function*() {
        for (const keyPrefix of ["", "pt:"]) {
          const points = yield* SchemaStore.makeView(store, Point, { keyPrefix })
          const unencodable = { x: "not a number" } as unknown as typeof Point.Type
          yield* assertInvalidInput(points.put("\uD800", unencodable), [/lone UTF-16 surrogate/])
          yield* assertInvalidInput(points.put("k".repeat(KeyValueStore.maxKeyLength + 1), unencodable), [/over the/])
        }
      })
    ))

  it.effect("a key with a lone surrogate is refused through a prefixed view, as by the store", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const points = yield* SchemaStore.makeView(store, Point, { keyPrefix: "pt:" })
        yield* assertInvalidInput(points.put("\uDC00", { x: 1, y: 1 }), [/lone UTF-16 surrogate/])
        assert.strictEqual(yield* store.size, 0)
      })
    ))

  const badOptions: ReadonlyArray<{ readonly label: string; readonly options: unknown; readonly message: RegExp }> = [
    { label: "a prefix that is not a string", options: { keyPrefix: 5 }, message: /keyPrefix must be a string, got number/ },
    {
      label: "a prefix ending in a lone high surrogate",
      options: { keyPrefix: "a\uD83D" },
      message: /keyPrefix contains a lone UTF-16 surrogate/
    },
    {
      label: "a prefix over the key limit",
      options: { keyPrefix: "p".repeat(KeyValueStore.maxKeyLength + 1) },
      message: /keyPrefix is 16385 UTF-16 code units long, over the key limit of 16384/
    },
    { label: "an unknown codec", options: { codec: "xml" }, message: /codec must be "json" or "bytes", got "xml"/ },
    { label: "a misspelt option", options: { prefix: "a:" }, message: /unknown view option "prefix"/ },
    { label: "options that are not an object", options: "a:", message: /view options must be an object/ }
  ]
  for (const { label, message, options } of badOptions) {
    it.effect(`makeView refuses ${label} with InvalidInput`, () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* assertInvalidInput(SchemaStore.makeView(store, Point, options as SchemaStore.ViewOptions), [message])
        })
      ))
  }

  it.effect("makeView refuses a schema that is not an Effect Schema", () =>
    withStore((store) =>
      assertInvalidInput(SchemaStore.makeView(store, { ast: null } as unknown as typeof Point), [/schema must be an Effect Schema/])
    ))

  it.effect("a prefix of exactly maxKeyLength code units leaves room for the empty key alone", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const prefix = "p".repeat(KeyValueStore.maxKeyLength)
        const points = yield* SchemaStore.makeView(store, Point, { keyPrefix: prefix })
        yield* points.put("", { x: 1, y: 1 })
        assert.deepStrictEqual(yield* points.get(""), { x: 1, y: 1 })
        yield* assertInvalidInput(points.put("k", { x: 1, y: 1 }), [/over the key limit/])
      })
    ))
})
