/**
 * Bad input is refused at every door: every operation that takes a key, a
 * value, a duration or options fails with a typed `InvalidInput` on anything
 * it cannot accept — never with a defect, never with a write to the log —
 * and leaves the store able to take the next write. Checked as a matrix of
 * operations × bad inputs × stores, then case by case for the failures users
 * found; and the reaper outlives an `onReclaim` that throws.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import { KeyValueStore } from "../src/index.ts"
import { captureLogs, freshLogPath, openLog, readState, type ValueView } from "./support/logHarness.ts"
import { assertInvalidInput, assertKeyNotFound } from "./support/StoreAssertions.ts"

type Store = KeyValueStore.KeyValueStoreService

/** Where an argument goes: `put`'s four, or the key of the others. */
type Slot = "key" | "value" | "duration" | "options"

interface BadInput {
  readonly slot: Slot
  readonly label: string
  readonly input: unknown
}

const inSlot = (slot: Slot, inputs: ReadonlyArray<readonly [string, unknown]>): Array<BadInput> =>
  inputs.map(([label, input]) => ({ slot, label, input }))

const notStrings: ReadonlyArray<readonly [string, unknown]> = [
  ["undefined", undefined],
  ["null", null],
  ["123", 123],
  ["NaN", NaN],
  ["{}", {}],
  ["[]", []],
  ["a symbol", Symbol("k")],
  ["a function", () => "k"]
]

const badKeys = inSlot("key", [
  ...notStrings,
  [`a key of ${KeyValueStore.maxKeyLength + 1} code units`, "k".repeat(KeyValueStore.maxKeyLength + 1)],
  ["a lone high surrogate", "\uD800"],
  ["a lone low surrogate", "\uDC00"],
  ["\"user\\uD800\"", "user\uD800"]
])

const badValues = inSlot("value", [
  ...notStrings,
  // A rope: one `maxValueLength` string in memory, not two.
  ["a string one code unit too long", "x".repeat(KeyValueStore.maxValueLength) + "x"],
  ["bytes one byte too long", new Uint8Array(KeyValueStore.maxValueLength + 1)],
  ["a string with a lone surrogate", "value\uD800"]
])

const badDurations = inSlot("duration", [
  ["0", 0],
  ["-1", -1],
  ["NaN", NaN],
  ["-Infinity", -Infinity],
  ["\"5 parsecs\"", "5 parsecs"],
  ["{} (zero)", {}],
  ["[]", []],
  ["null", null],
  ["a symbol", Symbol("d")],
  ["a function", () => 5],
  ["true", true]
])

const badOptions = inSlot("options", [
  ["null", null],
  ["123", 123],
  ["\"5 seconds\"", "5 seconds"],
  ["true", true],
  ["a symbol", Symbol("o")]
])

/** The store's operations as an untyped caller sees them. */
type Untyped = (...args: Array<unknown>) => Effect.Effect<unknown, unknown>
const call = (store: Store, name: keyof Store, ...args: Array<unknown>) => (store[name] as Untyped)(...args)

interface Operation {
  readonly name: string
  readonly inputs: ReadonlyArray<BadInput>
  readonly run: (store: Store, bad: BadInput) => Effect.Effect<unknown, unknown>
}

const keyOperation = (name: "get" | "delete" | "has" | "timeToLive"): Operation => ({
  name,
  inputs: badKeys,
  run: (store, bad) => call(store, name, bad.input)
})

const operations: ReadonlyArray<Operation> = [
  keyOperation("get"),
  keyOperation("delete"),
  keyOperation("has"),
  keyOperation("timeToLive"),
  {
    name: "put",
    inputs: [...badKeys, ...badValues, ...badDurations, ...badOptions],
    // "k" holds "old": a refused put must leave it so.
    run: (store, bad) => {
      switch (bad.slot) {
        case "key":
          return call(store, "put", bad.input, "new")
        case "value":
          return call(store, "put", "k", bad.input)
        case "duration":
          return call(store, "put", "k", "new", { duration: bad.input })
        case "options":
          return call(store, "put", "k", "new", bad.input)
      }
    }
  }
]

const cells = operations.flatMap((operation) => operation.inputs.map((bad) => ({ operation, bad })))

// 4 key operations × 12 keys + put × (12 keys + 11 values + 11 durations + 5 options) = 87 per store.
const cellsPerStore = 87

const fsyncPolicies = ["always", "interval", "never"] as const

/** How long a call may take before it counts as never completing. */
const patience = "5 seconds"

/**
 * Runs one cell and returns what went wrong, if anything: the call must fail
 * with `InvalidInput` alone (no defect, no interruption), with a message
 * naming the argument, and leave the store's entries as they were.
 */
const refusalProblems = (store: Store, bad: BadInput, attempt: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const before = yield* readState(store)
    const exit = yield* Effect.exit(Effect.timeoutOption(attempt, patience))
    const problems: Array<string> = []
    if (Exit.isSuccess(exit)) {
      problems.push(Option.isNone(exit.value) ? "never completed" : `succeeded with ${String(exit.value.value)}`)
    } else if (Cause.hasDies(exit.cause) || Cause.hasInterrupts(exit.cause)) {
      problems.push(`not a typed failure: ${Cause.pretty(exit.cause).split("\n")[0]}`)
    } else {
      const error = Cause.findErrorOption(exit.cause)
      if (Option.isNone(error) || !(error.value instanceof KeyValueStore.InvalidInput)) {
        problems.push(`failed with ${Option.isNone(error) ? "nothing" : String(error.value)}, not InvalidInput`)
      } else if (!new RegExp(bad.slot).test(error.value.message)) {
        problems.push(`message does not name the ${bad.slot}: ${error.value.message}`)
      }
    }
    const after = yield* Effect.exit(readState(store))
    if (Exit.isFailure(after) || !sameState(after.value, before)) problems.push("changed the store's entries")
    return problems
  })

const sameState = (a: ReadonlyMap<string, ValueView>, b: ReadonlyMap<string, ValueView>) =>
  a.size === b.size && [...a].every(([key, value]) => b.get(key) === value)

/** A valid put, which must complete: a refused call leaves no writer wedged. */
const validPut = (store: Store, key: string) =>
  Effect.map(Effect.exit(Effect.timeoutOption(store.put(key, "ok"), patience)), (exit) =>
    Exit.isSuccess(exit) && Option.isSome(exit.value) ? [] : [
      `a later valid put ${Exit.isSuccess(exit) ? "never completed" : `failed: ${Cause.pretty(exit.cause)}`}`
    ])

/** The entries every store starts from: one is what `"user\uD800"` would become in UTF-8. */
const seed = (store: Store) =>
  Effect.gen(function*() {
    yield* store.put("k", "old")
    yield* store.put("user\uFFFD", "not yours to delete")
    yield* store.put("bytes", new Uint8Array([0, 1, 255]))
    yield* store.put("ttl", "an hour", { duration: "1 hour" })
  })

const cellName = (operation: Operation, bad: BadInput) => `${operation.name}(${bad.slot}: ${bad.label})`

describe("every operation refuses every bad input with InvalidInput, changing nothing", () => {
  it("the matrix has a cell for every operation and every bad input it takes", () => {
    assert.strictEqual(badKeys.length, 12)
    assert.strictEqual(cells.length, cellsPerStore)
    assert.strictEqual(cells.length * (1 + fsyncPolicies.length), 348, "layerMemory, and layerLog under each policy")
  })

  it.live("on layerMemory", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      yield* seed(store)
      const problems: Array<string> = []
      let ran = 0
      for (const [n, { bad, operation }] of cells.entries()) {
        const found = [
          ...yield* refusalProblems(store, bad, operation.run(store, bad)),
          ...yield* validPut(store, `after ${n}`)
        ]
        ran++
        for (const problem of found) problems.push(`${cellName(operation, bad)}: ${problem}`)
      }
      assert.deepStrictEqual(problems, [])
      assert.strictEqual(ran, cellsPerStore)
    }))

  // Each cell reopens the log, so what a refused call might have left
  // buffered is replayed and compared against what the store showed.
  for (const fsync of fsyncPolicies) {
    it.live(`on layerLog, fsync "${fsync}"`, () =>
      Effect.gen(function*() {
        const path = yield* freshLogPath("bad-input")
        const options = { path, fsync, compaction: { auto: false } }
        const first = yield* openLog(options)
        yield* seed(first.store)
        let expected = yield* readState(first.store)
        yield* first.close
        const problems: Array<string> = []
        let ran = 0
        for (const [n, { bad, operation }] of cells.entries()) {
          const name = cellName(operation, bad)
          const { close, store } = yield* openLog(options)
          if (!sameState(yield* readState(store), expected)) problems.push(`${name}: the log replayed other entries`)
          const bytes = fs.readFileSync(path)
          const found = yield* refusalProblems(store, bad, operation.run(store, bad))
          if (!fs.readFileSync(path).equals(bytes)) found.push("wrote to the log")
          found.push(...yield* validPut(store, `after ${n}`))
          expected = yield* readState(store)
          ran++
          for (const problem of found) problems.push(`${name}: ${problem}`)
          if (Option.isNone(yield* Effect.timeoutOption(close, patience))) {
            problems.push(`${name}: the store never closed`)
            break
          }
        }
        assert.deepStrictEqual(problems, [])
        assert.strictEqual(ran, cellsPerStore)
      }))
  }
})

/** Options of a log-backed store in a fresh temporary directory. */
const logFor = (fsync: "always" | "interval" | "never") =>
  Effect.map(freshLogPath("bad-input"), (path) => ({ path, fsync, compaction: { auto: false } }))

describe("the failures users found", () => {
  it.effect.each([
    { label: "get(undefined)", run: (store: Store) => call(store, "get", undefined) },
    { label: "get(null)", run: (store: Store) => call(store, "get", null) },
    { label: "delete(undefined)", run: (store: Store) => call(store, "delete", undefined) }
  ])("$label fails with InvalidInput, not a defect", ({ run }) =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      const exit = yield* Effect.exit(run(store))
      assert.isTrue(Exit.isFailure(exit) && !Cause.hasDies(exit.cause), "no defect")
      yield* assertInvalidInput(run(store), [/key must be a string/])
    }))

  it.effect.each(["get", "has", "timeToLive"] as const)("%s(123) fails with InvalidInput", (name) =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      yield* store.put("123", "a string key that looks like the number")
      yield* assertInvalidInput(call(store, name, 123), [/key must be a string, got number 123/])
    }))

  it.live.each([
    { label: "delete(123)", key: 123 },
    { label: "delete(undefined)", key: undefined },
    { label: "delete of a 17,000-char key", key: "k".repeat(17_000) }
  ])("$label on layerLog (fsync \"always\") fails with InvalidInput and the next put completes", ({ key }) =>
    Effect.gen(function*() {
      const options = yield* logFor("always")
      const { close, store } = yield* openLog(options)
      yield* assertInvalidInput(Effect.timeout(call(store, "delete", key), patience), [/key/])
      assert.strictEqual(yield* Effect.timeout(store.put("next", "v"), patience), "v")
      yield* close
    }))

  it.live.each(fsyncPolicies)(
    "fsync \"%s\": delete(\"user\\uD800\") fails with InvalidInput and \"user\\uFFFD\" survives a reopen",
    (fsync) =>
      Effect.gen(function*() {
        const options = yield* logFor(fsync)
        const first = yield* openLog(options)
        yield* first.store.put("user\uFFFD", "mine")
        yield* assertInvalidInput(first.store.delete("user\uD800"), [/key/, /surrogate/])
        yield* first.close
        const second = yield* openLog(options)
        assert.strictEqual(yield* second.store.get("user\uFFFD"), "mine")
        yield* second.close
      })
  )

  it.effect("get, has and timeToLive of a lone-surrogate key fail with InvalidInput, like put and delete", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      yield* store.put("user\uFFFD", "v")
      for (const name of ["get", "has", "timeToLive", "delete"] as const) {
        yield* assertInvalidInput(call(store, name, "user\uD800"), [/key contains a lone UTF-16 surrogate/])
      }
      assert.strictEqual(yield* store.get("user\uFFFD"), "v")
    }))

  it.effect("a well-formed key never put still fails with KeyNotFound, not InvalidInput", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.make()
      yield* assertKeyNotFound(store.get("𝄞 never put"), "𝄞 never put")
      assert.isFalse(yield* store.has("𝄞 never put"))
      yield* assertKeyNotFound(store.timeToLive("𝄞 never put"), "𝄞 never put")
      yield* assertKeyNotFound(store.delete("𝄞 never put"), "𝄞 never put")
    }))
})

describe("the reaper outlives an onReclaim that throws", () => {
  it.effect.each([
    { label: "an Error", thrown: new Error("observer failed") },
    { label: "a string", thrown: "observer failed" }
  ])("onReclaim throwing $label: every expired entry is still reclaimed, and one warning is logged", ({ thrown }) => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const seen: Array<string> = []
      const store = yield* KeyValueStore.make({
        onReclaim: (key) => {
          seen.push(key)
          throw thrown
        }
      })
      yield* store.put("a", "1", { duration: 10 })
      yield* store.put("b", "2", { duration: 10 })
      yield* store.put("c", "3", { duration: 20 })
      yield* TestClock.adjust(10)
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 1, entriesWithDeadline: 1, reclaimed: 2 })
      yield* TestClock.adjust(10)
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 3 })
      // Expirations after the failures, too, are reclaimed and reported.
      yield* store.put("d", "4", { duration: 5 })
      yield* TestClock.adjust(5)
      assert.deepStrictEqual(yield* store.stats, { storedEntries: 0, entriesWithDeadline: 0, reclaimed: 4 })
      assert.deepStrictEqual(seen, ["a", "b", "c", "d"])
      const warnings = logs.entries.filter((entry) => entry.level === "Warn")
      assert.strictEqual(warnings.length, 1, "one warning, not one per entry")
      assert.match(warnings[0].message, /onReclaim/)
      assert.include(warnings[0].message, "observer failed")
    }).pipe(Effect.provide(logs.layer))
  })
})
