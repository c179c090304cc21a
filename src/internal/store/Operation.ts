/**
 * The store's hottest operations as effects of their own kind: one object per
 * call holding the call's arguments, whose evaluation runs the operation.
 *
 * `Effect.suspend(() => work(key))` is the same effect built from two objects
 * (a closure and a `Suspend` node), and a fiber takes one more step of its
 * loop to reach the work. For `get` and `put` that was most of what the store
 * added to an index lookup. The work still happens when the effect runs, and
 * again each time it runs, never when it is built.
 */
import type * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"

interface Call<A1, A2, A3> {
  readonly a1: A1
  readonly a2: A2
  readonly a3: A3
}

/**
 * `(a1, a2, a3) => effect` whose effect, each time it runs, runs
 * `run(a1, a2, a3)` and then the effect that returns. `label` names the
 * effect's kind in traces and printed effects.
 */
export const operation = <A1, A2, A3, A, E>(
  label: string,
  run: (a1: A1, a2: A2, a3: A3) => Effect.Effect<A, E>
): (a1: A1, a2: A2, a3: A3) => Effect.Effect<A, E> => {
  type Op = Effect.Effect<A, E> & Call<A1, A2, A3>
  const prototype = Effectable.Prototype<Op>({
    label,
    evaluate(this: Op) {
      return run(this.a1, this.a2, this.a3)
    }
  })
  // A constructor function rather than a class: its instances get `prototype`
  // itself (an Effect primitive), with the three fields as their own shape.
  function OperationCall(this: { a1: A1; a2: A2; a3: A3 }, a1: A1, a2: A2, a3: A3) {
    this.a1 = a1
    this.a2 = a2
    this.a3 = a3
  }
  OperationCall.prototype = prototype
  const Constructor = OperationCall as unknown as new(a1: A1, a2: A2, a3: A3) => Op
  return (a1, a2, a3) => new Constructor(a1, a2, a3)
}
