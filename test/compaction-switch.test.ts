/**
 * The switch at the end of a compaction leaves the directory's sync to the
 * background (see `Compactor.switchTo`): until that sync has returned, a
 * crash may bring back the old log under its name, so the old file must
 * keep its blocks until then. (That no sync of the log is acknowledged
 * before it, `test/power-cut.test.ts` checks on a simulated disk.) The calls
 * the store makes are recorded through `LogOptions.fileOps`, on a real file
 * system.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { freshLogPath, withLogStore } from "./support/logHarness.ts"

const policies = ["always", "interval", "never"] as const

/** The file system calls that order a switch, in the order the store made them. */
const recordingOps = () => {
  const calls: Array<string> = []
  return {
    calls,
    ops: {
      rename: (from: string, to: string) => {
        fs.renameSync(from, to)
        calls.push("rename")
      },
      syncDirectory: (directory: string) => {
        const fd = fs.openSync(directory, "r")
        try {
          fs.fsyncSync(fd)
        } finally {
          fs.closeSync(fd)
        }
        calls.push("syncDirectory")
      },
      datasync: (fd: number) => {
        fs.fdatasyncSync(fd)
        calls.push("datasync")
      },
      truncateInBackground: (fd: number, length: number, done: (error: Error | null) => void) => {
        calls.push("release")
        fs.ftruncate(fd, length, done)
      }
    }
  }
}

describe("the switch of a compaction", () => {
  it.live.each(policies)("fsync %s: the old log keeps its blocks until the directory holding the new one is synced", (fsync) =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("switch-order")
      const { calls, ops } = recordingOps()
      yield* withLogStore({ path, fsync, fileOps: ops, compaction: { auto: false } }, (store) =>
        Effect.gen(function*() {
          // Enough records that releasing the old file takes more than one step.
          const value = "v".repeat(1_000)
          for (let round = 0; round < 2; round++) {
            yield* Effect.forEach(Array.from({ length: 10_000 }, (_, i) => i), (i) => store.put(`k${i}`, value), {
              concurrency: 64,
              discard: true
            })
          }
          yield* store.compact
          const until = performance.now() + 5_000
          while (!calls.includes("release") && performance.now() < until) yield* Effect.sleep(5)
        }))
      const renamed = calls.lastIndexOf("rename")
      const released = calls.indexOf("release")
      assert.isAtLeast(renamed, 0)
      assert.isAbove(released, renamed, "the old file is released")
      const synced = calls.indexOf("syncDirectory", renamed)
      assert.isTrue(synced > renamed && synced < released, `calls after the rename: ${calls.slice(renamed).join(", ")}`)
    }))
})
