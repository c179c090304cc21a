/**
 * Crash tests with real processes. A child (`test/fixtures/crash-writer.ts`)
 * writes to a log with `fsync: "always"` from 64 concurrent fibers and prints
 * each write before submitting it and each acknowledgement after it succeeded;
 * the test kills it with SIGKILL after a random number of acknowledgements,
 * then opens a copy of the log in this process and checks, key by key, that:
 *
 * - every acknowledged write is there (the value of the last acknowledged put,
 *   or absence after an acknowledged delete);
 * - a key whose write was in flight at the kill holds either the value before
 *   it or the value after it, nothing else;
 * - a key nobody wrote this cycle is exactly as the previous check saw it, and
 *   no key or value appears that was never written;
 * - the child's own open saw as many keys as the previous check did, and the
 *   outcome of each acknowledged delete (found or KeyNotFound) matches.
 *
 * The next child reopens the same log, torn tail and stale lock included, so
 * the log grows over the cycles. A variant compacts in a loop (and
 * automatically) while writing, so that kills land during compactions.
 *
 * `KVLOG_SOAK_CYCLES=1000 npm run soak` runs a longer soak;
 * `KVLOG_CRASH_SEED` replays a given run.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { KeyValueStore } from "../src/index.ts"
import {
  type LineChild,
  seededRandom,
  spawnLineChild,
  stateOfLog,
  typedFailure,
  type ValueView,
  withLogStore
} from "./support/logHarness.ts"

const writerScript = path.resolve(import.meta.dirname, "fixtures/crash-writer.ts")
const soakCycles = Number(process.env.KVLOG_SOAK_CYCLES ?? 0)
const plainCycles = soakCycles > 0 ? soakCycles : 30
const compactingCycles = soakCycles > 0 ? soakCycles : 30
const seed = Number(process.env.KVLOG_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31))
const fibers = 64
const keysPerFiber = 8

let directory = ""
beforeAll(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-crash-"))
})
afterAll(() => {
  fs.rmSync(directory, { recursive: true, force: true })
})

// =============================================================================
// What the child printed
// =============================================================================

type Pending =
  | { readonly seq: number; readonly _tag: "put"; readonly key: string; readonly value: ValueView }
  | { readonly seq: number; readonly _tag: "delete"; readonly key: string }

interface CycleOutcome {
  /** The state every acknowledged write says the log holds. */
  readonly acknowledged: Map<string, ValueView>
  /** The write each fiber had printed but not seen acknowledged: in flight at the kill. */
  readonly inFlight: Map<number, Pending>
  readonly acks: number
  readonly recoveredKeys: number | undefined
  readonly compactionsStarted: number
  readonly compactionsDone: number
  /** Whether the child was killed between a compaction's start and its end. */
  readonly killedDuringCompaction: boolean
}

const putLine = /^I (\d+) (\d+) P (\S+) (.*)$/
const deleteLine = /^I (\d+) (\d+) D (\S+)$/
const ackLine = /^A (\d+) (\d+)(?: (ok|missing))?$/

/** Replays the child's lines over `baseline`, checking that they are consistent with it. */
const readCycle = (lines: ReadonlyArray<string>, baseline: ReadonlyMap<string, ValueView>, where: string): CycleOutcome => {
  const acknowledged = new Map(baseline)
  const inFlight = new Map<number, Pending>()
  let acks = 0
  let recoveredKeys: number | undefined
  let compactionsStarted = 0
  let compactionsDone = 0
  let compacting = false
  for (const line of lines) {
    let match: RegExpExecArray | null
    if ((match = putLine.exec(line)) !== null) {
      const fiber = Number(match[1])
      assert.isFalse(inFlight.has(fiber), `${where}: fiber ${fiber} started a write before its last one was acknowledged`)
      inFlight.set(fiber, { seq: Number(match[2]), _tag: "put", key: match[3], value: JSON.parse(match[4]) })
    } else if ((match = deleteLine.exec(line)) !== null) {
      const fiber = Number(match[1])
      assert.isFalse(inFlight.has(fiber), `${where}: fiber ${fiber} started a write before its last one was acknowledged`)
      inFlight.set(fiber, { seq: Number(match[2]), _tag: "delete", key: match[3] })
    } else if ((match = ackLine.exec(line)) !== null) {
      const fiber = Number(match[1])
      const write = inFlight.get(fiber)
      assert.strictEqual(write?.seq, Number(match[2]), `${where}: an acknowledgement of a write never started: ${line}`)
      inFlight.delete(fiber)
      acks++
      if (write!._tag === "put") {
        acknowledged.set(write!.key, write!.value)
      } else {
        const expected = acknowledged.has(write!.key) ? "ok" : "missing"
        assert.strictEqual(match[3], expected, `${where}: delete of ${write!.key} found the key ${match[3] === "ok" ? "present" : "absent"}`)
        acknowledged.delete(write!.key)
      }
    } else if (line.startsWith("R ")) {
      recoveredKeys = Number(line.slice(2))
    } else if (line === "S") {
      compactionsStarted++
      compacting = true
    } else if (line.startsWith("C ")) {
      compactionsDone++
      compacting = false
    } else if (line.startsWith("X ")) {
      assert.fail(`${where}: a compaction failed in the child: ${line}`)
    } else {
      assert.fail(`${where}: unexpected line from the child: ${JSON.stringify(line)}`)
    }
  }
  return {
    acknowledged,
    inFlight,
    acks,
    recoveredKeys,
    compactionsStarted,
    compactionsDone,
    killedDuringCompaction: compacting
  }
}

/**
 * Checks the reopened state against what the child printed; gives how many
 * in-flight writes turned out applied and how many did not.
 */
const checkRecovered = (
  observed: ReadonlyMap<string, ValueView>,
  outcome: CycleOutcome,
  where: string
): { applied: number; notApplied: number } => {
  const inFlightByKey = new Map<string, Pending>()
  for (const write of outcome.inFlight.values()) inFlightByKey.set(write.key, write)
  const keys = new Set([...observed.keys(), ...outcome.acknowledged.keys(), ...inFlightByKey.keys()])
  let applied = 0
  let notApplied = 0
  for (const key of keys) {
    const got = observed.get(key)
    const before = outcome.acknowledged.get(key)
    const write = inFlightByKey.get(key)
    if (write === undefined) {
      assert.strictEqual(got, before, `${where}: key ${key} (no write in flight)`)
      continue
    }
    const after = write._tag === "put" ? write.value : undefined
    if (got === after && got !== before) applied++
    else if (got === before && got !== after) notApplied++
    assert.include([before, after], got, `${where}: key ${key} with a ${write._tag} in flight`)
  }
  return { applied, notApplied }
}

// =============================================================================
// The cycles
// =============================================================================

interface Totals {
  cycles: number
  acks: number
  inFlightApplied: number
  inFlightNotApplied: number
  killsAtOpen: number
  compactionsDone: number
  killsDuringCompaction: number
  compactFileLeftBehind: number
}

/**
 * Runs `node crash-writer.ts write ...` and kills it after `killAfterAcks`
 * acknowledgements (0: right after it opened), and not before it printed a
 * line starting with `waitFor`, if given.
 */
const runAndKill = (
  logPath: string,
  cycle: number,
  killAfterAcks: number,
  compacting: boolean,
  waitFor: string | undefined
): Promise<{ child: LineChild; exit: Awaited<LineChild["closed"]> }> => {
  let acks = 0
  let seen = waitFor === undefined
  const child = spawnLineChild(
    writerScript,
    ["write", logPath, String(cycle), String(fibers), String(keysPerFiber), ...(compacting ? ["compact"] : [])],
    (line, self) => {
      if (line.startsWith("A ")) acks++
      if (!seen && line.startsWith(waitFor!)) seen = true
      if (!seen) return
      if ((killAfterAcks === 0 && line.startsWith("R ")) || (killAfterAcks > 0 && acks >= killAfterAcks)) {
        self.kill("SIGKILL")
      }
    }
  )
  return child.closed.then((exit) => ({ child, exit }))
}

const crashCycles = async (name: string, cycles: number, compacting: boolean): Promise<Totals> => {
  const random = seededRandom(seed + (compacting ? 1 : 0))
  const logPath = path.join(directory, `${name}.log`)
  const checkPath = path.join(directory, `${name}-check.log`)
  const totals: Totals = {
    cycles: 0,
    acks: 0,
    inFlightApplied: 0,
    inFlightNotApplied: 0,
    killsAtOpen: 0,
    compactionsDone: 0,
    killsDuringCompaction: 0,
    compactFileLeftBehind: 0
  }
  let baseline = new Map<string, ValueView>()
  for (let cycle = 1; cycle <= cycles; cycle++) {
    // The first compacting cycle ends only after a whole compaction, so that every run has one.
    const waitFor = compacting && cycle === 1 ? "C " : undefined
    const drawn = waitFor === undefined && random() < 0.1 ? 0 : 1 + Math.floor(random() ** 2 * 3_000)
    // The first cycle of every run writes a good deal before it is killed.
    const killAfterAcks = cycle === 1 ? Math.max(drawn, 500) : drawn
    const where = `${name} cycle ${cycle} (seed ${seed}, kill after ${killAfterAcks} acks)`
    const { child, exit } = await runAndKill(logPath, cycle, killAfterAcks, compacting, waitFor)
    assert.strictEqual(exit.signal, "SIGKILL", `${where}: the child ended by itself (${exit.code}):\n${exit.stderr}`)
    const outcome = readCycle(child.lines, baseline, where)
    assert.strictEqual(outcome.recoveredKeys, baseline.size, `${where}: the child's open found another number of keys`)
    assert.isAtLeast(outcome.acks, killAfterAcks, where)

    if (fs.existsSync(`${logPath}.compact`)) totals.compactFileLeftBehind++
    // Check a copy, so that the next child opens the log exactly as the crash left it.
    fs.copyFileSync(logPath, checkPath)
    const observed = await Effect.runPromise(stateOfLog(checkPath))
    fs.rmSync(checkPath)
    const { applied, notApplied } = checkRecovered(observed, outcome, where)

    baseline = observed
    totals.cycles++
    totals.acks += outcome.acks
    totals.inFlightApplied += applied
    totals.inFlightNotApplied += notApplied
    if (killAfterAcks === 0) totals.killsAtOpen++
    totals.compactionsDone += outcome.compactionsDone
    if (outcome.killedDuringCompaction) totals.killsDuringCompaction++
  }
  // Finally the log itself, stale lock and torn tail as the last kill left them.
  const final = await Effect.runPromise(stateOfLog(logPath))
  assert.deepStrictEqual(final, baseline, `${name}: the log itself differs from its last copy`)
  assert.isFalse(fs.existsSync(`${logPath}.compact`), "a leftover .compact file survived an open")
  console.log(`${name}: ${JSON.stringify(totals)}`)
  return totals
}

describe("crash tests: SIGKILL at random moments while 64 fibers write with fsync \"always\"", () => {
  it(
    `after each of ${plainCycles} kills, every acknowledged write is there and nothing that was never written`,
    async () => {
      const totals = await crashCycles("plain", plainCycles, false)
      assert.strictEqual(totals.cycles, plainCycles)
      assert.isAtLeast(totals.acks, 500)
    },
    plainCycles * 8_000 + 30_000
  )

  it(
    `the same through ${compactingCycles} kills while the child compacts in a loop and automatically`,
    async () => {
      const totals = await crashCycles("compacting", compactingCycles, true)
      assert.strictEqual(totals.cycles, compactingCycles)
      assert.isAbove(totals.compactionsDone, 0, "no compaction completed in any cycle")
    },
    compactingCycles * 8_000 + 30_000
  )
})

// =============================================================================
// One owner, across processes
// =============================================================================

describe("one process per log", () => {
  it(
    "while another process holds the log, opening it fails with LogLocked naming that process; after a SIGKILL the stale lock is taken over",
    async () => {
      const logPath = path.join(directory, "held.log")
      const holder = spawnLineChild(writerScript, ["hold", logPath])
      await holder.waitForLine((line) => line.startsWith("R "))
      const before = fs.readFileSync(logPath)

      const error = await Effect.runPromise(
        typedFailure(KeyValueStore.makeLog({ path: logPath }).pipe(Effect.scoped), "LogLocked")
      )
      assert.instanceOf(error, KeyValueStore.LogLocked)
      assert.strictEqual((error as KeyValueStore.LogLocked).owner, `process ${holder.pid}`)
      assert.isTrue(fs.readFileSync(logPath).equals(before), "the refused open changed the log")
      assert.strictEqual(fs.readFileSync(`${logPath}.lock`, "utf8").split(" ")[0], String(holder.pid))

      holder.kill("SIGKILL")
      const exit = await holder.closed
      assert.strictEqual(exit.signal, "SIGKILL")
      // The lock file is still there, naming a process that no longer runs.
      assert.isTrue(fs.existsSync(`${logPath}.lock`))

      const state = await Effect.runPromise(withLogStore({ path: logPath }, (store) =>
        Effect.gen(function*() {
          assert.strictEqual(fs.readFileSync(`${logPath}.lock`, "utf8").split(" ")[0], String(process.pid))
          return yield* store.get("held-by")
        })))
      assert.strictEqual(state, String(holder.pid))
      assert.isFalse(fs.existsSync(`${logPath}.lock`))
      assert.strictEqual((fs.statSync(logPath).mode & 0o777).toString(8), "600")
    },
    60_000
  )
})
