/**
 * Compaction and `clear`, as `docs/design.md` specifies them: a
 * compaction rewrites the log to hold exactly one put per live key (deleted,
 * overwritten and expired ones leave the file, which shrinks); writes go on
 * while it runs and none is lost; it starts by itself once the log outgrows
 * its live entries, and reports its longest pause; `clear` empties the store
 * and the log alike.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scheduler from "effect/Scheduler"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import { KeyValueStore } from "../src/index.ts"
import {
  assertSameState,
  freshLogPath,
  readState,
  recordSpans,
  stateOfLog,
  type ValueView,
  viewValue,
  withLogStore
} from "./support/logHarness.ts"
import { makeStalledClock } from "./support/RuntimeCounters.ts"
import { PreemptingScheduler } from "../src/testing/ConcurrentHistories.ts"

const policies = ["always", "interval", "never"] as const

/** Every way writes reach the log: the three policies, and buffered acknowledgement where it is allowed. */
const writeModes = [
  ...policies.map((fsync) => ({ label: `fsync ${fsync}`, options: { fsync } })),
  { label: "fsync interval, acknowledge buffered", options: { fsync: "interval", acknowledge: "buffered" } },
  { label: "fsync never, acknowledge buffered", options: { fsync: "never", acknowledge: "buffered" } }
] as const satisfies ReadonlyArray<{ label: string; options: Partial<KeyValueStore.LogOptions> }>

/** Yields to the other fibers until `condition` holds; dies after `maxYields` turns. */
const yieldUntil = (description: string, condition: () => boolean, maxYields = 2_000_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxYields && !condition(); i++) yield* Effect.yieldNow
    if (!condition()) return yield* Effect.die(new Error(`still waiting after ${maxYields} yields: ${description}`))
  })

/** The TestClock, but a reaper on it never wakes: expired entries stay in the index until compaction. */
const stalledReaper = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(TestClock.testClockWith(Effect.succeed), (clock) =>
    effect.pipe(Effect.provideService(Clock.Clock, makeStalledClock(clock))))

describe("manual compaction", () => {
  it.effect.each(policies.flatMap((policy) => (["running", "stalled"] as const).map((reaper) => ({ policy, reaper }))))(
    "fsync $policy, reaper $reaper: compact keeps exactly the live entries; deleted, overwritten and expired records leave the file, which shrinks",
    ({ policy, reaper }) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("compact")
        const expected = new Map<string, ValueView>()
        yield* TestClock.adjust(5_000)
        const open = reaper === "running" ? <A, E>(effect: Effect.Effect<A, E>) => effect : stalledReaper
        // Adjusted directly: inside `stalledReaper` the Clock service is not the TestClock.
        const testClock = yield* TestClock.testClockWith(Effect.succeed)
        yield* open(withLogStore({ path: logPath, fsync: policy, compaction: { auto: false } }, (store) =>
          Effect.gen(function*() {
            for (let round = 0; round < 5; round++) {
              for (let i = 0; i < 20; i++) {
                const value = i % 4 === 0 ? Uint8Array.of(round, i) : `round-${round}-of-live-${i}`
                yield* store.put(`live-${i}`, value)
                expected.set(`live-${i}`, viewValue(value))
              }
            }
            for (let i = 0; i < 10; i++) {
              yield* store.put(`deleted-${i}`, "soon gone")
              yield* store.delete(`deleted-${i}`)
              yield* store.put(`expired-${i}`, "gone at +100 ms", { duration: 100 })
            }
            for (let i = 0; i < 5; i++) {
              yield* store.put(`ttl-${i}`, `kept ${i}`, { duration: 10_000 })
              expected.set(`ttl-${i}`, `s:kept ${i}`)
            }
            yield* testClock.adjust(100)
            if (reaper === "stalled") assert.strictEqual((yield* store.stats).storedEntries, 35, "the expired entries were reclaimed")
            const before = (yield* store.stats).log!
            // Under "interval" and "never" records still in the buffer are not counted yet.
            if (policy === "always") assert.strictEqual(before.records, 5 * 20 + 10 * 3 + 5)

            yield* store.compact

            const after = (yield* store.stats).log!
            assert.strictEqual(after.records, 25)
            const report = after.lastCompaction!
            // The compaction flushes the buffer first: it counts what was in it.
            assert.strictEqual(report.recordsBefore, 5 * 20 + 10 * 3 + 5)
            if (policy === "always") assert.strictEqual(report.bytesBefore, before.fileBytes)
            assert.strictEqual(report.recordsAfter, 25)
            assert.isBelow(report.bytesAfter, report.bytesBefore)
            assert.strictEqual(after.fileBytes, report.bytesAfter)

            const file = fs.readFileSync(logPath)
            assert.strictEqual(file.length, report.bytesAfter, "the file on disk is the compacted one")
            assert.strictEqual(recordSpans(file).length, 25)
            for (const gone of ["deleted-", "expired-", "round-0-", "round-3-"]) {
              assert.strictEqual(file.indexOf(gone), -1, `${gone} is still in the compacted file`)
            }
            assertSameState(yield* readState(store), expected, "right after compact")
            // The compacted file is the log now: later writes go to it.
            yield* store.put("after-compaction", "appended")
            expected.set("after-compaction", "s:appended")
          })))
        yield* TestClock.adjust(1_000)
        yield* withLogStore({ path: logPath, compaction: { auto: false } }, (store) =>
          Effect.gen(function*() {
            assertSameState(yield* readState(store), expected, "after a reopen")
            // TTLs survive the rewrite as absolute deadlines: put at 5000 for 10 s, now 6100.
            assert.deepStrictEqual(yield* store.timeToLive("ttl-0"), Option.some(Duration.millis(8_900)))
            assert.strictEqual((yield* store.stats).log!.records, 26)
          }))
      })
  )

  it.live.each(writeModes)(
    "$label: puts and deletes made by 16 fibers while compact runs are all there afterwards and after a reopen",
    ({ options }) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("online")
        const expected = new Map<string, ValueView>()
        // Enough entries that the walk takes many chunks, yielding between them.
        yield* withLogStore({ path: logPath, fsync: "never" }, (store) =>
          Effect.forEach(Array.from({ length: 40_000 }, (_, i) => i), (i) => {
            expected.set(`pre-${i}`, `s:before ${i}`)
            return store.put(`pre-${i}`, `before ${i}`)
          }, { discard: true }))
        yield* withLogStore({ path: logPath, ...options, compaction: { auto: false } }, (store) =>
          Effect.gen(function*() {
            let acknowledged = 0
            const writers = yield* Effect.forkChild(Effect.forEach(
              Array.from({ length: 16 }, (_, fiber) => fiber),
              (fiber) =>
                Effect.gen(function*() {
                  for (let i = 0; i < 150; i++) {
                    const key = i % 3 === 0 ? `pre-${fiber * 300 + i}` : `w${fiber}-${i % 20}`
                    if (i % 7 === 6 && expected.has(key)) {
                      yield* store.delete(key)
                      expected.delete(key)
                    } else {
                      const value = `during ${fiber}/${i}`
                      yield* store.put(key, value)
                      expected.set(key, `s:${value}`)
                    }
                    acknowledged++
                    // Writers that do other work between writes (under "never" a put never suspends).
                    yield* Effect.yieldNow
                  }
                }),
              { concurrency: "unbounded", discard: true }
            ))
            yield* yieldUntil("the writers to start", () => acknowledged > 0)
            const atStart = acknowledged
            yield* store.compact
            const atEnd = acknowledged
            yield* Fiber.join(writers)
            assert.isAbove(atEnd, atStart, "no write was acknowledged while the compaction ran")
            assertSameState(yield* readState(store), expected, "after the writers")
          }))
        assertSameState(yield* stateOfLog(logPath), expected, "after a reopen")
      })
  )
})

describe("compaction while most keys are deleted", () => {
  it.live.each(policies)(
    "fsync %s: deleting most keys, some while the walk runs (the index squeezes out their holes under it), loses and revives nothing",
    (policy) =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath("squeeze")
        const expected = new Map<string, ValueView>()
        const keys = 200_000
        yield* withLogStore({ path: logPath, fsync: "never" }, (store) =>
          Effect.forEach(Array.from({ length: keys }, (_, i) => i), (i) => {
            expected.set(`k${i}`, `s:v${i}`)
            return store.put(`k${i}`, `v${i}`)
          }, { discard: true }))
        yield* withLogStore({ path: logPath, fsync: policy, compaction: { auto: false } }, (store) =>
          Effect.gen(function*() {
            // Holes squeeze out once they are half the table: 49% go before the
            // compaction, so that a few more deletes during its walk squeeze them
            // out under it, and 30% more go during it, on both sides of wherever
            // the walk is; some come back with new values, at the table's end.
            const remove = (i: number) => {
              expected.delete(`k${i}`)
              return store.delete(`k${i}`)
            }
            const before = Array.from({ length: keys }, (_, i) => i).filter((i) => i % 100 >= 1 && i % 100 <= 49)
            const during = Array.from({ length: keys }, (_, i) => i).filter((i) => i % 100 >= 50 && i % 100 <= 79)
            yield* Effect.forEach(before, remove, { concurrency: 64, discard: true })
            let deleted = 0
            let deletedWhileCompacting = 0
            const compaction = yield* Effect.forkChild(
              Effect.ensuring(store.compact, Effect.sync(() => (deletedWhileCompacting = deleted)))
            )
            // The walk begins once the new file exists.
            yield* yieldUntil("the compaction to begin", () => fs.existsSync(`${logPath}.compact`))
            // Many at once: under "always" a batch's sync runs off the main
            // thread and the walk goes on meanwhile, so only large batches
            // land enough deletes during it.
            yield* Effect.forEach(during, (i) => Effect.map(remove(i), () => deleted++), { concurrency: 1024, discard: true })
            yield* Effect.forEach([...before, ...during].filter((i) => i % 97 === 0), (i) => {
              expected.set(`k${i}`, `s:back ${i}`)
              return store.put(`k${i}`, `back ${i}`)
            }, { concurrency: 64, discard: true })
            yield* Fiber.join(compaction)
            assert.isAbove(deletedWhileCompacting, keys / 50, "too few deletes landed during the compaction")
            assertSameState(yield* readState(store), expected, "after the compaction")
          }))
        assertSameState(yield* stateOfLog(logPath), expected, "after a reopen")
      }),
    60_000
  )
})

/** Reads `stats` until a compaction has been reported; dies after `maxYields` turns. */
const awaitCompactionReport = (store: KeyValueStore.KeyValueStoreService, maxYields = 2_000_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxYields; i++) {
      const report = (yield* store.stats).log?.lastCompaction
      if (report !== undefined) return report
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`no compaction reported after ${maxYields} yields`))
  })

describe("automatic compaction", () => {
  it.live("starts once the log holds factor × live entries and at least minRecords, keeps the state, and reports its longest pause", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("auto")
      const expected = new Map<string, ValueView>()
      yield* withLogStore({ path: logPath, compaction: { minRecords: 200, factor: 2 } }, (store) =>
        Effect.gen(function*() {
          // 10 keys written 30 times over: 300 records for 10 live entries.
          yield* Effect.forEach(Array.from({ length: 10 }, (_, key) => key), (key) =>
            Effect.gen(function*() {
              for (let round = 0; round < 30; round++) {
                yield* store.put(`k${key}`, `round ${round}`)
                expected.set(`k${key}`, `s:round ${round}`)
              }
            }), { concurrency: "unbounded", discard: true })
          const report = yield* awaitCompactionReport(store)
          assert.isAtLeast(report.recordsBefore, 200)
          assert.isBelow(report.recordsAfter, report.recordsBefore)
          assert.isBelow(report.bytesAfter, report.bytesBefore)
          assert.isTrue(Number.isFinite(report.longestPauseMillis) && report.longestPauseMillis >= 0)
          assert.isAtMost(report.longestPauseMillis, report.durationMillis)
          assert.isBelow((yield* store.stats).log!.records, 300)
          assertSameState(yield* readState(store), expected, "after the automatic compaction")
        }))
      assertSameState(yield* stateOfLog(logPath), expected, "after a reopen")
    }))

  it.live("a compaction asked for while its fiber is preempted on its way to waiting still runs (10 preempted schedules)", () =>
    Effect.gen(function*() {
      // 64 fibers write 4 keys with fibers preempted at one step in three, at
      // random: a batch holds many records, enough to ask for the next
      // compaction on its own, so for some seeds a request lands between the
      // background fiber's look at whether one is pending and its wait. A
      // request missed there found no wake-up to call, and none came after
      // it: automatic compaction stopped for good. 1,000 more puts, made
      // without preemption, then show whether it still runs.
      const stopped: Array<{ seed: number; records: number }> = []
      for (let seed = 1; seed <= 10; seed++) {
        const logPath = yield* freshLogPath("auto-preempted")
        const scheduler = new PreemptingScheduler()
        const records = yield* withLogStore(
          { path: logPath, fsync: "never", compaction: { minRecords: 10, factor: 2 } },
          (store) =>
            Effect.gen(function*() {
              scheduler.reseed(seed, 3)
              yield* Effect.forEach(Array.from({ length: 64 }, (_, fiber) => fiber), (fiber) =>
                Effect.gen(function*() {
                  for (let i = 0; i < 20; i++) yield* store.put(`k${(fiber + i) % 4}`, `${fiber}.${i}`)
                }), { concurrency: "unbounded", discard: true })
              scheduler.reseed(1, Infinity)
              const before = (yield* store.stats).log!.lastCompaction
              for (let i = 0; i < 1_000; i++) yield* store.put("k0", `last ${i}`)
              for (let i = 0; i < 200 && (yield* store.stats).log!.lastCompaction === before; i++) {
                yield* Effect.sleep(10)
              }
              return (yield* store.stats).log!.lastCompaction === before ? (yield* store.stats).log!.records : undefined
            })
        ).pipe(Effect.provideService(Scheduler.Scheduler, scheduler))
        if (records !== undefined) stopped.push({ seed, records })
      }
      assert.deepStrictEqual(stopped, [], "seeds after which automatic compaction no longer ran")
    }), 120_000)

  it.live("with auto: false the log is never compacted by itself", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("no-auto")
      yield* withLogStore({ path: logPath, compaction: { auto: false, minRecords: 10, factor: 2 } }, (store) =>
        Effect.gen(function*() {
          yield* Effect.forEach(Array.from({ length: 10 }, (_, key) => key), (key) =>
            Effect.gen(function*() {
              for (let round = 0; round < 30; round++) yield* store.put(`k${key}`, `round ${round}`)
            }), { concurrency: "unbounded", discard: true })
          // An explicit compaction takes the maintenance permit an automatic one would hold.
          const records = (yield* store.stats).log!.records
          assert.strictEqual(records, 300)
          assert.isUndefined((yield* store.stats).log!.lastCompaction)
        }))
    }))
})

describe("clear", () => {
  it.effect.each(writeModes)("$label: clear empties the store and the log; a reopen finds it empty, and later writes survive", ({ options }) =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("clear")
      yield* withLogStore({ path: logPath, ...options }, (store) =>
        Effect.gen(function*() {
          for (let i = 0; i < 50; i++) yield* store.put(`k${i}`, `v${i}`, i % 2 === 0 ? { duration: 60_000 } : undefined)
          yield* store.delete("k3")
          yield* store.clear
          assert.strictEqual(yield* store.size, 0)
          assert.deepStrictEqual(yield* store.keys, [])
          const log = (yield* store.stats).log!
          assert.strictEqual(log.records, 0)
          assert.strictEqual(log.fileBytes, 20, "the file header alone")
          assert.strictEqual(fs.statSync(logPath).size, 20, "the file holds just its header")
        }))
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map())
      yield* withLogStore({ path: logPath, ...options }, (store) =>
        Effect.gen(function*() {
          yield* store.put("k1", "old")
          yield* store.clear
          yield* store.put("new", "after clear")
        }))
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map([["new", "s:after clear"]]))
    }))
})
