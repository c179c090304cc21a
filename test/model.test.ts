/**
 * Model-based test of the in-memory store: random sequences of get / put /
 * put-with-duration / delete / advance-the-clock, with checks of has, size,
 * keys, entries, timeToLive and the reaper's progress, run against the store
 * and against a plain reference model (a `Map` of key → value and deadline,
 * and a `now`), which must agree after every command.
 *
 * Each run gets a fresh store on a fresh `TestClock`, both in one
 * `ManagedRuntime`: the store reads that clock, and `TestClock.adjust` run in
 * that runtime moves it. Few keys, so commands collide on them; durations
 * small against the clock advances, so keys expire within a run.
 *
 * Twice: with the reaper running (then the model also says which entries it
 * must have reclaimed), and with it stalled, where the reads alone must hide
 * expired entries (with whole-millisecond advances the running reaper always
 * reclaims an entry before a read could see it past its deadline).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { KeyValueStore } from "../src/index.ts"
import { makeStalledClock } from "./support/RuntimeCounters.ts"

// =============================================================================
// The reference model
// =============================================================================

interface ModelEntry {
  readonly value: KeyValueStore.Value
  /** Epoch ms; `Infinity` for a key kept until deleted. */
  readonly deadline: number
}

interface Model {
  /** Whether the store's reaper runs (`false`: its clock's sleeps never end). */
  readonly reaper: boolean
  now: number
  /** Every entry put and neither deleted, overwritten nor reclaimed since, expired or not. */
  readonly entries: Map<string, ModelEntry>
  /** Entries the reaper has reclaimed. */
  reclaimed: number
}

const liveEntry = (model: Model, key: string): ModelEntry | undefined => {
  const entry = model.entries.get(key)
  return entry !== undefined && model.now < entry.deadline ? entry : undefined
}

const liveKeys = (model: Model): Array<string> => [...model.entries.keys()].filter((key) => liveEntry(model, key))

/**
 * Entries the reaper must have reclaimed by now: it wakes on whole
 * milliseconds (the clock only moves by whole milliseconds here), so an entry
 * is gone from memory once `now` has reached its deadline rounded up.
 */
const reclaimable = (model: Model, entry: ModelEntry): boolean => Math.ceil(entry.deadline) <= model.now

// =============================================================================
// The real system
// =============================================================================

interface Real {
  readonly run: <A, E>(effect: Effect.Effect<A, E, KeyValueStore.KeyValueStore>) => Promise<A>
}

const store = Effect.gen(function*() {
  return yield* KeyValueStore.KeyValueStore
})

/** What a store operation gave: a value, or the tag and key of its error. */
type Outcome =
  | { readonly _tag: "Success"; readonly value: unknown }
  | { readonly _tag: "Failure"; readonly error: string; readonly key?: string }

const comparable = (value: unknown): unknown =>
  value instanceof Uint8Array ? { bytes: Array.from(value) } : value

const outcomeOf = <A, E>(exit: Exit.Exit<A, E>): Outcome => {
  if (Exit.isSuccess(exit)) return { _tag: "Success", value: comparable(exit.value) }
  const error = Exit.findErrorOption(exit)
  if (Option.isNone(error)) throw new Error(`defect: ${String(exit.cause)}`)
  const e = error.value as { readonly _tag: string; readonly key?: string }
  return e._tag === "KeyNotFound" ? { _tag: "Failure", error: e._tag, key: e.key! } : { _tag: "Failure", error: e._tag }
}

const keyNotFound = (key: string): Outcome => ({ _tag: "Failure", error: "KeyNotFound", key })

const showValue = (value: KeyValueStore.Value): string =>
  typeof value === "string" ? JSON.stringify(value) : `bytes[${Array.from(value).join(",")}]`

// =============================================================================
// Commands
// =============================================================================

type StoreCommand = fc.AsyncCommand<Model, Real, false>

class Get implements StoreCommand {
  readonly key: string
  constructor(key: string) {
    this.key = key
  }
  check = () => true
  async run(model: Model, real: Real) {
    const exit = await real.run(Effect.exit(Effect.flatMap(store, (s) => s.get(this.key))))
    const entry = liveEntry(model, this.key)
    assert.deepStrictEqual(
      outcomeOf(exit),
      entry === undefined ? keyNotFound(this.key) : { _tag: "Success", value: comparable(entry.value) }
    )
  }
  toString = () => `get(${this.key})`
}

class Put implements StoreCommand {
  readonly key: string
  readonly value: KeyValueStore.Value
  readonly duration: number | undefined
  constructor(key: string, value: KeyValueStore.Value, duration: number | undefined) {
    this.key = key
    this.value = value
    this.duration = duration
  }
  check = () => true
  async run(model: Model, real: Real) {
    // A fresh array per call: the store must copy it, the model keeps its own.
    const value = typeof this.value === "string" ? this.value : new Uint8Array(this.value)
    const put = Effect.flatMap(store, (s) =>
      this.duration === undefined ? s.put(this.key, value) : s.put(this.key, value, { duration: this.duration }))
    const outcome = outcomeOf(await real.run(Effect.exit(put)))
    assert.deepStrictEqual(outcome, { _tag: "Success", value: comparable(this.value) })
    if (value instanceof Uint8Array) value.fill(0xee)
    model.entries.set(this.key, {
      value: this.value,
      deadline: this.duration === undefined ? Infinity : model.now + this.duration
    })
  }
  toString = () =>
    `put(${this.key}, ${showValue(this.value)}${this.duration === undefined ? "" : `, { duration: ${this.duration} }`})`
}

class Delete implements StoreCommand {
  readonly key: string
  constructor(key: string) {
    this.key = key
  }
  check = () => true
  async run(model: Model, real: Real) {
    const exit = await real.run(Effect.exit(Effect.flatMap(store, (s) => s.delete(this.key))))
    const entry = liveEntry(model, this.key)
    assert.deepStrictEqual(outcomeOf(exit), entry === undefined ? keyNotFound(this.key) : { _tag: "Success", value: undefined })
    model.entries.delete(this.key)
  }
  toString = () => `delete(${this.key})`
}

class Advance implements StoreCommand {
  readonly millis: number
  constructor(millis: number) {
    this.millis = millis
  }
  check = () => true
  async run(model: Model, real: Real) {
    await real.run(TestClock.adjust(this.millis))
    model.now += this.millis
    if (!model.reaper) return
    // The reaper has run: what it reclaimed is gone from the model too.
    for (const [key, entry] of model.entries) {
      if (reclaimable(model, entry)) {
        model.entries.delete(key)
        model.reclaimed++
      }
    }
  }
  toString = () => `advance(${this.millis} ms)`
}

/** has, timeToLive, size, keys, entries and stats, all at once. */
class Observe implements StoreCommand {
  check = () => true
  async run(model: Model, real: Real) {
    const seen = await real.run(Effect.gen(function*() {
      const s = yield* store
      return {
        has: yield* Effect.forEach(modelKeys, (key) => s.has(key)),
        timeToLive: yield* Effect.forEach(modelKeys, (key) => Effect.exit(s.timeToLive(key))),
        size: yield* s.size,
        keys: yield* s.keys,
        entries: yield* Stream.runCollect(s.entries),
        stats: yield* s.stats
      }
    }))
    const live = liveKeys(model)
    assert.deepStrictEqual(seen.has, modelKeys.map((key) => liveEntry(model, key) !== undefined), "has")
    assert.deepStrictEqual(
      seen.timeToLive.map(outcomeOf),
      modelKeys.map((key): Outcome => {
        const entry = liveEntry(model, key)
        if (entry === undefined) return keyNotFound(key)
        return {
          _tag: "Success",
          value: entry.deadline === Infinity ? Option.none() : Option.some(Duration.millis(entry.deadline - model.now))
        }
      }),
      "timeToLive"
    )
    assert.strictEqual(seen.size, live.length, "size")
    assert.deepStrictEqual([...seen.keys].sort(), [...live].sort(), "keys")
    assert.deepStrictEqual(
      seen.entries.map(([key, value]) => [key, comparable(value)]).sort(byKey),
      live.map((key) => [key, comparable(liveEntry(model, key)!.value)]).sort(byKey),
      "entries"
    )
    assert.deepStrictEqual(seen.stats, {
      storedEntries: model.entries.size,
      entriesWithDeadline: [...model.entries.values()].filter((entry) => entry.deadline !== Infinity).length,
      reclaimed: model.reclaimed
    }, "stats")
  }
  toString = () => "observe"
}

const byKey = (a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>) => String(a[0]).localeCompare(String(b[0]))

// =============================================================================
// Arbitraries
// =============================================================================

const modelKeys = ["a", "b", "c", "d"]

const keyArb = fc.constantFrom(...modelKeys)

const valueArb: fc.Arbitrary<KeyValueStore.Value> = fc.oneof(
  fc.string({ maxLength: 3 }),
  fc.uint8Array({ maxLength: 3 })
)

/** Mostly whole milliseconds, some fractional ones. */
const durationArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom(0.5, 1.5, 2.25, 9.75) }
)

const commandArbs: Array<fc.Arbitrary<StoreCommand>> = [
  fc.tuple(keyArb).map(([key]) => new Get(key)),
  fc.tuple(keyArb, valueArb).map(([key, value]) => new Put(key, value, undefined)),
  fc.tuple(keyArb, valueArb, durationArb).map(([key, value, duration]) => new Put(key, value, duration)),
  fc.tuple(keyArb).map(([key]) => new Delete(key)),
  fc.integer({ min: 1, max: 12 }).map((millis) => new Advance(millis)),
  fc.constant(new Observe())
]

// =============================================================================
// The property
// =============================================================================

/** A store whose reaper never wakes: its clock's sleeps never end. */
const layerStalledReaper = Layer.effect(
  KeyValueStore.KeyValueStore,
  Effect.flatMap(
    TestClock.testClockWith(Effect.succeed),
    (clock) => KeyValueStore.make().pipe(Effect.provideService(Clock.Clock, makeStalledClock(clock)))
  )
)

describe("the store agrees with a reference model", () => {
  for (
    const { numRuns, reaper, store } of [
      { reaper: true, store: KeyValueStore.layerMemory, numRuns: 300 },
      { reaper: false, store: layerStalledReaper, numRuns: 200 }
    ]
  ) {
    it(
      `every sequence of get/put/put-with-duration/delete/advance gives the model's results (reaper ${
        reaper ? "running" : "stalled"
      }, ${numRuns} runs)`,
      async () => {
        let runs = 0
        await fc.assert(
          fc.asyncProperty(fc.commands(commandArbs, { size: "medium", maxCommands: 80 }), async (commands) => {
            runs++
            // A fresh store on a fresh TestClock, in one runtime.
            const runtime = ManagedRuntime.make(store.pipe(Layer.provideMerge(TestClock.layer())))
            try {
              await fc.asyncModelRun(
                () => ({
                  model: { reaper, now: 0, entries: new Map(), reclaimed: 0 },
                  real: { run: (effect) => runtime.runPromise(effect) }
                }),
                commands
              )
            } finally {
              await runtime.dispose()
            }
          }),
          { numRuns }
        )
        assert.strictEqual(runs, numRuns)
      }
    )
  }
})
