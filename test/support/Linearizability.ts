/**
 * A linearizability checker for histories of `get` / `put` / `delete` on a
 * key-value store, and a recorder that builds such histories from real runs.
 *
 * A history is linearizable when every operation can be given a single
 * instant, somewhere between its call and its return, such that executing the
 * operations one at a time in the order of those instants, against the
 * sequential specification below, gives exactly the outcomes that were
 * observed. An operation that never returned (interrupted, or still running
 * when the history was taken) may take effect at any instant after its call,
 * or not at all, and its outcome is not checked: nobody observed it.
 *
 * Sequential specification (one register per key, initially absent):
 *
 * - `get(k)`: the current value, or `KeyNotFound` when `k` is absent;
 * - `put(k, v)`: sets `k` to `v` and succeeds (with `v`, if a value was recorded);
 * - `delete(k)`: when `k` is present, succeeds and removes it; when absent,
 *   fails with `KeyNotFound`.
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
 * Two additions, both sound (see `checkKey`): operations that never returned
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
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

// =============================================================================
// History
// =============================================================================

/**
 * An operation on one key, as called. A put with `ttl` gives the key that
 * many milliseconds to live; histories with TTLs run on a clock that does
 * not move, so the key never expires within them and `timeToLive` reports
 * exactly `ttl`.
 */
export type Operation =
  | { readonly _tag: "get"; readonly key: string }
  | { readonly _tag: "put"; readonly key: string; readonly value: string; readonly ttl?: number }
  | { readonly _tag: "delete"; readonly key: string }

/**
 * Any operation on the store: the single-key ones above, the single-key reads
 * `has` (outcome `"true"` or `"false"`) and `timeToLive` (`"none"`, or the
 * milliseconds left, or `KeyNotFound`), and the operations on the whole
 * store: `clear`, `keys` (outcome: the JSON of the sorted keys), `size` (the
 * count, in decimal) and `entries` (the JSON of the `[key, value]` pairs
 * sorted by key).
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
 * What the caller observed. `ok` carries the value a `get` returned (and,
 * optionally, the value a `put` returned).
 */
export type Outcome =
  | { readonly _tag: "ok"; readonly value?: string }
  | { readonly _tag: "KeyNotFound" }

/**
 * One operation of a history. `call` and `ret` are logical timestamps taken
 * from one counter shared by every process, so all finite timestamps of a
 * history are distinct, and `call < ret`. `ret: Infinity` marks an operation
 * that never returned: it may or may not have taken effect, and its `outcome`
 * is ignored.
 */
export interface Entry<Op extends StoreOperation = Operation> {
  readonly process: number
  readonly op: Op
  readonly outcome: Outcome
  readonly call: number
  readonly ret: number
}

/** The logical clock that stamps calls and returns: one per history. */
export interface LogicalClock {
  n: number
}

// =============================================================================
// Verdict
// =============================================================================

/**
 * The verdict of `check`. When the history is not linearizable, the
 * counterexample is confined to one key: `history` holds that key's
 * operations by call time, `longestPrefix` the longest sequence of them the
 * search managed to linearize (in linearization order), and `blocked` a
 * completed operation that no extension of that prefix could fit before its
 * return. A history with operations on the whole store is checked as one:
 * its counterexample has `key: undefined`.
 */
export type Verdict<Op extends StoreOperation = Operation> =
  | { readonly linearizable: true }
  | {
    readonly linearizable: false
    readonly key: Op extends Operation ? string : string | undefined
    readonly history: ReadonlyArray<Entry<Op>>
    readonly longestPrefix: ReadonlyArray<Entry<Op>>
    readonly blocked: Entry<Op>
    /** The state after each step of `longestPrefix`, as `formatVerdict` shows it. */
    readonly prefixStates: ReadonlyArray<string>
  }

// =============================================================================
// Sequential specification
// =============================================================================

/**
 * The state of one key's register: absent (`undefined`), or its value, then,
 * if it was put with a TTL, `ttlMark` and the TTL. A string, so that states
 * compare with `===` and serve as `Map` keys in the search.
 */
type Register = string | undefined
const ttlMark = "\u0000"

const valueOf = (cell: string): string => {
  const mark = cell.indexOf(ttlMark)
  return mark < 0 ? cell : cell.slice(0, mark)
}

/** What `timeToLive` reports for a present key: `"none"`, or its TTL. */
const ttlOf = (cell: string): string => {
  const mark = cell.indexOf(ttlMark)
  return mark < 0 ? "none" : cell.slice(mark + 1)
}

const cellOf = (op: Extract<Operation, { _tag: "put" }>): string =>
  op.ttl === undefined ? op.value : op.value + ttlMark + op.ttl

/** The result of `step` when the observed outcome is impossible in that state. */
const Impossible: unique symbol = Symbol("Impossible")

/** A read's observed result: its outcome's value, `Impossible` for `KeyNotFound`. */
const observedValue = (entry: Entry<StoreOperation>): string | undefined | typeof Impossible =>
  entry.outcome._tag === "KeyNotFound" ? Impossible : entry.outcome.value

/**
 * Runs one single-key operation against the register. Returns the next
 * state, or `Impossible` when the operation cannot have had the observed
 * outcome in `state`. A pending operation (no return) is unconstrained: any
 * outcome goes.
 */
const step = (state: Register, entry: Entry<StoreOperation>): Register | typeof Impossible => {
  const pending = entry.ret === Infinity
  const outcome = entry.outcome
  const op = entry.op
  switch (op._tag) {
    case "get": {
      if (pending) return state
      if (outcome._tag === "KeyNotFound") return state === undefined ? state : Impossible
      return state !== undefined && outcome.value === valueOf(state) ? state : Impossible
    }
    case "put": {
      if (pending) return cellOf(op)
      if (outcome._tag === "KeyNotFound") return Impossible
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
      return state !== undefined && outcome.value === ttlOf(state) ? state : Impossible
    }
    default:
      throw new Error(`${op._tag} is not an operation on one key`)
  }
}

/** The outcome of `keys`, as the checker compares it. */
export const keysOutcome = (keys: Iterable<string>): string => JSON.stringify([...keys].sort(byString))

/** The outcome of `entries`, as the checker compares it. */
export const entriesOutcome = (entries: Iterable<readonly [string, string]>): string =>
  JSON.stringify([...entries].sort((a, b) => byString(a[0], b[0])))

const byString = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

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
const storeStep = (
  states: StoreStates,
  state: StoreState,
  entry: Entry<StoreOperation>
): StoreState | typeof Impossible => {
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
  if (op._tag === "clear") return entry.outcome._tag === "KeyNotFound" ? Impossible : states.empty
  if (entry.ret === Infinity) return state
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

/** What a state looks like in a counterexample. */
const showRegister = (state: Register): string =>
  state === undefined
    ? "absent"
    : JSON.stringify(valueOf(state)) + (ttlOf(state) === "none" ? "" : ` (ttl ${ttlOf(state)} ms)`)

const showStore = (states: StoreStates, state: StoreState): string => {
  const cells = [...states.decode(state)]
  return cells.length === 0 ? "empty" : cells.map(([key, cell]) => `${key}=${showRegister(cell)}`).join(", ")
}

// =============================================================================
// Checker
// =============================================================================

/**
 * Checks that `history` is linearizable with respect to the register-map
 * specification. A history of single-key operations is checked one key at a
 * time (keys in order of first call); one with an operation on the whole
 * store (`clear`, `keys`, `size`, `entries`), which locality does not cover,
 * is checked as one, its state being every key's register. Throws if the
 * history is malformed (a return not after its call, a repeated timestamp, a
 * read that succeeded without a value): that is a bug in the test, not in
 * the store.
 *
 * `initial` holds the keys present, with their values, before the history
 * began (by default, none).
 */
export const check = <Op extends StoreOperation>(
  history: ReadonlyArray<Entry<Op>>,
  initial: ReadonlyMap<string, string> = new Map()
): Verdict<Op> => {
  const byKey = new Map<string, Array<Entry<Op>>>()
  for (const entry of history) {
    if (!("key" in entry.op)) {
      validate(undefined, history)
      const states = new StoreStates()
      return search(
        undefined,
        history,
        states.encode(initial),
        (state, entry) => storeStep(states, state, entry),
        (state) => showStore(states, state)
      ) as Verdict<Op>
    }
    const entries = byKey.get(entry.op.key)
    if (entries === undefined) byKey.set(entry.op.key, [entry])
    else entries.push(entry)
  }
  for (const [key, entries] of byKey) {
    validate(key, entries)
    const verdict = search<Op, Register>(key, entries, initial.get(key), step, showRegister)
    if (!verdict.linearizable) return verdict
  }
  return { linearizable: true }
}

const validate = (key: string | undefined, entries: ReadonlyArray<Entry<StoreOperation>>): void => {
  const seen = new Set<number>()
  for (const entry of entries) {
    const where = `in the history of ${key === undefined ? "the store" : `key ${JSON.stringify(key)}`}: ${
      formatEntry(entry)
    }`
    if (!Number.isFinite(entry.call)) throw new Error(`call must be a finite timestamp ${where}`)
    if (!(entry.ret > entry.call)) throw new Error(`ret must be after call ${where}`)
    for (const t of entry.ret === Infinity ? [entry.call] : [entry.call, entry.ret]) {
      if (seen.has(t)) throw new Error(`timestamp ${t} is used twice ${where}`)
      seen.add(t)
    }
    const observed = entry.ret !== Infinity
    if (
      observed && entry.outcome._tag === "ok" && entry.outcome.value === undefined &&
      !["put", "delete", "clear"].includes(entry.op._tag)
    ) {
      throw new Error(`a successful ${entry.op._tag} must record the value it returned ${where}`)
    }
  }
}

/**
 * The search, for one key's register or for the whole store: `step` runs an
 * operation against a state, `show` displays one. Events (calls and returns) sit in a doubly linked
 * list in time order: node `2i` is the call of operation `i`, node `2i + 1`
 * its return (absent for a pending operation), node `2n` the head sentinel.
 * Linearizing an operation "lifts" its nodes out of the list; backtracking
 * puts them back (dancing links), so each move costs O(1).
 *
 * From the head, the search walks the calls that precede the first remaining
 * return: each is a candidate to be linearized next. Reaching a return means
 * its operation was not linearized in time, so the last choice is undone.
 */
const search = <Op extends StoreOperation, S extends string | undefined>(
  key: string | undefined,
  entries: ReadonlyArray<Entry<Op>>,
  initial: S,
  step: (state: S, entry: Entry<Op>) => S | typeof Impossible,
  show: (state: S) => string
): Verdict<Op> => {
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
  // - one that would leave the register as it is (a get; a delete of an absent
  //   key; a put of the value already there) is never worth linearizing: the
  //   same order without it works as well;
  // - of two with the same effect (two deletes, two puts of one value), the
  //   one called first can stand wherever the other can, so they are
  //   linearized in call order: `previousTwin[i]` must be linearized before `i`.
  // Without them, k such operations would multiply the configurations by 2^k.
  const previousTwin = new Int32Array(n).fill(none)
  const lastOfEffect = new Map<string, number>()
  for (const i of [...entries.keys()].sort((a, b) => entries[a].call - entries[b].call)) {
    const op = entries[i].op
    if (isCompleted(i) || (op._tag !== "put" && op._tag !== "delete" && op._tag !== "clear")) continue
    const effect = op._tag === "put" ? `put ${op.key} ${cellOf(op)}` : op._tag === "delete" ? `delete ${op.key}` : "clear"
    previousTwin[i] = lastOfEffect.get(effect) ?? none
    lastOfEffect.set(effect, i)
  }
  const isLinearized = (i: number): boolean => (linearized[i >> 4] & (1 << (i & 15))) !== 0
  const worthLinearizing = (i: number, before: S, after: S): boolean =>
    isCompleted(i) || (after !== before && (previousTwin[i] === none || isLinearized(previousTwin[i])))

  // Lowe's memo: every configuration (linearized set, register) entered so far;
  // entering one again cannot succeed where the first visit failed. Looked up
  // by hash (the set's, XOR a random code per register state), then compared
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
      if (frame === undefined) {
        const prefixStates: Array<string> = []
        let shown = initial
        for (const entry of longestPrefix) {
          const after = step(shown, entry)
          shown = after === Impossible ? shown : after
          prefixStates.push(show(shown))
        }
        return {
          linearizable: false,
          key: key as Verdict<Op> extends { key: infer K } ? K : never,
          history: [...entries].sort((a, b) => a.call - b.call),
          longestPrefix,
          blocked,
          prefixStates
        }
      }
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

const formatOperation = (op: StoreOperation): string =>
  op._tag === "put"
    ? `put(${JSON.stringify(op.key)}, ${JSON.stringify(op.value)}${op.ttl === undefined ? "" : `, ttl ${op.ttl} ms`})`
    : "key" in op
    ? `${op._tag}(${JSON.stringify(op.key)})`
    : `${op._tag}()`

const formatOutcome = (entry: Entry<StoreOperation>): string => {
  if (entry.ret === Infinity) return "(no return)"
  if (entry.outcome._tag === "KeyNotFound") return "KeyNotFound"
  return entry.outcome.value === undefined ? "ok" : `ok ${JSON.stringify(entry.outcome.value)}`
}

/** One entry on one line: `p3 get("a") -> ok "v1"  [12, 15]`. */
export const formatEntry = (entry: Entry<StoreOperation>): string =>
  `p${entry.process} ${formatOperation(entry.op)} -> ${formatOutcome(entry)}  [${entry.call}, ${
    entry.ret === Infinity ? "∞" : entry.ret
  }]`

/**
 * A readable account of a verdict: for a counterexample, the key's (or the
 * store's) history as a timeline, the longest linearizable prefix with the
 * state after each step, and the operation that could not be fitted.
 */
export const formatVerdict = <Op extends StoreOperation>(verdict: Verdict<Op>): string => {
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

// =============================================================================
// Recorder
// =============================================================================

/** The store's `KeyNotFound`, by shape: this module does not depend on the store. */
type KeyNotFoundLike = { readonly _tag: "KeyNotFound" }

/** Whether `cause` is exactly one typed failure, a `KeyNotFound`. */
const isKeyNotFoundOnly = (cause: Cause.Cause<unknown>): boolean => {
  if (cause.reasons.length !== 1) return false
  const reason = cause.reasons[0]
  return Cause.isFailReason(reason) && typeof reason.error === "object" && reason.error !== null &&
    "_tag" in reason.error && reason.error._tag === "KeyNotFound"
}

/**
 * Runs `effect`, the store's implementation of `op`, and records it in
 * `history`. The call is stamped synchronously just before `effect` starts,
 * the return synchronously as soon as it ends. The entry is appended at the
 * call with `ret: Infinity`, so an operation that is interrupted and never
 * returns stays in the history as one that may or may not have taken effect.
 *
 * A `KeyNotFound` failure is an outcome, recorded and returned. Any other
 * failure or defect is re-raised (the entry stays pending): the test fails.
 * A `delete` or `clear` succeeds with nothing to record; any other
 * operation that succeeds with anything but a string dies: histories hold
 * string values only (the caller renders `has`, `keys`, … as their outcome
 * strings, see `StoreOperation`).
 */
export const record = <A, E, R, Op extends StoreOperation = Operation>(
  history: Array<Entry<Op>>,
  clock: LogicalClock,
  process: number,
  op: Op,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Outcome, Exclude<E, KeyNotFoundLike>, R> =>
  Effect.suspend(() => {
    const index = history.length
    const call = clock.n++
    history.push({ process, op, outcome: { _tag: "ok" }, call, ret: Infinity })
    return Effect.flatMap(Effect.exit(effect), (exit): Effect.Effect<Outcome, Exclude<E, KeyNotFoundLike>> => {
      const ret = clock.n++
      let outcome: Outcome
      if (Exit.isSuccess(exit)) {
        if (op._tag === "delete" || op._tag === "clear") {
          outcome = { _tag: "ok" }
        } else if (typeof exit.value === "string") {
          outcome = { _tag: "ok", value: exit.value }
        } else {
          return Effect.die(new Error(`${formatOperation(op)} succeeded with a non-string value: ${String(exit.value)}`))
        }
      } else if (isKeyNotFoundOnly(exit.cause)) {
        outcome = { _tag: "KeyNotFound" }
      } else {
        // A lone KeyNotFound became an outcome above; a store operation fails
        // with one error at a time, so what is re-raised here is not one.
        return Effect.failCause(exit.cause as Cause.Cause<Exclude<E, KeyNotFoundLike>>)
      }
      history[index] = { process, op, outcome, call, ret }
      return Effect.succeed(outcome)
    })
  })
