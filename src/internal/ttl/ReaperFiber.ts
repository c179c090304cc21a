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
 */
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { StoreIndex } from "../index/StoreIndex.ts"
import type { ReadWriteLock } from "../lock/ReadWriteLock.ts"

/**
 * Entries reclaimed in one synchronous step; the reaper yields between
 * steps, so a mass expiry never stalls other fibers for long.
 */
export const reclaimBatchSize = 1024

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
}

export const startReaper = (
  index: StoreIndex,
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
    let wake = Deferred.makeUnsafe<void>()

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

    const loop = Effect.gen(function*() {
      while (true) {
        const next = index.deadlines.peekDeadline()
        const now = clock.currentTimeMillisUnsafe()
        if (next <= now) {
          yield* lock.write(reclaimStep)
          yield* reportCallbackFailure
          yield* Effect.yieldNow
          continue
        }
        wake = Deferred.makeUnsafe<void>()
        sleepingUntil = next
        if (next === Infinity) {
          yield* Deferred.await(wake)
        } else {
          // Timers fire on whole milliseconds: round up so that the reaper
          // never wakes just before a fractional deadline and spins.
          yield* Effect.raceFirst(Effect.sleep(Math.ceil(next - now)), Deferred.await(wake))
        }
        sleepingUntil = -Infinity
      }
    })

    yield* Effect.forkScoped(loop)

    return {
      scheduled: (deadline) => {
        if (deadline < sleepingUntil) {
          sleepingUntil = -Infinity
          Deferred.doneUnsafe(wake, Effect.void)
        }
      },
      reclaimed: () => reclaimed
    }
  })
