/**
 * The `kvlog` command, end to end: each test spawns the bin the way a user
 * does, on real logs written by the store, and checks what it prints, its
 * exit code, and what it leaves on disk.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TestClock } from "effect/testing"
import { ExitCode } from "../src/cli/Commands.ts"
import { KeyValueStore } from "../src/index.ts"
import { progressMinBytes } from "../src/cli/Terminal.ts"
import { nodeForTypeScript, recordSpans, spawnLineChild, stateOfLog, viewValue } from "./support/logHarness.ts"
import { assertVerifyAgreesWithOpen } from "./support/verifyAgreement.ts"

const root = path.resolve(import.meta.dirname, "..")
const bin = path.join(root, "src", "cli", "bin.ts")
const holder = path.join(root, "test", "fixtures", "hold-log.ts")

interface Run {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
  /** stdout as text. */
  readonly out: string
}

/** Runs `kvlog ...args` in `cwd` with `input` on stdin (empty by default). */
const kvlog = (args: ReadonlyArray<string>, options: { readonly input?: string | Uint8Array; readonly cwd?: string } = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = childProcess.spawn(nodeForTypeScript(), [bin, ...args], {
      cwd: options.cwd ?? root,
      stdio: ["pipe", "pipe", "pipe"]
    })
    const stdout: Array<Buffer> = []
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (chunk: string) => (stderr += chunk))
    child.on("error", reject)
    child.on("close", (code) => {
      const bytes = Buffer.concat(stdout)
      resolve({ code, stdout: bytes, stderr, out: bytes.toString("utf8") })
    })
    child.stdin.on("error", () => {}) // a command that does not read stdin may exit first
    child.stdin.end(options.input ?? "")
  })

/** The one line a failure prints. */
const assertOneLineError = (run: Run, code: number, ...fragments: ReadonlyArray<string>): void => {
  const context = `exit ${run.code}, stderr ${JSON.stringify(run.stderr)}`
  assert.strictEqual(run.code, code, context)
  assert.match(run.stderr, /^kvlog: [^\n]+\n$/, `not one line: ${context}`)
  assert.notInclude(run.stderr, "    at ", `a stack trace: ${context}`)
  for (const fragment of fragments) assert.include(run.stderr, fragment, context)
}

const jsonLines = (text: string): Array<Record<string, unknown>> =>
  text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Record<string, unknown>)

const tempDirs: Array<string> = []
const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-cli-"))
  tempDirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

type Write =
  | { readonly put: string; readonly value: KeyValueStore.Value; readonly ttl?: number }
  | { readonly del: string }

/** Writes through a real store, one synced batch a write, on the live clock. */
const writeLog = (logPath: string, writes: ReadonlyArray<Write>): Promise<void> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const store = yield* KeyValueStore.makeLog({ path: logPath, fsync: "always", compaction: { auto: false } })
    for (const write of writes) {
      if ("put" in write) yield* store.put(write.put, write.value, write.ttl === undefined ? {} : { duration: write.ttl })
      else yield* store.delete(write.del)
    }
  })))

const fileBytes = (file: string): Buffer => fs.readFileSync(file)

describe("kvlog --help and --version", () => {
  it("lists every command, and prints the package's version", async () => {
    const [help, version] = await Promise.all([kvlog(["--help"]), kvlog(["--version"])])
    assert.strictEqual(help.code, 0, help.stderr)
    for (const command of ["stats", "verify", "dump", "load", "get", "put", "del", "compact", "repair"]) {
      assert.match(help.out, new RegExp(`^  ${command} `, "m"), `${command} missing from --help`)
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }
    assert.strictEqual(version.code, 0)
    assert.include(version.out, pkg.version)
  })

  it("a wrong command line is one line on stderr and exit code 2", async () => {
    const [missing, unknown, bogus] = await Promise.all([kvlog(["verify"]), kvlog(["frob"]), kvlog(["stats", "--bogus", "x.log"])])
    assertOneLineError(missing, ExitCode.Usage, "Missing required argument: log", "kvlog verify --help")
    assertOneLineError(unknown, ExitCode.Usage, "frob")
    assertOneLineError(bogus, ExitCode.Usage, "--bogus")
  })
})

describe("an empty log", () => {
  it("stats counts nothing, verify is clean, dump prints nothing, get finds nothing", async () => {
    const dir = tempDir()
    const log = path.join(dir, "empty.log")
    await writeLog(log, [])
    const before = fileBytes(log)
    const [stats, verify, dump, get] = await Promise.all([
      kvlog(["stats", "--json", log]),
      kvlog(["verify", log]),
      kvlog(["dump", log]),
      kvlog(["get", log, "k"])
    ])
    assert.strictEqual(stats.code, 0, stats.stderr)
    const s = JSON.parse(stats.out)
    assert.deepInclude(s, { formatVersion: 2, fileBytes: 20, records: 0, liveKeys: 0, expiredKeys: 0, lastRecordOffset: null })
    assert.strictEqual(verify.code, ExitCode.Ok, verify.stderr)
    assert.include(verify.out, "clean: 0 records")
    assert.strictEqual(verify.stderr, "")
    assert.strictEqual(dump.code, 0)
    assert.strictEqual(dump.out, "")
    assertOneLineError(get, ExitCode.Failed, 'key not found: "k"')
    assert.isTrue(fileBytes(log).equals(before), "a read-only command changed the log")
  })

  it("a log that does not exist is an error, and reading commands do not create it", async () => {
    const dir = tempDir()
    const log = path.join(dir, "absent.log")
    const runs = await Promise.all([kvlog(["verify", log]), kvlog(["stats", log]), kvlog(["dump", log]), kvlog(["get", log, "k"]), kvlog(["repair", log])])
    for (const run of runs) assertOneLineError(run, ExitCode.Failed, "no such file", log)
    assert.isFalse(fs.existsSync(log))
  })
})

describe("a log of 100,000 records", () => {
  it("stats, verify, dump (live state, --prefix, --all-records), get and compact all agree with what was written", async () => {
    const dir = tempDir()
    const log = path.join(dir, "big.log")
    // Written in one scoped store: 100k records, in batches, with overwrites,
    // deletes, bytes, keys that expired long ago and keys with an hour to live.
    const model = new Map<string, { value: KeyValueStore.Value; deadline: number }>()
    let records = 0
    const realNow = Date.now()
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      // Deadlines come from the store's clock: set it to 1970 for keys that are long expired.
      yield* TestClock.setTime(1_000)
      const store = yield* KeyValueStore.makeLog({ path: log, fsync: "never", compaction: { auto: false } })
      const batch = (writes: ReadonlyArray<() => Effect.Effect<unknown, unknown>>) =>
        Effect.forEach(writes, (write) => write(), { concurrency: 512, discard: true })
      const puts: Array<() => Effect.Effect<unknown, unknown>> = []
      for (let i = 0; i < 2_000; i++) {
        puts.push(() => store.put(`old:${i}`, `gone ${i}`, { duration: 1_000 }))
        model.set(`old:${i}`, { value: `gone ${i}`, deadline: 2_000 })
      }
      yield* batch(puts.splice(0))
      records += 2_000
      yield* TestClock.setTime(realNow)
      for (let i = 0; i < 90_000; i++) {
        const key = `user:${i % 60_000}`
        const value: KeyValueStore.Value = i % 7 === 0 ? Uint8Array.of(i & 255, 0, 255) : `value ${i}`
        const ttl = i % 5 === 0 ? 3_600_000 : undefined
        puts.push(() => store.put(key, value, ttl === undefined ? {} : { duration: ttl }))
        model.set(key, { value, deadline: ttl === undefined ? Infinity : realNow + ttl })
      }
      yield* Effect.forEach(puts.splice(0), (write) => write(), { discard: true })
      records += 90_000
      for (let i = 0; i < 8_000; i++) {
        puts.push(() => store.delete(`user:${i * 7}`))
        model.delete(`user:${i * 7}`)
      }
      yield* Effect.forEach(puts.splice(0), (write) => write(), { discard: true })
      records += 8_000
    }).pipe(Effect.provide(TestClock.layer()))))
    assert.strictEqual(records, 100_000)
    const live = [...model].filter(([, entry]) => entry.deadline > Date.now())

    const [stats, verify, dump, prefixed, all, get, getBytes] = await Promise.all([
      kvlog(["stats", "--json", log]),
      kvlog(["verify", "--json", log]),
      kvlog(["dump", log]),
      kvlog(["dump", "--prefix", "user:1234", log]),
      kvlog(["dump", "--all-records", log]),
      kvlog(["get", log, "user:59999"]),
      kvlog(["get", "--json", log, "user:56000"])
    ])
    const s = JSON.parse(stats.out)
    assert.strictEqual(stats.code, 0, stats.stderr)
    assert.strictEqual(s.records, 100_000)
    assert.strictEqual(s.liveKeys, live.length)
    assert.strictEqual(s.liveKeysWithTtl, live.filter(([, entry]) => entry.deadline !== Infinity).length)
    assert.strictEqual(s.expiredKeys, 2_000)
    assert.strictEqual(s.fileBytes, fs.statSync(log).size)
    assert.isAbove(s.reclaimableShare, 0.3)
    assert.isBelow(s.reclaimableShare, 1)

    const v = JSON.parse(verify.out)
    assert.strictEqual(verify.code, ExitCode.Ok, verify.stderr)
    assert.deepInclude(v, { status: "clean", records: 100_000, fileBytes: s.fileBytes, lastRecordOffset: s.lastRecordOffset })

    const dumped = jsonLines(dump.out)
    assert.strictEqual(dumped.length, live.length)
    const expected = new Map(live)
    for (const line of dumped) {
      const entry = expected.get(line.key as string)
      assert.isDefined(entry, `dumped a key that is not live: ${String(line.key)}`)
      if (typeof entry!.value === "string") {
        assert.strictEqual(line.value, entry!.value)
        assert.notProperty(line, "type")
      } else {
        assert.strictEqual(line.type, "bytes")
        assert.strictEqual(line.value, Buffer.from(entry!.value).toString("base64"))
      }
      assert.strictEqual(line.expiresAt, entry!.deadline === Infinity ? undefined : new Date(entry!.deadline).toISOString())
    }
    assert.deepStrictEqual(
      jsonLines(prefixed.out).map((line) => line.key).sort(),
      live.map(([key]) => key).filter((key) => key.startsWith("user:1234")).sort()
    )

    const history = jsonLines(all.out)
    assert.strictEqual(history.length, 100_000)
    assert.strictEqual(history.filter((line) => line.op === "delete").length, 8_000)
    for (let i = 1; i < history.length; i++) assert.isAbove(history[i].offset as number, history[i - 1].offset as number)
    assert.strictEqual(history[history.length - 1].offset, s.lastRecordOffset)
    const spans = recordSpans(fileBytes(log))
    assert.deepStrictEqual(history.map((line) => line.offset), spans.map((span) => span.offset))

    assert.strictEqual(get.code, 0, get.stderr)
    assert.strictEqual(get.out, `${(model.get("user:59999")!.value as string)}\n`)
    // Written once (at i = 56000): bytes, with an hour to live.
    const bytesEntry = model.get("user:56000")!
    assert.instanceOf(bytesEntry.value, Uint8Array)
    assert.deepStrictEqual(JSON.parse(getBytes.out), {
      key: "user:56000",
      value: Buffer.from(bytesEntry.value as Uint8Array).toString("base64"),
      type: "bytes",
      expiresAt: new Date(bytesEntry.deadline).toISOString()
    })

    const compact = await kvlog(["compact", "--json", log])
    assert.strictEqual(compact.code, 0, compact.stderr)
    const c = JSON.parse(compact.out)
    assert.deepInclude(c, { bytesBefore: s.fileBytes, recordsBefore: 100_000, recordsAfter: live.length })
    assert.strictEqual(c.bytesAfter, fs.statSync(log).size)
    // stats predicted the compacted size to within one batch header (batching follows the index's order).
    assert.approximately(c.bytesAfter, s.compactedBytes, 32)
    const [after, afterDump] = await Promise.all([kvlog(["stats", "--json", log]), kvlog(["dump", log])])
    assert.deepInclude(JSON.parse(after.out), { records: live.length, liveKeys: live.length, expiredKeys: 0 })
    assert.deepStrictEqual(jsonLines(afterDump.out).sort(byKey), dumped.sort(byKey))
  })
})

const byKey = (a: Record<string, unknown>, b: Record<string, unknown>): number =>
  (a.key as string) < (b.key as string) ? -1 : (a.key as string) > (b.key as string) ? 1 : 0

/** A log of five one-record batches; gives its bytes and where each batch starts. */
const smallLog = async (dir: string) => {
  const log = path.join(dir, "small.log")
  await writeLog(log, [
    { put: "a", value: "first" },
    { put: "b", value: Uint8Array.of(0, 1, 2, 255) },
    { put: "c", value: "kept an hour", ttl: 3_600_000 },
    { del: "a" },
    { put: "ключ 🙂", value: "ünïcödé" }
  ])
  const bytes = fileBytes(log)
  const batches = [...new Set(recordSpans(bytes).map((span) => span.batch))]
  return { log, bytes, batches }
}

describe("a log with a torn tail", () => {
  it("verify exits 3 naming the offset and size, as the open would drop it; repair cuts it, keeps a copy, and counts the record lost", async () => {
    const dir = tempDir()
    const { batches, bytes, log } = await smallLog(dir)
    // The last batch cut short, as a crash in the middle of its write leaves it.
    const torn = bytes.subarray(0, bytes.length - 3)
    fs.writeFileSync(log, torn)
    const last = batches[batches.length - 1]
    const [verify, json, stats, dump] = await Promise.all([
      kvlog(["verify", log]),
      kvlog(["verify", "--json", log]),
      kvlog(["stats", "--json", log]),
      kvlog(["dump", log])
    ])
    assert.strictEqual(verify.code, ExitCode.TornTail, verify.stderr)
    assert.strictEqual(verify.stderr, "", "the verdict is the output, not an error")
    assert.include(verify.out, `torn tail: ${torn.length - last} bytes from byte offset ${last}`)
    assert.deepInclude(JSON.parse(json.out), { status: "torn-tail", offset: last, bytes: torn.length - last, records: 4 })
    assert.strictEqual(json.code, ExitCode.TornTail)
    assert.deepInclude(JSON.parse(stats.out).tornTail, { offset: last, bytes: torn.length - last })
    assert.strictEqual(dump.code, 0)
    assert.deepStrictEqual(jsonLines(dump.out).map((line) => line.key), ["b", "c"])
    assert.match(dump.stderr, /^kvlog: warning: [^\n]*torn tail[^\n]*\n$/)
    assert.isTrue(fileBytes(log).equals(torn), "a read-only command changed the log")
    await Effect.runPromise(Effect.scoped(assertVerifyAgreesWithOpen(dir, torn, "torn tail")))

    const repair = await kvlog(["repair", "--json", log])
    assert.strictEqual(repair.code, 0, repair.stderr)
    const r = JSON.parse(repair.out)
    assert.deepInclude(r, { status: "cut", cause: "torn-tail", offset: last, bytes: torn.length - last, recordsKept: 4, recordsLost: 1 })
    assert.isTrue(fileBytes(r.backup).equals(torn.subarray(last)), "the backup does not hold the bytes cut off")
    assert.strictEqual(path.dirname(r.backup), dir)
    assert.strictEqual(fs.statSync(log).size, last)
    const again = await kvlog(["verify", log])
    assert.strictEqual(again.code, ExitCode.Ok, again.out)
    const second = await kvlog(["repair", log])
    assert.strictEqual(second.code, 0)
    assert.include(second.out, "nothing to repair")
  })
})

describe("a corrupt log", () => {
  it("verify exits 4 naming the offset and the damage; every reading command refuses it in one line; repair cuts from the damage, keeping a copy", async () => {
    const dir = tempDir()
    const { batches, bytes, log } = await smallLog(dir)
    const damaged = Buffer.from(bytes)
    damaged[batches[1] + 40] ^= 0x10 // inside the second batch's records; later batches record it as synced
    fs.writeFileSync(log, damaged)
    const verdict = await Effect.runPromise(Effect.scoped(assertVerifyAgreesWithOpen(dir, damaged, "flipped bit")))
    assert.strictEqual(verdict._tag, "Corrupt")
    const [verify, json, stats, dump, get] = await Promise.all([
      kvlog(["verify", log]),
      kvlog(["verify", "--json", log]),
      kvlog(["stats", log]),
      kvlog(["dump", log]),
      kvlog(["get", log, "b"])
    ])
    assert.strictEqual(verify.code, ExitCode.Corrupt)
    assert.strictEqual(verify.stderr, "")
    assert.include(verify.out, `corrupt at byte offset ${batches[1]}`)
    const j = JSON.parse(json.out)
    assert.deepInclude(j, { status: "corrupt", offset: batches[1] })
    assert.strictEqual(j.reason, (verdict as { reason: string }).reason)
    for (const run of [stats, dump, get]) {
      assertOneLineError(run, ExitCode.Corrupt, `is corrupt at byte offset ${batches[1]}`)
    }
    assert.isTrue(fileBytes(log).equals(damaged))

    const repair = await kvlog(["repair", log])
    assert.strictEqual(repair.code, 0, repair.stderr)
    assert.include(repair.out, `cut ${damaged.length - batches[1]} bytes from byte offset ${batches[1]} (corruption`)
    assert.include(repair.out, "1 record kept; 4 records lost (as counted by 4 intact batch headers)")
    assert.strictEqual(fs.statSync(log).size, batches[1])
    const backup = fs.readdirSync(dir).filter((name) => name.startsWith("small.log.dropped-"))
    assert.strictEqual(backup.length, 1)
    assert.isTrue(fileBytes(path.join(dir, backup[0])).equals(damaged.subarray(batches[1])))
    assert.deepStrictEqual([...(await Effect.runPromise(stateOfLog(log)))], [["a", "s:first"]])
  })

  it("a file that is not a log: verify exits 4 at offset 0, and repair refuses to touch it", async () => {
    const dir = tempDir()
    const file = path.join(dir, "notes.txt")
    fs.writeFileSync(file, "these are my notes, not a log\n")
    const [verify, repair] = await Promise.all([kvlog(["verify", "--json", file]), kvlog(["repair", file])])
    assert.strictEqual(verify.code, ExitCode.Corrupt)
    assert.deepInclude(JSON.parse(verify.out), { status: "corrupt", offset: 0 })
    assertOneLineError(repair, ExitCode.Corrupt, "nothing was cut")
    assert.strictEqual(fs.readFileSync(file, "utf8"), "these are my notes, not a log\n")
    assert.deepStrictEqual(fs.readdirSync(dir), ["notes.txt"])
  })
})

describe("a log open in another process", () => {
  it("put, del, load, compact and repair are refused naming the owner's pid; verify, stats, dump and get still read it", async () => {
    const dir = tempDir()
    const { bytes, log } = await smallLog(dir)
    const child = spawnLineChild(holder, [log])
    try {
      const line = await child.waitForLine((text) => text.startsWith("open "))
      const pid = line.slice("open ".length)
      const [put, del, load, compact, repair, verify, get, badKey, badDel] = await Promise.all([
        kvlog(["put", log, "k", "v"]),
        kvlog(["del", log, "b"]),
        kvlog(["load", log], { input: '{"key":"k","value":"v"}\n' }),
        kvlog(["compact", log]),
        kvlog(["repair", log]),
        kvlog(["verify", log]),
        kvlog(["get", log, "c"]),
        kvlog(["put", log, "x".repeat(KeyValueStore.maxKeyLength + 1), "v"]),
        kvlog(["del", log, "y".repeat(KeyValueStore.maxKeyLength + 1)])
      ])
      for (const run of [put, del, load, compact, repair]) {
        assertOneLineError(run, ExitCode.Failed, "is already open in", `process ${pid}`)
      }
      // Bad input is refused for what it is, before the log (and its lock) is asked for.
      assertOneLineError(badKey, ExitCode.Failed, "key is 16385 UTF-16 code units long")
      assertOneLineError(badDel, ExitCode.Failed, "key is 16385 UTF-16 code units long")
      assert.strictEqual(verify.code, ExitCode.Ok, verify.stderr)
      assert.strictEqual(get.out, "kept an hour\n")
      assert.isTrue(fileBytes(log).equals(bytes), "a refused command changed the log")
    } finally {
      child.kill("SIGTERM")
      await child.closed
    }
  })
})

describe("one operation: get, put, del", () => {
  it("put stores strings, bytes (base64 or stdin) and TTLs durably; get prints them; del removes; bad input is refused with the log unchanged", async () => {
    const dir = tempDir()
    const log = path.join(dir, "ops.log")
    const png = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0, 255, 10, 13)
    for (const args of [["put", log, "greeting", "hello"], ["put", "--ttl", "5m", log, "session", "tok"], ["put", "--bytes", log, "b64", "AAEC/w=="]]) {
      const run = await kvlog(args)
      assert.strictEqual(run.code, 0, run.stderr)
    }
    const stdinBytes = await kvlog(["put", "--bytes", log, "avatar"], { input: png })
    const stdinText = await kvlog(["put", log, "poem ✍"], { input: "two\nlines ü" })
    assert.strictEqual(stdinBytes.code, 0, stdinBytes.stderr)
    assert.strictEqual(stdinText.code, 0, stdinText.stderr)

    const [greeting, avatar, poem, session] = await Promise.all([
      kvlog(["get", log, "greeting"]),
      kvlog(["get", log, "avatar"]),
      kvlog(["get", log, "poem ✍"]),
      kvlog(["get", "--json", log, "session"])
    ])
    assert.strictEqual(greeting.out, "hello\n")
    assert.isTrue(avatar.stdout.equals(png), "bytes are printed as they are")
    assert.strictEqual(poem.out, "two\nlines ü\n")
    const expiresAt = Date.parse(JSON.parse(session.out).expiresAt)
    assert.isAbove(expiresAt, Date.now() + 4 * 60_000)
    assert.isAtMost(expiresAt, Date.now() + 5 * 60_000)
    const state = await Effect.runPromise(stateOfLog(log))
    assert.strictEqual(state.get("b64"), viewValue(Uint8Array.of(0, 1, 2, 255)))
    assert.strictEqual(state.get("avatar"), viewValue(png))

    const before = fileBytes(log)
    const refused = await Promise.all([
      kvlog(["put", log, "x".repeat(KeyValueStore.maxKeyLength + 1), "v"]),
      kvlog(["put", "--ttl", "soon", log, "k", "v"]),
      kvlog(["put", "--ttl", "0s", log, "k", "v"]),
      kvlog(["put", "--bytes", log, "k", "not base64!"]),
      kvlog(["put", log, "k"], { input: Buffer.from([0xff, 0xfe]) }),
      kvlog(["del", log, "nope"]),
      kvlog(["get", log, "nope"])
    ])
    assertOneLineError(refused[0], ExitCode.Failed, "key is 16385 UTF-16 code units long")
    assertOneLineError(refused[1], ExitCode.Failed, "--ttl must be a positive duration", '"soon"')
    assertOneLineError(refused[2], ExitCode.Failed, "--ttl must be a positive duration")
    assertOneLineError(refused[3], ExitCode.Failed, "base64")
    assertOneLineError(refused[4], ExitCode.Failed, "not UTF-8", "--bytes")
    assertOneLineError(refused[5], ExitCode.Failed, 'key not found: "nope"')
    assertOneLineError(refused[6], ExitCode.Failed, 'key not found: "nope"')
    assert.isTrue(fileBytes(log).equals(before), "a refused command changed the log")

    const del = await kvlog(["del", log, "greeting"])
    assert.strictEqual(del.code, 0, del.stderr)
    assertOneLineError(await kvlog(["get", log, "greeting"]), ExitCode.Failed, 'key not found: "greeting"')
  })
})

describe("dump and load", () => {
  it("a dump loaded into a new log gives the same state: bytes, unicode keys, empty values, exact deadlines", async () => {
    const dir = tempDir()
    const source = path.join(dir, "source.log")
    const target = path.join(dir, "target.log")
    const writes: Array<Write> = [
      { put: "plain", value: "text" },
      { put: "", value: "the empty key" },
      { put: "empty value", value: "" },
      { put: "looks like base64", value: "AAEC/w==" },
      { put: "bytes", value: Uint8Array.of(0, 1, 2, 253, 254, 255) },
      { put: "no bytes", value: new Uint8Array(0) },
      { put: "ключ", value: "значение" },
      { put: "emoji 🙂👍🏽", value: "family 👨‍👩‍👧" },
      { put: "مفتاح", value: "قيمة" },
      { put: "e\u0301 combining", value: "line\nbreak\ttab \"quoted\" \\ backslash \u0000 nul" },
      { put: "ttl", value: "an hour", ttl: 3_600_000 },
      { put: "ttl fraction", value: "sub-millisecond deadline", ttl: 3_600_000.25 },
      { put: "big", value: "x".repeat(200_000) }
    ]
    await writeLog(source, writes)
    const dump = await kvlog(["dump", source])
    assert.strictEqual(dump.code, 0, dump.stderr)
    const lines = jsonLines(dump.out)
    assert.strictEqual(lines.length, writes.length)
    assert.property(lines.find((line) => line.key === "ttl fraction"), "expiresAtMillis")

    const load = await kvlog(["load", target], { input: dump.out })
    assert.strictEqual(load.code, 0, load.stderr)
    assert.include(load.out, `loaded ${writes.length} entries into ${target}`)
    const again = await kvlog(["dump", target])
    assert.strictEqual(again.out, dump.out, "the loaded log dumps to the same lines")
    assert.deepStrictEqual(
      [...(await Effect.runPromise(stateOfLog(target)))].sort(),
      [...(await Effect.runPromise(stateOfLog(source)))].sort()
    )
  })

  it("entries whose expiresAt passed between the dump and the load are skipped and counted; the rest keep their exact deadline", async () => {
    const dir = tempDir()
    const target = path.join(dir, "target.log")
    const past = new Date(Date.now() - 1_000).toISOString()
    const future = new Date(Date.now() + 3_600_000).toISOString()
    const input = [
      JSON.stringify({ key: "expired", value: "gone", expiresAt: past }),
      JSON.stringify({ key: "live", value: "kept", expiresAt: future }),
      JSON.stringify({ key: "forever", value: "kept" }),
      ""
    ].join("\n")
    const load = await kvlog(["load", "--json", target], { input })
    assert.strictEqual(load.code, 0, load.stderr)
    assert.deepStrictEqual(JSON.parse(load.out), { path: target, loaded: 2, expired: 1, keys: 2 })
    const dump = jsonLines((await kvlog(["dump", target])).out)
    assert.deepStrictEqual(dump, [{ key: "live", value: "kept", expiresAt: future }, { key: "forever", value: "kept" }])
  })

  it("a bad line loads nothing and names its line; --all-records output is refused", async () => {
    const dir = tempDir()
    const target = path.join(dir, "target.log")
    await writeLog(target, [{ put: "existing", value: "kept" }])
    const before = fileBytes(target)
    const good = JSON.stringify({ key: "new", value: "v" })
    const cases: Array<[string, string]> = [
      [`${good}\n{"key":"k","value":"AAE","type":"bytes"}\n`, "line 2: \"value\" is not base64"],
      [`${good}\n${good}\nnot json\n`, "line 3: not JSON"],
      [`{"key":"k","value":"v","expires":"2030-01-01T00:00:00.000Z"}\n`, 'line 1: unknown field "expires"'],
      [`{"key":"k","value":"v","expiresAt":"2030-02-30T00:00:00.000Z"}\n`, "line 1: \"expiresAt\" must be an ISO UTC time"],
      [`{"key":"k","value":"v","expiresAt":"tomorrow"}\n`, "line 1: \"expiresAt\" must be an ISO UTC time"],
      [`{"key":"k","value":7}\n`, "line 1: \"value\" must be a string"],
      [`{"key":"k","value":"v","type":"blob"}\n`, "line 1: \"type\" must be \"string\" or \"bytes\""],
      [`{"offset":20,"op":"put","key":"k","value":"v"}\n`, "--all-records"],
      [`${JSON.stringify({ key: "x".repeat(KeyValueStore.maxKeyLength + 1), value: "v" })}\n`, "line 1: key is 16385"]
    ]
    const runs = await Promise.all(cases.map(([input]) => kvlog(["load", target], { input })))
    for (const [i, run] of runs.entries()) assertOneLineError(run, ExitCode.Failed, cases[i][1], "nothing was loaded")
    assert.isTrue(fileBytes(target).equals(before), "a refused load changed the log")
  })
})

describe("the progress bar", () => {
  it("is drawn on stderr for a log over 64 MB when stderr is a terminal, and not with --quiet or when stderr is a pipe", async () => {
    const dir = tempDir()
    const log = path.join(dir, "large.log")
    const value = "v".repeat(4 * 1024 * 1024)
    const count = Math.ceil(progressMinBytes / value.length) + 1
    await writeLog(log, Array.from({ length: count }, (_, i) => ({ put: `k${i}`, value })))
    assert.isAbove(fs.statSync(log).size, progressMinBytes)
    // `script` gives the command a terminal; what the terminal showed is captured in a file.
    const onTerminal = (args: ReadonlyArray<string>) => {
      const typescript = path.join(dir, `terminal-${args.length}.txt`)
      const command = [nodeForTypeScript(), bin, ...args].map((word) => `'${word}'`).join(" ")
      const run = childProcess.spawnSync("script", ["-q", "-e", "-c", `${command} >/dev/null`, typescript], { cwd: root })
      return { code: run.status, shown: fs.readFileSync(typescript, "utf8") }
    }
    const shown = onTerminal(["verify", log])
    assert.strictEqual(shown.code, 0, shown.shown)
    assert.match(shown.shown, /reading [^\n]*large\.log \[#+-*\] +\d+% \d+ MB of \d+ MB/)
    assert.include(shown.shown, "100%")
    const quiet = onTerminal(["verify", "--quiet", log])
    assert.strictEqual(quiet.code, 0)
    assert.notInclude(quiet.shown, "reading")
    const piped = await kvlog(["verify", log])
    assert.strictEqual(piped.code, 0)
    assert.strictEqual(piped.stderr, "")
  })
})
