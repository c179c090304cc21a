/**
 * The reaper: one fiber, living in the store's scope, that reclaims expired
 * entries in deadline order. Reads never depend on it (they check the
 * deadline themselves); it exists so that memory held by expired keys is
 * given back without anyone touching them.
 *
 * It sleeps until the earliest deadline of the `DeadlineHeap` (by the store's
 * `Clock`, so `TestClock` drives it), or until a put brings in an earlier one.
 * However many keys carry a TTL, there is one reaper fiber and at most one
 * pending sleep.
 *
 * With Effect's own clock the sleep is one timer that resumes the reaper
 * itself. A sleep raced against a wake-up signal (how it sleeps on any other
 * clock) forks two fibers per sleep, and the reaper ran two scheduler turns
 * after its timer fired, each a turn of the event loop: on a busy loop that
 * was most of the reclaim lag.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Index } from "../index/Index.ts"
import type { ReadWriteLock } from "../lock/ReadWriteLock.ts"

/**
 * Entries reclaimed in one synchronous step; the reaper yields between
 * steps, so a mass expiry never stalls other fibers for long.
 */
export const reclaimBatchSize = 1024

/**
 * How long past the earliest deadline (by the store's clock) the reaper may
 * be before a put yields once to let it run. Its timer fires only when the
 * event loop turns, and a caller that chains puts through Promises (each
 * await a microtask) can hold the loop for as long as its chain runs: tens
 * of milliseconds of expired entries kept in memory. Reads never depend on
 * the reaper; this bounds how long memory does.
 */
export const reaperLateMillis = 2

/**
 * The longest delay a Node timer takes: a longer one fires after 1 ms (with a
 * warning), which for a deadline weeks away would wake the reaper every
 * millisecond. It wakes early instead, finds nothing due and sleeps again.
 */
export const maxTimerMillis = 2 ** 31 - 1

/** Effect's default clock, the one whose sleeps are plain timers. */
const liveClock: Clock.Clock = Context.get(Context.empty(), Clock.Clock)

export interface ReaperOptions {
  /**
   * Called for every reclaimed entry, with its deadline and the time it was
   * reclaimed. If it throws, the entry is reclaimed all the same.
   */
  readonly onReclaim?: ((key: string, deadline: number, reclaimedAt: number) => void) | undefined
}

export interface Reaper {
  /** Tells the reaper that some key now has `deadline`. Cheap: call it on every TTL put. */
  readonly scheduled: (deadline: number) => void
  /** Entries reclaimed since the reaper started. */
  readonly reclaimed: () => number
  /** Whether, at `now`, an expired entry has waited `reaperLateMillis` or more for the reaper. */
  readonly isLate: (now: number) => boolean
}

export const startReaper = (
  index: Index,
  lock: ReadWriteLock,
  clock: Clock.Clock,
  options: ReaperOptions,
  /** The store's own observer (metrics, change events), called before `onReclaim`; it must not throw. */
  observe: (key: string, deadline: number, reclaimedAt: number) => void
): Effect.Effect<Reaper, never, Scope.Scope> =>
  Effect.gen(function*() {
    // The deadline the reaper sleeps towards; -Infinity while it is awake,
    // so that puts do not signal a reaper that will look at the heap anyway.
    let sleepingUntil = -Infinity

    let reclaimed = 0
    const onReclaim = options.onReclaim
    // A throwing `onReclaim` is the caller's bug, not a reason to stop
    // reclaiming: the entry is already gone from the index when it is called.
    // The first failure is kept for one warning; later ones are not logged,
    // or a callback that always throws would log once per entry.
    let callbackFailed = false
    let unreported: { readonly key: string; readonly error: unknown } | undefined
    const reclaimStep = () => {
      const now = clock.currentTimeMillisUnsafe()
      reclaimed += index.reclaimExpired(
        now,
        reclaimBatchSize,
        onReclaim === undefined ? (key, deadline) => observe(key, deadline, now) : (key, deadline) => {
          observe(key, deadline, now)
          try {
            onReclaim(key, deadline, now)
          } catch (error) {
            if (!callbackFailed) {
              callbackFailed = true
              unreported = { key, error }
            }
          }
        }
      )
    }
    const reportCallbackFailure = Effect.suspend(() => {
      if (unreported === undefined) return Effect.void
      const { error, key } = unreported
      unreported = undefined
      const reason = error instanceof Error ? error.message : String(error)
      return Effect.logWarning(
        `kvlog: onReclaim threw on key ${JSON.stringify(key.length > 200 ? key.slice(0, 200) + "…" : key)}: ${reason}; ` +
          "expired entries are still reclaimed, and later failures of onReclaim are not logged"
      )
    })

    /** Ends the current sleep early; `undefined` while the reaper is awake. */
    let wakeEarly: (() => void) | undefined

    /** Sleeps `millis` (`Infinity`: until woken) or until `wakeEarly` is called. */
    const sleep: (millis: number) => Effect.Effect<void> = clock === liveClock
      ? (millis) => {
        // `wakeEarly` is in place before the fiber can be preempted: a put
        // landing between this call and the timer's setting finds it, and
        // the sleep then ends at once instead of waiting for the later
        // deadline it was chosen for.
        let woken = false
        let timer: ReturnType<typeof setTimeout> | undefined
        let resumeSleep: ((effect: Effect.Effect<void>) => void) | undefined
        wakeEarly = () => {
          woken = true
          clearTimeout(timer)
          resumeSleep?.(Effect.void)
        }
        return Effect.callback<void>((resume) => {
          if (woken) return resume(Effect.void)
          resumeSleep = resume
          if (millis !== Infinity) timer = setTimeout(() => resume(Effect.void), Math.min(millis, maxTimerMillis))
          return Effect.sync(() => clearTimeout(timer))
        })
      }
      : (millis) => {
        const wake = Deferred.makeUnsafe<void>()
        wakeEarly = () => Deferred.doneUnsafe(wake, Effect.void)
        return millis === Infinity ? Deferred.await(wake) : Effect.raceFirst(Effect.sleep(millis), Deferred.await(wake))
      }

    const loop = Effect.gen(function*() {
      while (true) {
        const next = index.earliestDeadline()
        const now = clock.currentTimeMillisUnsafe()
        if (next <= now) {
          const before = reclaimed
          yield* lock.write(reclaimStep)
          yield* reportCallbackFailure
          // A full batch may leave more due: let other fibers run between
          // batches, so that a mass expiry never stalls them for long.
          if (reclaimed - before >= reclaimBatchSize) yield* Effect.yieldNow
          continue
        }
        sleepingUntil = next
        // Timers fire on whole milliseconds: round up so that the reaper
        // never wakes just before a fractional deadline and spins.
        yield* sleep(next === Infinity ? Infinity : Math.ceil(next - now))
        sleepingUntil = -Infinity
        wakeEarly = undefined
      }
    })

    yield* Effect.forkScoped(loop)

    return {
      scheduled: (deadline) => {
        if (deadline < sleepingUntil) {
          sleepingUntil = -Infinity
          wakeEarly?.()
        }
      },
      reclaimed: () => reclaimed,
      isLate: (now) => now - index.earliestDeadline() >= reaperLateMillis
    }
  })
