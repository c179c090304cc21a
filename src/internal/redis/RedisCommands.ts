/**
 * What the Redis store needs of a connection, whatever makes it: a way to
 * send a command about one key (to the node that holds the key, in a
 * cluster), and a way to send a command to every master (a `SCAN` has to
 * visit each of them), every command bounded by the store's timeout. Three
 * things make one: Effect's `Redis` service (a user's own, or
 * `NodeRedis`'s), a node-redis client, a node-redis cluster.
 *
 * The timeout is one timer per command, set beside it: Effect's
 * `timeoutOrElse` races two fibers, which costs several times the command
 * itself when Redis answers in microseconds.
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Redis from "effect/persistence/Redis"

/** Sends one command; fails with whatever the client failed with, or `NoAnswer`. */
export type SendCommand = (args: ReadonlyArray<string>) => Effect.Effect<unknown, unknown>

export interface RedisCommands {
  /** "Redis" or "Redis Cluster", for error messages. */
  readonly label: string
  /** Sends a command whose first key is `key`, to the node that serves it. */
  readonly send: (key: string, args: ReadonlyArray<string>) => Effect.Effect<unknown, unknown>
  /** One sender per master, read afresh for each scan (a cluster's masters may change). */
  readonly masters: Effect.Effect<ReadonlyArray<SendCommand>, unknown>
}

/** A command that got no answer within its timeout. */
export class NoAnswer {
  readonly millis: number
  constructor(millis: number) {
    this.millis = millis
  }
}

/**
 * Calls `onTimeout` once `millis` have passed, but not before the event loop
 * has read its sockets: when the loop was held up (a long garbage
 * collection, a busy machine) past a deadline, the timer and the reply that
 * arrived in time are both due, and timers run first. The reply is given its
 * turn (`setImmediate` runs after the loop's I/O), so a command Redis did
 * answer in time is not failed for the process's own delay.
 */
const afterTimeout = (millis: number, onTimeout: () => void, turns = 1): ReturnType<typeof setTimeout> =>
  setTimeout(() => {
    const later = (left: number): void => {
      setImmediate(() => (left > 1 ? later(left - 1) : onTimeout()))
    }
    later(turns)
  }, millis)

/**
 * A command of a promise-based client, failing with `NoAnswer` after
 * `millis`. The command itself is not taken back: one already written may
 * still be applied, like any write whose reply was lost. (node-redis can drop
 * a command still queued when given an `AbortSignal`, but in node-redis 5.12
 * aborting two queued commands in a row corrupts its write queue, and every
 * command after them waits forever: see `nodeRedis.ts` for how the store
 * keeps nothing queued instead.)
 */
export const promiseCommand = (millis: number, start: () => Promise<unknown>) =>
  Effect.callback<unknown, unknown>((resume) => {
    let settled = false
    const timer = afterTimeout(millis, () => {
      if (settled) return
      settled = true
      resume(Effect.fail(new NoAnswer(millis)))
    })
    const settle = (outcome: Effect.Effect<unknown, unknown>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(outcome)
    }
    try {
      start().then((reply) => settle(Effect.succeed(reply)), (error) => settle(Effect.fail(error)))
    } catch (error) {
      settle(Effect.fail(error))
    }
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
    })
  })

/**
 * A command of Effect's `Redis` service, failing with `NoAnswer` after
 * `millis`: it runs in a fiber of its own, interrupted on timeout. The
 * service cannot take back a command its client has queued, so one that
 * timed out while the client reconnects is still sent once it has.
 */
const effectCommand = (
  millis: number,
  runFork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>,
  command: Effect.Effect<unknown, unknown>
) =>
  Effect.callback<unknown, unknown>((resume) => {
    const fiber = runFork(command)
    // Interrupting the fiber reports its exit to the observer at once: the
    // timeout's failure must be the one resumed, before the interruption's.
    let timedOut = false
    // Two turns: a reply read in time resumes the command's fiber through
    // Effect's scheduler, one more `setImmediate` away.
    const timer = afterTimeout(millis, () => {
      if (fiber.pollUnsafe() !== undefined) return
      timedOut = true
      resume(Effect.fail(new NoAnswer(millis)))
      fiber.interruptUnsafe()
    }, 2)
    fiber.addObserver((exit) => {
      if (timedOut) return
      clearTimeout(timer)
      resume(exit)
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      fiber.interruptUnsafe()
    })
  })

/**
 * Commands over the `Redis` service in context: one server (or a proxy that
 * acts as one), each command bounded by `millis`.
 */
export const fromContext = (millis: number): Effect.Effect<RedisCommands, never, Redis.Redis> =>
  Effect.gen(function*() {
    const redis = yield* Redis.Redis
    // Each command's fiber runs with the context the store was built in (its logger, its tracer).
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const send: SendCommand = (args) =>
      effectCommand(millis, runFork, Effect.mapError(redis.send(args[0], ...args.slice(1)), (error) => error.cause))
    return { label: "Redis", send: (_key, args) => send(args), masters: Effect.succeed([send]) }
  })
