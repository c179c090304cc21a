/**
 * Checks that `kvlog verify`'s verdict on a file is what an open of that
 * file does: clean ⇔ it opens with no warning; torn tail at X (B bytes) ⇔ it
 * opens, warns of B bytes dropped at X, and cuts the file to X; corrupt at X
 * ⇔ it fails with `LogCorrupted` at X for the same reason. Verify and the
 * open each get their own copy of the bytes; verify must leave its copy as
 * it was.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fs from "node:fs"
import * as path from "node:path"
import { KeyValueStore } from "../../src/index.ts"
import { type Verdict, verifyLog } from "../../src/internal/log/inspect/LogInspection.ts"
import { captureLogs } from "./logHarness.ts"

let files = 0

/** Asserts the agreement on `bytes`, using files in `directory`; gives the verdict. */
export const assertVerifyAgreesWithOpen = (
  directory: string,
  bytes: Uint8Array,
  label: string
): Effect.Effect<Verdict> =>
  Effect.gen(function*() {
    const n = files++
    const verified = path.join(directory, `verified-${n}.log`)
    const opened = path.join(directory, `opened-${n}.log`)
    fs.writeFileSync(verified, bytes)
    fs.writeFileSync(opened, bytes)
    const verdict = verifyLog(verified).verdict
    assert.isTrue(fs.readFileSync(verified).equals(bytes), `${label}: verify changed the file`)

    const logs = captureLogs()
    const exit = yield* Effect.exit(
      Effect.scoped(KeyValueStore.makeLog({ path: opened, compaction: { auto: false } })).pipe(Effect.provide(logs.layer))
    )
    const warnings = logs.entries.filter((entry) => entry.level === "Warn").map((entry) => entry.message)
    const what = `${label}: verify said ${JSON.stringify(verdict)}; the open gave ${
      Exit.isSuccess(exit) ? "success" : JSON.stringify(exit.cause)
    } with warnings ${JSON.stringify(warnings)}`
    switch (verdict._tag) {
      case "Clean": {
        assert.isTrue(Exit.isSuccess(exit), what)
        assert.deepStrictEqual(warnings, [], what)
        break
      }
      case "TornTail": {
        assert.isTrue(Exit.isSuccess(exit), what)
        assert.strictEqual(warnings.length, 1, what)
        assert.include(warnings[0], `dropped ${verdict.bytes} bytes`, what)
        assert.include(warnings[0], `from byte offset ${verdict.offset}`, what)
        assert.strictEqual(fs.statSync(opened).size, verdict.offset, what)
        break
      }
      case "Corrupt": {
        assert.isTrue(Exit.isFailure(exit), what)
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((reason) => reason._tag === "Fail") : undefined
        assert.isDefined(error, what)
        const failure = (error as { readonly error: unknown }).error
        assert.instanceOf(failure, KeyValueStore.LogCorrupted, what)
        const corrupted = failure as KeyValueStore.LogCorrupted
        assert.strictEqual(corrupted.offset, verdict.offset, what)
        assert.strictEqual(corrupted.reason, verdict.reason, what)
        break
      }
    }
    for (const name of fs.readdirSync(directory)) {
      if (name === `verified-${n}.log` || name.startsWith(`opened-${n}.log`)) fs.rmSync(path.join(directory, name), { force: true })
    }
    return verdict
  })
