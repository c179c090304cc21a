/**
 * Instruments for the tests that count what a store keeps running: its fibers
 * and its pending timers.
 *
 * - `makeFiberCounter`: a `Metric.FiberRuntimeMetrics` service. Effect 4 calls
 *   `recordFiberStart` when a fiber is created with the service in its context
 *   and `recordFiberEnd` when it exits, so provided while a store is built it
 *   sees the store's fibers (and the fibers they fork), and no others.
 * - `makeSleepCountingClock`: a `TestClock` that delegates to the `TestClock`
 *   (so `TestClock.adjust` drives it, whether run under it or under the
 *   original) and counts the sleeps in flight: started and neither finished nor
 *   interrupted. Fibers the `TestClock` forks for itself while sleeping are kept
 *   out of a `FiberCounter`.
 * - `makeStalledClock`: a `Clock` that tells the time of another one but whose
 *   sleeps never end: a store built on it has a reaper that never wakes, so a
 *   test can look at expired entries the reaper has not reclaimed.
 * - `awaitCondition`: yields to the other fibers until a condition holds.
 */
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import type { TestClock } from "effect/testing"

export interface FiberCounter extends Metric.FiberRuntimeMetricsService {
  /** Fibers started and not yet exited. */
  readonly active: () => number
  /** Fibers started since the counter was made. */
  readonly started: () => number
  /** Fibers that exited interrupted. */
  readonly interrupted: () => number
}

export const makeFiberCounter = (): FiberCounter => {
  let started = 0
  let ended = 0
  let interrupted = 0
  return {
    recordFiberStart: (_context: Context.Context<never>) => {
      started++
    },
    recordFiberEnd: (_context: Context.Context<never>, exit: Exit.Exit<unknown, unknown>) => {
      ended++
      if (Exit.hasInterrupts(exit)) interrupted++
    },
    active: () => started - ended,
    started: () => started,
    interrupted: () => interrupted
  }
}

export interface SleepCountingClock extends TestClock.TestClock {
  /** Sleeps started and not yet ended (by waking or by interruption). */
  readonly sleepsInFlight: () => number
  /** Durations, in ms, of the sleeps in flight. */
  readonly sleepDurationsInFlight: () => ReadonlyArray<number>
  /** Sleeps started since the clock was made. */
  readonly sleepsStarted: () => number
}

/** `inner`, but with `sleep` in place of its own. */
const withSleep = (inner: Clock.Clock, sleep: Clock.Clock["sleep"]): Clock.Clock => ({
  currentTimeMillisUnsafe: () => inner.currentTimeMillisUnsafe(),
  currentTimeMillis: inner.currentTimeMillis,
  currentTimeNanosUnsafe: () => inner.currentTimeNanosUnsafe(),
  currentTimeNanos: inner.currentTimeNanos,
  monotonicTimeNanosUnsafe: () => inner.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: inner.monotonicTimeNanos,
  sleep
})

export const makeSleepCountingClock = (inner: TestClock.TestClock): SleepCountingClock => {
  const inFlight = new Set<{ readonly millis: number }>()
  let started = 0
  return {
    ...withSleep(inner, (duration) =>
      Effect.suspend(() => {
        const sleep = { millis: Duration.toMillis(duration) }
        inFlight.add(sleep)
        started++
        // The TestClock forks a fiber of its own on a sleep (its "time is not
        // advancing" warning): keep it out of a fiber count, it is not the store's.
        return inner.sleep(duration).pipe(
          Effect.provideService(Metric.FiberRuntimeMetrics, undefined),
          Effect.ensuring(Effect.sync(() => inFlight.delete(sleep)))
        )
      })),
    adjust: (duration) => inner.adjust(duration),
    setTime: (timestamp) => inner.setTime(timestamp),
    withLive: (effect) => inner.withLive(effect),
    sleepsInFlight: () => inFlight.size,
    sleepDurationsInFlight: () => Array.from(inFlight, (sleep) => sleep.millis),
    sleepsStarted: () => started
  }
}

export const makeStalledClock = (inner: Clock.Clock): Clock.Clock => withSleep(inner, () => Effect.never)

/**
 * Yields to the other fibers until `condition()` holds; dies if it still does
 * not after `maxYields` yields. Synchronises on an observable state, never on
 * elapsed time.
 */
export const awaitCondition = (
  description: string,
  condition: () => boolean,
  maxYields = 1_000
): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < maxYields; i++) {
      if (condition()) return
      yield* Effect.yieldNow
    }
    if (!condition()) return yield* Effect.die(new Error(`still waiting after ${maxYields} yields: ${description}`))
  })
