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
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Scheduler from "effect/Scheduler"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { KeyValueStore } from "../../src/index.ts"
import { slowPathStats } from "../../src/internal/lock/ReadWriteLock.ts"
import {
  check,
  type Entry,
  entriesOutcome,
  formatVerdict,
  keysOutcome,
  type LogicalClock,
  type Operation,
  record,
  type StoreOperation
} from "./Linearizability.ts"

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

// =============================================================================
// Histories that reach the lock's slow path
// =============================================================================
//
// Single-key operations on a store take its read/write lock only when they
// find it held (`ReadWriteLock`'s fast path), and nothing above holds it
// across a yield except an `entries` stream and a fiber preempted inside a
// critical section. So these histories hold `entries` streams open (one
// entry consumed, then yields, then the rest) while other fibers write,
// clear, compact and read, and run under a scheduler that preempts fibers at
// random points, as a busy runtime's operation budget does. Every history
// runs on one store of a batch, emptied first, with a clock that does not
// move (TTLs then stay exact), and counts the lock's slow-path acquisitions
// it caused.

/** One operation of a fiber of a store program, and the yields before it. */
export interface StoreStep {
  readonly op: StoreOperation["_tag"] | "compact"
  /** Index into the keys, for single-key operations. */
  readonly key: number
  /** For a put: its TTL in ms, or none. */
  readonly ttl: number | undefined
  /**
   * For `entries`: yields between its first entry and the rest, then real
   * milliseconds (a log's background sync takes real time, and a batch
   * synced meanwhile is applied only once the stream lets go).
   */
  readonly hold: number
  readonly holdMillis: number
  readonly think: number
}

export type StoreProgram = ReadonlyArray<ReadonlyArray<StoreStep>>

/** The weight of each operation in a step, `clear` and `compact` aside. */
const storeOpWeights = [
  ["get", 12],
  ["put", 16],
  ["delete", 6],
  ["has", 4],
  ["timeToLive", 4],
  ["entries", 12],
  ["keys", 2],
  ["size", 2]
] as const

export interface StoreProgramShape {
  readonly fibers: { readonly min: number; readonly max: number }
  readonly steps: number
  readonly keys: number
  /**
   * The weight of `clear` and of `compact`, against 58 for the others
   * together: on a log, each costs a new file and its syncs.
   */
  readonly maintenanceWeight: number
}

/** Random store programs: `fibers` fibers of up to `steps` steps on `keys` keys. */
export const storeProgramArbitrary = (shape: StoreProgramShape): fc.Arbitrary<StoreProgram> =>
  fc.array(
    fc.array(
      fc.record({
        op: fc.oneof(
          ...[...storeOpWeights, ["clear", shape.maintenanceWeight] as const, ["compact", shape.maintenanceWeight] as const]
            .map(([op, weight]) => ({ weight, arbitrary: fc.constant<StoreStep["op"]>(op) }))
        ),
        key: fc.nat(shape.keys - 1),
        ttl: fc.option(fc.integer({ min: 1, max: 1_000 }), { nil: undefined, freq: 3 }),
        hold: fc.integer({ min: 1, max: 8 }),
        holdMillis: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
        think: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) })
      }),
      { minLength: 1, maxLength: shape.steps }
    ),
    { minLength: shape.fibers.min, maxLength: shape.fibers.max }
  )

/**
 * Effect's scheduler, but a fiber also yields at each operation with
 * probability `1 / every`, drawn from a seeded generator: critical sections
 * get interrupted by other fibers' work wherever the runtime may do so.
 */
export class PreemptingScheduler extends Scheduler.MixedScheduler {
  private random = mulberry32(1)
  private every = Infinity
  /** Preempts with probability `1 / every` from now on (never, for `Infinity`), drawing from `seed`. */
  reseed(seed: number, every: number): void {
    this.random = mulberry32(seed)
    this.every = every
  }
  override shouldYield(fiber: Fiber.Fiber<unknown, unknown>): boolean {
    return super.shouldYield(fiber) || this.random() * this.every < 1
  }
}

const mulberry32 = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const yields = (n: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    let left = n
    return Effect.whileLoop({ while: () => left-- > 0, body: () => Effect.yieldNow, step: () => {} })
  })

/** The outcome string of `timeToLive` (see `StoreOperation`). */
const ttlOutcome = (ttl: Option.Option<Duration.Duration>): string =>
  Option.match(ttl, { onNone: () => "none", onSome: (left) => String(Duration.toMillis(left)) })

/** Waits `millis` of real time: the store's clock does not move. */
const realDelay = (millis: number): Effect.Effect<void> =>
  millis === 0 ? Effect.void : Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/** An `entries` stream consumed one entry, then held open (see `StoreStep`), then to its end. */
const heldEntries = (store: KeyValueStore.KeyValueStoreService, step: StoreStep): Effect.Effect<string> => {
  let first = true
  return Effect.map(
    Stream.runCollect(Stream.mapEffect(store.entries, (entry) => {
      if (!first) return Effect.succeed(entry)
      first = false
      return Effect.as(Effect.andThen(yields(step.hold), realDelay(step.holdMillis)), entry)
    })),
    (entries) => entriesOutcome(entries.map(([key, value]) => [key, String(value)] as const))
  )
}

const performStore = (
  store: KeyValueStore.KeyValueStoreService,
  op: StoreOperation,
  step: StoreStep
): Effect.Effect<unknown, KeyValueStore.KeyNotFound | KeyValueStore.InvalidInput | KeyValueStore.StorageError> => {
  switch (op._tag) {
    case "get":
    case "delete":
      return perform(store, op)
    case "put":
      return op.ttl === undefined ? store.put(op.key, op.value) : store.put(op.key, op.value, { duration: op.ttl })
    case "has":
      return Effect.map(store.has(op.key), String)
    case "timeToLive":
      return Effect.map(store.timeToLive(op.key), ttlOutcome)
    case "clear":
      return store.clear
    case "keys":
      return Effect.map(store.keys, keysOutcome)
    case "size":
      return Effect.map(store.size, String)
    case "entries":
      return heldEntries(store, step)
  }
}

/**
 * Runs a store program, one fiber per process, and gives its history. A
 * `compact` step runs a compaction that the history does not record: it
 * changes no key, so it must not change what any operation sees.
 */
export const runStoreProgram = (
  store: KeyValueStore.KeyValueStoreService,
  program: StoreProgram,
  keys: ReadonlyArray<string>
): Effect.Effect<Array<Entry<StoreOperation>>, KeyValueStore.InvalidInput | KeyValueStore.StorageError> =>
  Effect.gen(function*() {
    const history: Array<Entry<StoreOperation>> = []
    const clock: LogicalClock = { n: 1 }
    const runStep = (process: number, step: StoreStep, index: number) => {
      if (step.op === "compact") return Effect.andThen(yields(step.think), store.compact)
      const key = keys[step.key]
      const op: StoreOperation = step.op === "put"
        ? { _tag: "put", key, value: `p${process}.${index}`, ...(step.ttl === undefined ? {} : { ttl: step.ttl }) }
        : step.op === "clear" || step.op === "keys" || step.op === "size" || step.op === "entries"
        ? { _tag: step.op }
        : { _tag: step.op, key }
      return Effect.andThen(yields(step.think), record(history, clock, process, op, performStore(store, op, step)))
    }
    yield* Effect.forEach(
      program,
      (steps, process) => Effect.forEach(steps, (step, index) => runStep(process, step, index), { discard: true }),
      { concurrency: "unbounded", discard: true }
    )
    return history
  })

/** What the store histories of one layer exercised. */
export interface StoreHistoryTotals {
  histories: number
  operations: number
  /** Histories in which at least one operation took the lock's slow path. */
  slowPath: number
  slowPathReads: number
  slowPathWrites: number
  /** Histories with an `entries` stream and a write that overlapped it. */
  writeDuringEntries: number
  millis: number
  /** CPU time of the process meanwhile (user + system), steadier than `millis` on a busy machine. */
  cpuMillis: number
}

/** Store histories per run, across all layers: 10,000, or `KVLOG_HISTORIES` if more (for a soak). */
export const storeHistoriesTotal = Math.max(10_000, Number(process.env.KVLOG_HISTORIES ?? 0) || 0)

/**
 * Each layer's share of `storeHistoriesTotal`. A history on a log costs a
 * few times one in memory (compactions, clears and syncs are real I/O).
 */
const storeHistoryShares = { layerMemory: 0.5, always: 0.15, interval: 0.15, never: 0.2 } as const

/** How many store histories `layer` checks per run; the four add up to `storeHistoriesTotal`. */
export const storeHistoriesFor = (layer: keyof typeof storeHistoryShares): number =>
  layer === "layerMemory"
    ? storeHistoriesTotal - storeHistoriesFor("always") - storeHistoriesFor("interval") - storeHistoriesFor("never")
    : Math.round(storeHistoriesTotal * storeHistoryShares[layer])

/** The least share of histories in which some operation took the lock's slow path. */
export const minimumSlowPathShare = 0.3

/**
 * Registers, under `name`, a test that checks `histories` store histories
 * on `layer` (see `checkStoreHistories`) and asserts that they were that
 * many and that at least `minimumSlowPathShare` of them took the slow path;
 * `report` receives the totals.
 */
export const storeHistoriesTest = (
  name: string,
  layer: Layer.Layer<KeyValueStore.KeyValueStore, unknown>,
  options: { readonly histories: number; readonly maintenanceWeight: number },
  report: (totals: StoreHistoryTotals) => void
): void => {
  it(
    `${name}: ${options.histories} random histories of entries held open, clear, compact, keys, size and single-key operations, preempted at random, are linearizable, and at least ${
      minimumSlowPathShare * 100
    }% of them take the lock's slow path`,
    async () => {
      const totals = await checkStoreHistories(layer, options.histories, { maintenanceWeight: options.maintenanceWeight })
      report(totals)
      assert.strictEqual(totals.histories, options.histories, "every history was checked")
      assert.isAtLeast(
        totals.slowPath / totals.histories,
        minimumSlowPathShare,
        `share of histories that took the slow path (${totals.slowPath} of ${totals.histories})`
      )
      assert.isAbove(totals.writeDuringEntries, totals.histories / 4, "writes overlapped a held entries stream")
    },
    // Generous against a busy machine: a run takes a fraction of it.
    600_000
  )
}

/** One JSON line for the log: each layer's totals and its share of slow-path histories. */
export const formatStoreHistoryTotals = (byLayer: Record<string, StoreHistoryTotals>): string =>
  JSON.stringify({
    storeHistories: Object.values(byLayer).reduce((n, totals) => n + totals.histories, 0),
    layers: Object.fromEntries(
      Object.entries(byLayer).map(([layer, totals]) => [layer, {
        ...totals,
        slowPathShare: Math.round((totals.slowPath / totals.histories) * 1000) / 1000
      }])
    )
  })

const isWrite = (op: StoreOperation): boolean => op._tag === "put" || op._tag === "delete" || op._tag === "clear"

const writeOverlapsEntries = (history: ReadonlyArray<Entry<StoreOperation>>): boolean =>
  history.some((scan) =>
    scan.op._tag === "entries" &&
    history.some((write) => isWrite(write.op) && write.call < scan.ret && scan.call < write.ret)
  )

/**
 * Checks `histories` random store programs on `layer`, in batches sharing one
 * store, and gives what they exercised. Fails with a shrunk counterexample
 * at the first history that is not linearizable.
 *
 * Each history starts on a store holding one key that no step names: the
 * previous history's keys are deleted (a `clear` would cost a log a new file
 * per history), and that key put again. So an `entries` stream has an entry
 * to hold on to even before any put of the history is visible (on a log
 * under `"always"`, not until its batch is synced). `maintenanceWeight` sets
 * how often `clear` and `compact` steps come (see `StoreProgramShape`).
 */
export const checkStoreHistories = async (
  layer: Layer.Layer<KeyValueStore.KeyValueStore, unknown>,
  histories: number,
  options: { readonly maintenanceWeight: number; readonly batch?: number; readonly seed?: number }
): Promise<StoreHistoryTotals> => {
  const batch = options.batch ?? 500
  const keys = ["a", "b"]
  const initial: ReadonlyMap<string, string> = new Map([["~held", "present"]])
  const shape: StoreProgramShape = {
    fibers: { min: 2, max: 5 },
    steps: 5,
    keys: keys.length,
    maintenanceWeight: options.maintenanceWeight
  }
  const scheduler = new PreemptingScheduler()
  // Preemption costs a turn of the event loop per yield: half the histories
  // run without it, the others with a fiber preempted every ~16 or ~64 steps.
  const preemption = fc.constantFrom(Infinity, Infinity, 16, 64)
  const testLayer = layer.pipe(
    Layer.provideMerge(Layer.effect(Clock.Clock, TestClock.make({ warningDelay: "1 hour" }))),
    Layer.provideMerge(Layer.succeed(Scheduler.Scheduler, scheduler))
  )
  const totals: StoreHistoryTotals = {
    histories: 0,
    operations: 0,
    slowPath: 0,
    slowPathReads: 0,
    slowPathWrites: 0,
    writeDuringEntries: 0,
    millis: 0,
    cpuMillis: 0
  }
  const started = performance.now()
  const cpuStarted = process.cpuUsage()
  let runtime: ManagedRuntime.ManagedRuntime<KeyValueStore.KeyValueStore, unknown> | undefined
  let runsOnRuntime = 0
  try {
    await fc.assert(
      fc.asyncProperty(storeProgramArbitrary(shape), fc.integer(), preemption, async (program, seed, every) => {
        if (runtime === undefined || runsOnRuntime === batch) {
          await runtime?.dispose()
          runtime = ManagedRuntime.make(testLayer)
          runsOnRuntime = 0
        }
        runsOnRuntime++
        const run = await runtime.runPromise(Effect.gen(function*() {
          const store = yield* KeyValueStore.KeyValueStore
          yield* Effect.all([
            ...keys.map((key) => Effect.ignore(store.delete(key))),
            ...Array.from(initial, ([key, value]) => store.put(key, value))
          ], { concurrency: "unbounded", discard: true })
          scheduler.reseed(seed, every)
          const before = slowPathStats()
          const history = yield* runStoreProgram(store, program, keys)
          const after = slowPathStats()
          return { history, reads: after.reads - before.reads, writes: after.writes - before.writes }
        }))
        totals.histories++
        totals.operations += run.history.length
        totals.slowPathReads += run.reads
        totals.slowPathWrites += run.writes
        if (run.reads + run.writes > 0) totals.slowPath++
        if (writeOverlapsEntries(run.history)) totals.writeDuringEntries++
        const verdict = check(run.history, initial)
        if (!verdict.linearizable) assert.fail(formatVerdict(verdict))
      }),
      { numRuns: histories, ...(options.seed === undefined ? {} : { seed: options.seed }) }
    )
  } finally {
    await runtime?.dispose()
  }
  totals.millis = Math.round(performance.now() - started)
  const cpu = process.cpuUsage(cpuStarted)
  totals.cpuMillis = Math.round((cpu.user + cpu.system) / 1000)
  return totals
}
