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

/** An operation on one key, as called. */
export type Operation =
  | { readonly _tag: "get"; readonly key: string }
  | { readonly _tag: "put"; readonly key: string; readonly value: string }
  | { readonly _tag: "delete"; readonly key: string }

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
export interface Entry {
  readonly process: number
  readonly op: Operation
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
 * return.
 */
export type Verdict =
  | { readonly linearizable: true }
  | {
    readonly linearizable: false
    readonly key: string
    readonly history: ReadonlyArray<Entry>
    readonly longestPrefix: ReadonlyArray<Entry>
    readonly blocked: Entry
  }

// =============================================================================
// Sequential specification
// =============================================================================

/** The state of one key's register: its value, or `undefined` when absent. */
type Register = string | undefined

/** The result of `step` when the observed outcome is impossible in that state. */
const Impossible: unique symbol = Symbol("Impossible")

/**
 * Runs one operation against the register. Returns the next state, or
 * `Impossible` when the operation cannot have had the observed outcome in
 * `state`. A pending operation (no return) is unconstrained: any outcome goes.
 */
const step = (state: Register, entry: Entry): Register | typeof Impossible => {
  const pending = entry.ret === Infinity
  const outcome = entry.outcome
  switch (entry.op._tag) {
    case "get": {
      if (pending) return state
      if (outcome._tag === "KeyNotFound") return state === undefined ? state : Impossible
      return state !== undefined && outcome.value === state ? state : Impossible
    }
    case "put": {
      if (pending) return entry.op.value
      if (outcome._tag === "KeyNotFound") return Impossible
      return outcome.value === undefined || outcome.value === entry.op.value ? entry.op.value : Impossible
    }
    case "delete": {
      if (pending) return undefined
      if (outcome._tag === "KeyNotFound") return state === undefined ? undefined : Impossible
      return state !== undefined ? undefined : Impossible
    }
  }
}

// =============================================================================
// Checker
// =============================================================================

/**
 * Checks that `history` is linearizable with respect to the register-map
 * specification, one key at a time (keys in order of first call). Throws if
 * the history is malformed (a return not after its call, a repeated
 * timestamp, a `get` that succeeded without a value): that is a bug in the
 * test, not in the store.
 */
export const check = (history: ReadonlyArray<Entry>): Verdict => {
  const byKey = new Map<string, Array<Entry>>()
  for (const entry of history) {
    const entries = byKey.get(entry.op.key)
    if (entries === undefined) byKey.set(entry.op.key, [entry])
    else entries.push(entry)
  }
  for (const [key, entries] of byKey) {
    validate(key, entries)
    const verdict = checkKey(key, entries)
    if (!verdict.linearizable) return verdict
  }
  return { linearizable: true }
}

const validate = (key: string, entries: ReadonlyArray<Entry>): void => {
  const seen = new Set<number>()
  for (const entry of entries) {
    const where = `in the history of key ${JSON.stringify(key)}: ${formatEntry(entry)}`
    if (!Number.isFinite(entry.call)) throw new Error(`call must be a finite timestamp ${where}`)
    if (!(entry.ret > entry.call)) throw new Error(`ret must be after call ${where}`)
    for (const t of entry.ret === Infinity ? [entry.call] : [entry.call, entry.ret]) {
      if (seen.has(t)) throw new Error(`timestamp ${t} is used twice ${where}`)
      seen.add(t)
    }
    const observed = entry.ret !== Infinity
    if (observed && entry.op._tag === "get" && entry.outcome._tag === "ok" && entry.outcome.value === undefined) {
      throw new Error(`a successful get must record the value it returned ${where}`)
    }
  }
}

/**
 * The search for one key. Events (calls and returns) sit in a doubly linked
 * list in time order: node `2i` is the call of operation `i`, node `2i + 1`
 * its return (absent for a pending operation), node `2n` the head sentinel.
 * Linearizing an operation "lifts" its nodes out of the list; backtracking
 * puts them back (dancing links), so each move costs O(1).
 *
 * From the head, the search walks the calls that precede the first remaining
 * return: each is a candidate to be linearized next. Reaching a return means
 * its operation was not linearized in time, so the last choice is undone.
 */
const checkKey = (key: string, entries: ReadonlyArray<Entry>): Verdict => {
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
    if (isCompleted(i) || op._tag === "get") continue
    const effect = op._tag === "put" ? "put " + op.value : "delete"
    previousTwin[i] = lastOfEffect.get(effect) ?? none
    lastOfEffect.set(effect, i)
  }
  const isLinearized = (i: number): boolean => (linearized[i >> 4] & (1 << (i & 15))) !== 0
  const worthLinearizing = (i: number, before: Register, after: Register): boolean =>
    isCompleted(i) || (after !== before && (previousTwin[i] === none || isLinearized(previousTwin[i])))

  // Lowe's memo: every configuration (linearized set, register) entered so far;
  // entering one again cannot succeed where the first visit failed. Looked up
  // by hash (the set's, XOR a random code per register state), then compared
  // exactly: a collision costs a comparison, never a wrong verdict.
  const stateCodes = new Map<Register, readonly [number, number]>()
  const stateCode = (state: Register): readonly [number, number] => {
    let code = stateCodes.get(state)
    if (code === undefined) {
      code = [random() & 0x3ffffff, random() & 0x3ffffff]
      stateCodes.set(state, code)
    }
    return code
  }
  const seen = new Map<number, Array<{ readonly members: Uint16Array; readonly state: Register }>>()
  /** Records the current set with `state`; false if that configuration was entered before. */
  const enter = (state: Register): boolean => {
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

  const stack: Array<{ readonly op: number; readonly before: Register }> = []
  let state: Register = undefined
  let completedLeft = entries.filter((_, i) => isCompleted(i)).length
  let longestPrefix: ReadonlyArray<Entry> = []
  let blocked: Entry | undefined = undefined

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
        return {
          linearizable: false,
          key,
          history: [...entries].sort((a, b) => a.call - b.call),
          longestPrefix,
          blocked
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

const formatOperation = (op: Operation): string =>
  op._tag === "put"
    ? `put(${JSON.stringify(op.key)}, ${JSON.stringify(op.value)})`
    : `${op._tag}(${JSON.stringify(op.key)})`

const formatOutcome = (entry: Entry): string => {
  if (entry.ret === Infinity) return "(no return)"
  if (entry.outcome._tag === "KeyNotFound") return "KeyNotFound"
  return entry.outcome.value === undefined ? "ok" : `ok ${JSON.stringify(entry.outcome.value)}`
}

/** One entry on one line: `p3 get("a") -> ok "v1"  [12, 15]`. */
export const formatEntry = (entry: Entry): string =>
  `p${entry.process} ${formatOperation(entry.op)} -> ${formatOutcome(entry)}  [${entry.call}, ${
    entry.ret === Infinity ? "∞" : entry.ret
  }]`

/**
 * A readable account of a verdict: for a counterexample, the key's history as
 * a timeline, the longest linearizable prefix with the register's state after
 * each step, and the operation that could not be fitted.
 */
export const formatVerdict = (verdict: Verdict): string => {
  if (verdict.linearizable) return "linearizable"
  const lines = [`not linearizable: key ${JSON.stringify(verdict.key)}`, "", "history (by call time):"]
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
  let state: Register = undefined
  if (verdict.longestPrefix.length === 0) lines.push("  (none)")
  for (const entry of verdict.longestPrefix) {
    const after = step(state, entry)
    state = after === Impossible ? state : after
    lines.push(`  ${formatEntry(entry)}   => ${state === undefined ? "absent" : JSON.stringify(state)}`)
  }
  lines.push(
    "",
    `then nothing fits before this return: ${formatEntry(verdict.blocked)}`,
    `(register after the prefix: ${state === undefined ? "absent" : JSON.stringify(state)})`
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
 * A `get` or `put` that succeeds with anything but a string dies: histories
 * hold string values only.
 */
export const record = <A, E, R>(
  history: Array<Entry>,
  clock: LogicalClock,
  process: number,
  op: Operation,
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
        if (op._tag === "delete") {
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
