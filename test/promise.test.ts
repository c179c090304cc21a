/**
 * The Promise API (`kvlog/promise`): every operation of the store behind a
 * Promise, rejecting with the very tagged errors the Effect API fails with;
 * open rejects when a log cannot open; `close` ends open iterations, lets
 * what was called finish, flushes the log and releases it, and everything
 * called after it rejects with `StoreClosed`.
 *
 * Time is a `TestClock` passed as `clock`: no test waits for real time.
 */
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { KeyValueStore } from "../src/index.ts"
import {
  type FileOps,
  InvalidInput,
  KeyNotFound,
  LogCorrupted,
  LogLocked,
  maxKeyLength,
  openLog,
  openMemory,
  StorageError,
  type Store,
  StoreClosed
} from "../src/promise.ts"

// =============================================================================
// Helpers
// =============================================================================

const directories: Array<string> = []

afterEach(() => {
  for (const directory of directories.splice(0)) fs.rmSync(directory, { recursive: true, force: true })
})

/** The path of a log in a fresh directory, removed after the test. */
const freshLogPath = (): string => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-promise-"))
  directories.push(directory)
  return path.join(directory, "store.log")
}

/** A `TestClock` at the epoch, driven by `adjust`. */
const makeTestClock = (): Promise<TestClock.TestClock> => Effect.runPromise(Effect.scoped(TestClock.make()))

const adjust = (clock: TestClock.TestClock, millis: number): Promise<void> => Effect.runPromise(clock.adjust(millis))

/** What `promise` rejected with; fails the test if it resolved. */
const rejectionOf = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    const value = await promise
    throw new Error(`expected a rejection, got ${String(value)}`)
  } catch (error) {
    return error
  }
}

/** Every live entry, through `entries()`, sorted by key. */
const allEntries = async (store: Store): Promise<Array<readonly [string, KeyValueStore.Value]>> => {
  const entries: Array<readonly [string, KeyValueStore.Value]> = []
  for await (const entry of store.entries()) entries.push(entry)
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** A promise and whether it has settled yet. */
const track = <A>(promise: Promise<A>) => {
  const state = { settled: false, promise }
  promise.then(() => (state.settled = true), () => (state.settled = true))
  return state
}

// =============================================================================
// Operations
// =============================================================================

describe("every operation of an in-memory store, through Promises", () => {
  it("put resolves with the value, get gives it back, has and size see it, delete removes it", async () => {
    const store = await openMemory()
    expect(await store.put("foo", "bar")).toBe("bar")
    expect(await store.get("foo")).toBe("bar")
    expect(await store.has("foo")).toBe(true)
    expect(await store.size()).toBe(1)
    expect(await store.delete("foo")).toBeUndefined()
    expect(await store.has("foo")).toBe(false)
    expect(await store.size()).toBe(0)
    await store.close()
  })

  it("a Uint8Array value comes back with the same bytes, as a copy on the way in and out", async () => {
    const store = await openMemory()
    const bytes = new Uint8Array([1, 2, 3])
    await store.put("bytes", bytes)
    bytes[0] = 99
    const got = await store.get("bytes")
    expect(got).toEqual(new Uint8Array([1, 2, 3]))
    ;(got as Uint8Array)[1] = 99
    expect(await store.get("bytes")).toEqual(new Uint8Array([1, 2, 3]))
    await store.close()
  })

  it("keys is a snapshot of the live keys, clear removes every key", async () => {
    const store = await openMemory()
    await Promise.all(["a", "b", "c"].map((key) => store.put(key, key.toUpperCase())))
    expect([...(await store.keys())].sort()).toEqual(["a", "b", "c"])
    await store.clear()
    expect(await store.keys()).toEqual([])
    expect(await store.size()).toBe(0)
    await store.close()
  })

  it("entries yields every live entry, bytes included", async () => {
    const store = await openMemory()
    await store.put("a", "1")
    await store.put("b", new Uint8Array([7]))
    expect(await allEntries(store)).toEqual([["a", "1"], ["b", new Uint8Array([7])]])
    await store.close()
  })

  it("writeStatus is Writable, compact resolves, stats counts what is stored", async () => {
    const store = await openMemory()
    await store.put("a", "1")
    await store.put("b", "2", { duration: 60_000 })
    expect(await store.writeStatus()).toEqual({ _tag: "Writable" })
    expect(await store.compact()).toBeUndefined()
    const stats = await store.stats()
    expect(stats.storedEntries).toBe(2)
    expect(stats.entriesWithDeadline).toBe(1)
    expect(stats.reclaimed).toBe(0)
    expect(stats.log).toBeUndefined()
    await store.close()
  })

  it("the methods are bound: they work taken off the store", async () => {
    const store = await openMemory()
    const { put, get } = store
    await put("k", "v")
    expect(await get("k")).toBe("v")
    await store.close()
  })
})

describe("TTL, on a TestClock passed as clock", () => {
  it("timeToLive is the milliseconds left, undefined for a key kept until deleted", async () => {
    const clock = await makeTestClock()
    const store = await openMemory({ clock })
    await store.put("ttl", "v", { duration: 1_000 })
    await store.put("kept", "v")
    expect(await store.timeToLive("ttl")).toBe(1_000)
    expect(await store.timeToLive("kept")).toBeUndefined()
    await adjust(clock, 250)
    expect(await store.timeToLive("ttl")).toBe(750)
    await store.put("ttl", "v") // a put without a duration clears the TTL
    expect(await store.timeToLive("ttl")).toBeUndefined()
    await store.close()
  })

  it("get succeeds 1 ms before the deadline and rejects with KeyNotFound at it", async () => {
    const clock = await makeTestClock()
    const store = await openMemory({ clock })
    await store.put("k", "v", { duration: 1_000 })
    await adjust(clock, 999)
    expect(await store.get("k")).toBe("v")
    await adjust(clock, 1)
    const error = await rejectionOf(store.get("k"))
    expect(error).toBeInstanceOf(KeyNotFound)
    expect(await rejectionOf(store.timeToLive("k"))).toBeInstanceOf(KeyNotFound)
    expect(await store.has("k")).toBe(false)
    await store.close()
  })

  it("the reaper reclaims an expired key once the clock passes its deadline, and onReclaim sees it", async () => {
    const clock = await makeTestClock()
    let reclaimed!: (event: { key: string; deadline: number }) => void
    const onReclaim = new Promise<{ key: string; deadline: number }>((resolve) => (reclaimed = resolve))
    const store = await openMemory({ clock, onReclaim: (key, deadline) => reclaimed({ key, deadline }) })
    await store.put("k", "v", { duration: 500 })
    expect((await store.stats()).storedEntries).toBe(1)
    await adjust(clock, 500)
    expect(await onReclaim).toEqual({ key: "k", deadline: 500 })
    const stats = await store.stats()
    expect(stats.storedEntries).toBe(0)
    expect(stats.reclaimed).toBe(1)
    await store.close()
  })

  it("a log keeps each key's deadline across close and reopen", async () => {
    const logPath = freshLogPath()
    const clock = await makeTestClock()
    const first = await openLog({ path: logPath, clock })
    await first.put("k", "v", { duration: 1_000 })
    await first.close()
    await adjust(clock, 400)
    const reopened = await openLog({ path: logPath, clock })
    expect(await reopened.timeToLive("k")).toBe(600)
    await adjust(clock, 600)
    expect(await rejectionOf(reopened.get("k"))).toBeInstanceOf(KeyNotFound)
    await reopened.close()
  })
})

// =============================================================================
// Errors
// =============================================================================

describe("rejections are the Effect API's own tagged errors", () => {
  it("get of a missing key rejects with KeyNotFound: instanceof, _tag, key and message, no wrapper", async () => {
    const store = await openMemory()
    const error = await rejectionOf(store.get("missing"))
    expect(error).toBeInstanceOf(KeyNotFound)
    expect(error).toBeInstanceOf(KeyValueStore.KeyNotFound)
    expect(error).toBeInstanceOf(Error)
    expect(Object.getPrototypeOf(error)).toBe(KeyNotFound.prototype)
    const notFound = error as KeyNotFound
    expect(notFound._tag).toBe("KeyNotFound")
    expect(notFound.key).toBe("missing")
    expect(notFound.message).toBe("key not found: \"missing\"")
    const deleteError = await rejectionOf(store.delete("missing"))
    expect(deleteError).toBeInstanceOf(KeyNotFound)
    expect((deleteError as KeyNotFound).key).toBe("missing")
    await store.close()
  })

  it.each([
    { label: "a lone surrogate", key: "a\uD800", message: /lone UTF-16 surrogate/ },
    { label: "a key over maxKeyLength", key: "k".repeat(maxKeyLength + 1), message: /over the limit/ },
    { label: "a number", key: 42 as unknown as string, message: /key must be a string, got number 42/ }
  ])("a bad key ($label) rejects with InvalidInput from every keyed operation, the store unchanged", async ({ key, message }) => {
    const store = await openMemory()
    await store.put("kept", "v")
    for (
      const call of [
        () => store.get(key),
        () => store.put(key, "x"),
        () => store.delete(key),
        () => store.has(key),
        () => store.timeToLive(key)
      ]
    ) {
      const error = await rejectionOf(call())
      expect(error).toBeInstanceOf(InvalidInput)
      expect((error as InvalidInput)._tag).toBe("InvalidInput")
      expect((error as InvalidInput).message).toMatch(message)
    }
    expect(await store.keys()).toEqual(["kept"])
    await store.close()
  })

  it.each([
    { label: "a value that is a number", value: 1 as unknown as string, options: undefined, message: /value must be a string or a Uint8Array/ },
    { label: "a zero duration", value: "v", options: { duration: 0 }, message: /duration must be positive/ },
    { label: "a NaN duration", value: "v", options: { duration: Number.NaN }, message: /duration must not be NaN/ }
  ])("put of $label rejects with InvalidInput and leaves the key as it was", async ({ value, options, message }) => {
    const store = await openMemory()
    await store.put("k", "before")
    const error = await rejectionOf(store.put("k", value, options))
    expect(error).toBeInstanceOf(InvalidInput)
    expect((error as InvalidInput).message).toMatch(message)
    expect(await store.get("k")).toBe("before")
    expect(await store.timeToLive("k")).toBeUndefined()
    await store.close()
  })

  it("a defect rejects with the very value that was thrown", async () => {
    const clock = await makeTestClock()
    const thrown = { defect: "the clock broke" }
    let broken = false
    const store = await openMemory({
      clock: {
        ...clock,
        currentTimeMillisUnsafe: () => {
          if (broken) throw thrown
          return clock.currentTimeMillisUnsafe()
        }
      }
    })
    broken = true
    expect(await rejectionOf(store.put("k", "v", { duration: 1_000 }))).toBe(thrown)
    await store.close()
  })

  it("a failed fdatasync rejects the put with StorageError and turns writeStatus ReadOnly", async () => {
    let failSync = false
    const fileOps: FileOps = {
      datasync: (fd) => {
        if (failSync) throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" })
        fs.fdatasyncSync(fd)
      }
    }
    const store = await openLog({ path: freshLogPath(), fileOps })
    await store.put("before", "kept")
    failSync = true
    const error = await rejectionOf(store.put("k", "v"))
    expect(error).toBeInstanceOf(StorageError)
    expect((error as StorageError)._tag).toBe("StorageError")
    expect((error as StorageError).message).toMatch(/EIO/)
    const status = await store.writeStatus()
    expect(status._tag).toBe("ReadOnly")
    expect(await store.get("before")).toBe("kept")
    await store.close()
  })
})

// =============================================================================
// Opening a log
// =============================================================================

describe("openLog rejects when the log cannot open", () => {
  it("a second openLog of an open log rejects with LogLocked, path and owner; the first store goes on", async () => {
    const logPath = freshLogPath()
    const first = await openLog({ path: logPath })
    await first.put("k", "v")
    const error = await rejectionOf(openLog({ path: logPath }))
    expect(error).toBeInstanceOf(LogLocked)
    const locked = error as LogLocked
    expect(locked._tag).toBe("LogLocked")
    expect(locked.path).toBe(logPath)
    expect(locked.owner).toMatch(/this process/)
    expect(locked.message).toContain(logPath)
    expect(await first.get("k")).toBe("v")
    await first.close()
  })

  it("a file that is not a log rejects with LogCorrupted at offset 0, the file untouched and the log not left locked", async () => {
    const logPath = freshLogPath()
    const bytes = Buffer.from("hello, this is not a kvlog log at all\n")
    fs.writeFileSync(logPath, bytes)
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await rejectionOf(openLog({ path: logPath }))
      expect(error).toBeInstanceOf(LogCorrupted)
      const corrupted = error as LogCorrupted
      expect(corrupted._tag).toBe("LogCorrupted")
      expect(corrupted.path).toBe(logPath)
      expect(corrupted.offset).toBe(0)
      expect(corrupted.reason.length).toBeGreaterThan(0)
    }
    expect(fs.readFileSync(logPath).equals(bytes)).toBe(true)
    expect(fs.existsSync(`${logPath}.lock`)).toBe(false)
  })

  it.each([
    { label: "an empty path", options: { path: "" }, message: /path must be a non-empty string/ },
    { label: "an unknown fsync policy", options: { fsync: "sometimes" }, message: /fsync must be/ },
    { label: "null options", options: null, message: /openLog options must be an object, got null/ },
    { label: "a clock that is not a Clock", options: { clock: { now: () => 0 } }, message: /clock must be an Effect Clock/ }
  ])("$label rejects with InvalidInput and creates no file", async ({ options, message }) => {
    const logPath = freshLogPath()
    const given = options === null ? null : { path: logPath, ...options }
    const error = await rejectionOf(openLog(given as unknown as Parameters<typeof openLog>[0]))
    expect(error).toBeInstanceOf(InvalidInput)
    expect((error as InvalidInput).message).toMatch(message)
    expect(fs.readdirSync(path.dirname(logPath))).toEqual([])
  })

  it("openMemory rejects options that are not an object, and a clock that is not a Clock, with InvalidInput", async () => {
    const notObject = await rejectionOf(openMemory("fast" as unknown as Parameters<typeof openMemory>[0]))
    expect(notObject).toBeInstanceOf(InvalidInput)
    expect((notObject as InvalidInput).message).toMatch(/openMemory options must be an object, got string/)
    const badClock = await rejectionOf(openMemory({ clock: Date as unknown as TestClock.TestClock }))
    expect(badClock).toBeInstanceOf(InvalidInput)
  })
})

// =============================================================================
// A log through Promises
// =============================================================================

describe("a log through Promises", () => {
  it("data survives close and reopen", async () => {
    const logPath = freshLogPath()
    const first = await openLog({ path: logPath })
    await first.put("a", "1")
    await first.put("b", new Uint8Array([2]))
    await first.put("gone", "x")
    await first.delete("gone")
    await first.close()
    const reopened = await openLog({ path: logPath })
    expect(await allEntries(reopened)).toEqual([["a", "1"], ["b", new Uint8Array([2])]])
    await reopened.close()
  })

  it("await using closes the store at the end of the block: a second open of the log succeeds after it", async () => {
    const logPath = freshLogPath()
    {
      await using store = await openLog({ path: logPath })
      await store.put("k", "v")
      expect(await rejectionOf(openLog({ path: logPath }))).toBeInstanceOf(LogLocked)
    }
    await using reopened = await openLog({ path: logPath })
    expect(await reopened.get("k")).toBe("v")
  })

  it("concurrent puts from Promise.all are all applied, and all survive a reopen", async () => {
    const logPath = freshLogPath()
    const store = await openLog({ path: logPath, fsync: "always" })
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`)
    const values = await Promise.all(keys.map((key) => store.put(key, `value of ${key}`)))
    expect(values).toEqual(keys.map((key) => `value of ${key}`))
    expect(await store.size()).toBe(keys.length)
    expect((await store.stats()).log?.records).toBe(keys.length)
    await store.close()
    const reopened = await openLog({ path: logPath })
    expect(await reopened.size()).toBe(keys.length)
    for (const key of keys) expect(await reopened.get(key)).toBe(`value of ${key}`)
    await reopened.close()
  })

  it("compact rewrites the log to its live entries and stats reports it", async () => {
    const store = await openLog({ path: freshLogPath(), compaction: { auto: false } })
    for (let round = 0; round < 5; round++) await Promise.all(["a", "b"].map((key) => store.put(key, `${round}`)))
    expect((await store.stats()).log?.records).toBe(10)
    await store.compact()
    const log = (await store.stats()).log
    expect(log?.records).toBe(2)
    expect(log?.lastCompaction?.recordsBefore).toBe(10)
    expect(await store.get("a")).toBe("4")
    await store.close()
  })
})

// =============================================================================
// Closing
// =============================================================================

describe("close", () => {
  it("is idempotent: every call returns the same Promise, and asyncDispose after it is harmless", async () => {
    const store = await openLog({ path: freshLogPath() })
    const first = store.close()
    const second = store.close()
    expect(second).toBe(first)
    await first
    await store[Symbol.asyncDispose]()
    expect(store.close()).toBe(first)
  })

  it("every operation called after close rejects with StoreClosed naming it, while closing and once closed", async () => {
    const store = await openMemory()
    await store.put("k", "v")
    const closing = store.close()
    const calls: ReadonlyArray<readonly [string, () => Promise<unknown>]> = [
      ["get", () => store.get("k")],
      ["put", () => store.put("k", "w")],
      ["delete", () => store.delete("k")],
      ["has", () => store.has("k")],
      ["timeToLive", () => store.timeToLive("k")],
      ["size", () => store.size()],
      ["keys", () => store.keys()],
      ["clear", () => store.clear()],
      ["compact", () => store.compact()],
      ["stats", () => store.stats()],
      ["writeStatus", () => store.writeStatus()],
      ["entries", () => store.entries()[Symbol.asyncIterator]().next()]
    ]
    // Refused while the close is still under way, and after it.
    for (const when of ["closing", "closed"]) {
      for (const [operation, call] of calls) {
        const error = await rejectionOf(call())
        expect(error, `${operation} when ${when}`).toBeInstanceOf(StoreClosed)
        const closed = error as StoreClosed
        expect(closed._tag).toBe("StoreClosed")
        expect(closed.operation).toBe(operation)
        expect(closed.message).toBe(`the store is closed: ${operation} refused`)
        expect(closed).toBeInstanceOf(Error)
      }
      await closing
    }
  })

  it("writes in flight when close is called are completed and flushed, not interrupted", async () => {
    const logPath = freshLogPath()
    const store = await openLog({ path: logPath, fsync: "always" })
    const puts = Array.from({ length: 100 }, (_, i) => track(store.put(`k${i}`, `v${i}`)))
    await store.close()
    expect(puts.every((put) => put.settled)).toBe(true)
    expect(await Promise.all(puts.map((put) => put.promise))).toEqual(puts.map((_, i) => `v${i}`))
    const reopened = await openLog({ path: logPath })
    expect(await reopened.size()).toBe(100)
    await reopened.close()
  })
})

// =============================================================================
// entries and the read lock
// =============================================================================

describe("entries holds the read lock while it is iterated", () => {
  it("a put waits for an open iteration and completes once it is left with break", async () => {
    const store = await openMemory()
    await Promise.all(["a", "b", "c"].map((key) => store.put(key, "v")))
    const seen: Array<string> = []
    let put: ReturnType<typeof track<KeyValueStore.Value>> | undefined
    for await (const [key] of store.entries()) {
      seen.push(key)
      if (put === undefined) {
        put = track(store.put("new", "w"))
        // Reads take no lock while no writer holds it: the put, waiting, is not applied.
        expect(await store.has("new")).toBe(false)
        expect(put.settled).toBe(false)
        break
      }
    }
    expect(seen.length).toBe(1)
    expect(await put!.promise).toBe("w")
    expect(await store.get("new")).toBe("w")
    await store.close()
  }, 10_000)

  it("a put waiting for an iteration completes after the iteration ends by itself", async () => {
    const store = await openMemory()
    await store.put("a", "v")
    const iterator = store.entries()[Symbol.asyncIterator]()
    expect((await iterator.next()).value).toEqual(["a", "v"])
    const put = track(store.put("b", "w"))
    expect(await store.has("b")).toBe(false)
    expect(put.settled).toBe(false)
    expect((await iterator.next()).done).toBe(true)
    expect(await put.promise).toBe("w")
    await store.close()
  }, 10_000)

  it("close ends an open iteration: its next() rejects with StoreClosed, and the put that waited for it completes", async () => {
    const store = await openMemory()
    await Promise.all(["a", "b"].map((key) => store.put(key, "v")))
    const iterator = store.entries()[Symbol.asyncIterator]()
    await iterator.next()
    const put = track(store.put("c", "w"))
    expect(await store.has("c")).toBe(false)
    await store.close()
    expect(put.settled).toBe(true)
    expect(await put.promise).toBe("w")
    const error = await rejectionOf(iterator.next())
    expect(error).toBeInstanceOf(StoreClosed)
    expect((error as StoreClosed).operation).toBe("entries")
  }, 10_000)

  it("an iteration whose first next() waits for the lock when the store closes rejects with StoreClosed, not done", async () => {
    const store = await openMemory()
    await store.put("a", "v")
    const holding = store.entries()[Symbol.asyncIterator]()
    await holding.next()
    const put = track(store.put("b", "w"))
    // A writer is waiting: a new iteration queues behind it for the read lock.
    const waiting = track(store.entries()[Symbol.asyncIterator]().next())
    expect(await store.has("b")).toBe(false)
    expect(waiting.settled).toBe(false)
    await store.close()
    expect(await put.promise).toBe("w")
    const error = await rejectionOf(waiting.promise)
    expect(error).toBeInstanceOf(StoreClosed)
    expect((error as StoreClosed).operation).toBe("entries")
  }, 10_000)
})

describe("changes, through an async iterator", () => {
  it("yields puts, deletes, expiries and clears in order, and ends when the store closes", async () => {
    const clock = await makeTestClock()
    const store = await openMemory({ clock, name: "watched" })
    expect(store.name).toBe("watched")
    const seen: Array<unknown> = []
    const iterator = store.changes()[Symbol.asyncIterator]()
    // The subscription starts with the first next(): start it, then write.
    const first = iterator.next()
    const collected = (async () => {
      let result = await first
      while (result.done !== true) {
        seen.push(result.value)
        result = await iterator.next()
      }
    })()
    // Until the first pull has subscribed, a write is not seen: probe until one is.
    for (let probes = 0; seen.length === 0; probes++) {
      expect(probes).toBeLessThan(1_000)
      await store.put("probe", "p")
      await new Promise((resolve) => setImmediate(resolve))
    }
    const probes = seen.length
    await store.put("a", "1", { duration: 100 })
    await store.delete("probe")
    await adjust(clock, 100)
    await store.clear()
    await store.close()
    await collected
    expect(seen.slice(probes)).toEqual([
      { _tag: "Put", key: "a", deadline: 100 },
      { _tag: "Delete", key: "probe" },
      { _tag: "Expired", key: "a", deadline: 100, reclaimedAt: 100, lateMillis: 0 },
      { _tag: "Cleared" }
    ])
  })

  it("a bufferSize below 2 rejects the first next() with InvalidInput, not a wrapper", async () => {
    const store = await openMemory()
    const error = await rejectionOf(store.changes({ bufferSize: 1 })[Symbol.asyncIterator]().next())
    expect(error).toBeInstanceOf(InvalidInput)
    expect((error as InvalidInput).message).toMatch(/bufferSize/)
    await store.close()
  })

  it("after close, changes() rejects with StoreClosed", async () => {
    const store = await openMemory()
    await store.close()
    const error = await rejectionOf(store.changes()[Symbol.asyncIterator]().next())
    expect(error).toBeInstanceOf(StoreClosed)
    expect((error as StoreClosed).operation).toBe("changes")
  })
})

