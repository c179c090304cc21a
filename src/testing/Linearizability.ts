/**
 * A linearizability checker for recorded histories of a key-value store (or
 * of any object with a sequential specification), with counterexamples that
 * read as timelines.
 *
 * A history is linearizable when every operation can be given a single
 * instant, somewhere between its call and its return, such that executing the
 * operations one at a time in the order of those instants, against the
 * sequential specification, gives exactly the outcomes that were observed. An
 * operation that never returned (interrupted, or still running when the
 * history was taken) may take effect at any instant after its call, or not at
 * all, and its outcome is not checked: nobody observed it.
 *
 * The default specification, `keyValueModel`, is kvlog's store: one register
 * per key, initially absent.
 *
 * - `get(k)`: the current value, or `KeyNotFound` when `k` is absent;
 * - `put(k, v)`: sets `k` to `v` and succeeds (with `v`, if a value was recorded);
 * - `delete(k)`: when `k` is present, succeeds and removes it; when absent,
 *   fails with `KeyNotFound`;
 * - `has`, `timeToLive`, `keys`, `size`, `entries` read, `clear` empties;
 * - an operation refused with `InvalidInput` changes nothing.
 *
 * Linearizability is local (Herlihy & Wing, 1990): a history is linearizable
 * iff, for every key, its operations on that key are. So the checker checks one
 * key at a time. For each key it runs the search of Wing & Gong (1993) —
 * repeatedly linearize a "minimal" operation (one whose call precedes every
 * pending return) and backtrack on a dead end — with the memoisation of Lowe
 * (2017): a configuration is the pair (set of operations already linearized,
 * state of the register); a configuration met once is never explored again, so
 * the search visits each configuration at most once instead of each order of
 * operations. This is the algorithm of Porcupine and of Knossos' `linear`.
 * Two additions, both sound (see `search`): operations that never returned
 * are only linearized where they change the register, and those with the same
 * effect in call order, which keeps interrupted operations from multiplying the
 * configurations by 2^k; and the memo is looked up by a Zobrist hash of the
 * configuration, verified exactly.
 *
 * References:
 * - M. Herlihy, J. Wing, "Linearizability: a correctness condition for
 *   concurrent objects", TOPLAS 1990.
 * - J. Wing, C. Gong, "Testing and verifying concurrent objects", JPDC 1993.
 * - G. Lowe, "Testing for linearizability", CCPE 2017.
 *
 * @since 0.2.0
 */

// =============================================================================
// Models
// =============================================================================

/**
 * What every operation of a history has: a tag naming it.
 *
 * @since 0.2.0
 * @category models
 */
export interface OperationLike {
  readonly _tag: string
}

/**
 * An operation on one key, as called. A put with `ttl` gives the key that
 * many milliseconds to live; the model does not expire keys, so a history
 * with TTLs must run on a clock that does not move (or end before the
 * shortest TTL runs out, see `KeyValueModelOptions.timeToLive`).
 *
 * Values are strings; bytes are written as `bytesValue` gives them.
 *
 * @since 0.2.0
 * @category models
 */
export type Operation =
  | { readonly _tag: "get"; readonly key: string }
  | { readonly _tag: "put"; readonly key: string; readonly value: string; readonly ttl?: number }
  | { readonly _tag: "delete"; readonly key: string }

/**
 * Any operation on the store: the single-key ones above, the single-key reads
 * `has` (outcome `"true"` or `"false"`) and `timeToLive` (`"none"`, or the
 * milliseconds left, or `KeyNotFound`), and the operations on the whole
 * store: `clear`, `keys` (outcome: `keysOutcome`), `size` (the count, in
 * decimal) and `entries` (outcome: `entriesOutcome`).
 *
 * @since 0.2.0
 * @category models
 */
export type StoreOperation =
  | Operation
  | { readonly _tag: "has"; readonly key: string }
  | { readonly _tag: "timeToLive"; readonly key: string }
  | { readonly _tag: "clear" }
  | { readonly _tag: "keys" }
  | { readonly _tag: "size" }
  | { readonly _tag: "entries" }

/**
 * What the caller observed. `ok` carries the value a read returned (and,
 * optionally, the value a `put` returned); `InvalidInput` is a call the store
 * refused, which must have changed nothing.
 *
 * @since 0.2.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "ok"; readonly value?: string }
  | { readonly _tag: "KeyNotFound" }
  | { readonly _tag: "InvalidInput" }

/**
 * One operation of a history. `call` and `ret` are logical timestamps taken
 * from one counter shared by every process, so all finite timestamps of a
 * history are distinct, and `call < ret`. `ret: Infinity` marks an operation
 * that never returned: it may or may not have taken effect, and its `outcome`
 * is ignored. `process` names who called it (a fiber).
 *
 * @since 0.2.0
 * @category models
 */
export interface Entry<Op extends OperationLike = Operation> {
  readonly process: number
  readonly op: Op
  readonly outcome: Outcome
  readonly call: number
  readonly ret: number
}

/**
 * The logical clock that stamps calls and returns: one per history.
 *
 * @since 0.2.0
 * @category models
 */
export interface LogicalClock {
  n: number
}

/**
 * The result of a model's `step` when the observed outcome is impossible in
 * the state it is given.
 *
 * @since 0.2.0
 * @category models
 */
export const Impossible: unique symbol = Symbol.for("kvlog/testing/Linearizability/Impossible")

/**
 * @since 0.2.0
 * @category models
 */
export type Impossible = typeof Impossible

/**
 * A sequential specification of your own, for objects other than kvlog's
 * store. States are strings (or `undefined`), so that they compare with `===`
 * and serve as keys of the search's memo: encode richer states as JSON.
 *
 * - `step`: the state after `entry`, or `Impossible` if its observed outcome
 *   cannot happen in `state`. An entry with `ret: Infinity` was never
 *   observed: return the state after it whatever its outcome.
 * - `effectOf` (optional, for speed): a name for what an operation does to
 *   any state, equal for two operations only if they change every state the
 *   same way (two increments by 1). Operations that never returned and share
 *   an effect are then tried in call order only.
 * - `isReadOnly` (optional): whether a completed entry, given what it
 *   observed, changed nothing (a read; a delete that found nothing); a
 *   counterexample leaves out those it does not need.
 * - `show` and `explain` (optional): how a state reads in a counterexample,
 *   and why an entry cannot follow a state.
 *
 * The whole history is checked as one: a model of your own gets no per-key
 * split.
 *
 * @since 0.2.0
 * @category models
 */
export interface Model<Op extends OperationLike, State extends string | undefined = string | undefined> {
  readonly _tag: "Model"
  readonly initial: State
  readonly step: (state: State, entry: Entry<Op>) => State | Impossible
  readonly effectOf?: ((op: Op) => string | undefined) | undefined
  readonly isReadOnly?: ((entry: Entry<Op>) => boolean) | undefined
  readonly show?: ((state: State) => string) | undefined
  readonly explain?: ((state: State, entry: Entry<Op>) => string | undefined) | undefined
}

/**
 * Options of `keyValueModel`.
 *
 * - `initial`: the keys present, with their values, before the history began
 *   (default: none).
 * - `timeToLive`: `"exact"` (default) expects `timeToLive` to report exactly
 *   the TTL of the last put, as on a clock that does not move; `"elapsing"`
 *   accepts any time left in `(0, ttl]`, for a store on a real clock whose
 *   keys outlive the history.
 *
 * @since 0.2.0
 * @category models
 */
export interface KeyValueModelOptions {
  readonly initial?: ReadonlyMap<string, string> | undefined
  readonly timeToLive?: "exact" | "elapsing" | undefined
}

/**
 * kvlog's store as a sequential specification: see the module comment.
 *
 * @since 0.2.0
 * @category models
 */
export interface KeyValueModel {
  readonly _tag: "KeyValueModel"
  readonly initial: ReadonlyMap<string, string>
  readonly timeToLive: "exact" | "elapsing"
}

/**
 * The verdict of `checkLinearizable`. When the history is not linearizable,
 * the counterexample is confined to one key when it can be: `history` holds
 * that key's operations by call time, `longestPrefix` the longest sequence of
 * them the search managed to linearize (in linearization order), `blocked` a
 * completed operation that no extension of that prefix could fit before its
 * return, and `reason` why it does not fit there. A history with operations
 * on the whole store (or checked against a `Model` of your own) is checked as
 * one: its counterexample has `key: undefined`.
 *
 * @since 0.2.0
 * @category models
 */
export type Verdict<Op extends OperationLike = Operation> =
  | { readonly linearizable: true }
  | {
    readonly linearizable: false
    readonly key: Op extends Operation ? string : string | undefined
    readonly history: ReadonlyArray<Entry<Op>>
    readonly longestPrefix: ReadonlyArray<Entry<Op>>
    readonly blocked: Entry<Op>
    /** The state after each step of `longestPrefix`, as `formatVerdict` shows it. */
    readonly prefixStates: ReadonlyArray<string>
    readonly reason: string
  }

/**
 * A history that is not linearizable, thrown by `assertLinearizable` and by
 * the property checks of `ConcurrentHistories`. `verdict` is the
 * counterexample; `found`, when the history came from a property, says how
 * fast-check found and shrank it; `leftOut` counts the operations left out of
 * `verdict.history` because the contradiction does not need them. The
 * message is `formatCounterexample`'s.
 *
 * @since 0.2.0
 * @category errors
 */
export class NotLinearizable<Op extends OperationLike = StoreOperation> extends Error {
  override readonly name = "NotLinearizable"
  readonly verdict: Extract<Verdict<Op>, { readonly linearizable: false }>
  readonly leftOut: number
  readonly found: PropertyRun | undefined
  constructor(counterexample: Counterexample<Op>) {
    super(formatCounterexample(counterexample))
    this.verdict = counterexample.verdict
    this.leftOut = counterexample.leftOut
    this.found = counterexample.found
  }
}

/**
 * How a property found a counterexample: after `runs` runs, shrunk `shrinks`
 * times; `seed` and `path` replay it (fast-check's `{ seed, path }`).
 *
 * @since 0.2.0
 * @category models
 */
export interface PropertyRun {
  readonly runs: number
  readonly shrinks: number
  readonly seed: number
  readonly path: string | undefined
}

/**
 * A counterexample as `formatCounterexample` prints it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Counterexample<Op extends OperationLike = StoreOperation> {
  readonly verdict: Extract<Verdict<Op>, { readonly linearizable: false }>
  readonly leftOut: number
  readonly found?: PropertyRun | undefined
}

/**
 * A history whose timestamps break the rules of `Entry`: a bug in the test
 * that recorded it, not in the store.
 *
 * @since 0.2.0
 * @category errors
 */
export class MalformedHistory extends Error {
  override readonly name = "MalformedHistory"
}

// =============================================================================
// Constructors
// =============================================================================

/**
 * kvlog's store as a sequential specification (the default of
 * `checkLinearizable`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const keyValueModel = (options: KeyValueModelOptions = {}): KeyValueModel => {
  if (options.timeToLive !== undefined && options.timeToLive !== "exact" && options.timeToLive !== "elapsing") {
    throw new TypeError(`timeToLive must be "exact" or "elapsing", got ${String(options.timeToLive)}`)
  }
  if (options.initial !== undefined && !(options.initial instanceof Map)) {
    throw new TypeError("initial must be a Map from keys to values")
  }
  return { _tag: "KeyValueModel", initial: options.initial ?? new Map(), timeToLive: options.timeToLive ?? "exact" }
}

/**
 * A sequential specification of your own (see `Model`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeModel = <Op extends OperationLike, State extends string | undefined>(
  model: Omit<Model<Op, State>, "_tag">
): Model<Op, State> => ({ _tag: "Model", ...model })

// =============================================================================
// Values
// =============================================================================

/**
 * Bytes as a history holds them: a string no store value can equal, since
 * it starts with a lone UTF-16 surrogate (which kvlog refuses in a value).
 */
const bytesMark = "\uD800"

/**
 * A store value as a history holds it: a string as itself, bytes as a string
 * that names their contents (`formatEntry` shows it as `bytes[0a ff]`). Up
 * to 64 bytes are named byte by byte; longer ones by their length, their
 * first 16 bytes and two 32-bit hashes of the whole, so that a history of
 * megabyte values stays small (two such values taken for equal while they
 * differ is a one-in-2^64 chance).
 *
 * @since 0.2.0
 * @category values
 */
export const historyValue = (value: string | Uint8Array): string => {
  if (typeof value === "string") return value
  if (value.length <= 64) return bytesMark + hex(value)
  return `${bytesMark}${hex(value.subarray(0, 16))} … ${value.length} bytes, hash ${hashes(value)}`
}

const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ")

/** FNV-1a and a multiply-rotate hash, each 32 bits, in hex. */
const hashes = (bytes: Uint8Array): string => {
  let fnv = 0x811c9dc5
  let mix = 0x9747b28c
  for (let i = 0; i < bytes.length; i++) {
    fnv = Math.imul(fnv ^ bytes[i], 0x01000193)
    mix = Math.imul(mix ^ bytes[i], 0x5bd1e995)
    mix = (mix << 13) | (mix >>> 19)
  }
  return (fnv >>> 0).toString(16).padStart(8, "0") + (mix >>> 0).toString(16).padStart(8, "0")
}

const showValue = (value: string): string =>
  value.startsWith(bytesMark) ? `bytes[${value.slice(bytesMark.length)}]` : JSON.stringify(value)

/**
 * The outcome of `keys`, as the checker compares it.
 *
 * @since 0.2.0
 * @category values
 */
export const keysOutcome = (keys: Iterable<string>): string => JSON.stringify([...keys].sort(byString))

/**
 * The outcome of `entries`, as the checker compares it (values as
 * `historyValue` gives them).
 *
 * @since 0.2.0
 * @category values
 */
export const entriesOutcome = (entries: Iterable<readonly [string, string]>): string =>
  JSON.stringify([...entries].sort((a, b) => byString(a[0], b[0])))

const byString = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

// =============================================================================
// The key-value specification
// =============================================================================

/**
 * The state of one key's register: absent (`undefined`), or its value, then
 * `ttlMark`, then the TTL of its last put (empty without one). A string, so
 * that states compare with `===` and serve as `Map` keys in the search; the
 * mark goes last, so values may hold it too.
 */
type Register = string | undefined
const ttlMark = "\u0000"

const valueOf = (cell: string): string => cell.slice(0, cell.lastIndexOf(ttlMark))

/** What `timeToLive` reports for a present key with an exact clock: `"none"`, or its TTL. */
const ttlOf = (cell: string): string => {
  const ttl = cell.slice(cell.lastIndexOf(ttlMark) + 1)
  return ttl === "" ? "none" : ttl
}

const cellOf = (op: Extract<Operation, { _tag: "put" }>): string =>
  op.value + ttlMark + (op.ttl === undefined ? "" : String(op.ttl))

/** A read's observed result: its outcome's value, `Impossible` for any other outcome. */
const observedValue = (entry: Entry<OperationLike>): string | undefined | Impossible =>
  entry.outcome._tag === "ok" ? entry.outcome.value : Impossible

/** Whether `observed`, what `timeToLive` reported, fits a key whose cell is `cell`. */
type TimeToLiveRule = (observed: string, cell: string) => boolean

const exactTimeToLive: TimeToLiveRule = (observed, cell) => observed === ttlOf(cell)

const elapsingTimeToLive: TimeToLiveRule = (observed, cell) => {
  const ttl = ttlOf(cell)
  if (ttl === "none" || observed === "none") return observed === ttl
  const left = Number(observed)
  return left > 0 && left <= Number(ttl)
}

/**
 * Runs one single-key operation against the register. Returns the next
 * state, or `Impossible` when the operation cannot have had the observed
 * outcome in `state`. A pending operation (no return) is unconstrained: any
 * outcome goes. A refused one changes nothing.
 */
const registerStep = (timeToLive: TimeToLiveRule) => (state: Register, entry: Entry<StoreOperation>): Register | Impossible => {
  const pending = entry.ret === Infinity
  const outcome = entry.outcome
  const op = entry.op
  if (!pending && outcome._tag === "InvalidInput") return state
  switch (op._tag) {
    case "get": {
      if (pending) return state
      if (outcome._tag === "KeyNotFound") return state === undefined ? state : Impossible
      return state !== undefined && observedValue(entry) === valueOf(state) ? state : Impossible
    }
    case "put": {
      if (pending) return cellOf(op)
      if (outcome._tag !== "ok") return Impossible
      return outcome.value === undefined || outcome.value === op.value ? cellOf(op) : Impossible
    }
    case "delete": {
      if (pending) return undefined
      if (outcome._tag === "KeyNotFound") return state === undefined ? undefined : Impossible
      return state !== undefined ? undefined : Impossible
    }
    case "has": {
      if (pending) return state
      return observedValue(entry) === String(state !== undefined) ? state : Impossible
    }
    case "timeToLive": {
      if (pending) return state
      if (outcome._tag === "KeyNotFound") return state === undefined ? state : Impossible
      const observed = observedValue(entry)
      return state !== undefined && typeof observed === "string" && timeToLive(observed, state) ? state : Impossible
    }
    default:
      throw new Error(`${op._tag} is not an operation on one key`)
  }
}

/** Why a single-key entry cannot follow the register `state`, in words. */
const explainRegister = (state: Register, entry: Entry<StoreOperation>): string | undefined => {
  const op = entry.op
  const outcome = entry.outcome
  const what = `${formatOperation(op)} -> ${formatOutcome(entry)}`
  const held = state === undefined ? "the key is absent" : `the key holds ${showRegister(state)}`
  switch (op._tag) {
    case "put":
      return outcome._tag === "ok"
        ? `${what} reports a value other than the one it was given`
        : `${what}: a put never fails with ${outcome._tag}`
    case "get":
    case "delete":
    case "has":
    case "timeToLive":
      return `${what} cannot be seen when ${held}`
    default:
      return undefined
  }
}

/**
 * The state of the whole store: the JSON of its `[key, register]` pairs,
 * sorted by key, so that equal stores have equal states. Decoding and
 * encoding go through `StoreStates`, which remembers both directions.
 */
type StoreState = string

class StoreStates {
  readonly empty: StoreState = "[]"
  private readonly decoded = new Map<StoreState, ReadonlyMap<string, string>>([[this.empty, new Map()]])
  decode(state: StoreState): ReadonlyMap<string, string> {
    let cells = this.decoded.get(state)
    if (cells === undefined) {
      cells = new Map(JSON.parse(state) as Array<[string, string]>)
      this.decoded.set(state, cells)
    }
    return cells
  }
  encode(cells: ReadonlyMap<string, string>): StoreState {
    const state = JSON.stringify([...cells].sort((a, b) => byString(a[0], b[0])))
    if (!this.decoded.has(state)) this.decoded.set(state, cells)
    return state
  }
}

/**
 * Runs one operation against the whole store: a single-key operation against
 * its key's register, the others against every key at once.
 */
const storeStep = (states: StoreStates, step: ReturnType<typeof registerStep>) =>
(
  state: StoreState,
  entry: Entry<StoreOperation>
): StoreState | Impossible => {
  const op = entry.op
  const cells = states.decode(state)
  if ("key" in op) {
    const before = cells.get(op.key)
    const after = step(before, entry)
    if (after === Impossible) return Impossible
    if (after === before) return state
    const next = new Map(cells)
    if (after === undefined) next.delete(op.key)
    else next.set(op.key, after)
    return states.encode(next)
  }
  const pending = entry.ret === Infinity
  if (op._tag === "clear") return pending || entry.outcome._tag === "ok" ? states.empty : Impossible
  if (pending) return state
  const observed = observedValue(entry)
  switch (op._tag) {
    case "keys":
      return observed === keysOutcome(cells.keys()) ? state : Impossible
    case "size":
      return observed === String(cells.size) ? state : Impossible
    case "entries":
      return observed === entriesOutcome(Array.from(cells, ([key, cell]) => [key, valueOf(cell)] as const))
        ? state
        : Impossible
  }
}

const explainStore = (states: StoreStates) => (state: StoreState, entry: Entry<StoreOperation>): string | undefined => {
  const op = entry.op
  if ("key" in op) return explainRegister(states.decode(state).get(op.key), entry)
  return `${formatOperation(op)} -> ${formatOutcome(entry)} cannot be seen when the store holds ${
    showStore(states, state)
  }`
}

/** What a state looks like in a counterexample. */
const showRegister = (state: Register): string =>
  state === undefined
    ? "absent"
    : showValue(valueOf(state)) + (ttlOf(state) === "none" ? "" : ` (ttl ${ttlOf(state)} ms)`)

const showStore = (states: StoreStates, state: StoreState): string => {
  const cells = [...states.decode(state)]
  return cells.length === 0 ? "empty" : cells.map(([key, cell]) => `${key}=${showRegister(cell)}`).join(", ")
}

const keyValueEffect = (op: StoreOperation): string | undefined =>
  op._tag === "put"
    ? `put ${op.key} ${cellOf(op)}`
    : op._tag === "delete"
    ? `delete ${op.key}`
    : op._tag === "clear"
    ? "clear"
    : undefined

/** A completed entry that changed nothing: a read, a delete that found nothing, a refused call. */
const isKeyValueRead = (entry: Entry<StoreOperation>): boolean =>
  entry.outcome._tag === "InvalidInput" ||
  (entry.op._tag === "delete" ? entry.outcome._tag === "KeyNotFound" : entry.op._tag !== "put" && entry.op._tag !== "clear")

// =============================================================================
// Checker
// =============================================================================

/**
 * Checks that `history` is linearizable with respect to `model` (by
 * default, kvlog's store with no key present at the start).
 *
 * With the store's model, a history of single-key operations is checked one
 * key at a time (keys in order of first call); one with an operation on the
 * whole store (`clear`, `keys`, `size`, `entries`), which locality does not
 * cover, is checked as one, its state being every key's register. Throws
 * `MalformedHistory` if the history breaks the rules of `Entry` (a return
 * not after its call, a repeated timestamp, a read that succeeded without a
 * value): that is a bug in the test, not in the store.
 *
 * @since 0.2.0
 * @category checking
 */
export const checkLinearizable: {
  <Op extends StoreOperation>(history: ReadonlyArray<Entry<Op>>, model?: KeyValueModel): Verdict<Op>
  <Op extends OperationLike, State extends string | undefined>(
    history: ReadonlyArray<Entry<Op>>,
    model: Model<Op, State>
  ): Verdict<Op>
} = <Op extends OperationLike>(
  history: ReadonlyArray<Entry<Op>>,
  model: KeyValueModel | Model<Op, string | undefined> = keyValueModel()
): Verdict<Op> => {
  if (model._tag === "Model") {
    validate(undefined, history, false)
    return search<Op, string | undefined>(undefined, history, {
      initial: model.initial,
      step: model.step,
      show: model.show ?? ((state) => state === undefined ? "undefined" : state),
      effectOf: model.effectOf ?? (() => undefined),
      explain: model.explain ?? (() => undefined)
    })
  }
  return checkKeyValue(history as unknown as ReadonlyArray<Entry<StoreOperation>>, model) as unknown as Verdict<Op>
}

const checkKeyValue = (history: ReadonlyArray<Entry<StoreOperation>>, model: KeyValueModel): Verdict<StoreOperation> => {
  const step = registerStep(model.timeToLive === "exact" ? exactTimeToLive : elapsingTimeToLive)
  const initial = new Map(Array.from(model.initial, ([key, value]) => [key, value + ttlMark]))
  const byKey = new Map<string, Array<Entry<StoreOperation>>>()
  for (const entry of history) {
    if (!("key" in entry.op)) {
      validate(undefined, history, true)
      const states = new StoreStates()
      return search<StoreOperation, StoreState>(undefined, history, {
        initial: states.encode(initial),
        step: storeStep(states, step),
        show: (state) => showStore(states, state),
        effectOf: keyValueEffect,
        explain: explainStore(states)
      })
    }
    const entries = byKey.get(entry.op.key)
    if (entries === undefined) byKey.set(entry.op.key, [entry])
    else entries.push(entry)
  }
  for (const [key, entries] of byKey) {
    validate(key, entries, true)
    const verdict = search<StoreOperation, Register>(key, entries, {
      initial: initial.get(key),
      step,
      show: showRegister,
      effectOf: keyValueEffect,
      explain: explainRegister
    })
    if (!verdict.linearizable) return verdict
  }
  return { linearizable: true }
}

/**
 * Checks `history` and throws `NotLinearizable`, with the counterexample
 * trimmed by `trimCounterexample`, unless it is linearizable.
 *
 * @since 0.2.0
 * @category checking
 */
export const assertLinearizable: {
  <Op extends StoreOperation>(history: ReadonlyArray<Entry<Op>>, model?: KeyValueModel): void
  <Op extends OperationLike, State extends string | undefined>(
    history: ReadonlyArray<Entry<Op>>,
    model: Model<Op, State>
  ): void
} = <Op extends OperationLike>(
  history: ReadonlyArray<Entry<Op>>,
  model?: KeyValueModel | Model<Op, string | undefined>
): void => {
  const verdict = checkWith(history, model)
  if (!verdict.linearizable) throw new NotLinearizable(trimCounterexample(verdict, model))
}

const checkWith = <Op extends OperationLike>(
  history: ReadonlyArray<Entry<Op>>,
  model: KeyValueModel | Model<Op, string | undefined> | undefined
): Verdict<Op> =>
  (checkLinearizable as (
    history: ReadonlyArray<Entry<Op>>,
    model?: KeyValueModel | Model<Op, string | undefined>
  ) => Verdict<Op>)(history, model)

/**
 * Leaves out of a counterexample the operations its contradiction does not
 * need, and checks the rest again: of the completed operations that changed
 * nothing (reads, deletes that found nothing), and of those called after
 * every other one returned, each one whose removal leaves the history not
 * linearizable. Both kinds are safe to drop: if the history without them
 * admits no order, neither does the history with them (one that changed
 * nothing can be taken out of any order; one after all the others comes
 * last in any order). Writes in the middle and operations that never returned stay:
 * without them, a history may fail for a reason the original did not have.
 *
 * @since 0.2.0
 * @category checking
 */
export const trimCounterexample = <Op extends OperationLike>(
  verdict: Extract<Verdict<Op>, { readonly linearizable: false }>,
  model?: KeyValueModel | Model<Op, string | undefined>
): Counterexample<Op> => {
  const isReadOnly: (entry: Entry<Op>) => boolean = model === undefined || model._tag === "KeyValueModel"
    ? (entry) => isKeyValueRead(entry as unknown as Entry<StoreOperation>)
    : model.isReadOnly ?? (() => false)
  let entries = verdict.history
  let current = verdict
  // Each try is a full check: a budget keeps a long counterexample affordable.
  let budget = 2_000
  let changed = true
  while (changed && budget > 0) {
    changed = false
    for (let i = entries.length - 1; i >= 0 && budget > 0; i--) {
      const entry = entries[i]
      if (entry.ret === Infinity) continue
      const last = entries.every((other) => other === entry || other.ret < entry.call || other.ret === Infinity)
      if (!last && !isReadOnly(entry)) continue
      budget--
      const without = entries.filter((_, j) => j !== i)
      const next = checkWith(without, model)
      if (!next.linearizable) {
        entries = without
        current = next
        changed = true
      }
    }
  }
  return { verdict: current, leftOut: verdict.history.length - current.history.length }
}

const validate = (key: string | undefined, entries: ReadonlyArray<Entry<OperationLike>>, readsHaveValues: boolean): void => {
  const seen = new Set<number>()
  for (const entry of entries) {
    const where = `in the history of ${key === undefined ? "the store" : `key ${JSON.stringify(key)}`}: ${
      formatEntry(entry)
    }`
    if (!Number.isFinite(entry.call)) throw new MalformedHistory(`call must be a finite timestamp ${where}`)
    if (!(entry.ret > entry.call)) throw new MalformedHistory(`ret must be after call ${where}`)
    for (const t of entry.ret === Infinity ? [entry.call] : [entry.call, entry.ret]) {
      if (seen.has(t)) throw new MalformedHistory(`timestamp ${t} is used twice ${where}`)
      seen.add(t)
    }
    const observed = entry.ret !== Infinity
    if (
      readsHaveValues && observed && entry.outcome._tag === "ok" && entry.outcome.value === undefined &&
      !["put", "delete", "clear"].includes(entry.op._tag)
    ) {
      throw new MalformedHistory(`a successful ${entry.op._tag} must record the value it returned ${where}`)
    }
  }
}

/** What the search needs of a specification. */
interface Spec<Op extends OperationLike, S extends string | undefined> {
  readonly initial: S
  readonly step: (state: S, entry: Entry<Op>) => S | Impossible
  readonly show: (state: S) => string
  readonly effectOf: (op: Op) => string | undefined
  readonly explain: (state: S, entry: Entry<Op>) => string | undefined
}

/**
 * The search, for one key's register, for the whole store, or for a model of
 * your own: `step` runs an operation against a state, `show` displays one.
 * Events (calls and returns) sit in a doubly linked list in time order: node
 * `2i` is the call of operation `i`, node `2i + 1` its return (absent for a
 * pending operation), node `2n` the head sentinel. Linearizing an operation
 * "lifts" its nodes out of the list; backtracking puts them back (dancing
 * links), so each move costs O(1).
 *
 * From the head, the search walks the calls that precede the first remaining
 * return: each is a candidate to be linearized next. Reaching a return means
 * its operation was not linearized in time, so the last choice is undone.
 */
const search = <Op extends OperationLike, S extends string | undefined>(
  key: string | undefined,
  entries: ReadonlyArray<Entry<Op>>,
  spec: Spec<Op, S>
): Verdict<Op> => {
  const { initial, step } = spec
  const n = entries.length
  const head = 2 * n
  const none = -1
  const next = new Int32Array(2 * n + 1).fill(none)
  const prev = new Int32Array(2 * n + 1).fill(none)

  const events: Array<{ readonly time: number; readonly node: number }> = []
  entries.forEach((entry, i) => {
    events.push({ time: entry.call, node: 2 * i })
    if (entry.ret !== Infinity) events.push({ time: entry.ret, node: 2 * i + 1 })
  })
  events.sort((a, b) => a.time - b.time)
  let last = head
  for (const { node } of events) {
    next[last] = node
    prev[node] = last
    last = node
  }

  const isCompleted = (i: number): boolean => entries[i].ret !== Infinity
  const remove = (node: number): void => {
    next[prev[node]] = next[node]
    if (next[node] !== none) prev[next[node]] = prev[node]
  }
  const restore = (node: number): void => {
    next[prev[node]] = node
    if (next[node] !== none) prev[next[node]] = node
  }
  const lift = (i: number): void => {
    remove(2 * i)
    if (isCompleted(i)) remove(2 * i + 1)
  }
  const unlift = (i: number): void => {
    if (isCompleted(i)) restore(2 * i + 1)
    restore(2 * i)
  }

  // The set of linearized operations, as a bitset, and its Zobrist hash: the
  // XOR of a random 52-bit code per member, kept in two 26-bit halves.
  const linearized = new Uint16Array(Math.ceil(n / 16))
  const random = xorshift32(0x9e3779b9)
  const codeLow = Int32Array.from({ length: n }, () => random() & 0x3ffffff)
  const codeHigh = Int32Array.from({ length: n }, () => random() & 0x3ffffff)
  let setLow = 0
  let setHigh = 0
  const flip = (i: number): void => {
    linearized[i >> 4] ^= 1 << (i & 15)
    setLow ^= codeLow[i]
    setHigh ^= codeHigh[i]
  }

  // Two pruning rules for operations that never returned, both sound because
  // their outcome is unconstrained and they have no return to be ordered by:
  // - one that would leave the state as it is (a get; a delete of an absent
  //   key; a put of the value already there) is never worth linearizing: the
  //   same order without it works as well;
  // - of two with the same effect (two deletes, two puts of one value), the
  //   one called first can stand wherever the other can, so they are
  //   linearized in call order: `previousTwin[i]` must be linearized before `i`.
  // Without them, k such operations would multiply the configurations by 2^k.
  const previousTwin = new Int32Array(n).fill(none)
  const lastOfEffect = new Map<string, number>()
  for (const i of [...entries.keys()].sort((a, b) => entries[a].call - entries[b].call)) {
    if (isCompleted(i)) continue
    const effect = spec.effectOf(entries[i].op)
    if (effect === undefined) continue
    previousTwin[i] = lastOfEffect.get(effect) ?? none
    lastOfEffect.set(effect, i)
  }
  const isLinearized = (i: number): boolean => (linearized[i >> 4] & (1 << (i & 15))) !== 0
  const worthLinearizing = (i: number, before: S, after: S): boolean =>
    isCompleted(i) || (after !== before && (previousTwin[i] === none || isLinearized(previousTwin[i])))

  // Lowe's memo: every configuration (linearized set, state) entered so far;
  // entering one again cannot succeed where the first visit failed. Looked up
  // by hash (the set's, XOR a random code per state), then compared
  // exactly: a collision costs a comparison, never a wrong verdict.
  const stateCodes = new Map<S, readonly [number, number]>()
  const stateCode = (state: S): readonly [number, number] => {
    let code = stateCodes.get(state)
    if (code === undefined) {
      code = [random() & 0x3ffffff, random() & 0x3ffffff]
      stateCodes.set(state, code)
    }
    return code
  }
  const seen = new Map<number, Array<{ readonly members: Uint16Array; readonly state: S }>>()
  /** Records the current set with `state`; false if that configuration was entered before. */
  const enter = (state: S): boolean => {
    const [low, high] = stateCode(state)
    const hash = (setLow ^ low) * 0x4000000 + (setHigh ^ high)
    const bucket = seen.get(hash)
    if (bucket === undefined) {
      seen.set(hash, [{ members: linearized.slice(), state }])
      return true
    }
    for (const configuration of bucket) {
      if (configuration.state === state && sameMembers(configuration.members, linearized)) return false
    }
    bucket.push({ members: linearized.slice(), state })
    return true
  }

  const stack: Array<{ readonly op: number; readonly before: S }> = []
  let state: S = initial
  let completedLeft = entries.filter((_, i) => isCompleted(i)).length
  let longestPrefix: ReadonlyArray<Entry<Op>> = []
  let blocked: Entry<Op> | undefined = undefined

  let node = next[head]
  while (completedLeft > 0) {
    // Every remaining completed operation has its return in the list, after
    // its call, so the walk meets a return before it runs off the end.
    const i = node >> 1
    if ((node & 1) === 0) {
      const after = step(state, entries[i])
      if (after !== Impossible && worthLinearizing(i, state, after)) {
        flip(i)
        if (enter(after)) {
          stack.push({ op: i, before: state })
          state = after
          lift(i)
          if (isCompleted(i)) completedLeft--
          node = next[head]
          continue
        }
        flip(i)
      }
      node = next[node]
    } else {
      if (blocked === undefined || stack.length > longestPrefix.length) {
        longestPrefix = stack.map((frame) => entries[frame.op])
        blocked = entries[i]
      }
      const frame = stack.pop()
      if (frame === undefined) return counterexample(key, entries, spec, longestPrefix, blocked)
      state = frame.before
      flip(frame.op)
      unlift(frame.op)
      if (isCompleted(frame.op)) completedLeft++
      node = next[2 * frame.op]
    }
  }
  // What is left is pending operations only: they can all take effect after
  // everything else, with the outcomes nobody observed.
  return { linearizable: true }
}

/** The verdict of a search that ran out of choices. */
const counterexample = <Op extends OperationLike, S extends string | undefined>(
  key: string | undefined,
  entries: ReadonlyArray<Entry<Op>>,
  spec: Spec<Op, S>,
  longestPrefix: ReadonlyArray<Entry<Op>>,
  blocked: Entry<Op>
): Verdict<Op> => {
  const prefixStates: Array<string> = []
  let shown = spec.initial
  for (const entry of longestPrefix) {
    const after = spec.step(shown, entry)
    shown = after === Impossible ? shown : after
    prefixStates.push(spec.show(shown))
  }
  const reason = spec.step(shown, blocked) === Impossible
    ? spec.explain(shown, blocked) ??
      `${formatEntry(blocked)} cannot have that outcome in the state ${spec.show(shown)}`
    : `${formatEntry(blocked)} fits after the prefix, but every order that places it there reaches ` +
      `another return with no operation that fits: no order of the operations explains every outcome`
  return {
    linearizable: false,
    key: key as Verdict<Op> extends { key: infer K } ? K : never,
    history: [...entries].sort((a, b) => a.call - b.call),
    longestPrefix,
    blocked,
    prefixStates,
    reason
  }
}

const sameMembers = (a: Uint16Array, b: Uint16Array): boolean => {
  for (let w = 0; w < a.length; w++) {
    if (a[w] !== b[w]) return false
  }
  return true
}

/** Marsaglia's xorshift: a fixed seed, so a verdict never depends on the run. */
const xorshift32 = (seed: number) => {
  let x = seed | 0
  return (): number => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
}

// =============================================================================
// Counterexamples
// =============================================================================

const keyValueTags = new Set(["get", "put", "delete", "has", "timeToLive", "clear", "keys", "size", "entries"])

/**
 * One operation as the counterexamples show it: `put("a", "v1", ttl 5 ms)`.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatOperation = (op: OperationLike): string => {
  if (!keyValueTags.has(op._tag)) {
    const fields = Object.entries(op).filter(([name]) => name !== "_tag").map(([, value]) => JSON.stringify(value))
    return `${op._tag}(${fields.join(", ")})`
  }
  const kv = op as StoreOperation
  return kv._tag === "put"
    ? `put(${JSON.stringify(kv.key)}, ${showValue(kv.value)}${kv.ttl === undefined ? "" : `, ttl ${kv.ttl} ms`})`
    : "key" in kv
    ? `${kv._tag}(${JSON.stringify(kv.key)})`
    : `${kv._tag}()`
}

const formatOutcome = (entry: Entry<OperationLike>): string => {
  if (entry.ret === Infinity) return "(no return)"
  if (entry.outcome._tag !== "ok") return entry.outcome._tag
  const value = entry.outcome.value
  if (value === undefined) return "ok"
  // `keys` and `entries` outcomes are JSON already; other values are store values.
  return entry.op._tag === "keys" || entry.op._tag === "entries" ? `ok ${value}` : `ok ${showValue(value)}`
}

/**
 * One entry on one line: `p3 get("a") -> ok "v1"  [12, 15]`.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatEntry = (entry: Entry<OperationLike>): string =>
  `p${entry.process} ${formatOperation(entry.op)} -> ${formatOutcome(entry)}  [${entry.call}, ${
    entry.ret === Infinity ? "∞" : entry.ret
  }]`

/**
 * A readable account of a verdict: for a counterexample, the key's (or the
 * store's) history as a timeline, the longest linearizable prefix with the
 * state after each step, and the operation that could not be fitted.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatVerdict = <Op extends OperationLike>(verdict: Verdict<Op>): string => {
  if (verdict.linearizable) return "linearizable"
  const what = verdict.key === undefined ? "the store as a whole" : `key ${JSON.stringify(verdict.key)}`
  const lines = [`not linearizable: ${what}`, "", "history (by call time):"]
  const ends = verdict.history.flatMap((entry) => entry.ret === Infinity ? [entry.call] : [entry.call, entry.ret])
  const times = [...new Set(ends)].sort((a, b) => a - b)
  const width = verdict.history.reduce((w, entry) => Math.max(w, formatEntry(entry).length), 0)
  for (const entry of verdict.history) {
    const bar = times.map((t) =>
      t === entry.call ? "[" : t === entry.ret ? "]" : t > entry.call && t < entry.ret ? "-" : " "
    ).join("") + (entry.ret === Infinity ? "-->" : "")
    lines.push(`  ${formatEntry(entry).padEnd(width)}  ${bar}`)
  }
  lines.push("", "longest linearizable prefix found:")
  if (verdict.longestPrefix.length === 0) lines.push("  (none)")
  verdict.longestPrefix.forEach((entry, i) => lines.push(`  ${formatEntry(entry)}   => ${verdict.prefixStates[i]}`))
  const initial = verdict.key === undefined ? "empty" : "absent"
  lines.push(
    "",
    `then nothing fits before this return: ${formatEntry(verdict.blocked)}`,
    `(${verdict.key === undefined ? "store" : "register"} after the prefix: ${verdict.prefixStates.at(-1) ?? initial})`
  )
  return lines.join("\n")
}

/**
 * A counterexample as a test failure prints it: how it was found and shrunk,
 * what was left out, the timeline of `formatVerdict`, and why the blocked
 * operation fits nowhere.
 *
 * @since 0.2.0
 * @category formatting
 */
export const formatCounterexample = <Op extends OperationLike>(counterexample: Counterexample<Op>): string => {
  const { found, leftOut, verdict } = counterexample
  const lines: Array<string> = []
  if (found !== undefined) {
    lines.push(
      `found after ${found.runs} run${found.runs === 1 ? "" : "s"}, shrunk ${found.shrinks} time${
        found.shrinks === 1 ? "" : "s"
      } by fast-check (replay with { seed: ${found.seed}${
        found.path === undefined ? "" : `, path: ${JSON.stringify(found.path)}`
      } })`
    )
  }
  if (leftOut > 0) {
    lines.push(`${leftOut} operation${leftOut === 1 ? "" : "s"} the contradiction does not need left out`)
  }
  if (lines.length > 0) lines.push("")
  lines.push(formatVerdict(verdict), `why: ${verdict.reason}`)
  return lines.join("\n")
}
