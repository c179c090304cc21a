/**
 * Power cuts, simulated: thousands of seeded runs of a store on a
 * `SimulatedDisk` (test/support/SimulatedDisk.ts), each cut at a random
 * mutating call, each reopened on what the cut left. Whatever a cut leaves —
 * torn pages, lost unsynced pages, a forgotten rename — the store reopens,
 * loses nothing acknowledged under fsync "always", and under every policy
 * comes back as some prefix of its history (test/support/powerCutWorkload.ts).
 *
 * `KVLOG_POWER_CUTS` sets the number of simulations (the soak runs 100,000);
 * `KVLOG_POWER_CUT_SEED=<n>` runs simulation `n` alone and prints its trace.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { planSimulation, runSimulation, type SimulationResult } from "./support/powerCutWorkload.ts"
import { assertVerifyAgreesWithOpen } from "./support/verifyAgreement.ts"

const replaySeed = process.env.KVLOG_POWER_CUT_SEED
const simulations = Number(process.env.KVLOG_POWER_CUTS ?? 10_000)
const blocks = 4
const baseSeed = Number(process.env.KVLOG_POWER_CUT_BASE ?? Math.floor(Math.random() * 2 ** 31))

const replayCommand = (seed: number) => `KVLOG_POWER_CUT_SEED=${seed} npm exec vitest run test/power-cut.test.ts`

let directory = ""
let verifyDirectory = ""
beforeAll(() => {
  directory = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "kvlog-power-cut-"))
  verifyDirectory = path.join(directory, "verify")
  fs.mkdirSync(verifyDirectory)
})
afterAll(() => {
  fs.rmSync(directory, { recursive: true, force: true })
})

const totals = {
  simulations: 0,
  byPolicy: { always: 0, interval: 0, never: 0 } as Record<string, number>,
  buffered: 0,
  cutsDuringWorkload: 0,
  mutatingCalls: 0,
  acknowledgedWritesChecked: 0,
  acknowledgedWritesLost: 0,
  refusals: 0,
  tornTailsDropped: 0,
  pagesKept: 0,
  pagesDropped: 0,
  pagesTorn: 0,
  sizesRolledBack: 0,
  directoryOperationsKept: 0,
  directoryOperationsForgotten: 0,
  /** The verdicts of `kvlog verify` on the sampled survivors, each checked against the reopen. */
  verifyAgreements: { Clean: 0, TornTail: 0, Corrupt: 0 },
  failures: 0,
  firstFailureAfter: undefined as number | undefined
}
const failures: Array<string> = []

const record = (result: SimulationResult) => {
  totals.simulations++
  totals.byPolicy[result.plan.policy]++
  if (result.plan.acknowledge === "buffered") totals.buffered++
  if (result.cutDuringWorkload) totals.cutsDuringWorkload++
  totals.mutatingCalls += result.mutations
  totals.acknowledgedWritesChecked += result.acknowledgedChecked
  totals.acknowledgedWritesLost += result.losses
  if (result.refused) totals.refusals++
  totals.tornTailsDropped += result.tornTails
  for (const fault of Object.keys(result.faults) as Array<keyof typeof result.faults>) {
    totals[fault] += result.faults[fault]
  }
  if (result.violations.length > 0) {
    totals.failures++
    totals.firstFailureAfter ??= totals.simulations
    if (failures.length < 5) {
      failures.push(`${result.violations.join("; ")}\n  replay: ${replayCommand(result.plan.seed)}`)
    }
  }
}

/** One simulation in this many also checks that `kvlog verify` says what the reopen does on the log the cut left. */
const verifyEvery = 10

const runBlock = async (from: number, to: number) => {
  for (let i = from; i < to; i++) {
    const seed = (baseSeed + i) >>> 0
    const logPath = path.join(directory, "store.log")
    const result = await Effect.runPromise(runSimulation(planSimulation(seed), logPath))
    record(result)
    if (i % verifyEvery === 0 && result.survivorLog !== undefined) {
      const verdict = await Effect.runPromise(
        assertVerifyAgreesWithOpen(verifyDirectory, result.survivorLog, `simulation ${seed} (${replayCommand(seed)})`)
      )
      totals.verifyAgreements[verdict._tag]++
    }
  }
}

if (replaySeed !== undefined) {
  it(`simulation ${replaySeed} reopens to a state its acknowledgements allow`, async () => {
    const result = await Effect.runPromise(runSimulation(planSimulation(Number(replaySeed)), path.join(directory, "store.log")))
    console.log([...result.trace, `faults: ${JSON.stringify(result.faults)}`, ...result.violations].join("\n"))
    assert.deepStrictEqual(result.violations, [])
  })
} else {
  describe(`${simulations} power cuts`, () => {
    for (let block = 0; block < blocks; block++) {
      const from = Math.floor((simulations * block) / blocks)
      const to = Math.floor((simulations * (block + 1)) / blocks)
      it(`simulations ${from}..${to - 1}: every cut reopens, with every acknowledged write under "always" and a prefix of the history under every policy`, async () => {
        await runBlock(from, to)
        assert.deepStrictEqual(failures, [], `first failure after ${totals.firstFailureAfter} simulations`)
      }, Math.max(600_000, (simulations / blocks) * 100))
    }

    it("the cuts injected every kind of fault", () => {
      console.log(JSON.stringify({ powerCuts: { baseSeed, ...totals } }))
      assert.strictEqual(totals.simulations, simulations)
      assert.strictEqual(totals.refusals, 0)
      const agreements = totals.verifyAgreements
      // Some cuts come before the log exists: most sampled survivors have one.
      assert.isAtLeast(agreements.Clean + agreements.TornTail + agreements.Corrupt, Math.floor(simulations / verifyEvery / 2))
      // A power cut leaves a log that opens: never one that verify calls corrupt.
      assert.strictEqual(agreements.Corrupt, 0)
      if (simulations >= 1000) {
        assert.isAbove(agreements.TornTail, 0, "no sampled cut left a torn tail for verify to report")
        assert.isAbove(totals.pagesTorn, 0)
        assert.isAbove(totals.pagesDropped, 0)
        assert.isAbove(totals.sizesRolledBack, 0)
        assert.isAbove(totals.directoryOperationsForgotten, 0)
        assert.isAbove(totals.cutsDuringWorkload, simulations / 2)
        assert.isAbove(totals.acknowledgedWritesChecked, simulations)
      }
    })
  })
}
