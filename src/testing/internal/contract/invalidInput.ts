/**
 * The contract's refusals: every operation that takes a key, a value or
 * options fails with `InvalidInput` on anything it cannot accept, with a
 * message that says what was expected, and leaves the store as it was.
 */
import { assert, describe, it as vitest } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { assertInvalidInput, assertKeyNotFound } from "../assertions.ts"
import { living, observe, type Store, type StoreUnderTest, testOn, untyped, withStore } from "./StoreUnderTest.ts"

export const invalidInputSection = (sut: StoreUnderTest): void => {
  const it = testOn(sut)
  const { maxKeyLength, maxValueLength } = sut.limits

  /**
   * Puts `k` → "old" (no TTL) and "ttl" → bytes (with a TTL), runs `attempt`,
   * asserts it fails with `InvalidInput` whose message matches `message`, and
   * that the store looks exactly as before.
   */
  const assertRejected = (
    attempt: (store: Store) => Effect.Effect<unknown, unknown>,
    message: ReadonlyArray<RegExp>
  ) =>
    withStore(sut, (store) =>
      Effect.gen(function*() {
        yield* store.put("k", "old")
        yield* store.put("ttl", new Uint8Array([1, 2]), { duration: living(sut, 1_000) })
        const before = yield* observe(sut, store)
        yield* assertInvalidInput(attempt(store), message)
        assert.deepStrictEqual(yield* observe(sut, store), before)
        assert.strictEqual(yield* store.get("k"), "old")
      }))

  const put = (store: Store, key: unknown, value: unknown, options?: unknown) => untyped(store, "put", key, value, options)

  describe("put fails with InvalidInput and leaves the store unchanged", () => {
    it.each([
      { label: "a number", key: 42 },
      { label: "null", key: null },
      { label: "undefined", key: undefined },
      { label: "an object", key: { toString: () => "k" } },
      { label: "a String object", key: new String("k") },
      { label: "a symbol", key: Symbol("k") }
    ])("a key that is $label (not a string)", ({ key }) =>
      assertRejected((store) => put(store, key, "new"), [/key must be a string/]))

    it.each([
      { label: "a number", value: 42 },
      { label: "null", value: null },
      { label: "undefined", value: undefined },
      { label: "a plain object", value: { a: 1 } },
      { label: "an array of bytes", value: [1, 2, 3] },
      { label: "a boolean", value: true },
      { label: "a Uint16Array", value: new Uint16Array([1]) },
      { label: "an ArrayBuffer", value: new ArrayBuffer(2) }
    ])("a value that is $label (neither a string nor a Uint8Array)", ({ value }) =>
      assertRejected((store) => put(store, "k", value), [/value must be a string or a Uint8Array/]))

    it.each([
      { label: "0", duration: 0 },
      { label: "Duration.zero", duration: Duration.zero },
      { label: "\"0 millis\"", duration: "0 millis" },
      { label: "-1", duration: -1 },
      { label: "-0.5", duration: -0.5 },
      { label: "\"-5 seconds\"", duration: "-5 seconds" },
      { label: "NaN", duration: NaN },
      { label: "-Infinity", duration: -Infinity },
      { label: "\"-Infinity\"", duration: "-Infinity" },
      { label: "Duration.negativeInfinity", duration: Duration.negativeInfinity }
    ])("a duration of $label (zero, negative or NaN)", ({ duration }) =>
      assertRejected((store) => put(store, "k", "new", { duration }), [/duration/]))

    it.each([
      { label: "\"soon\"", duration: "soon" },
      { label: "\"5 parsecs\"", duration: "5 parsecs" },
      { label: "{} (no duration in it)", duration: {} },
      { label: "true", duration: true },
      { label: "null", duration: null },
      { label: "a function", duration: () => 5 },
      { label: "[1, 2, 3]", duration: [1, 2, 3] }
    ])("a duration of $label (not a Duration input)", ({ duration }) =>
      assertRejected((store) => put(store, "k", "new", { duration }), [/duration/]))

    it.each([
      { label: "a number", options: 5 },
      { label: "a string", options: "5 seconds" },
      { label: "null", options: null },
      { label: "true", options: true }
    ])("options that are $label (not an object)", ({ options }) =>
      assertRejected((store) => put(store, "k", "new", options), [/options must be an object/]))

    it("a key one code unit over maxKeyLength", () =>
      assertRejected(
        (store) => store.put("k".repeat(maxKeyLength + 1), "new"),
        [/key/, new RegExp(`${maxKeyLength + 1}\\b`), new RegExp(`${maxKeyLength}\\b`)]
      ))

    it.each([
      { label: "a lone high surrogate", key: "\uD800" },
      { label: "a lone low surrogate", key: "a\uDC00b" },
      { label: "a high surrogate at its end", key: "key\uD83D" }
    ])("a key with $label", ({ key }) => assertRejected((store) => store.put(key, "new"), [/key/, /surrogate/]))

    it("a string value one code unit over maxValueLength", () =>
      assertRejected(
        // A rope: one `maxValueLength` string in memory, not two.
        (store) => store.put("k", "x".repeat(maxValueLength) + "x"),
        [/value/, new RegExp(`${maxValueLength + 1}\\b`), new RegExp(`${maxValueLength}\\b`)]
      ))

    it("bytes one byte over maxValueLength", () =>
      assertRejected(
        (store) => store.put("k", new Uint8Array(maxValueLength + 1)),
        [/value/, /bytes/, new RegExp(`${maxValueLength + 1}\\b`)]
      ))

    it.each([
      { label: "a lone high surrogate", value: "\uD800" },
      { label: "a lone low surrogate", value: "abc\uDFFFdef" }
    ])("a string value with $label", ({ value }) =>
      assertRejected((store) => store.put("k", value), [/value/, /surrogate/]))

    if (sut.clock === "test") {
      vitest.effect("a rejected put with a duration leaves an existing TTL as it was", () =>
        withStore(sut, (store) =>
          Effect.gen(function*() {
            yield* store.put("k", "old", { duration: 100 })
            yield* assertInvalidInput(put(store, "k", "new", { duration: -1 }), [/duration/])
            yield* TestClock.adjust(99)
            assert.strictEqual(yield* store.get("k"), "old")
            yield* TestClock.adjust(1)
            yield* assertKeyNotFound(store.get("k"), "k")
          })))
    }
  })

  describe("get, delete, has and timeToLive fail with InvalidInput on a bad key and leave the store unchanged", () => {
    const badKeys = [
      { label: "a number", key: 123 as unknown, message: [/key must be a string/] },
      { label: `${maxKeyLength + 1} code units long`, key: "k".repeat(maxKeyLength + 1) as unknown, message: [/key/] },
      { label: "a lone surrogate", key: "k\uD800" as unknown, message: [/key/, /surrogate/] }
    ]
    const cases = (["get", "delete", "has", "timeToLive"] as const).flatMap((operation) =>
      badKeys.map((bad) => ({ operation, ...bad }))
    )
    it.each(cases)("$operation of a key that is $label", ({ key, message, operation }) =>
      assertRejected((store) => untyped(store, operation, key), message))
  })
}
