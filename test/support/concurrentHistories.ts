/**
 * Concurrent histories of a `KeyValueStore`, checked for linearizability.
 *
 * A `Program` is what each of several fibers does: a list of steps, each a
 * `get`, `put` or `delete` on one of a few keys, with pauses around it. Running
 * a program against a store records every operation with `record` (call and
 * return stamped from one logical clock) into a history, which
 * `Linearizability.check` then judges.
 *
 * Each step has three pauses: `think`, before the call (time between
 * operations); `request`, inside the recorded interval before the store is
 * called; `response`, inside it after the store has answered. The last two
 * only widen the interval around the store's own work, which can excuse a
 * reordering but never fake one, so they cost the check nothing in soundness
 * while letting intervals of a store that answers synchronously overlap.
 *
 * `linearizabilitySuite` registers the tests for any layer of the store: a
 * fresh store (a fresh build of the layer) per run, with keys named after the
 * run, so that even a layer that reopens persisted state starts each run on
 * keys it has never seen.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as fc from "fast-check"
import { KeyValueStore } from "../../src/index.ts"
import { check, type Entry, formatVerdict, type LogicalClock, type Operation, record } from "./Linearizability.ts"

// =============================================================================
// Programs
// =============================================================================

/** A pause: none, one `Effect.yieldNow`, or a real `Effect.sleep`. */
export type Pause =
  | { readonly _tag: "None" }
  | { readonly _tag: "Yield" }
  | { readonly _tag: "Sleep"; readonly millis: number }

/** One operation of one fiber, with its pauses (see the module comment). */
export interface Step {
  readonly op: Operation["_tag"]
  /** Index into the run's key names. */
  readonly key: number
  readonly think: Pause
  readonly request: Pause
  readonly response: Pause
}

/** The steps of each fiber; fiber `i` is process `i` of the history. */
export type Program = ReadonlyArray<ReadonlyArray<Step>>

/** Shape of the generated programs. */
export interface ProgramShape {
  readonly fibers: { readonly min: number; readonly max: number }
  readonly stepsPerFiber: { readonly min: number; readonly max: number }
  readonly keys: number
}

const noPause: Pause = { _tag: "None" }

/** Mostly no pause, often a yield, sometimes a sleep of 1–2 ms. */
export const pauseArbitrary: fc.Arbitrary<Pause> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(noPause) },
  { weight: 3, arbitrary: fc.constant<Pause>({ _tag: "Yield" }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map((millis): Pause => ({ _tag: "Sleep", millis })) }
)

/** Random programs of the given shape, the pauses drawn from `pause`. */
export const programArbitrary = (shape: ProgramShape, pause: fc.Arbitrary<Pause>): fc.Arbitrary<Program> =>
  fc.array(
    fc.array(
      fc.record({
        op: fc.oneof(
          { weight: 2, arbitrary: fc.constant<Operation["_tag"]>("get") },
          { weight: 2, arbitrary: fc.constant<Operation["_tag"]>("put") },
          { weight: 1, arbitrary: fc.constant<Operation["_tag"]>("delete") }
        ),
        key: fc.nat(shape.keys - 1),
        think: pause,
        request: pause,
        response: pause
      }),
      { minLength: shape.stepsPerFiber.min, maxLength: shape.stepsPerFiber.max }
    ),
    { minLength: shape.fibers.min, maxLength: shape.fibers.max }
  )

// =============================================================================
// Running programs
// =============================================================================

/** How a run pauses: `label` names the point, for schedulers that report. */
export type Pauser = (pause: Pause, label: string) => Effect.Effect<void>

/** Pauses in real time: `Effect.yieldNow` and `Effect.sleep`. */
export const pauseInRealTime: Pauser = (pause) => {
  switch (pause._tag) {
    case "None":
      return Effect.void
    case "Yield":
      return Effect.yieldNow
    case "Sleep":
      return Effect.sleep(pause.millis)
  }
}

/** The store's own implementation of `op`. */
const perform = (
  store: KeyValueStore.KeyValueStoreService,
  op: Operation
): Effect.Effect<unknown, KeyValueStore.KeyNotFound | KeyValueStore.InvalidInput | KeyValueStore.StorageError> => {
  switch (op._tag) {
    case "get":
      return store.get(op.key)
    case "put":
      return store.put(op.key, op.value)
    case "delete":
      return store.delete(op.key)
  }
}

/**
 * Runs `program` against `store`, one fiber per process, all started at once,
 * and gives the history. `keys` names the program's key indices. A put writes
 * a value unique to its fiber and step, so every successful `get` names the
 * put it saw.
 *
 * With `interruptAfter`, fiber `i` is interrupted after `interruptAfter[i]` ms
 * (if still running): its operation in flight, if any, stays in the history
 * with no return.
 */
export const runProgram = (
  store: KeyValueStore.KeyValueStoreService,
  program: Program,
  options: {
    readonly keys: ReadonlyArray<string>
    readonly pause: Pauser
    readonly interruptAfter?: ReadonlyArray<number | undefined>
  }
): Effect.Effect<Array<Entry>, KeyValueStore.InvalidInput | KeyValueStore.StorageError> =>
  Effect.gen(function*() {
    const history: Array<Entry> = []
    const clock: LogicalClock = { n: 1 }
    const runStep = (process: number, step: Step, index: number) => {
      const key = options.keys[step.key]
      const op: Operation = step.op === "put"
        ? { _tag: "put", key, value: `p${process}.${index}` }
        : { _tag: step.op, key }
      const label = `p${process}#${index} ${step.op}(${key})`
      const interval = options.pause(step.request, `${label} request`).pipe(
        Effect.andThen(perform(store, op)),
        Effect.tap(() => options.pause(step.response, `${label} response`))
      )
      return options.pause(step.think, `${label} think`).pipe(
        Effect.andThen(record(history, clock, process, op, interval))
      )
    }
    yield* Effect.forEach(program, (steps, process) => {
      const run = Effect.forEach(steps, (step, index) => runStep(process, step, index), { discard: true })
      const deadline = options.interruptAfter?.[process]
      return deadline === undefined ? run : Effect.asVoid(Effect.timeoutOption(run, deadline))
    }, { concurrency: "unbounded", discard: true })
    return history
  })

/**
 * Runs `program` on a fresh build of `layer` (one `Effect.runPromise`, so real
 * time and a layer of its own), with key names unique to this run.
 */
const runOnFreshStore = (
  layer: Layer.Layer<KeyValueStore.KeyValueStore, unknown>,
  program: Program,
  options: {
    readonly keys: number
    readonly pause: Pauser
    readonly interruptAfter?: ReadonlyArray<number | undefined>
  }
): Promise<Array<Entry>> => {
  const run = ++runs
  const keys = Array.from({ length: options.keys }, (_, i) => `run${run}/${String.fromCharCode(97 + i)}`)
  const { pause, interruptAfter } = options
  return Effect.runPromise(
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      return yield* runProgram(store, program, interruptAfter === undefined ? { keys, pause } : { keys, pause, interruptAfter })
    }).pipe(Effect.provide(layer))
  )
}
let runs = 0

/** Fails the property with a readable counterexample unless `history` is linearizable. */
export const assertLinearizable = (history: ReadonlyArray<Entry>): void => {
  const verdict = check(history)
  if (!verdict.linearizable) assert.fail(formatVerdict(verdict))
}

/**
 * What the runs of a property exercised, so a test can assert it was not
 * vacuous: histories in which two operations on one key overlapped in time,
 * and histories with an operation that never returned.
 */
class Coverage {
  runs = 0
  withOverlap = 0
  withPending = 0
  add(history: ReadonlyArray<Entry>): void {
    this.runs++
    if (history.some((entry) => entry.ret === Infinity)) this.withPending++
    const latestReturn = new Map<string, number>()
    let overlap = false
    for (const entry of [...history].sort((a, b) => a.call - b.call)) {
      if (entry.call < (latestReturn.get(entry.op.key) ?? -Infinity)) overlap = true
      latestReturn.set(entry.op.key, Math.max(entry.ret, latestReturn.get(entry.op.key) ?? -Infinity))
    }
    if (overlap) this.withOverlap++
  }
}

// =============================================================================
// The suite
// =============================================================================

const operationCount = (program: Program): number => program.reduce((n, steps) => n + steps.length, 0)

/**
 * Registers the linearizability tests of a store under `name`. Every run
 * builds `layer` afresh and uses keys no earlier run used, so a layer over
 * persistent state (a log in a fixed directory) works as well as one that
 * starts empty. Runs take real time: pauses are real yields and sleeps, or
 * points where fast-check's scheduler holds a fiber.
 *
 * `numRuns` (default 200) sets the runs of each property; the interrupted
 * variant does half as many.
 */
export const linearizabilitySuite = (
  name: string,
  layer: Layer.Layer<KeyValueStore.KeyValueStore, unknown>,
  options: { readonly numRuns?: number } = {}
): void => {
  const numRuns = options.numRuns ?? 200
  const shape: ProgramShape = { fibers: { min: 8, max: 10 }, stepsPerFiber: { min: 1, max: 30 }, keys: 3 }

  describe(name, () => {
    it("histories of 8 to 10 fibers doing get, put and delete on 3 keys, with real pauses, are linearizable", async () => {
      const coverage = new Coverage()
      await fc.assert(
        fc.asyncProperty(programArbitrary(shape, pauseArbitrary), async (program) => {
          const history = await runOnFreshStore(layer, program, { keys: shape.keys, pause: pauseInRealTime })
          coverage.add(history)
          assert.strictEqual(history.length, operationCount(program), "every operation returned")
          assertLinearizable(history)
        }),
        { numRuns }
      )
      assert.isAbove(coverage.withOverlap, coverage.runs / 2, "operations on one key overlapped in most runs")
    })

    it("histories with fibers interrupted at random times are linearizable: an interrupted operation takes effect entirely or not at all", async () => {
      const coverage = new Coverage()
      const interruptAfter = fc.array(fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }), {
        minLength: shape.fibers.max,
        maxLength: shape.fibers.max
      })
      await fc.assert(
        fc.asyncProperty(programArbitrary(shape, pauseArbitrary), interruptAfter, async (program, interruptAfter) => {
          const history = await runOnFreshStore(layer, program, { keys: shape.keys, pause: pauseInRealTime, interruptAfter })
          coverage.add(history)
          assertLinearizable(history)
        }),
        { numRuns: Math.ceil(numRuns / 2) }
      )
      assert.isAbove(coverage.withPending, coverage.runs / 2, "most runs interrupted an operation in flight")
    })

    it("histories whose interleaving fast-check's scheduler chooses, step by step, are linearizable", async () => {
      // Every think, request and response is a point where the fiber waits
      // for the scheduler to release it; `waitFor` releases the waiting
      // fibers one at a time, in an order fast-check draws (and shrinks),
      // until the run is over.
      const scheduled: ProgramShape = { fibers: { min: 8, max: 8 }, stepsPerFiber: { min: 1, max: 12 }, keys: 2 }
      const everyPoint = fc.constant<Pause>({ _tag: "Yield" })
      const coverage = new Coverage()
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), programArbitrary(scheduled, everyPoint), async (scheduler, program) => {
          const pause: Pauser = (pause, label) =>
            pause._tag === "None" ? Effect.void : Effect.promise(() => scheduler.schedule(Promise.resolve(), label))
          const history = await scheduler.waitFor(runOnFreshStore(layer, program, { keys: scheduled.keys, pause }))
          coverage.add(history)
          assert.strictEqual(history.length, operationCount(program), "every operation returned")
          assertLinearizable(history)
        }),
        { numRuns }
      )
      assert.isAbove(coverage.withOverlap, coverage.runs / 2, "operations on one key overlapped in most runs")
    })
  })
}
