/**
 * One power-cut simulation, seeded from one number: a store on a
 * `SimulatedDisk` runs a random workload, the power goes off at a random
 * mutating call, and the store reopened on what the cut left must hold a state
 * its promises allow.
 *
 * The workload is a list of steps run one after another: groups of concurrent
 * puts and deletes on distinct keys (so their order in the log does not
 * matter), some alongside a compaction; `clear`; `compact`; close and reopen;
 * and time passing (the `"interval"` policy's syncs, TTL expiry). Time is a
 * `TestClock`, so deadlines at the reopen are exact.
 *
 * The checks, with `M[i]` the model's state before step `i` and `c` the step
 * the cut interrupted (or the step count, for a cut after the last step):
 * - the reopen succeeds, whatever the cut left;
 * - the state is `M[k]` plus a subset of step `k`'s operations, for some `k <= c`
 *   (a lost unsynced tail, never a hole, never a value nobody wrote);
 * - under `"always"`: every acknowledged write is there (`k = c`, and each
 *   acknowledged operation of step `c` is applied) — only a write still in
 *   flight at the cut may have either outcome;
 * - under `"interval"`/`"never"`: `k` is at least the last step at which a
 *   close completed (closing syncs).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { KeyValueStore } from "../../src/index.ts"
import { type ValueView, viewValue } from "./logHarness.ts"
import { seededRandom } from "./seededRandom.ts"
import { type CutFaults, SimulatedDisk } from "./SimulatedDisk.ts"

export type Policy = "always" | "interval" | "never"

export type WriteOperation =
  | { readonly kind: "put"; readonly key: string; readonly value: KeyValueStore.Value; readonly ttl: number | undefined }
  | { readonly kind: "delete"; readonly key: string }

export type Step =
  | { readonly kind: "writes"; readonly operations: ReadonlyArray<WriteOperation>; readonly compact: boolean }
  | { readonly kind: "clear" }
  | { readonly kind: "compact" }
  | { readonly kind: "reopen" }
  | { readonly kind: "advance"; readonly millis: number }

export interface Plan {
  readonly seed: number
  readonly policy: Policy
  /** `"buffered"` only under `"interval"` and `"never"`. */
  readonly acknowledge: "written" | "buffered"
  readonly fsyncIntervalMillis: number
  readonly compaction: { readonly auto: false } | { readonly auto: true; readonly minRecords: number }
  readonly steps: ReadonlyArray<Step>
  /** The mutating call (counted from the disk's creation) the power goes off in, if the workload gets that far. */
  readonly cutAt: number
  readonly survivorSeed: number
}

const startTime = 1_700_000_000_000
const keyPool = ["a", "b", "c", "d", "e", "f", "g", "ключ", "🔑"]

const textPool = (alphabet: string, length: number): string => {
  const random = seededRandom(length)
  const characters = Array.from(alphabet)
  return Array.from({ length }, () => characters[Math.floor(random() * characters.length)]).join("")
}
const asciiText = textPool("abcdefghijklmnopqrstuvwxyz0123456789", 20_000)
const unicodeText = textPool("aé€😀", 20_000)
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff

/** The workload, cut point and cut of simulation `seed`. */
export const planSimulation = (seed: number): Plan => {
  const random = seededRandom(seed)
  const int = (below: number) => Math.floor(random() * below)
  const pick = <A>(items: ReadonlyArray<A>): A => items[int(items.length)]
  const policy = pick<Policy>(["always", "interval", "never"])
  let serial = 0
  const value = (): KeyValueStore.Value => {
    serial++
    const size = random() < 0.25 ? 3000 + int(7000) : int(60)
    if (random() < 0.5) {
      const words = new Uint32Array(Math.ceil((size + 4) / 4))
      for (let i = 0; i < words.length; i++) words[i] = random() * 2 ** 32
      words[0] = serial
      return new Uint8Array(words.buffer, 0, size + 4)
    }
    const pool = random() < 0.8 ? asciiText : unicodeText
    let from = int(pool.length - size)
    let to = from + size
    // Never split a surrogate pair: a lone surrogate is not a valid value.
    if (isLowSurrogate(pool.charCodeAt(from))) from++
    if (isLowSurrogate(pool.charCodeAt(to))) to++
    return `v${serial}:${pool.slice(from, to)}`
  }
  const keys = keyPool.slice(0, 3 + int(keyPool.length - 2))
  const steps: Array<Step> = []
  const stepCount = 3 + int(11)
  let expectedMutations = 6
  for (let i = 0; i < stepCount; i++) {
    const roll = random()
    if (roll < 0.62) {
      const chosen = [...keys].sort(() => random() - 0.5).slice(0, 1 + int(Math.min(5, keys.length)))
      const operations = chosen.map((key): WriteOperation =>
        random() < 0.75
          ? { kind: "put", key, value: value(), ttl: random() < 0.3 ? 1 + int(3000) : undefined }
          : { kind: "delete", key }
      )
      const compact = random() < 0.12
      steps.push({ kind: "writes", operations, compact })
      expectedMutations += (policy === "always" ? 3 : 2) + (compact ? 8 : 0)
    } else if (roll < 0.7) {
      steps.push({ kind: "clear" })
      expectedMutations += 8
    } else if (roll < 0.8) {
      steps.push({ kind: "compact" })
      expectedMutations += 8
    } else if (roll < 0.9) {
      steps.push({ kind: "reopen" })
      expectedMutations += 6
    } else {
      steps.push({ kind: "advance", millis: int(2500) })
      expectedMutations += policy === "interval" ? 2 : 0
    }
  }
  return {
    seed,
    policy,
    acknowledge: policy !== "always" && random() < 0.3 ? "buffered" : "written",
    fsyncIntervalMillis: 200 + int(1000),
    compaction: random() < 0.5 ? { auto: false } : { auto: true, minRecords: 4 + int(16) },
    steps,
    cutAt: 1 + int(Math.ceil(expectedMutations * 0.85)),
    survivorSeed: int(2 ** 32)
  }
}

// =============================================================================
// The model
// =============================================================================

interface ModelEntry {
  readonly view: ValueView
  readonly deadline: number
}

type ModelState = ReadonlyMap<string, ModelEntry>

const applyOperation = (state: Map<string, ModelEntry>, operation: WriteOperation, now: number): void => {
  if (operation.kind === "delete") state.delete(operation.key)
  else {
    state.set(operation.key, {
      view: viewValue(operation.value),
      deadline: operation.ttl === undefined ? Infinity : now + operation.ttl
    })
  }
}

const live = (state: ModelState, now: number): Map<string, ValueView> => {
  const views = new Map<string, ValueView>()
  for (const [key, entry] of state) if (entry.deadline > now) views.set(key, entry.view)
  return views
}

// =============================================================================
// Running a simulation
// =============================================================================

export interface SimulationResult {
  readonly plan: Plan
  /** What was wrong; empty if the reopened state is one the store's promises allow. */
  readonly violations: Array<string>
  /** The reopen on the cut's survivor failed. */
  readonly refused: boolean
  /** The cut came during the workload (else after its last step, the store idle). */
  readonly cutDuringWorkload: boolean
  /** The step the cut interrupted (`steps.length` for a cut after the last step). */
  readonly cutStep: number
  readonly mutations: number
  /** Acknowledged writes (puts, deletes, clears) under "always", each checked: its outcome or a later one's. */
  readonly acknowledgedChecked: number
  /** Acknowledged writes missing after the reopen (allowed under "interval"/"never" only). */
  readonly losses: number
  readonly tornTails: number
  readonly faults: CutFaults
  /** What happened, step by step, for a replay. */
  readonly trace: Array<string>
  /** The log as the cut left it, before the reopen (absent if the cut left no log). */
  readonly survivorLog: Uint8Array | undefined
}

/** The whole of `filePath` on `disk`, if it is there. */
const fileOn = (disk: SimulatedDisk, filePath: string): Uint8Array | undefined => {
  if (!disk.exists(filePath)) return undefined
  const fd = disk.openExisting(filePath)
  try {
    const bytes = new Uint8Array(disk.size(fd))
    for (let at = 0; at < bytes.length;) {
      const n = disk.read(fd, bytes, at, bytes.length - at, at)
      if (n === 0) break
      at += n
    }
    return bytes
  } finally {
    disk.close(fd)
  }
}

interface OpenStore {
  readonly store: KeyValueStore.KeyValueStoreService
  readonly close: Effect.Effect<void>
}

const describeCause = (cause: Cause.Cause<unknown>): string => Cause.pretty(cause).split("\n")[0]

const showView = (view: ValueView | undefined): string =>
  view === undefined ? "absent" : view.length > 40 ? `${view.slice(0, 40)}…(${view.length})` : view

/** Runs the simulation `plan` describes with its log at `logPath` (in a real directory: the owner lock lives there). */
export const runSimulation = (plan: Plan, logPath: string): Effect.Effect<SimulationResult> => {
  let tornTails = 0
  const logger = Logger.make((options) => {
    const message = (Array.isArray(options.message) ? options.message : [options.message]).map(String).join(" ")
    if (/dropped \d+ bytes/.test(message)) tornTails++
  })
  const simulation = Effect.gen(function*() {
    yield* TestClock.setTime(startTime)
    const trace: Array<string> = [`policy ${plan.policy}, acknowledge ${plan.acknowledge}, cut at mutating call ${plan.cutAt}`]
    const violations: Array<string> = []
    const disk = new SimulatedDisk()
    disk.cutAfter(plan.cutAt)
    const options = (fileOps: SimulatedDisk): KeyValueStore.LogOptions => ({
      path: logPath,
      fsync: plan.policy,
      acknowledge: plan.acknowledge,
      fsyncIntervalMillis: plan.fsyncIntervalMillis,
      compaction: plan.compaction,
      fileOps
    })
    const open = (fileOps: SimulatedDisk) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const exit = yield* Effect.exit(Scope.provide(scope)(KeyValueStore.makeLog(options(fileOps))))
        if (Exit.isFailure(exit)) {
          yield* Effect.exit(Scope.close(scope, Exit.void))
          return { _tag: "Failed" as const, reason: describeCause(exit.cause) }
        }
        return { _tag: "Open" as const, open: { store: exit.value, close: Scope.close(scope, Exit.void) } as OpenStore }
      })

    // M[i]: the model state before step i; acknowledged[i]: which operations of step i were.
    const states: Array<ModelState> = [new Map()]
    const acknowledged: Array<Array<boolean>> = []
    const stepTimes: Array<number> = []
    let current = new Map<string, ModelEntry>()
    let lastClose = 0
    let cutStep = plan.steps.length
    let store: OpenStore | undefined
    const unexpected = (what: string) => violations.push(`${what} failed with the power on`)

    const first = yield* open(disk)
    if (first._tag === "Open") store = first.open
    else if (disk.isCut) cutStep = 0
    else unexpected(`the first open (${first.reason})`)

    for (let i = 0; i < plan.steps.length && store !== undefined && !disk.isCut; i++) {
      const step = plan.steps[i]
      const now = yield* TestClock.testClockWith((clock) => Effect.sync(() => clock.currentTimeMillisUnsafe()))
      const acks: Array<boolean> = []
      stepTimes.push(now)
      const { store: kv } = store
      if (step.kind === "writes") {
        const writes = step.operations.map((operation): Effect.Effect<unknown, unknown> =>
          operation.kind === "put"
            ? kv.put(operation.key, operation.value, operation.ttl === undefined ? undefined : { duration: operation.ttl })
            : kv.delete(operation.key)
        )
        const exits = yield* Effect.all(
          [...writes, ...(step.compact ? [kv.compact] : [])].map((effect) => Effect.exit(effect)),
          { concurrency: "unbounded" }
        )
        step.operations.forEach((operation, j) => {
          const exit = exits[j]
          const ok = Exit.isSuccess(exit) ||
            (operation.kind === "delete" && Exit.isFailure(exit) && Cause.findErrorOption(exit.cause).pipe((found) =>
              found._tag === "Some" && found.value instanceof KeyValueStore.KeyNotFound
            ))
          acks.push(ok)
          if (!ok && !disk.isCut) unexpected(`${operation.kind} ${operation.key} (${describeCause((exit as Exit.Failure<unknown, unknown>).cause)})`)
          applyOperation(current, operation, now)
        })
        const compaction = step.compact ? exits[exits.length - 1] : undefined
        if (compaction !== undefined && Exit.isFailure(compaction) && !disk.isCut) unexpected("compact")
        trace.push(
          `step ${i}: ${
            step.operations.map((o, j) =>
              `${o.kind} ${o.key}${o.kind === "put" ? `=${showView(viewValue(o.value))}${o.ttl === undefined ? "" : ` ttl ${o.ttl}`}` : ""}${acks[j] ? "" : " (not acknowledged)"}`
            ).join(", ")
          }${step.compact ? " + compact" : ""}`
        )
      } else if (step.kind === "clear") {
        const exit = yield* Effect.exit(kv.clear)
        acks.push(Exit.isSuccess(exit))
        if (Exit.isFailure(exit) && !disk.isCut) unexpected("clear")
        current = new Map()
        trace.push(`step ${i}: clear${acks[0] ? "" : " (not acknowledged)"}`)
      } else if (step.kind === "compact") {
        const exit = yield* Effect.exit(kv.compact)
        if (Exit.isFailure(exit) && !disk.isCut) unexpected("compact")
        trace.push(`step ${i}: compact`)
      } else if (step.kind === "reopen") {
        yield* Effect.exit(store.close)
        store = undefined
        if (!disk.isCut) {
          lastClose = i
          const reopened = yield* open(disk)
          if (reopened._tag === "Open") store = reopened.open
          else if (!disk.isCut) unexpected(`reopen (${reopened.reason})`)
        }
        trace.push(`step ${i}: close and reopen`)
      } else {
        yield* TestClock.adjust(step.millis)
        for (let turn = 0; turn < 4; turn++) yield* Effect.yieldNow
        trace.push(`step ${i}: ${step.millis} ms pass`)
      }
      acknowledged.push(acks)
      states.push(new Map(current))
      if (disk.isCut) cutStep = i
    }
    const cutDuringWorkload = disk.isCut
    const mutations = disk.mutations
    trace.push(cutDuringWorkload ? `the power went off in step ${cutStep}` : `the power went off after the last step`)
    disk.cutPower()
    if (store !== undefined) yield* Effect.exit(store.close)

    const survivor = disk.survivor(plan.survivorSeed)
    const now = yield* TestClock.testClockWith((clock) => Effect.sync(() => clock.currentTimeMillisUnsafe()))
    const survivorLog = fileOn(survivor, logPath)
    const reopened = yield* open(survivor)
    let acknowledgedChecked = 0
    let losses = 0
    let refused = false
    if (reopened._tag === "Failed") {
      refused = true
      violations.push(`the reopen after the cut was refused: ${reopened.reason}`)
    } else {
      const actual = yield* Effect.orDie(readAll(reopened.open.store))
      yield* reopened.open.close
      const checked = checkState(plan, { states, acknowledged, stepTimes, cutStep, lastClose }, actual, now)
      violations.push(...checked.violations)
      acknowledgedChecked = checked.acknowledgedChecked
      losses = checked.losses
      trace.push(`reopened: ${[...actual].map(([key, view]) => `${key}=${showView(view)}`).join(", ") || "empty"}`)
    }
    return {
      plan,
      violations,
      refused,
      cutDuringWorkload,
      cutStep,
      mutations,
      acknowledgedChecked,
      losses,
      tornTails,
      survivorLog,
      faults: survivor.faults,
      trace
    } satisfies SimulationResult
  })
  return simulation.pipe(Effect.provide(TestClock.layer()), Effect.provide(Logger.layer([logger])))
}

const readAll = (store: KeyValueStore.KeyValueStoreService) =>
  Effect.gen(function*() {
    const state = new Map<string, ValueView>()
    for (const key of yield* store.keys) state.set(key, viewValue(yield* store.get(key)))
    return state
  })

interface History {
  /** M[i]: the model's state before step i (one more than the steps run). */
  readonly states: ReadonlyArray<ModelState>
  /** Per step run, which of its operations were acknowledged. */
  readonly acknowledged: ReadonlyArray<ReadonlyArray<boolean>>
  /** Per step run, the clock when it began (puts' deadlines count from it). */
  readonly stepTimes: ReadonlyArray<number>
  readonly cutStep: number
  /** The last step whose close completed before the cut (0: none). */
  readonly lastClose: number
}

/** Whether `actual` is `M[k]` plus a subset of step `k`'s operations. */
const matchesPrefix = (
  plan: Plan,
  states: ReadonlyArray<ModelState>,
  k: number,
  actual: ReadonlyMap<string, ValueView>,
  now: number,
  mustApply: ReadonlySet<string>
): boolean => {
  const before = live(states[k], now)
  const step = plan.steps[k] as Step | undefined
  const after = k + 1 < states.length ? live(states[k + 1], now) : before
  const touched = new Set<string>()
  if (step?.kind === "writes") for (const operation of step.operations) touched.add(operation.key)
  if (step?.kind === "clear") {
    const same = (expected: ReadonlyMap<string, ValueView>) =>
      expected.size === actual.size && [...expected].every(([key, view]) => actual.get(key) === view)
    return (mustApply.size === 0 && same(before)) || same(after)
  }
  for (const key of new Set([...before.keys(), ...after.keys(), ...actual.keys()])) {
    const got = actual.get(key)
    if (touched.has(key)) {
      if (got !== after.get(key) && (mustApply.has(key) || got !== before.get(key))) return false
    } else if (got !== before.get(key)) return false
  }
  return true
}

const checkState = (
  plan: Plan,
  history: History,
  actual: ReadonlyMap<string, ValueView>,
  now: number
): { violations: Array<string>; acknowledgedChecked: number; losses: number } => {
  const { states, acknowledged, stepTimes, cutStep, lastClose } = history
  const violations: Array<string> = []
  const lastStep = Math.min(cutStep, states.length - 1)
  const step = lastStep < acknowledged.length ? plan.steps[lastStep] : undefined
  const acks = acknowledged[lastStep] ?? []
  // The interrupted step's acknowledged operations must be applied (for a clear, the key "" stands for all).
  const mustApply = new Set<string>()
  if (step?.kind === "writes") step.operations.forEach((operation, j) => acks[j] && mustApply.add(operation.key))
  if (step?.kind === "clear" && acks[0]) mustApply.add("")

  let acknowledgedChecked = 0
  let losses = 0
  if (plan.policy === "always") {
    // Every acknowledged write: the state before the interrupted step, plus its acknowledged operations.
    const expected = new Map(states[lastStep])
    const inFlight = new Set<string>()
    let clearInFlight = false
    if (step?.kind === "writes") {
      step.operations.forEach((operation, j) => {
        if (acks[j]) applyOperation(expected, operation, stepTimes[lastStep])
        else inFlight.add(operation.key)
      })
    } else if (step?.kind === "clear") {
      if (acks[0]) expected.clear()
      else clearInFlight = true
    }
    // Under "always" the state is checked whole, so every acknowledged write is: its value, or a later one's.
    for (let k = 0; k <= lastStep && k < acknowledged.length; k++) acknowledgedChecked += acknowledged[k].filter(Boolean).length
    const expectedLive = live(expected, now)
    if (!clearInFlight) {
      for (const key of new Set([...expectedLive.keys(), ...actual.keys()])) {
        if (inFlight.has(key)) continue
        if (actual.get(key) !== expectedLive.get(key)) {
          losses++
          violations.push(
            `acknowledged state of ${key} is ${showView(expectedLive.get(key))}, the reopened store has ${
              showView(actual.get(key))
            }`
          )
        }
      }
    }
  }
  const lowest = plan.policy === "always" ? lastStep : lastClose
  let matched: number | undefined
  for (let k = lastStep; k >= lowest && matched === undefined; k--) {
    const required = plan.policy === "always" && k === lastStep ? mustApply : new Set<string>()
    if (matchesPrefix(plan, states, k, actual, now, required)) matched = k
  }
  if (matched === undefined) {
    violations.push(
      `the reopened state is M[k] plus part of step k for no k from ${lowest} to ${lastStep}`
    )
  } else if (plan.policy !== "always") {
    // Acknowledged writes the cut took back: after the matched prefix.
    for (let k = matched; k <= lastStep && k < acknowledged.length; k++) {
      const stepK = plan.steps[k]
      if (stepK.kind !== "writes") continue
      const after = live(states[k + 1], now)
      stepK.operations.forEach((operation, j) => {
        if (acknowledged[k][j] && (k > matched! || actual.get(operation.key) !== after.get(operation.key))) losses++
      })
    }
  }
  return { violations, acknowledgedChecked, losses }
}
