/**
 * The linearizability checker's own specification: hand-written histories
 * that are linearizable and that are not, agreement with an exhaustive search
 * on small random histories, and speed on long ones; and the recorder that
 * turns store operations into history entries.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as fc from "fast-check"
import { KeyValueStore } from "../src/index.ts"
import {
  check,
  type Entry,
  formatVerdict,
  type LogicalClock,
  type Operation,
  type Outcome,
  record,
  type Verdict
} from "./support/Linearizability.ts"

// =============================================================================
// History builders: `get(process, key, seen, call, ret)` and so on
// =============================================================================

const NotFound = { _tag: "KeyNotFound" } as const
const pending = Infinity

const get = (process: number, key: string, seen: string | typeof NotFound, call: number, ret: number): Entry => ({
  process,
  op: { _tag: "get", key },
  outcome: typeof seen === "string" ? { _tag: "ok", value: seen } : NotFound,
  call,
  ret
})

const put = (process: number, key: string, value: string, call: number, ret: number): Entry => ({
  process,
  op: { _tag: "put", key, value },
  outcome: { _tag: "ok" },
  call,
  ret
})

const del = (process: number, key: string, found: "ok" | typeof NotFound, call: number, ret: number): Entry => ({
  process,
  op: { _tag: "delete", key },
  outcome: found === "ok" ? { _tag: "ok" } : NotFound,
  call,
  ret
})

const assertLinearizable = (history: ReadonlyArray<Entry>): void => {
  const verdict = check(history)
  assert.isTrue(verdict.linearizable, formatVerdict(verdict))
}

/** Asserts a counterexample on `key` whose blocked operation is `blocked`. */
const assertNotLinearizable = (history: ReadonlyArray<Entry>, key: string, blocked: Entry): void => {
  const verdict = check(history)
  if (verdict.linearizable) assert.fail("expected a counterexample, the checker found the history linearizable")
  assert.strictEqual(verdict.key, key)
  assert.deepStrictEqual(verdict.blocked, blocked, formatVerdict(verdict))
}

// =============================================================================
// Linearizable histories
// =============================================================================

describe("histories the checker accepts", () => {
  it("an empty history is linearizable", () => {
    assertLinearizable([])
  })

  it("a sequential history that follows the specification is linearizable", () => {
    assertLinearizable([
      get(0, "a", NotFound, 1, 2),
      del(0, "a", NotFound, 3, 4),
      put(0, "a", "v1", 5, 6),
      get(0, "a", "v1", 7, 8),
      put(0, "a", "v2", 9, 10),
      get(0, "a", "v2", 11, 12),
      del(0, "a", "ok", 13, 14),
      get(0, "a", NotFound, 15, 16)
    ])
  })

  it("a get overlapping a put may see the new value", () => {
    assertLinearizable([
      put(0, "a", "v0", 1, 2),
      put(0, "a", "v1", 3, 6),
      get(1, "a", "v1", 4, 5)
    ])
  })

  it("a get overlapping a put may see the old value", () => {
    assertLinearizable([
      put(0, "a", "v0", 1, 2),
      put(0, "a", "v1", 3, 6),
      get(1, "a", "v0", 4, 5)
    ])
  })

  it("a get overlapping the first put of a key may find it absent", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, 4),
      get(1, "a", NotFound, 2, 3)
    ])
  })

  it("concurrent puts take effect in either order", () => {
    const puts = [put(0, "a", "v1", 1, 3), put(1, "a", "v2", 2, 4)]
    assertLinearizable([...puts, get(2, "a", "v1", 5, 6)])
    assertLinearizable([...puts, get(2, "a", "v2", 5, 6)])
  })

  it("a get may see an earlier put's value while a later put is in flight", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, 2),
      put(1, "a", "v2", 3, 8),
      get(2, "a", "v1", 4, 5),
      get(2, "a", "v2", 6, 7)
    ])
  })

  it("of two concurrent deletes of a present key, one succeeds and the other finds nothing", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, 2),
      del(0, "a", NotFound, 3, 5),
      del(1, "a", "ok", 4, 6)
    ])
  })

  it("a delete racing a put may find the key absent and the put then stands", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, 4),
      del(1, "a", NotFound, 2, 3),
      get(1, "a", "v1", 5, 6)
    ])
  })

  it("a delete racing a put may remove the new value", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, 4),
      del(1, "a", "ok", 2, 5),
      get(1, "a", NotFound, 6, 7)
    ])
  })

  it("an operation that never returned may have taken effect", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, pending),
      get(1, "a", NotFound, 2, 3),
      get(1, "a", "v1", 4, 5)
    ])
  })

  it("an operation that never returned may never take effect", () => {
    assertLinearizable([
      put(0, "a", "v1", 1, 2),
      del(1, "a", "ok", 3, pending),
      get(2, "a", "v1", 4, 5),
      get(2, "a", "v1", 6, 7)
    ])
  })

  it("the outcome recorded for an operation that never returned is not checked", () => {
    assertLinearizable([
      get(0, "a", "never written", 1, pending),
      del(1, "a", "ok", 2, pending),
      get(2, "a", NotFound, 3, 4)
    ])
  })

  it("keys are checked independently: each key's history need only be linearizable on its own", () => {
    // p0's get of "b" returns before p1's put of "b" is called, though p1's
    // put of "a" (which p0 saw) is later in p1's program: across keys,
    // nothing orders them.
    assertLinearizable([
      put(1, "a", "va", 1, 6),
      get(0, "a", "va", 2, 3),
      get(0, "b", NotFound, 4, 5),
      put(1, "b", "vb", 7, 8)
    ])
  })
})

// =============================================================================
// Histories that are not linearizable
// =============================================================================

describe("histories the checker rejects", () => {
  it("a get after a completed put cannot see the value it replaced (stale read)", () => {
    const stale = get(1, "a", "v0", 5, 6)
    assertNotLinearizable([put(0, "a", "v0", 1, 2), put(0, "a", "v1", 3, 4), stale], "a", stale)
  })

  it("a get after a completed put cannot find the key absent", () => {
    const missed = get(1, "a", NotFound, 3, 4)
    assertNotLinearizable([put(0, "a", "v1", 1, 2), missed], "a", missed)
  })

  it("a get cannot see a value that was never written", () => {
    const ghost = get(1, "a", "ghost", 3, 6)
    assertNotLinearizable([put(0, "a", "v1", 1, 4), ghost, put(2, "a", "v2", 2, 5)], "a", ghost)
  })

  it("two deletes of one key cannot both succeed with no put between them", () => {
    const second = del(2, "a", "ok", 4, 7)
    assertNotLinearizable([put(0, "a", "v1", 1, 2), del(1, "a", "ok", 3, 6), second], "a", second)
  })

  it("a read cannot go back in time: once a get has seen a put, a later get cannot miss it", () => {
    const backInTime = get(2, "a", NotFound, 4, 5)
    assertNotLinearizable([put(0, "a", "v1", 1, 10), get(1, "a", "v1", 2, 3), backInTime], "a", backInTime)
  })

  it("an operation that never returned takes effect at most once, and for good", () => {
    const undone = get(2, "a", NotFound, 4, 5)
    assertNotLinearizable([put(0, "a", "v1", 1, pending), get(1, "a", "v1", 2, 3), undone], "a", undone)
  })

  it("a delete of a key that was never put cannot succeed", () => {
    const phantom = del(0, "a", "ok", 1, 2)
    assertNotLinearizable([phantom], "a", phantom)
  })

  it("a put cannot fail with KeyNotFound", () => {
    const failed: Entry = { ...put(0, "a", "v1", 1, 2), outcome: NotFound }
    assertNotLinearizable([failed], "a", failed)
  })

  it("a put that reports a value must report the value it was given", () => {
    const wrongEcho: Entry = { ...put(0, "a", "v1", 1, 2), outcome: { _tag: "ok", value: "v2" } }
    assertNotLinearizable([wrongEcho], "a", wrongEcho)
  })

  it("the counterexample names the key that fails, even when other keys pass", () => {
    const stale = get(1, "b", NotFound, 7, 8)
    const verdict = check([
      put(0, "a", "va", 1, 2),
      get(1, "a", "va", 3, 4),
      put(0, "b", "vb", 5, 6),
      stale
    ])
    assert.isFalse(verdict.linearizable)
    if (!verdict.linearizable) {
      assert.strictEqual(verdict.key, "b")
      assert.deepStrictEqual(verdict.history.map((entry) => entry.op.key), ["b", "b"])
    }
  })

  it("the counterexample shows the timeline, the longest linearizable prefix and the blocked operation", () => {
    const verdict = check([put(0, "a", "v1", 1, 10), get(1, "a", "v1", 2, 3), get(2, "a", NotFound, 4, 5)])
    assert.strictEqual(
      formatVerdict(verdict),
      [
        `not linearizable: key "a"`,
        ``,
        `history (by call time):`,
        `  p0 put("a", "v1") -> ok  [1, 10]    [----]`,
        `  p1 get("a") -> ok "v1"  [2, 3]       []   `,
        `  p2 get("a") -> KeyNotFound  [4, 5]     [] `,
        ``,
        `longest linearizable prefix found:`,
        `  p0 put("a", "v1") -> ok  [1, 10]   => "v1"`,
        `  p1 get("a") -> ok "v1"  [2, 3]   => "v1"`,
        ``,
        `then nothing fits before this return: p2 get("a") -> KeyNotFound  [4, 5]`,
        `(register after the prefix: "v1")`
      ].join("\n")
    )
  })
})

describe("malformed histories", () => {
  it("a return that is not after its call is rejected as a bug in the test", () => {
    assert.throws(() => check([put(0, "a", "v1", 2, 2)]), /ret must be after call/)
  })

  it("a timestamp used twice on one key is rejected as a bug in the test", () => {
    assert.throws(() => check([put(0, "a", "v1", 1, 3), get(1, "a", "v1", 2, 3)]), /timestamp 3 is used twice/)
  })

  it("a successful get that recorded no value is rejected as a bug in the test", () => {
    const noValue: Entry = { ...get(0, "a", "v", 1, 2), outcome: { _tag: "ok" } }
    assert.throws(() => check([noValue]), /must record the value/)
  })
})

// =============================================================================
// Against an exhaustive search
// =============================================================================

/** The register-map specification, written again, plainly. */
const apply = (state: string | undefined, entry: Entry): { readonly legal: boolean; readonly state: string | undefined } => {
  const observed = entry.ret !== Infinity
  const outcome = entry.outcome
  switch (entry.op._tag) {
    case "get": {
      const expected: Outcome = state === undefined ? NotFound : { _tag: "ok", value: state }
      return { legal: !observed || JSON.stringify(outcome) === JSON.stringify(expected), state }
    }
    case "put":
      return { legal: !observed || (outcome._tag === "ok" && (outcome.value ?? entry.op.value) === entry.op.value), state: entry.op.value }
    case "delete":
      return { legal: !observed || outcome._tag === (state === undefined ? "KeyNotFound" : "ok"), state: undefined }
  }
}

const permutations = <A>(items: ReadonlyArray<A>): Array<Array<A>> =>
  items.length === 0 ? [[]] : items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])
  )

/**
 * Linearizability by its definition, on one key: some order of the completed
 * operations and of some of the pending ones respects real time (an
 * operation that returned before another was called comes first) and the
 * specification.
 */
const linearizableByExhaustiveSearch = (history: ReadonlyArray<Entry>): boolean => {
  const pendings = history.filter((entry) => entry.ret === Infinity)
  const completed = history.filter((entry) => entry.ret !== Infinity)
  for (let mask = 0; mask < 1 << pendings.length; mask++) {
    const included = [...completed, ...pendings.filter((_, i) => (mask & (1 << i)) !== 0)]
    for (const order of permutations(included)) {
      const respectsRealTime = order.every((a, i) => order.slice(i + 1).every((b) => !(b.ret < a.call)))
      if (!respectsRealTime) continue
      let state: string | undefined = undefined
      let legal = true
      for (const entry of order) {
        const next = apply(state, entry)
        legal = next.legal
        state = next.state
        if (!legal) break
      }
      if (legal) return true
    }
  }
  return false
}

/** Small single-key histories: random intervals, random (often impossible) outcomes. */
const smallHistory: fc.Arbitrary<ReadonlyArray<Entry>> = fc.array(
  fc.record({
    op: fc.oneof(
      fc.constant<Operation>({ _tag: "get", key: "k" }),
      fc.constantFrom("x", "y").map((value): Operation => ({ _tag: "put", key: "k", value })),
      fc.constant<Operation>({ _tag: "delete", key: "k" })
    ),
    outcome: fc.constantFrom<Outcome>(NotFound, { _tag: "ok" }, { _tag: "ok", value: "x" }, { _tag: "ok", value: "y" }),
    ends: fc.tuple(fc.nat(12), fc.nat(12)),
    pending: fc.boolean().chain((maybe) => maybe ? fc.boolean() : fc.constant(false))
  }),
  { minLength: 1, maxLength: 6 }
).map((drafts) => {
  // Rank the endpoints (ties broken by position) for distinct timestamps.
  const endpoints = drafts.flatMap((draft, i) => [{ t: draft.ends[0], id: 2 * i }, { t: draft.ends[1], id: 2 * i + 1 }])
  endpoints.sort((a, b) => a.t - b.t || a.id - b.id)
  const rank = new Map(endpoints.map((endpoint, r) => [endpoint.id, r + 1]))
  return drafts.map((draft, i): Entry => {
    const [a, b] = [rank.get(2 * i)!, rank.get(2 * i + 1)!]
    const outcome: Outcome = draft.op._tag === "get" && draft.outcome._tag === "ok" && draft.outcome.value === undefined
      ? { _tag: "ok", value: "x" }
      : draft.outcome
    return { process: i, op: draft.op, outcome, call: Math.min(a, b), ret: draft.pending ? Infinity : Math.max(a, b) }
  })
})

describe("agreement with the definition", () => {
  it("the checker agrees with an exhaustive search over all orders on small histories", () => {
    const verdicts = { linearizable: 0, not: 0 }
    fc.assert(
      fc.property(smallHistory, (history) => {
        const verdict = check(history)
        verdicts[verdict.linearizable ? "linearizable" : "not"]++
        assert.strictEqual(verdict.linearizable, linearizableByExhaustiveSearch(history), formatVerdict(verdict))
      }),
      { numRuns: 3000 }
    )
    // Both answers must come up often, or the agreement proves little.
    assert.isAbove(verdicts.linearizable, 300)
    assert.isAbove(verdicts.not, 300)
  })
})

// =============================================================================
// Long histories
// =============================================================================

/** A small deterministic generator (mulberry32), so a seed names a history. */
const randomFrom = (seed: number) => {
  let a = seed >>> 0
  return (bound: number): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) % bound)
  }
}

/**
 * The history of a correct register shared by `processes` processes: each
 * operation is called, takes effect at some later step (its linearization
 * point, where its outcome is decided), and returns at some step after that;
 * steps of different processes interleave at random. At any step, a process
 * may crash with probability `1 / crashOdds`, before or after its operation
 * took effect: the operation never returns and the process stops.
 */
const simulateRegister = (options: {
  readonly seed: number
  readonly processes: number
  readonly operationsPerProcess: number
  readonly values: ReadonlyArray<string>
  readonly crashOdds: number
}): Array<Entry> => {
  const random = randomFrom(options.seed)
  const history: Array<Entry> = []
  let clock = 1
  let register: string | undefined = undefined
  type InFlight = { op: Operation; call: number; outcome: Outcome | undefined }
  const inFlight: Array<InFlight | undefined> = Array.from({ length: options.processes }, () => undefined)
  const left = Array.from({ length: options.processes }, () => options.operationsPerProcess)
  const crashed = new Set<number>()
  const busy = (p: number) => !crashed.has(p) && (inFlight[p] !== undefined || left[p] > 0)
  while (true) {
    const candidates = [...left.keys()].filter(busy)
    if (candidates.length === 0) return history
    const p = candidates[random(candidates.length)]
    const current = inFlight[p]
    if (current === undefined) {
      left[p]--
      const kind = random(3)
      const op: Operation = kind === 0
        ? { _tag: "get", key: "k" }
        : kind === 1
        ? { _tag: "put", key: "k", value: options.values[random(options.values.length)] }
        : { _tag: "delete", key: "k" }
      inFlight[p] = { op, call: clock++, outcome: undefined }
    } else if (random(options.crashOdds) === 0) {
      crashed.add(p)
      history.push({ process: p, op: current.op, outcome: { _tag: "ok" }, call: current.call, ret: Infinity })
    } else if (current.outcome === undefined) {
      const op = current.op
      if (op._tag === "get") {
        current.outcome = register === undefined ? NotFound : { _tag: "ok", value: register }
      } else if (op._tag === "put") {
        register = op.value
        current.outcome = { _tag: "ok" }
      } else {
        current.outcome = register === undefined ? NotFound : { _tag: "ok" }
        register = undefined
      }
    } else {
      history.push({ process: p, op: current.op, outcome: current.outcome, call: current.call, ret: clock++ })
      inFlight[p] = undefined
    }
  }
}

const timed = <A>(f: () => A): { readonly result: A; readonly milliseconds: number } => {
  const start = performance.now()
  const result = f()
  return { result, milliseconds: performance.now() - start }
}

describe("long histories", () => {
  it("every history of a correct register is linearizable, crashed processes included", () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 40 }),
        (seed, processes, operationsPerProcess) => {
          const history = simulateRegister({ seed, processes, operationsPerProcess, values: ["x", "y", "z"], crashOdds: 50 })
          assertLinearizable(history)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("a 1,600-operation history of 8 concurrent processes on one key is accepted in under a second", () => {
    for (const seed of [1, 2, 3]) {
      const history = simulateRegister({ seed, processes: 8, operationsPerProcess: 200, values: ["x", "y"], crashOdds: 1e9 })
      assert.strictEqual(history.length, 1600)
      const { milliseconds, result } = timed(() => check(history))
      assert.isTrue(result.linearizable, formatVerdict(result))
      assert.isBelow(milliseconds, 1000, `seed ${seed}: took ${milliseconds.toFixed(0)} ms`)
    }
  })

  it("a 400-operation history of 8 concurrent processes ending in a read of a value never written is rejected in under a second", () => {
    // The search must rule out every linearization of the 400 operations
    // before it can blame the last read: the memo keeps that polynomial.
    for (const seed of [1, 2, 3]) {
      const history = simulateRegister({ seed, processes: 8, operationsPerProcess: 50, values: ["x", "y"], crashOdds: 1e9 })
      assert.strictEqual(history.length, 400)
      const end = Math.max(...history.map((entry) => entry.ret))
      const ghost = get(8, "k", "ghost", end + 1, end + 2)
      const { milliseconds, result } = timed((): Verdict => check([...history, ghost]))
      assert.isFalse(result.linearizable)
      if (!result.linearizable) assert.deepStrictEqual(result.blocked, ghost)
      assert.isBelow(milliseconds, 1000, `seed ${seed}: took ${milliseconds.toFixed(0)} ms`)
    }
  })
})

// =============================================================================
// The recorder
// =============================================================================

describe("record", () => {
  const getA: Operation = { _tag: "get", key: "a" }

  it.effect("stamps the call just before the operation runs and the return just after it ends", () =>
    Effect.gen(function*() {
      const history: Array<Entry> = []
      const clock: LogicalClock = { n: 1 }
      let during = 0
      const outcome = yield* record(history, clock, 7, getA, Effect.sync(() => {
        during = clock.n
        return "v"
      }))
      assert.deepStrictEqual(outcome, { _tag: "ok", value: "v" })
      assert.deepStrictEqual(history, [{ process: 7, op: getA, outcome: { _tag: "ok", value: "v" }, call: 1, ret: 2 }])
      assert.strictEqual(during, 2, "nothing else was stamped between the call and the operation")
    }))

  it.effect("a KeyNotFound failure is an outcome, not a failure", () =>
    Effect.gen(function*() {
      const history: Array<Entry> = []
      const outcome = yield* record(history, { n: 1 }, 0, getA, Effect.fail(new KeyValueStore.KeyNotFound({ key: "a" })))
      assert.deepStrictEqual(outcome, { _tag: "KeyNotFound" })
      assert.deepStrictEqual(history, [{ process: 0, op: getA, outcome: { _tag: "KeyNotFound" }, call: 1, ret: 2 }])
    }))

  it.effect("any other failure is re-raised, and the operation stays in the history with no return", () =>
    Effect.gen(function*() {
      const history: Array<Entry> = []
      const op: Operation = { _tag: "put", key: "a", value: "v" }
      const failure = new KeyValueStore.StorageError({ message: "disk full" })
      const exit = yield* Effect.exit(record(history, { n: 1 }, 0, op, Effect.fail(failure)))
      assert.deepStrictEqual(exit, Exit.fail(failure))
      assert.strictEqual(history.length, 1)
      assert.strictEqual(history[0].ret, Infinity)
    }))

  it.effect("an operation interrupted in flight stays in the history with no return", () =>
    Effect.gen(function*() {
      const history: Array<Entry> = []
      const fiber = yield* Effect.forkChild(record(history, { n: 1 }, 0, getA, Effect.never))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(history, [{ process: 0, op: getA, outcome: { _tag: "ok" }, call: 1, ret: Infinity }])
      assert.isTrue(check(history).linearizable)
    }))

  it.effect("a get that succeeds with bytes dies: histories hold strings only", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(record([], { n: 1 }, 0, getA, Effect.succeed(new Uint8Array([1]))))
      assert.isTrue(Exit.hasDies(exit))
    }))
})
