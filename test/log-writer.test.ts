/**
 * The log writers keep serving whatever a batch meets. The store validates
 * every argument before a writer sees it, so these tests reach past that
 * door, to the writers themselves, with records the encoder refuses (a
 * defect): the write fails alone with `StorageError`, the writes around it
 * are committed, and the writer serves the next batch.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Semaphore from "effect/Semaphore"
import * as fs from "node:fs"
import * as path from "node:path"
import { StorageError } from "../src/internal/errors.ts"
import { nodeFileOps, writeFully } from "../src/internal/log/file/FileOps.ts"
import { emptyLogState, LogFile } from "../src/internal/log/file/LogFile.ts"
import { encodeFileHeader, newSalt } from "../src/internal/log/format/LogFormat.ts"
import { startBufferedWriter } from "../src/internal/log/write/BufferedWriter.ts"
import { type LogWriter, startLogWriter } from "../src/internal/log/write/LogWriter.ts"
import { makeCore, type StoreCore } from "../src/internal/store/makeStore.ts"
import { recordSpans, stateOfLog, tempDirectory } from "./support/logHarness.ts"

/** A fresh log file, a store core and a writer of `kind` over them, in the current scope. */
const writerOn = (kind: "always" | "never" | "buffered", directory: string) =>
  Effect.gen(function*() {
    const logPath = path.join(directory, "store.log")
    const fd = nodeFileOps.createExclusive(logPath)
    const state = emptyLogState(newSalt())
    writeFully(nodeFileOps, fd, encodeFileHeader(state.salt), 0)
    const file = new LogFile(logPath, nodeFileOps, fd, state)
    yield* Effect.addFinalizer(() => Effect.sync(() => file.close()))
    const core: StoreCore = yield* makeCore({})
    const logMutex = Semaphore.makeUnsafe(1)
    const writer: LogWriter = kind === "buffered"
      ? yield* startBufferedWriter(core, file, { syncEveryMillis: undefined, logMutex, afterBatch: () => {} })
      : yield* startLogWriter(core, file, { policy: kind, syncEveryMillis: 1000, logMutex, afterBatch: () => {} })
    return { core, writer, logPath }
  })

/** A key the encoder refuses: a lone surrogate has no UTF-8 form. */
const unencodable = "user\uD800"

describe("a log writer that meets a defect", () => {
  it.effect.each(["always", "never", "buffered"] as const)(
    "%s: fails that write alone with StorageError, commits the writes around it, and goes on serving",
    (kind) =>
      Effect.scoped(Effect.gen(function*() {
        const { core, logPath, writer } = yield* writerOn(kind, yield* tempDirectory("writer"))
        const exits = yield* Effect.forEach(
          ["before", unencodable, "after"],
          (key) => Effect.exit(writer.put(key, `v-${key}`, `v-${key}`, Infinity)),
          { concurrency: "unbounded" }
        )
        assert.isTrue(Exit.isSuccess(exits[0]), "the write before the defect failed")
        assert.isTrue(Exit.isSuccess(exits[2]), "the write after the defect failed")
        assert.isTrue(Exit.isFailure(exits[1]), "the unencodable write succeeded")
        const failure = Exit.isFailure(exits[1]) ? Cause.findErrorOption(exits[1].cause) : undefined
        assert.instanceOf(failure?._tag === "Some" ? failure.value : undefined, StorageError, "not a typed StorageError")
        // Still serving: a later write is committed and applied.
        yield* writer.put("later", "v-later", "v-later", Infinity)
        assert.strictEqual(core.index.lookup("later", () => 0), "v-later")
        assert.isUndefined(core.index.lookup(unencodable, () => 0))
        yield* writer.drain
        assert.strictEqual(recordSpans(fs.readFileSync(logPath)).length, 3)
      }))
  )

  it.effect("the log it leaves replays to exactly the committed writes", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory("writer")
      const logPath = yield* Effect.scoped(Effect.gen(function*() {
        const { logPath, writer } = yield* writerOn("always", directory)
        yield* Effect.exit(writer.put(unencodable, "x", "x", Infinity))
        yield* writer.put("kept", "v", "v", Infinity)
        return logPath
      }))
      assert.deepStrictEqual(yield* stateOfLog(logPath), new Map([["kept", "s:v"]]))
    }))
})
