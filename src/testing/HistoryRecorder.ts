/**
 * Records what a store was asked and what it answered, as a history the
 * linearizability checker judges: every call stamped at its invocation and at
 * its response from one logical clock.
 *
 * `recordStore` wraps any `KeyValueStoreService` — kvlog's own, or one of
 * yours — so a test can run its own concurrent workload and check it:
 *
 * ```ts
 * const recorded = HistoryRecorder.recordStore(yield* KeyValueStore.KeyValueStore)
 * yield* Effect.all([recorded.store.put("a", "1"), recorded.store.get("a")], { concurrency: "unbounded" })
 * Linearizability.assertLinearizable(recorded.history())
 * ```
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as KeyValueStore from "../KeyValueStore.ts"
import {
  type Entry,
  entriesOutcome,
  formatOperation,
  historyValue,
  keysOutcome,
  type LogicalClock,
  type Operation,
  type OperationLike,
  type Outcome,
  type StoreOperation
} from "./Linearizability.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * A store whose every call goes into `history()`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RecordedStore {
  /** The store to call: the wrapped one, each call recorded. */
  readonly store: KeyValueStore.KeyValueStoreService
  /**
   * The history so far, in call order. A call still running is there with
   * `ret: Infinity`, as one that may or may not have taken effect.
   */
  readonly history: () => ReadonlyArray<Entry<StoreOperation>>
}

// =============================================================================
// Recording one call
// =============================================================================

/** The tags of the typed failures that are outcomes of the call, not failures of the test. */
type OutcomeTag = "KeyNotFound" | "InvalidInput"

/** The failure of `effect`, if it is exactly one typed failure tagged with one of `tags`. */
const outcomeFailure = (cause: Cause.Cause<unknown>, tags: ReadonlySet<string>): OutcomeTag | undefined => {
  if (cause.reasons.length !== 1) return undefined
  const reason = cause.reasons[0]
  if (!Cause.isFailReason(reason)) return undefined
  const error = reason.error
  if (typeof error !== "object" || error === null || !("_tag" in error) || typeof error._tag !== "string") {
    return undefined
  }
  return tags.has(error._tag) ? error._tag as OutcomeTag : undefined
}

const recordWith = <A, E, R, Op extends OperationLike>(
  outcomeTags: ReadonlySet<string>,
  history: Array<Entry<Op>>,
  clock: LogicalClock,
  process: number,
  op: Op,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Outcome, E, R> =>
  Effect.suspend(() => {
    const index = history.length
    const call = clock.n++
    history.push({ process, op, outcome: { _tag: "ok" }, call, ret: Infinity })
    return Effect.flatMap(Effect.exit(effect), (exit): Effect.Effect<Outcome, E> => {
      const ret = clock.n++
      let outcome: Outcome
      if (Exit.isSuccess(exit)) {
        if (op._tag === "delete" || op._tag === "clear" || exit.value === undefined) {
          outcome = { _tag: "ok" }
        } else if (typeof exit.value === "string") {
          outcome = { _tag: "ok", value: exit.value }
        } else {
          return Effect.die(
            new Error(`${formatOperation(op)} succeeded with a non-string value: ${String(exit.value)}`)
          )
        }
      } else {
        const failure = outcomeFailure(exit.cause, outcomeTags)
        // Anything else is re-raised, the entry left pending: a store
        // operation fails with one error at a time, so this is not an outcome.
        if (failure === undefined) return Effect.failCause(exit.cause)
        outcome = { _tag: failure }
      }
      history[index] = { process, op, outcome, call, ret }
      return Effect.succeed(outcome)
    })
  })

const keyNotFoundOnly: ReadonlySet<string> = new Set(["KeyNotFound"])

/**
 * Runs `effect`, the store's implementation of `op`, and records it in
 * `history`. The call is stamped synchronously just before `effect` starts,
 * the return synchronously as soon as it ends. The entry is appended at the
 * call with `ret: Infinity`, so an operation that is interrupted and never
 * returns stays in the history as one that may or may not have taken effect.
 *
 * A `KeyNotFound` failure is an outcome, recorded and returned. Any other
 * failure or defect is re-raised (the entry stays pending): the test fails.
 * An operation that succeeds with a string records it as its value; a
 * `delete` or `clear`, or one that succeeds with `undefined`, records no
 * value; anything else dies: histories hold strings only (render `has`,
 * `keys`, … as their outcome strings, see `StoreOperation`, and bytes with
 * `historyValue`).
 *
 * @since 0.2.0
 * @category recording
 */
export const record = <A, E, R, Op extends OperationLike = Operation>(
  history: Array<Entry<Op>>,
  clock: LogicalClock,
  process: number,
  op: Op,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Outcome, Exclude<E, { readonly _tag: "KeyNotFound" }>, R> =>
  recordWith(keyNotFoundOnly, history, clock, process, op, effect) as Effect.Effect<
    Outcome,
    Exclude<E, { readonly _tag: "KeyNotFound" }>,
    R
  >

// =============================================================================
// Recording a whole store
// =============================================================================

const storeOutcomes: ReadonlySet<string> = new Set(["KeyNotFound", "InvalidInput"])

/** A key as a history holds it; a call with a key of another type is refused by the store. */
const keyText = (key: unknown): string => {
  if (typeof key === "string") return key
  try {
    return `‹${typeof key} ${String(key)}›`
  } catch {
    return `‹${typeof key}›`
  }
}

const valueText = (value: unknown): string =>
  typeof value === "string" || value instanceof Uint8Array ? historyValue(value) : `‹${typeof value}›`

/** The TTL a put's options give, in milliseconds; none for no duration, an infinite or an unusable one. */
const ttlMillis = (options: unknown): number | undefined => {
  if (typeof options !== "object" || options === null || !("duration" in options)) return undefined
  const duration = Duration.fromInput(options.duration as Duration.Input)
  if (Option.isNone(duration) || !Duration.isFinite(duration.value)) return undefined
  return Duration.toMillis(duration.value)
}

/** What `timeToLive` answered, as a history holds it: `"none"` or the milliseconds left. */
const timeToLiveText = (left: Option.Option<Duration.Duration>): string =>
  Option.match(left, { onNone: () => "none", onSome: (duration) => String(Duration.toMillis(duration)) })

/**
 * Wraps `store` so that every call of `get`, `put`, `delete`, `has`,
 * `timeToLive`, `size`, `keys`, `entries` and `clear` is recorded, with the
 * calling fiber's id as its process. `KeyNotFound` and `InvalidInput` are
 * outcomes (the model requires a refused call to change nothing); any other
 * failure leaves the call pending, as one that may or may not have taken
 * effect. Bytes are recorded with `historyValue`. An `entries` stream is
 * recorded from its first pull to its end; one not run to its end stays
 * pending. Everything else (`compact`, `stats`, `writeStatus`, `changes`, …)
 * passes through unrecorded: none of it changes what a client can read.
 *
 * @since 0.2.0
 * @category recording
 */
export const recordStore = (store: KeyValueStore.KeyValueStoreService): RecordedStore => {
  const history: Array<Entry<StoreOperation>> = []
  const clock: LogicalClock = { n: 1 }
  // The store's own answer goes back to the caller — its value, or its
  // error value (a `KeyNotFound` carrying its key) — once the call is recorded.
  const recorded = <A, E, R>(op: StoreOperation, effect: Effect.Effect<A, E, R>, answer: (a: A) => unknown) =>
    Effect.flatMap(Effect.fiberId, (process): Effect.Effect<A, E, R> => {
      let answered: Exit.Exit<A, E> | undefined
      const observed = Effect.flatMap(Effect.exit(effect), (exit) => {
        answered = exit
        return Effect.map(exit, answer)
      })
      return Effect.flatMap(
        Effect.exit(recordWith(storeOutcomes, history, clock, process, op, observed)),
        (recording): Effect.Effect<A, E> =>
          answered !== undefined
            ? answered
            : Exit.isFailure(recording)
            ? Effect.failCause(recording.cause)
            : Effect.die(new Error(`${formatOperation(op)} was recorded without an answer`))
      )
    })
  const identity = <A>(a: A): A => a
  return {
    history: () => history.slice(),
    store: {
      ...store,
      get: (key) =>
        recorded({ _tag: "get", key: keyText(key) }, store.get(key), historyValue),
      put: (key, value, options) => {
        const ttl = ttlMillis(options)
        const op: StoreOperation = { _tag: "put", key: keyText(key), value: valueText(value), ...(ttl === undefined ? {} : { ttl }) }
        return recorded(op, store.put(key, value, options), historyValue)
      },
      delete: (key) => recorded({ _tag: "delete", key: keyText(key) }, store.delete(key), identity),
      has: (key) => recorded({ _tag: "has", key: keyText(key) }, store.has(key), String),
      timeToLive: (key) =>
        recorded({ _tag: "timeToLive", key: keyText(key) }, store.timeToLive(key), timeToLiveText),
      size: recorded({ _tag: "size" }, store.size, String),
      keys: recorded({ _tag: "keys" }, store.keys, keysOutcome),
      clear: recorded({ _tag: "clear" }, store.clear, identity),
      entries: recordedEntries(history, clock, store.entries)
    }
  }
}

/**
 * `entries`, recorded: the call at the stream's first pull, the return when
 * it ends, with every entry it emitted as the outcome.
 */
const recordedEntries = (
  history: Array<Entry<StoreOperation>>,
  clock: LogicalClock,
  entries: Stream.Stream<readonly [string, KeyValueStore.Value]>
): Stream.Stream<readonly [string, KeyValueStore.Value]> =>
  Stream.unwrap(Effect.map(Effect.fiberId, (process) => {
    const index = history.length
    const call = clock.n++
    const op: StoreOperation = { _tag: "entries" }
    history.push({ process, op, outcome: { _tag: "ok" }, call, ret: Infinity })
    const seen: Array<readonly [string, string]> = []
    return entries.pipe(
      Stream.tap(([key, value]) => Effect.sync(() => seen.push([key, historyValue(value)]))),
      Stream.onEnd(Effect.sync(() => {
        history[index] = { process, op, outcome: { _tag: "ok", value: entriesOutcome(seen) }, call, ret: clock.n++ }
      }))
    )
  }))
