/**
 * Files the store creates beside its log (`<log>.new`, `<log>.compact`,
 * `<log>.lock` and its helpers) are never reached through a symlink someone
 * planted there: the store either removes the link and goes on, or fails
 * with a StorageError. It never writes to the link's target, never creates
 * it, and never leaves a link where the log was.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fs from "node:fs"
import * as path from "node:path"
import { KeyValueStore } from "../src/index.ts"
import { freshLogPath, openLog, stateOfLog, withLogStore } from "./support/logHarness.ts"

const victimText = "a file the store must never touch\n"

interface Planted {
  /** A link to an existing file. */
  readonly victim: string
  /** A link to a path where nothing is: following it would create a file there. */
  readonly nowhere: string
}

/** Plants `<log><suffix>` → a victim file, for each suffix (alternately dangling). */
const plant = (logPath: string, suffixes: ReadonlyArray<string>): Planted => {
  const directory = path.dirname(logPath)
  const victim = path.join(directory, "victim.txt")
  const nowhere = path.join(directory, "nowhere.txt")
  fs.writeFileSync(victim, victimText)
  suffixes.forEach((suffix, i) => fs.symlinkSync(i % 2 === 0 ? victim : nowhere, `${logPath}${suffix}`))
  return { victim, nowhere }
}

const isSymlink = (file: string): boolean => {
  try {
    return fs.lstatSync(file).isSymbolicLink()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false
    throw error
  }
}

/**
 * The rule, after `outcome`: the targets are untouched, the log is a regular
 * file, and the operation either succeeded with the links at the names it
 * `uses` gone, or failed with a StorageError. (A link at a name the
 * operation does not use may stay: it is never followed either.)
 */
const assertNotFollowed = (
  logPath: string,
  uses: ReadonlyArray<string>,
  planted: Planted,
  outcome: Exit.Exit<unknown, unknown>,
  what: string
): void => {
  assert.strictEqual(fs.readFileSync(planted.victim, "utf8"), victimText, `${what} wrote through a link`)
  assert.isFalse(fs.existsSync(planted.nowhere), `${what} created a file through a dangling link`)
  const log = fs.lstatSync(logPath)
  assert.isTrue(log.isFile() && !log.isSymbolicLink(), `${what} left the log as something other than a regular file`)
  if (Exit.isSuccess(outcome)) {
    for (const suffix of uses) {
      assert.isFalse(isSymlink(`${logPath}${suffix}`), `${what} succeeded and left the link at ${suffix}`)
    }
  } else {
    const error = Exit.isFailure(outcome) ? outcome.cause.reasons.find((reason) => reason._tag === "Fail") : undefined
    assert.instanceOf(error?._tag === "Fail" ? error.error : undefined, KeyValueStore.StorageError, `${what} failed otherwise`)
  }
}

const removeLinks = (logPath: string, suffixes: ReadonlyArray<string>): void => {
  for (const suffix of suffixes) if (isSymlink(`${logPath}${suffix}`)) fs.unlinkSync(`${logPath}${suffix}`)
}

const leftBehind = [".new", ".compact"]

describe("files the store creates never follow a symlink", () => {
  it.effect("opening a new log with links planted at <log>.new and <log>.compact", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("symlink-new")
      const planted = plant(logPath, leftBehind)
      const outcome = yield* Effect.exit(withLogStore({ path: logPath }, (store) => store.put("k", "v")))
      if (Exit.isFailure(outcome)) {
        // The log may not even have been created: nothing to check of it then.
        assert.strictEqual(fs.readFileSync(planted.victim, "utf8"), victimText)
        assert.isFalse(fs.existsSync(planted.nowhere))
        return
      }
      assertNotFollowed(logPath, leftBehind, planted, outcome, "opening a new log")
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map([["k", "s:v"]]))
    }).pipe(Effect.scoped))

  it.effect("opening an existing log with links planted at <log>.new and <log>.compact", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("symlink-existing")
      yield* withLogStore({ path: logPath }, (store) => store.put("k", "v"))
      const planted = plant(logPath, leftBehind)
      const outcome = yield* Effect.exit(withLogStore({ path: logPath }, (store) => store.put("k2", "v2")))
      assertNotFollowed(logPath, [".compact"], planted, outcome, "opening an existing log")
      removeLinks(logPath, leftBehind)
      const expected = Exit.isSuccess(outcome) ? [["k", "s:v"], ["k2", "s:v2"]] as const : [["k", "s:v"]] as const
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map(expected))
    }).pipe(Effect.scoped))

  for (const [operation, suffixes] of [
    ["compact", [".compact", ".new"]],
    ["compact", [".new", ".compact"]],
    ["clear", [".compact", ".new"]],
    ["clear", [".new", ".compact"]]
  ] as const) {
    it.effect(`${operation} with links planted at ${suffixes.join(" and ")} while the store is open`, () =>
      Effect.gen(function*() {
        const logPath = yield* freshLogPath(`symlink-${operation}`)
        const open = yield* openLog({ path: logPath, compaction: { auto: false } })
        for (let i = 0; i < 100; i++) yield* open.store.put(`k${i % 10}`, `v${i}`)
        const planted = plant(logPath, suffixes)
        const outcome = yield* Effect.exit(operation === "compact" ? open.store.compact : open.store.clear)
        assertNotFollowed(logPath, [".compact"], planted, outcome, operation)
        const cleared = operation === "clear" && Exit.isSuccess(outcome)
        // The store goes on: what it says and what its log replays agree.
        yield* Effect.exit(open.store.put("after", "yes"))
        const seen = new Map<string, string>()
        for (const key of yield* open.store.keys) seen.set(key, `s:${yield* open.store.get(key)}`)
        yield* open.close
        removeLinks(logPath, suffixes)
        const replayed = yield* stateOfLog(logPath)
        assert.deepStrictEqual(replayed, seen)
        if (!cleared) for (let i = 0; i < 10; i++) assert.strictEqual(replayed.get(`k${i}`), `s:v${90 + i}`)
        else assert.isFalse(replayed.has("k0"))
      }).pipe(Effect.scoped))
  }

  it.effect("opening with a link planted at <log>.lock, and at its takeover guard", () =>
    Effect.gen(function*() {
      const logPath = yield* freshLogPath("symlink-lock")
      yield* withLogStore({ path: logPath }, (store) => store.put("k", "v"))
      const suffixes = [".lock", ".lock.takeover"]
      const planted = plant(logPath, suffixes)
      const outcome = yield* Effect.exit(withLogStore({ path: logPath }, (store) => store.put("k2", "v2")))
      assertNotFollowed(logPath, suffixes, planted, outcome, "opening")
      removeLinks(logPath, suffixes)
      const expected = Exit.isSuccess(outcome) ? [["k", "s:v"], ["k2", "s:v2"]] as const : [["k", "s:v"]] as const
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map(expected))
    }).pipe(Effect.scoped))
})
