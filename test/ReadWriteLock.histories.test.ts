/**
 * The read/write lock, judged by the linearizability checker: a register
 * whose value lives in two cells, written and read in several steps with
 * yields between them, is linearizable when every step runs under the lock.
 *
 * The store's own critical sections are single synchronous steps, which a
 * lock that let readers and writers overlap would still keep atomic; this
 * register's are not, so such a lock shows here as a torn value — one no put
 * ever wrote. Each history mixes the lock's fast paths (`read`, `write`) and
 * its slow ones (`withRead`, `withWrite`), under random preemption.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Scheduler from "effect/Scheduler"
import * as fc from "fast-check"
import { KeyNotFound } from "../src/internal/errors.ts"
import { ReadWriteLock, slowPathStats } from "../src/internal/lock/ReadWriteLock.ts"
import { PreemptingScheduler } from "./support/concurrentHistories.ts"
import { check, type Entry, formatVerdict, type LogicalClock, type Operation, record } from "./support/Linearizability.ts"

/** A register in two cells, each write and scan spread over yields. */
class SplitRegister {
  readonly lock = new ReadWriteLock()
  private cells: [string | undefined, string | undefined] = [undefined, undefined]

  private value(first: string | undefined, second: string | undefined): Effect.Effect<string, KeyNotFound> {
    if (first === undefined && second === undefined) return Effect.fail(new KeyNotFound({ key: "k" }))
    // A torn read names both halves: no put wrote that value.
    return Effect.succeed(first === second ? first! : `torn(${first}|${second})`)
  }

  /** Writes each cell in turn, yielding between them, holding the lock exclusively. */
  put(value: string, yields: number): Effect.Effect<string> {
    return this.lock.withWrite(Effect.gen({ self: this }, function*() {
      this.cells[0] = value
      for (let i = 0; i < yields; i++) yield* Effect.yieldNow
      this.cells[1] = value
      return value
    }))
  }

  /** Empties both cells in one step: the lock's fast path when it is free. */
  readonly delete: Effect.Effect<void, KeyNotFound> = Effect.flatMap(
    Effect.suspend(() =>
      this.lock.write(() => {
        const present = this.cells[0] !== undefined || this.cells[1] !== undefined
        this.cells = [undefined, undefined]
        return present
      })
    ),
    (present) => present ? Effect.void : Effect.fail(new KeyNotFound({ key: "k" }))
  )

  /** Reads both cells in one step: the lock's fast path when no writer holds it. */
  readonly get: Effect.Effect<string, KeyNotFound> = Effect.suspend(() =>
    Effect.flatten(this.lock.read(() => this.value(this.cells[0], this.cells[1])))
  )

  /** Reads one cell, yields, reads the other, holding the lock shared. */
  scan(yields: number): Effect.Effect<string, KeyNotFound> {
    return this.lock.withRead(Effect.gen({ self: this }, function*() {
      const first = this.cells[0]
      for (let i = 0; i < yields; i++) yield* Effect.yieldNow
      return yield* this.value(first, this.cells[1])
    }))
  }
}

interface RegisterStep {
  readonly op: "put" | "delete" | "get" | "scan"
  readonly yields: number
  readonly think: number
}

const stepArbitrary: fc.Arbitrary<RegisterStep> = fc.record({
  op: fc.constantFrom("put", "delete", "get", "get", "scan"),
  yields: fc.integer({ min: 0, max: 3 }),
  think: fc.integer({ min: 0, max: 2 })
})

const programArbitrary = fc.array(fc.array(stepArbitrary, { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 5 })

const runProgram = (program: ReadonlyArray<ReadonlyArray<RegisterStep>>) =>
  Effect.gen(function*() {
    const register = new SplitRegister()
    const history: Array<Entry> = []
    const clock: LogicalClock = { n: 1 }
    yield* Effect.forEach(program, (steps, process) =>
      Effect.forEach(steps, (step, index) => {
        const op: Operation = step.op === "put"
          ? { _tag: "put", key: "k", value: `p${process}.${index}` }
          : { _tag: step.op === "scan" ? "get" : step.op, key: "k" }
        const effect = step.op === "put"
          ? register.put(`p${process}.${index}`, step.yields)
          : step.op === "delete"
          ? register.delete
          : step.op === "get"
          ? register.get
          : register.scan(step.yields)
        return Effect.andThen(
          Effect.forEach(Array.from({ length: step.think }), () => Effect.yieldNow, { discard: true }),
          record(history, clock, process, op, effect)
        )
      }, { discard: true }), { concurrency: "unbounded", discard: true })
    return history
  })

/** Histories per run; `KVLOG_HISTORIES` raises it for a soak, in proportion. */
const histories = Math.max(2_000, Math.round((Number(process.env.KVLOG_HISTORIES ?? 0) || 0) / 5))

describe("ReadWriteLock under the linearizability checker", () => {
  it(`${histories} histories of a register written and read in several steps under the lock, preempted at random, are linearizable, and readers met a held write lock`, async () => {
    const scheduler = new PreemptingScheduler()
    const runtime = ManagedRuntime.make(Layer.succeed(Scheduler.Scheduler, scheduler))
    let checked = 0
    let readsBehindWriter = 0
    try {
      await fc.assert(
        fc.asyncProperty(programArbitrary, fc.integer(), fc.constantFrom(Infinity, 16), async (program, seed, every) => {
          scheduler.reseed(seed, every)
          const before = slowPathStats()
          const history = await runtime.runPromise(runProgram(program))
          const scans = program.flat().filter((step) => step.op === "scan").length
          // `get` takes the slow path only when it finds a writer inside.
          if (slowPathStats().reads - before.reads > scans) readsBehindWriter++
          checked++
          const verdict = check(history)
          if (!verdict.linearizable) assert.fail(formatVerdict(verdict))
        }),
        { numRuns: histories }
      )
    } finally {
      await runtime.dispose()
    }
    assert.strictEqual(checked, histories)
    assert.isAbove(readsBehindWriter, histories / 10, "single-step reads found the write lock held and waited")
  }, 300_000)
})
