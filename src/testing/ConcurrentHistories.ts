/**
 * Random concurrent workloads for a `KeyValueStore`, run on any layer that
 * provides one, and checked for linearizability as fast-check properties:
 * a failing history is shrunk by fast-check to a short program, and reported
 * as a `NotLinearizable` error whose message is the counterexample's
 * timeline.
 *
 * A `Program` is what each of several fibers does: a list of steps, each a
 * `get`, `put` or `delete` on one of a few keys, with pauses around it. Running
 * a program against a store records every operation with `record` (call and
 * return stamped from one logical clock) into a history, which
 * `checkLinearizable` then judges.
 *
 * Each step has three pauses: `think`, before the call (time between
 * operations); `request`, inside the recorded interval before the store is
 * called; `response`, inside it after the store has answered. The last two
 * only widen the interval around the store's own work, which can excuse a
 * reordering but never fake one, so they cost the check nothing in soundness
 * while letting intervals of a store that answers synchronously overlap.
 *
 * Every run builds the layer afresh and uses key names no earlier run used,
 * so a layer over persistent state (a log in a fixed directory, a shared
 * server) works as well as one that starts empty.
 *
 * @since 0.2.0
 */
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
import * as KeyValueStore from "../KeyValueStore.ts"
import { record } from "./HistoryRecorder.ts"
import {
  checkLinearizable,
  type Entry,
  entriesOutcome,
  type KeyValueModel,
  keyValueModel,
  keysOutcome,
  type LogicalClock,
  NotLinearizable,
  type Operation,
  type PropertyRun,
  type StoreOperation,
  trimCounterexample
} from "./Linearizability.ts"

// =============================================================================
// Programs
// =============================================================================

/**
 * A pause: none, one `Effect.yieldNow`, or a real `Effect.sleep`.
 *
 * @since 0.2.0
 * @category models
 */
export type Pause =
  | { readonly _tag: "None" }
  | { readonly _tag: "Yield" }
  | { readonly _tag: "Sleep"; readonly millis: number }

/**
 * One operation of one fiber, with its pauses (see the module comment).
 *
 * @since 0.2.0
 * @category models
 */
export interface Step {
  readonly op: Operation["_tag"]
  /** Index into the run's key names. */
  readonly key: number
  readonly think: Pause
  readonly request: Pause
  readonly response: Pause
}

/**
 * The steps of each fiber; fiber `i` is process `i` of the history.
 *
 * @since 0.2.0
 * @category models
 */
export type Program = ReadonlyArray<ReadonlyArray<Step>>

/**
 * Shape of the generated programs.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProgramShape {
  readonly fibers: { readonly min: number; readonly max: number }
  readonly stepsPerFiber: { readonly min: number; readonly max: number }
  readonly keys: number
}

/**
 * The programs of `checkHistoriesWithPauses` and `checkInterruptedHistories`
 * unless told otherwise: 8 to 10 fibers of 1 to 30 steps on 3 keys.
 *
 * @since 0.2.0
 * @category constructors
 */
export const defaultShape: ProgramShape = { fibers: { min: 8, max: 10 }, stepsPerFiber: { min: 1, max: 30 }, keys: 3 }

/**
 * The programs of `checkScheduledHistories` unless told otherwise: 8 fibers
 * of 1 to 12 steps on 2 keys.
 *
 * @since 0.2.0
 * @category constructors
 */
export const defaultScheduledShape: ProgramShape = {
  fibers: { min: 8, max: 8 },
  stepsPerFiber: { min: 1, max: 12 },
  keys: 2
}

const noPause: Pause = { _tag: "None" }

/**
 * Mostly no pause, often a yield, sometimes a sleep of 1–2 ms.
 *
 * @since 0.2.0
 * @category constructors
 */
export const pauseArbitrary: fc.Arbitrary<Pause> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(noPause) },
  { weight: 3, arbitrary: fc.constant<Pause>({ _tag: "Yield" }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map((millis): Pause => ({ _tag: "Sleep", millis })) }
)

/**
 * Random programs of the given shape, the pauses drawn from `pause`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const programArbitrary = (shape: ProgramShape, pause: fc.Arbitrary<Pause>): fc.Arbitrary<Program> => {
  checkShape(shape)
  return fc.array(
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
}

const checkShape = (shape: ProgramShape): void => {
  const counts = [shape.fibers.min, shape.fibers.max, shape.stepsPerFiber.min, shape.stepsPerFiber.max, shape.keys]
  if (!counts.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new RangeError(`a program shape holds whole numbers of fibers, steps and keys, got ${JSON.stringify(shape)}`)
  }
  if (shape.keys < 1 || shape.keys > 26) throw new RangeError(`a program has 1 to 26 keys, got ${shape.keys}`)
  if (shape.fibers.min > shape.fibers.max || shape.stepsPerFiber.min > shape.stepsPerFiber.max) {
    throw new RangeError(`a program shape's min must not exceed its max, got ${JSON.stringify(shape)}`)
  }
}

// =============================================================================
// Running programs
// =============================================================================

/**
 * How a run pauses: `label` names the point, for schedulers that report.
 *
 * @since 0.2.0
 * @category models
 */
export type Pauser = (pause: Pause, label: string) => Effect.Effect<void>

/**
 * Pauses in real time: `Effect.yieldNow` and `Effect.sleep`.
 *
 * @since 0.2.0
 * @category constructors
 */
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
 *
 * @since 0.2.0
 * @category running
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
 * A layer of the store under test: called once per run (or per batch of
 * runs), so each gets a store of its own.
 *
 * @since 0.2.0
 * @category models
 */
export type MakeLayer = () => Layer.Layer<KeyValueStore.KeyValueStore, unknown>

/**
 * Runs `program` on a fresh build of the layer (one `Effect.runPromise`, so real
 * time and a layer of its own), with key names unique to this run.
 */
const runOnFreshStore = (
  makeLayer: MakeLayer,
  program: Program,
  options: {
    readonly keys: number
    readonly pause: Pauser
    readonly interruptAfter?: ReadonlyArray<number | undefined>
  }
): Promise<Array<Entry>> => {
  const run = ++runs
  const keys = Array.from({ length: options.keys }, (_, i) => `run${run}/${String.fromCharCode(97 + i)}`)
  const { interruptAfter, pause } = options
  return Effect.runPromise(
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      return yield* runProgram(store, program, interruptAfter === undefined ? { keys, pause } : { keys, pause, interruptAfter })
    }).pipe(Effect.provide(makeLayer()))
  )
}
let runs = 0

/**
 * What the runs of a property exercised, so a test can assert it was not
 * vacuous: histories in which two operations on one key overlapped in time,
 * and histories with an operation that never returned.
 *
 * @since 0.2.0
 * @category models
 */
export class Coverage {
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
// Properties
// =============================================================================

/**
 * A fast-check run to replay: the `seed` (and `path`) a failure reported.
 *
 * @since 0.2.0
 * @category models
 */
export interface Replay {
  readonly seed?: number | undefined
  readonly path?: string | undefined
}

/**
 * Options of the history properties. `runs`: how many programs to run;
 * `shape`: their shape; `model`: the specification (kvlog's store by
 * default); `replay`: a failure's seed and path, to run it again.
 *
 * @since 0.2.0
 * @category models
 */
export interface HistoryOptions {
  readonly runs?: number | undefined
  readonly shape?: ProgramShape | undefined
  readonly model?: KeyValueModel | undefined
  readonly replay?: Replay | undefined
}

const operationCount = (program: Program): number => program.reduce((n, steps) => n + steps.length, 0)

const checkRuns = (runs: number | undefined, fallback: number): number => {
  const value = runs ?? fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`runs must be a whole number of at least 1, got ${value}`)
  return value
}

/** Judges one history inside a property: throws, untrimmed, so shrinking stays cheap. */
const judge = (history: ReadonlyArray<Entry<StoreOperation>>, model: KeyValueModel | undefined): void => {
  const verdict = checkLinearizable(history, model)
  if (!verdict.linearizable) throw new NotLinearizable({ verdict, leftOut: 0 })
}

/**
 * Runs `property` with fast-check; on failure, throws the shrunk
 * counterexample as a `NotLinearizable` (trimmed, and saying how it was
 * found), or fast-check's own report for a failure of another kind.
 */
const runProperty = async <Ts extends [unknown, ...Array<unknown>]>(
  property: fc.IAsyncProperty<Ts>,
  numRuns: number,
  replay: Replay | undefined,
  model: KeyValueModel | undefined
): Promise<void> => {
  const details = await fc.check(property, {
    numRuns,
    ...(replay?.seed === undefined ? {} : { seed: replay.seed }),
    ...(replay?.path === undefined ? {} : { path: replay.path })
  })
  if (!details.failed) return
  const failure = details.errorInstance
  const found: PropertyRun = {
    runs: details.numRuns,
    shrinks: details.numShrinks,
    seed: details.seed,
    path: details.counterexamplePath ?? undefined
  }
  if (failure instanceof NotLinearizable) {
    throw new NotLinearizable({ ...trimCounterexample(failure.verdict, model), found })
  }
  throw new Error(fc.defaultReportMessage(details) ?? "the property failed", { cause: failure })
}

/**
 * Checks `runs` (default 200) random programs, each on a fresh build of the
 * layer, with real pauses (yields and 1–2 ms sleeps): every operation must
 * return and every history be linearizable. Resolves with what the runs
 * covered; rejects with a `NotLinearizable` counterexample, shrunk.
 *
 * @since 0.2.0
 * @category properties
 */
export const checkHistoriesWithPauses = async (makeLayer: MakeLayer, options: HistoryOptions = {}): Promise<Coverage> => {
  const shape = options.shape ?? defaultShape
  const coverage = new Coverage()
  await runProperty(
    fc.asyncProperty(programArbitrary(shape, pauseArbitrary), async (program) => {
      const history = await runOnFreshStore(makeLayer, program, { keys: shape.keys, pause: pauseInRealTime })
      coverage.add(history)
      const returned = history.filter((entry) => entry.ret !== Infinity).length
      if (returned !== operationCount(program)) {
        throw new Error(`${operationCount(program) - returned} of ${operationCount(program)} operations never returned`)
      }
      judge(history, options.model)
    }),
    checkRuns(options.runs, 200),
    options.replay,
    options.model
  )
  return coverage
}

/**
 * Like `checkHistoriesWithPauses` (default 100 runs), with each fiber
 * interrupted after 0–20 ms, or not at all: an interrupted operation must
 * take effect entirely or not at all.
 *
 * @since 0.2.0
 * @category properties
 */
export const checkInterruptedHistories = async (makeLayer: MakeLayer, options: HistoryOptions = {}): Promise<Coverage> => {
  const shape = options.shape ?? defaultShape
  const coverage = new Coverage()
  const interruptAfter = fc.array(fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }), {
    minLength: shape.fibers.max,
    maxLength: shape.fibers.max
  })
  await runProperty(
    fc.asyncProperty(programArbitrary(shape, pauseArbitrary), interruptAfter, async (program, interruptAfter) => {
      const history = await runOnFreshStore(makeLayer, program, { keys: shape.keys, pause: pauseInRealTime, interruptAfter })
      coverage.add(history)
      judge(history, options.model)
    }),
    checkRuns(options.runs, 100),
    options.replay,
    options.model
  )
  return coverage
}

/**
 * Like `checkHistoriesWithPauses`, but every think, request and response is a
 * point where the fiber waits for fast-check's scheduler, which releases the
 * waiting fibers one at a time in an order it draws (and shrinks). Programs
 * default to `defaultScheduledShape`.
 *
 * @since 0.2.0
 * @category properties
 */
export const checkScheduledHistories = async (makeLayer: MakeLayer, options: HistoryOptions = {}): Promise<Coverage> => {
  const shape = options.shape ?? defaultScheduledShape
  const everyPoint = fc.constant<Pause>({ _tag: "Yield" })
  const coverage = new Coverage()
  await runProperty(
    fc.asyncProperty(fc.scheduler(), programArbitrary(shape, everyPoint), async (scheduler, program) => {
      const pause: Pauser = (pause, label) =>
        pause._tag === "None" ? Effect.void : Effect.promise(() => scheduler.schedule(Promise.resolve(), label))
      const history = await scheduler.waitFor(runOnFreshStore(makeLayer, program, { keys: shape.keys, pause }))
      coverage.add(history)
      if (history.length !== operationCount(program)) {
        throw new Error(`${operationCount(program) - history.length} operations never ran`)
      }
      judge(history, options.model)
    }),
    checkRuns(options.runs, 200),
    options.replay,
    options.model
  )
  return coverage
}

// =============================================================================
// Histories over the whole store
// =============================================================================
//
// A store's single-key operations may be atomic by construction (kvlog's run
// in one synchronous step when its lock is free); what tests a lock is an
// operation that holds it across a yield. So these histories hold `entries`
// streams open (one entry consumed, then yields, then the rest) while other
// fibers write, clear, compact and read, and run under a scheduler that
// preempts fibers at random points, as a busy runtime's operation budget
// does. Every history runs on one store of a batch, emptied first.

/**
 * One operation of a fiber of a store program, and the yields before it.
 *
 * @since 0.2.0
 * @category models
 */
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

/**
 * The steps of each fiber of a store program.
 *
 * @since 0.2.0
 * @category models
 */
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

/**
 * Shape of the generated store programs.
 *
 * - `maintenanceWeight`: the weight of `clear` and of `compact`, against 58
 *   for the others together (on a log, each costs a new file and its syncs).
 * - `compact` (default `true`): whether programs compact at all.
 * - `ttlMillis` (default 1 to 1000): the range of the TTLs puts give.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoreProgramShape {
  readonly fibers: { readonly min: number; readonly max: number }
  readonly steps: number
  readonly keys: number
  readonly maintenanceWeight: number
  readonly compact?: boolean | undefined
  readonly ttlMillis?: { readonly min: number; readonly max: number } | undefined
}

/**
 * Random store programs: `fibers` fibers of up to `steps` steps on `keys` keys.
 *
 * @since 0.2.0
 * @category constructors
 */
export const storeProgramArbitrary = (shape: StoreProgramShape): fc.Arbitrary<StoreProgram> => {
  const ttl = shape.ttlMillis ?? { min: 1, max: 1_000 }
  const maintenance: Array<readonly [StoreStep["op"], number]> = [["clear", shape.maintenanceWeight]]
  if (shape.compact ?? true) maintenance.push(["compact", shape.maintenanceWeight])
  return fc.array(
    fc.array(
      fc.record({
        op: fc.oneof(
          ...[...storeOpWeights, ...maintenance]
            .map(([op, weight]) => ({ weight, arbitrary: fc.constant<StoreStep["op"]>(op) }))
        ),
        key: fc.nat(shape.keys - 1),
        ttl: fc.option(fc.integer(ttl), { nil: undefined, freq: 3 }),
        hold: fc.integer({ min: 1, max: 8 }),
        holdMillis: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
        think: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) })
      }),
      { minLength: 1, maxLength: shape.steps }
    ),
    { minLength: shape.fibers.min, maxLength: shape.fibers.max }
  )
}

/**
 * Effect's scheduler, but a fiber also yields at each operation with
 * probability `1 / every`, drawn from a seeded generator: critical sections
 * get interrupted by other fibers' work wherever the runtime may do so.
 *
 * @since 0.2.0
 * @category constructors
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

/** Waits `millis` of real time, whatever the store's clock does. */
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
 *
 * @since 0.2.0
 * @category running
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

/**
 * What the store histories of one layer exercised.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoreHistoryTotals {
  histories: number
  operations: number
  /** Histories in which at least one operation took the lock's slow path (with `lockCounters`). */
  slowPath: number
  slowPathReads: number
  slowPathWrites: number
  /** Histories with an `entries` stream and a write that overlapped it. */
  writeDuringEntries: number
  millis: number
  /** CPU time of the process meanwhile (user + system), steadier than `millis` on a busy machine. */
  cpuMillis: number
}

/**
 * One JSON line for a test's log: each layer's totals and its share of
 * slow-path histories.
 *
 * @since 0.2.0
 * @category formatting
 */
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
 * Options of `checkStoreHistories`.
 *
 * - `maintenanceWeight`, `compact`, `ttlMillis`: see `StoreProgramShape`.
 * - `batch` (default 500): histories per build of the layer.
 * - `clock` (default `"test"`): `"test"` runs the store on a `TestClock` that
 *   never moves, so TTLs stay exact; `"live"` leaves the layer's clock alone
 *   (a store with a clock of its own), and then puts give TTLs of ten
 *   minutes or more unless `ttlMillis` says otherwise, and `timeToLive` may
 *   report less than a put gave.
 * - `lockCounters`: a probe of a lock's slow-path acquisitions (kvlog's own
 *   tests pass the store lock's), counted per history in the totals.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoreHistoryOptions {
  readonly maintenanceWeight?: number | undefined
  readonly compact?: boolean | undefined
  readonly ttlMillis?: { readonly min: number; readonly max: number } | undefined
  readonly batch?: number | undefined
  readonly clock?: "test" | "live" | undefined
  readonly lockCounters?: (() => { readonly reads: number; readonly writes: number }) | undefined
  readonly replay?: Replay | undefined
  /**
   * A history still running after this long (default 60 s) fails the check
   * as stuck, with its program, seed and preemption, instead of waiting for
   * the test's own time limit, which reports nothing about it.
   */
  readonly stuckAfterMillis?: number | undefined
}

/**
 * Checks `histories` random store programs on the layer, in batches sharing
 * one store, and gives what they exercised. Rejects with a shrunk
 * `NotLinearizable` counterexample at the first history that is not
 * linearizable.
 *
 * Each history starts on a store holding one key that no step names: the
 * previous history's keys are deleted (a `clear` would cost a log a new file
 * per history), and that key put again. So an `entries` stream has an entry
 * to hold on to even before any put of the history is visible (on a log
 * under `"always"`, not until its batch is synced).
 *
 * @since 0.2.0
 * @category properties
 */
export const checkStoreHistories = async (
  makeLayer: MakeLayer,
  histories: number,
  options: StoreHistoryOptions = {}
): Promise<StoreHistoryTotals> => {
  checkRuns(histories, 1)
  const batch = checkRuns(options.batch, 500)
  const clock = options.clock ?? "test"
  if (clock !== "test" && clock !== "live") throw new TypeError(`clock must be "test" or "live", got ${String(clock)}`)
  const keys = ["a", "b"]
  const initial: ReadonlyMap<string, string> = new Map([["~held", "present"]])
  const model = keyValueModel({ initial, timeToLive: clock === "test" ? "exact" : "elapsing" })
  const shape: StoreProgramShape = {
    fibers: { min: 2, max: 5 },
    steps: 5,
    keys: keys.length,
    maintenanceWeight: options.maintenanceWeight ?? 1,
    compact: options.compact ?? true,
    ttlMillis: options.ttlMillis ?? (clock === "test" ? { min: 1, max: 1_000 } : { min: 600_000, max: 601_000 })
  }
  const scheduler = new PreemptingScheduler()
  // Preemption costs a turn of the event loop per yield: half the histories
  // run without it, the others with a fiber preempted every ~16 or ~64 steps.
  const preemption = fc.constantFrom(Infinity, Infinity, 16, 64)
  const withScheduler = (layer: Layer.Layer<KeyValueStore.KeyValueStore, unknown>) => {
    const clocked = clock === "test"
      ? layer.pipe(Layer.provideMerge(Layer.effect(Clock.Clock, TestClock.make({ warningDelay: "1 hour" }))))
      : layer
    return clocked.pipe(Layer.provideMerge(Layer.succeed(Scheduler.Scheduler, scheduler)))
  }
  const lockCounters = options.lockCounters ?? (() => ({ reads: 0, writes: 0 }))
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
  const stuckAfterMillis = options.stuckAfterMillis ?? 60_000
  let stuck = false
  try {
    await runProperty(
      fc.asyncProperty(storeProgramArbitrary(shape), fc.integer(), preemption, async (program, seed, every) => {
        // Once a history is stuck, the store that ran it is abandoned (its
        // fibers may never finish) and the runs fast-check makes to shrink
        // pass at once: the stuck history itself is the report.
        if (stuck) return
        if (runtime === undefined || runsOnRuntime === batch) {
          await runtime?.dispose()
          runtime = ManagedRuntime.make(withScheduler(makeLayer()))
          runsOnRuntime = 0
        }
        runsOnRuntime++
        const running = runtime.runPromise(Effect.gen(function*() {
          const store = yield* KeyValueStore.KeyValueStore
          yield* Effect.all([
            ...keys.map((key) => Effect.ignore(store.delete(key))),
            ...Array.from(initial, ([key, value]) => store.put(key, value))
          ], { concurrency: "unbounded", discard: true })
          scheduler.reseed(seed, every)
          const before = lockCounters()
          const history = yield* runStoreProgram(store, program, keys)
          const after = lockCounters()
          return { history, reads: after.reads - before.reads, writes: after.writes - before.writes }
        }))
        let timer: ReturnType<typeof setTimeout> | undefined
        const run = await Promise.race([
          running,
          new Promise<undefined>((resolve) => {
            timer = setTimeout(() => resolve(undefined), stuckAfterMillis)
          })
        ]).finally(() => clearTimeout(timer))
        if (run === undefined) {
          stuck = true
          runtime = undefined
          throw new Error(
            `a history did not finish within ${stuckAfterMillis} ms (preemption every ${every} steps, scheduler seed ${seed}): ` +
              JSON.stringify(program)
          )
        }
        totals.histories++
        totals.operations += run.history.length
        totals.slowPathReads += run.reads
        totals.slowPathWrites += run.writes
        if (run.reads + run.writes > 0) totals.slowPath++
        if (writeOverlapsEntries(run.history)) totals.writeDuringEntries++
        const verdict = checkLinearizable(run.history, model)
        if (!verdict.linearizable) throw new NotLinearizable({ verdict, leftOut: 0 })
      }),
      histories,
      options.replay,
      model
    )
  } finally {
    // A stuck store may never finish closing: it was abandoned above.
    if (!stuck) await runtime?.dispose()
  }
  totals.millis = Math.round(performance.now() - started)
  const cpu = process.cpuUsage(cpuStarted)
  totals.cpuMillis = Math.round((cpu.user + cpu.system) / 1000)
  return totals
}
