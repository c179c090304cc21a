/**
 * Opening and closing a log-backed store: whatever fails during the open
 * gives back what the open took (file descriptors, ownership), and a store
 * that is closing refuses writes instead of leaving them waiting.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import { KeyValueStore } from "../src/index.ts"
import { freshLogPath, openLog, typedFailure, withLogStore } from "./support/logHarness.ts"

const openDescriptors = () => fs.readdirSync("/proc/self/fd").length

describe("opening a log", () => {
  it.effect("an open refused for corruption closes the file it opened and releases the log", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("open-corrupt")
      yield* withLogStore({ path }, (store) =>
        Effect.gen(function*() {
          for (let i = 0; i < 10; i++) yield* store.put(`k${i}`, `v${i}`)
        }))
      const bytes = fs.readFileSync(path)
      bytes[20 + 32 + 4] ^= 0xff // the first record's op byte (file header, batch header, length): its CRC no longer matches
      fs.writeFileSync(path, bytes)
      const before = openDescriptors()
      for (let attempt = 0; attempt < 20; attempt++) {
        const error = yield* typedFailure(withLogStore({ path }, () => Effect.void), "LogCorrupted")
        assert.strictEqual((error as KeyValueStore.LogCorrupted).offset, 20)
      }
      assert.strictEqual(openDescriptors(), before)
      assert.isFalse(fs.existsSync(`${path}.lock`), "the lock file is removed")
    }))

  it.effect("an open that fails while cutting off a torn tail closes the file it opened and releases the log", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("open-repair")
      yield* withLogStore({ path }, (store) => store.put("k", "v"))
      fs.appendFileSync(path, Buffer.from([9, 0, 0, 0, 0xf6])) // a frame header cut short
      const failingTruncate: KeyValueStore.FileOps = {
        write: (fd, bytes, position) => fs.writeSync(fd, bytes, 0, bytes.length, position),
        datasync: (fd) => fs.fdatasyncSync(fd),
        truncate: () => {
          throw Object.assign(new Error("EIO: i/o error, ftruncate"), { code: "EIO" })
        }
      }
      const before = openDescriptors()
      for (let attempt = 0; attempt < 20; attempt++) {
        yield* typedFailure(withLogStore({ path, fileOps: failingTruncate }, () => Effect.void), "StorageError")
      }
      assert.strictEqual(openDescriptors(), before)
      assert.isFalse(fs.existsSync(`${path}.lock`), "the lock file is removed")
      const reopened = yield* openLog({ path })
      assert.strictEqual(yield* reopened.store.get("k"), "v")
      yield* reopened.close
    }).pipe(Effect.scoped))

  it.effect("a store that is closing refuses writes with StorageError rather than leaving them waiting", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("open-closing")
      const scope = yield* Scope.make()
      const store = yield* Scope.provide(scope)(KeyValueStore.makeLog({ path }))
      yield* store.put("before", "kept")
      // Close the store while writers keep submitting: each write either
      // lands or fails; none is left waiting.
      const writers = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) => Effect.exit(store.put(`k${i}`, "v")),
          { concurrency: 16 }
        )
      )
      yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      const outcomes = yield* Fiber.join(writers)
      for (const outcome of outcomes) {
        if (Exit.isFailure(outcome)) {
          assert.include(JSON.stringify(outcome.cause), "StorageError")
        }
      }
      const reopened = yield* openLog({ path })
      assert.strictEqual(yield* reopened.store.get("before"), "kept")
      for (const [i, outcome] of outcomes.entries()) {
        if (Exit.isSuccess(outcome)) assert.strictEqual(yield* reopened.store.get(`k${i}`), "v")
      }
      yield* reopened.close
    }).pipe(Effect.scoped))
})

describe("where the log is", () => {
  it.effect("a log reached through a symlink stays behind the link after compaction, and the link's target is locked", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("open-symlink")
      const link = `${path}.link`
      yield* withLogStore({ path }, (store) => store.put("k", "v0"))
      fs.symlinkSync(path, link)
      const store = yield* openLog({ path: link, compaction: { auto: false } })
      for (let i = 1; i <= 100; i++) yield* store.store.put("k", `v${i}`)
      yield* store.store.compact
      yield* typedFailure(withLogStore({ path }, () => Effect.void), "LogLocked")
      yield* store.close
      assert.isTrue(fs.lstatSync(link).isSymbolicLink(), "the link is still a link")
      const reopened = yield* openLog({ path })
      assert.strictEqual(yield* reopened.store.get("k"), "v100")
      assert.strictEqual((yield* reopened.store.stats).log?.records, 1)
      yield* reopened.close
    }).pipe(Effect.scoped))
})

describe("who owns the log", () => {
  const startTimeOfInit = () => {
    const stat = fs.readFileSync("/proc/1/stat", "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  }

  it.effect("a lock file naming a running process with its start time refuses the open", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("owner-live")
      fs.writeFileSync(`${path}.lock`, `1 ${startTimeOfInit()}\n`)
      const error = yield* typedFailure(withLogStore({ path }, () => Effect.void), "LogLocked")
      assert.include((error as KeyValueStore.LogLocked).owner, "process 1")
    }).pipe(Effect.scoped))

  it.effect("a lock file whose pid now belongs to another process (another start time) is stale and taken over", () =>
    Effect.gen(function*() {
      const path = yield* freshLogPath("owner-reused")
      fs.writeFileSync(`${path}.lock`, `1 ${Number(startTimeOfInit()) + 12345}\n`)
      yield* withLogStore({ path }, (store) => store.put("k", "v"))
      assert.isFalse(fs.existsSync(`${path}.lock`), "released at close")
    }).pipe(Effect.scoped))
})

describe("options that are not options", () => {
  it.effect.each([
    { label: "null", options: null, message: /options must be an object with a path, got null/ },
    { label: "a string", options: "data.kvlog", message: /options must be an object with a path, got string/ },
    { label: "an onReclaim that is not a function", options: { path: "x.kvlog", onReclaim: 5 }, message: /onReclaim must be a function, got number/ }
  ])("$label: refused at open with InvalidInput, no file touched", ({ message, options }) =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(KeyValueStore.makeLog(options as unknown as KeyValueStore.LogOptions))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const reason = exit.cause.reasons[0]
        assert.strictEqual(reason._tag, "Fail", "a typed failure, not a defect")
        if (reason._tag === "Fail") {
          assert.instanceOf(reason.error, KeyValueStore.InvalidInput)
          assert.match((reason.error as KeyValueStore.InvalidInput).message, message)
        }
      }
    }))
})
