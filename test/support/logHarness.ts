/**
 * What the log tests share: fresh temporary directories, opening a store for
 * the length of one effect, reading a store's whole state, the record
 * boundaries of a log file (read independently of the decoder), file
 * operations that fail on demand, and child processes that speak in lines.
 */
import { assert } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { KeyValueStore } from "../../src/index.ts"

// =============================================================================
// Files
// =============================================================================

/** A fresh directory under the system's temporary directory, removed when the scope closes. */
export const tempDirectory = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), `kvlog-${prefix}-`))),
    (directory) => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true }))
  )

/** The path of a log in a fresh temporary directory (the log itself does not exist yet). */
export const freshLogPath = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.map(tempDirectory(prefix), (directory) => path.join(directory, "store.log"))

/** Opens a store on `options`, runs `use` with it, and closes it (flush, sync, release). */
export const withLogStore = <A, E>(
  options: KeyValueStore.LogOptions,
  use: (store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>
): Effect.Effect<A, E | KeyValueStore.LogOpenError> => Effect.scoped(Effect.flatMap(KeyValueStore.makeLog(options), use))

/** A store open in a scope of its own, closed (flush, sync, release) by `close`. */
export interface OpenLog {
  readonly store: KeyValueStore.KeyValueStoreService
  readonly close: Effect.Effect<void>
}

/** Opens a store whose lifetime the test controls, to close it at a chosen moment. */
export const openLog = (options: KeyValueStore.LogOptions): Effect.Effect<OpenLog, KeyValueStore.LogOpenError> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const store = yield* Scope.provide(scope)(KeyValueStore.makeLog(options)).pipe(
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    return { store, close: Scope.close(scope, Exit.void) }
  })

/** A value as the tests compare it: its kind and its contents (bytes as hex). */
export type ValueView = `s:${string}` | `b:${string}`

export const viewValue = (value: KeyValueStore.Value): ValueView =>
  typeof value === "string" ? `s:${value}` : `b:${Buffer.from(value).toString("hex")}`

/** The store's live entries, key → value, read one key at a time through `keys` and `get`. */
export const readState = (
  store: KeyValueStore.KeyValueStoreService
): Effect.Effect<Map<string, ValueView>, KeyValueStore.KeyNotFound | KeyValueStore.InvalidInput> =>
  Effect.gen(function*() {
    const state = new Map<string, ValueView>()
    for (const key of yield* store.keys) state.set(key, viewValue(yield* store.get(key)))
    return state
  })

/** Opens the log at `logPath`, reads its whole state, and closes it again. */
export const stateOfLog = (
  logPath: string,
  options: Partial<KeyValueStore.LogOptions> = {}
): Effect.Effect<Map<string, ValueView>, KeyValueStore.LogOpenError | KeyValueStore.KeyNotFound> =>
  withLogStore({ path: logPath, compaction: { auto: false }, ...options }, readState)

/** Asserts that two states hold the same keys with the same values (order aside). */
export const assertSameState = (
  actual: ReadonlyMap<string, ValueView>,
  expected: ReadonlyMap<string, ValueView>,
  context = ""
): void => {
  const sorted = (state: ReadonlyMap<string, ValueView>) => [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  assert.deepStrictEqual(sorted(actual), sorted(expected), context)
}

/** One whole record of a log file: where it starts and how long it is, its length prefix included. */
export interface RecordSpan {
  readonly offset: number
  readonly length: number
  /** The offset of the batch that holds it. */
  readonly batch: number
}

/**
 * The records of a log file, by the lengths in its batch headers and record
 * prefixes alone: read straight from `docs/log-format.md` (a 20-byte file
 * header; batches of a 32-byte header, whose first u32 is the records'
 * length and second their count, then records of a u32 length and a
 * payload), not through the decoder under test. Stops at the first batch
 * whose lengths do not add up (the zeros the log grows into, or the end).
 */
export const recordSpans = (bytes: Uint8Array): Array<RecordSpan> => {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const spans: Array<RecordSpan> = []
  let batch = 20
  while (batch + 32 <= view.length) {
    const length = view.readUInt32LE(batch)
    const count = view.readUInt32LE(batch + 4)
    const end = batch + 32 + length
    if (length === 0 || count === 0 || end > view.length) break
    const inBatch: Array<RecordSpan> = []
    let offset = batch + 32
    while (offset + 4 <= end) {
      const payload = view.readUInt32LE(offset)
      if (offset + 4 + payload > end) break
      inBatch.push({ offset, length: 4 + payload, batch })
      offset += 4 + payload
    }
    if (offset !== end || inBatch.length !== count) break
    spans.push(...inBatch)
    batch = end
  }
  return spans
}

// =============================================================================
// Logs
// =============================================================================

export interface CapturedLogs {
  readonly entries: Array<{ readonly level: string; readonly message: string }>
  /** Provide it to the effect whose logs to capture (instead of the default logger). */
  readonly layer: Layer.Layer<never>
}

/** A logger that keeps every log line, to assert on the warnings a store logs. */
export const captureLogs = (): CapturedLogs => {
  const entries: Array<{ level: string; message: string }> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    entries.push({ level: options.logLevel, message: parts.map(String).join(" ") })
  })
  return { entries, layer: Logger.layer([logger]) }
}

// =============================================================================
// Typed failures
// =============================================================================

/** Runs `effect`, asserts that it failed with a typed error, and gives that error. */
export const typedFailure = <A, E, R>(effect: Effect.Effect<A, E, R>, expected: string): Effect.Effect<E, never, R> =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return assert.fail(`expected ${expected}, got a success`)
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isNone(error)) return assert.fail(`expected ${expected}, got ${Cause.pretty(exit.cause)}`)
    return error.value
  })

/** Runs `effect` and asserts that it fails with `StorageError`; gives its message. */
export const assertStorageError = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<string, never, R> =>
  Effect.map(typedFailure(effect, "StorageError"), (error: unknown) => {
    assert.instanceOf(error, KeyValueStore.StorageError)
    return (error as KeyValueStore.StorageError).message
  })

// =============================================================================
// Disk faults
// =============================================================================

export type FileCall = "write" | "datasync" | "truncate"

/** The error a full disk gives: what `fs.writeSync` throws with `ENOSPC`. */
export const diskFull = (): NodeJS.ErrnoException =>
  Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" })

/** The error a failing disk gives: what `fs.fdatasyncSync` throws with `EIO`. */
export const ioFailure = (syscall: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`EIO: i/o error, ${syscall}`), { code: "EIO", errno: -5, syscall })

export interface FaultyFileOps {
  /** Give these to `LogOptions.fileOps`. */
  readonly ops: KeyValueStore.FileOps
  /** Calls made so far, by kind (failed ones included). */
  readonly calls: Record<FileCall, number>
  /**
   * Makes the next call of `call` for which `when` holds throw `error`, once.
   * `when` sees the bytes of a `write` (empty for the other calls). A failing
   * `write` first writes the first `partially` bytes of its buffer, as a disk
   * that fills up in the middle of a write does.
   */
  readonly failNext: (
    call: FileCall,
    error: Error,
    when?: (bytes: Uint8Array) => boolean,
    partially?: number
  ) => void
  /** Makes every call of `call` throw `error` until `heal`. */
  readonly failAlways: (call: FileCall, error: Error) => void
  readonly heal: () => void
  /** The bytes of every `write` that was made to fail, in order. */
  readonly failedWrites: Array<Uint8Array>
}

/** File operations that do what `node:fs` does, except where a test arms a fault. */
export const makeFaultyFileOps = (): FaultyFileOps => {
  const calls: Record<FileCall, number> = { write: 0, datasync: 0, truncate: 0 }
  type Fault = { call: FileCall; error: Error; when: (bytes: Uint8Array) => boolean; partially: number }
  const once: Array<Fault> = []
  const always = new Map<FileCall, Error>()
  const failedWrites: Array<Uint8Array> = []
  const check = (call: FileCall, bytes: Uint8Array): Fault | undefined => {
    calls[call]++
    const persistent = always.get(call)
    if (persistent !== undefined) return { call, error: persistent, when: () => true, partially: 0 }
    const index = once.findIndex((fault) => fault.call === call && fault.when(bytes))
    return index >= 0 ? once.splice(index, 1)[0] : undefined
  }
  const none = new Uint8Array(0)
  return {
    ops: {
      write: (fd, bytes, position) => {
        const fault = check("write", bytes)
        if (fault !== undefined) {
          failedWrites.push(Uint8Array.prototype.slice.call(bytes))
          const partially = Math.min(fault.partially, bytes.length)
          if (partially > 0) fs.writeSync(fd, bytes, 0, partially, position)
          throw fault.error
        }
        return fs.writeSync(fd, bytes, 0, bytes.length, position)
      },
      datasync: (fd) => {
        const fault = check("datasync", none)
        if (fault !== undefined) throw fault.error
        fs.fdatasyncSync(fd)
      },
      // The same call off the main thread: one kind of call for the tests.
      datasyncInBackground: (fd, done) => {
        const fault = check("datasync", none)
        if (fault !== undefined) return setImmediate(() => done(fault.error))
        fs.fdatasync(fd, done)
      },
      truncate: (fd, length) => {
        const fault = check("truncate", none)
        if (fault !== undefined) throw fault.error
        fs.ftruncateSync(fd, length)
      }
    },
    calls,
    failNext: (call, error, when = () => true, partially = 0) => {
      once.push({ call, error, when, partially })
    },
    failAlways: (call, error) => {
      always.set(call, error)
    },
    heal: () => {
      once.length = 0
      always.clear()
    },
    failedWrites
  }
}

/** Whether `bytes` is all zeros: the space a log grows into, written ahead of its records. */
export const isAllZeros = (bytes: Uint8Array): boolean => bytes.every((byte) => byte === 0)

// =============================================================================
// Child processes
// =============================================================================

const projectRoot = path.resolve(import.meta.dirname, "../..")

/**
 * A Node that runs `.ts` files as they are (type stripping): this process's
 * own Node if it can (it does under `npm test`, where `node` is the pinned
 * Node 24), else the pinned one from `node_modules/.bin`.
 */
export const nodeForTypeScript = (): string => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  if (major >= 24 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)) return process.execPath
  return path.join(projectRoot, "node_modules", ".bin", "node")
}

/** A child process whose stdout is read line by line. */
export interface LineChild {
  readonly pid: number
  /** Every complete line the child has printed so far. */
  readonly lines: Array<string>
  /** Resolves with the first line that `predicate` accepts (rejects if the child exits first). */
  readonly waitForLine: (predicate: (line: string) => boolean) => Promise<string>
  /** Resolves once the child has exited and its stdout is fully read. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>
  readonly kill: (signal: NodeJS.Signals) => void
}

/**
 * Lines of text arriving in chunks: each whole line is kept, handed to
 * `onLine`, and resolves the waiters whose predicate it meets; `end` fails
 * the waiters left, with `reason`.
 */
export const makeLineFeed = (onLine: (line: string) => void) => {
  const lines: Array<string> = []
  const waiters: Array<{ predicate: (line: string) => boolean; resolve: (line: string) => void; reject: (e: Error) => void }> = []
  let partial = ""
  let ended: string | undefined
  return {
    lines,
    push: (text: string) => {
      const parts = (partial + text).split("\n")
      partial = parts.pop()!
      for (const line of parts) {
        lines.push(line)
        onLine(line)
        for (let i = 0; i < waiters.length; i++) {
          if (waiters[i].predicate(line)) {
            waiters[i].resolve(line)
            waiters.splice(i--, 1)
          }
        }
      }
    },
    waitFor: (predicate: (line: string) => boolean, stderr: () => string): Promise<string> => {
      const seen = lines.find(predicate)
      if (seen !== undefined) return Promise.resolve(seen)
      if (ended !== undefined) return Promise.reject(new Error(`${ended} before the line was printed; stderr:\n${stderr()}`))
      return new Promise((resolve, reject) => waiters.push({ predicate, resolve, reject }))
    },
    end: (reason: string, stderr: string) => {
      ended = reason
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(`${reason} before the line was printed; stderr:\n${stderr}`))
    }
  }
}

/**
 * Starts `node <script> ...args` and reads its stdout line by line.
 * `onLine` runs for every line, in order, as it arrives.
 */
export const spawnLineChild = (
  script: string,
  args: ReadonlyArray<string>,
  onLine: (line: string, child: LineChild) => void = () => {}
): LineChild => {
  const child = childProcess.spawn(nodeForTypeScript(), [script, ...args], {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stderr = ""
  const feed = makeLineFeed((line) => onLine(line, self))
  const self: LineChild = {
    pid: child.pid!,
    lines: feed.lines,
    waitForLine: (predicate) => feed.waitFor(predicate, () => stderr),
    closed: new Promise((resolve) => {
      child.on("close", (code, signal) => {
        feed.end(`child exited (${code ?? signal})`, stderr)
        resolve({ code, signal, stderr })
      })
    }),
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    }
  }
  child.stdout.setEncoding("utf8")
  child.stdout.on("data", feed.push)
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk
  })
  return self
}

export { seededRandom } from "./seededRandom.ts"
