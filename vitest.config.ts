import { availableParallelism } from "node:os"
import { configDefaults, defineConfig } from "vitest/config"

/**
 * Test files whose tests never build an index: the shared-index pass
 * (`KVLOG_INDEX=shared`, `npm run test:shared`) skips them, since the variable
 * changes nothing they run, and CI's two passes must fit its time budget.
 * `test/support/indexAudit.ts` fails a file on this list that builds one.
 * One spawns processes that open stores, which the audit cannot see:
 * `package.test.ts` checks the packed tarball and runs the README's examples,
 * and asserts nothing of an index.
 */
export const indexIndependentFiles: ReadonlyArray<string> = [
  "KeyTable.test.ts",
  "ReadWriteLock.histories.test.ts",
  "ReadWriteLock.interrupt.test.ts",
  "SimulatedDisk.test.ts",
  "bench-perf.test.ts",
  "bench-runner.test.ts",
  "linearizability-checker.test.ts",
  "log-record.test.ts",
  "package.test.ts",
  "redis-cluster.test.ts",
  "redis-contract.test.ts",
  "redis-faults.test.ts",
  "redis-store.test.ts"
]

const sharedPass = process.env.KVLOG_INDEX === "shared"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: [...configDefaults.exclude, ...(sharedPass ? indexIndependentFiles.map((file) => `test/${file}`) : [])],
    setupFiles: ["test/support/indexAudit.ts"],
    // Vitest's default, one worker fewer than cores, runs files one at a time
    // on a 2-core machine. Much of the suite waits on child processes, disks
    // and timers, so two at a time there took both passes from 963 s to 647 s
    // (measured on CI's kind of machine), the difference between over and
    // under CI's 15 minutes.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // Crash tests spawn real processes and property tests explore many schedules:
    // the defaults are sized for unit tests on a laptop, not for a 2-core CI box.
    testTimeout: 120_000,
    hookTimeout: 60_000
  }
})
