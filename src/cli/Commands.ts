/**
 * The `kvlog` command: inspect, verify, dump, load, compact and repair a
 * log from the shell, and run one get, put or delete on it.
 *
 * Commands that only read (`stats`, `verify`, `dump`, `get`) open the file
 * read-only and take no lock, so they also work on a log a running store
 * has open; they see what it has written so far. Commands that write (`put`,
 * `del`, `load`, `compact`, `repair`) take the log's owner lock, as a store
 * does, and are refused while anything else has the log open.
 *
 * Every read is the replay a store runs when it opens the log, so what
 * `verify` reports is what an open will do.
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as nodePath from "node:path"
import { Argument, Command, Flag, GlobalFlag } from "effect/cli"
import * as KeyValueStore from "../KeyValueStore.ts"
import { KeyNotFound } from "../internal/errors.ts"
import { checkKey, checkValue } from "../internal/validate.ts"
import {
  logStatistics,
  type OnProgress,
  readLogRecords,
  readLogState,
  repairLog,
  type Verification,
  verifyLog
} from "../internal/log/inspect/LogInspection.ts"
import { decodeEntry, type DumpEntry, DumpLineError, encodeDeleteRecord, encodeEntry, encodePutRecord } from "./DumpFormat.ts"
import { LineOutput, printError, progressBar } from "./Terminal.ts"

// =============================================================================
// Exit codes and failures
// =============================================================================

/** The exit codes of `kvlog`. */
export const ExitCode = {
  /** Done; for `verify`, the log is clean. */
  Ok: 0,
  /** The command failed: a missing key, a missing file, a locked log, bad input, an I/O error. */
  Failed: 1,
  /** The command line itself is wrong (an unknown flag, a missing argument). */
  Usage: 2,
  /** `verify`: the log ends in a torn tail, which an open drops. */
  TornTail: 3,
  /** The log is corrupt: an open refuses it. */
  Corrupt: 4
} as const

/**
 * Ends the command with `code`. `message`, if any, is printed on stderr as
 * one line; without it, the command has already said what it had to.
 */
export class CommandExit extends Data.TaggedError("CommandExit")<{
  readonly code: number
  readonly message?: string | undefined
}> {}

const failed = (message: string) => new CommandExit({ code: ExitCode.Failed, message })

/** What a failure means to the person at the shell, and the exit code it gets. */
export const describeFailure = (error: unknown): CommandExit => {
  if (error instanceof CommandExit) return error
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    if (tag === "LogCorrupted") {
      return new CommandExit({ code: ExitCode.Corrupt, message: (error as Error).message })
    }
    if (tag === "KeyNotFound" || tag === "LogLocked" || tag === "InvalidInput" || tag === "StorageError") {
      return failed((error as Error).message)
    }
    if (error instanceof DumpLineError) return failed(`stdin ${error.message}; nothing was loaded`)
    const errno = error as NodeJS.ErrnoException
    if (typeof errno.code === "string" && typeof errno.syscall === "string") {
      const where = errno.path === undefined ? "" : `: ${errno.path}`
      switch (errno.code) {
        case "ENOENT":
          return failed(`no such file${where}`)
        case "EACCES":
        case "EPERM":
          return failed(`permission denied${where}`)
        case "EISDIR":
          return failed(`is a directory${where}`)
      }
    }
    if (error instanceof Error) return failed(error.message)
  }
  return failed(String(error))
}

// =============================================================================
// Shared flags and helpers
// =============================================================================

/** `--quiet`: no progress bar. */
export const Quiet = GlobalFlag.Setting("quiet")({
  flag: Flag.Boolean("quiet").pipe(
    Flag.withAlias("q"),
    Flag.withDescription("Draw no progress bar while reading a large log"),
    Flag.withDefault(false)
  )
})

const logArgument = Argument.String("log").pipe(Argument.withDescription("Path of the log file"))
const keyArgument = Argument.String("key").pipe(Argument.withDescription("The key"))
const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print one JSON object, for scripts"),
  Flag.withDefault(false)
)

/**
 * Runs a synchronous read of the log at `path`, with a progress bar when it
 * is large, turning what it throws into the command's failure.
 */
const reading = <A>(path: string, read: (onProgress: OnProgress) => A) =>
  Effect.flatMap(Effect.service(Quiet), (quiet) =>
    Effect.try({
      try: () => {
        const bar = progressBar(`reading ${path}`, quiet)
        try {
          return read(bar.onProgress)
        } finally {
          bar.done()
        }
      },
      catch: describeFailure
    }))

/** Writes `lines` (or the JSON of `json`) on stdout. */
const print = (...lines: ReadonlyArray<string>): Effect.Effect<void> =>
  Effect.sync(() => {
    process.stdout.write(lines.map((line) => line + "\n").join(""))
  })

/** `path` relative to the working directory when it lies inside it. */
const shortPath = (file: string): string => {
  const relative = nodePath.relative(process.cwd(), file)
  return relative.startsWith("..") || nodePath.isAbsolute(relative) ? file : relative
}

const grouped = (n: number): string => n.toLocaleString("en-US")

/** `1 record`, `2 records`. */
const count = (n: number, noun: string, plural = `${noun}s`): string => `${grouped(n)} ${n === 1 ? noun : plural}`

const percent = (share: number): string => `${(share * 100).toFixed(share > 0 && share < 0.01 ? 2 : 0)}%`

/**
 * Prints open's warnings (a torn tail it dropped, and where it kept a copy)
 * as lines on stderr, and nothing else the library logs.
 */
const warningsOnStderr = Logger.layer([
  Logger.make((options) => {
    if (options.logLevel !== "Warn" && options.logLevel !== "Error") return
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    printError(parts.map(String).join(" ").replace(/^kvlog: /, "warning: "))
  })
])

/**
 * Opens the log at `path` as a store (taking its owner lock, replaying it,
 * dropping a torn tail as an open does), runs `use`, and closes it: every
 * write acknowledged is synced (`fsync: "always"`).
 */
const withStore = <A, E>(
  path: string,
  use: (store: KeyValueStore.KeyValueStoreService) => Effect.Effect<A, E>,
  clock?: Clock.Clock
): Effect.Effect<A, CommandExit> => {
  const opened = KeyValueStore.makeLog({ path, fsync: "always", compaction: { auto: false } })
  const withClock = clock === undefined ? opened : Effect.provideService(opened, Clock.Clock, clock)
  return Effect.scoped(Effect.flatMap(withClock, use)).pipe(
    Effect.mapError(describeFailure),
    Effect.provide(warningsOnStderr)
  )
}

const verdictLine = (path: string, checked: Verification): string => {
  const verdict = checked.verdict
  switch (verdict._tag) {
    case "Clean": {
      if (verdict.uninitialized) {
        return `${path}: clean: no complete header yet (a crash while the log was created); an open writes one`
      }
      const zeros = verdict.zerosAfter > 0
        ? `, then ${grouped(verdict.zerosAfter)} zero bytes written ahead, which an open trims`
        : ""
      return `${path}: clean: ${count(checked.records, "record")} in ${count(checked.batches ?? 0, "batch", "batches")}, ${
        count(checked.validEnd, "byte")
      }${zeros}`
    }
    case "TornTail":
      return `${path}: torn tail: ${grouped(verdict.bytes)} bytes from byte offset ${
        grouped(verdict.offset)
      } would be dropped by an open (${verdict.reason}); ${count(checked.records, "record")} before it ${checked.records === 1 ? "is" : "are"} intact`
    case "Corrupt":
      return `${path}: corrupt at byte offset ${grouped(verdict.offset)}: ${verdict.reason}; an open refuses this log`
  }
}

// =============================================================================
// Commands
// =============================================================================

const verify = Command.make(
  "verify",
  { log: logArgument, json: jsonFlag },
  Effect.fn(function*({ json, log }) {
    const checked = yield* reading(log, (onProgress) => verifyLog(log, onProgress))
    const verdict = checked.verdict
    if (json) {
      yield* print(JSON.stringify({
        path: log,
        status: verdict._tag === "Clean" ? "clean" : verdict._tag === "TornTail" ? "torn-tail" : "corrupt",
        fileBytes: checked.fileBytes,
        records: checked.records,
        batches: checked.batches ?? null,
        validEnd: checked.validEnd,
        lastRecordOffset: checked.lastRecordOffset ?? null,
        ...(verdict._tag === "Clean"
          ? { zerosAfter: verdict.zerosAfter, uninitialized: verdict.uninitialized }
          : verdict._tag === "TornTail"
          ? { offset: verdict.offset, bytes: verdict.bytes, reason: verdict.reason }
          : { offset: verdict.offset, reason: verdict.reason })
      }))
    } else {
      yield* print(verdictLine(log, checked))
    }
    if (verdict._tag === "TornTail") return yield* new CommandExit({ code: ExitCode.TornTail })
    if (verdict._tag === "Corrupt") return yield* new CommandExit({ code: ExitCode.Corrupt })
  })
).pipe(
  Command.withShortDescription("Check every record's CRC, as an open would; exit 0 clean, 3 torn tail, 4 corrupt"),
  Command.withDescription(
    "Check every batch and record of a log, as an open would, without changing it. Exits 0 when clean, 3 for a torn tail (an open drops it), 4 for corruption (an open refuses the log)"
  ),
  Command.withExamples([
    { command: "kvlog verify data.log", description: "Check a log" },
    { command: "kvlog verify --json data.log", description: "The verdict as JSON, for scripts" }
  ])
)

const stats = Command.make(
  "stats",
  { log: logArgument, json: jsonFlag },
  Effect.fn(function*({ json, log }) {
    const now = Date.now()
    const s = yield* reading(log, (onProgress) => logStatistics(log, now, onProgress))
    const torn = s.verdict._tag === "TornTail" ? s.verdict : undefined
    if (json) {
      return yield* print(JSON.stringify({
        path: log,
        formatVersion: s.formatVersion,
        fileBytes: s.fileBytes,
        records: s.records,
        batches: s.batches ?? null,
        liveKeys: s.liveKeys,
        liveKeysWithTtl: s.liveKeysWithTtl,
        expiredKeys: s.expiredKeys,
        compactedBytes: s.compactedBytes,
        reclaimableShare: s.reclaimableShare,
        lastRecordOffset: s.lastRecordOffset ?? null,
        tornTail: torn === undefined ? null : { offset: torn.offset, bytes: torn.bytes, reason: torn.reason }
      }))
    }
    const lines = [
      `log                    ${log}`,
      `format version         ${s.formatVersion}`,
      `file size              ${grouped(s.fileBytes)} bytes`,
      `records                ${grouped(s.records)} in ${count(s.batches ?? 0, "batch", "batches")}`,
      `last record at         ${s.lastRecordOffset === undefined ? "(none)" : `byte offset ${grouped(s.lastRecordOffset)}`}`,
      `live keys              ${grouped(s.liveKeys)}`,
      `  with a TTL           ${grouped(s.liveKeysWithTtl)}`,
      `expired, in the log    ${grouped(s.expiredKeys)}`,
      `after compaction       ${grouped(s.compactedBytes)} bytes: ${percent(s.reclaimableShare)} of the file reclaimable`
    ]
    if (torn !== undefined) {
      lines.push(`torn tail              ${grouped(torn.bytes)} bytes from byte offset ${grouped(torn.offset)} (an open drops them)`)
    }
    yield* print(...lines)
  })
).pipe(
  Command.withShortDescription("Records, live keys, TTLs, size, and what a compaction would reclaim"),
  Command.withDescription(
    "What a log holds: records, live keys, keys with a TTL, expired keys not yet compacted away, its size and how much a compaction would reclaim"
  )
)

const dump = Command.make(
  "dump",
  {
    log: logArgument,
    prefix: Flag.String("prefix").pipe(Flag.withDescription("Only keys that start with this"), Flag.optional),
    allRecords: Flag.Boolean("all-records").pipe(
      Flag.withDescription("Every record of the log's history, with its byte offset, instead of the live state"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function*({ allRecords, log, prefix }) {
    const wanted = Option.match(prefix, { onNone: () => (_: string) => true, onSome: (p) => (key: string) => key.startsWith(p) })
    const out = new LineOutput()
    if (allRecords) {
      const checked = yield* reading(log, (onProgress) =>
        readLogRecords(log, {
          put: (key, value, deadline, offset) => {
            if (wanted(key)) out.line(encodePutRecord(offset, key, value, deadline))
          },
          delete: (key, offset) => {
            if (wanted(key)) out.line(encodeDeleteRecord(offset, key))
          }
        }, onProgress)).pipe(Effect.ensuring(Effect.sync(() => out.flush())))
      return yield* tornTailWarning(log, checked)
    }
    const now = Date.now()
    const state = yield* reading(log, (onProgress) => readLogState(log, onProgress))
    yield* Effect.sync(() => {
      for (const [key, entry] of state.entries) {
        if (entry.deadline > now && wanted(key)) out.line(encodeEntry(key, entry.value, entry.deadline))
      }
      out.flush()
    })
    yield* tornTailWarning(log, state)
  })
).pipe(
  Command.withShortDescription("The live keys as JSON lines (or every record, with --all-records)"),
  Command.withDescription(
    "The live keys as JSON lines: key, value (a string, or base64 with \"type\":\"bytes\"), expiresAt as an ISO time"
  ),
  Command.withExamples([
    { command: "kvlog dump data.log > backup.jsonl", description: "Save the live state" },
    { command: "kvlog dump --prefix user: data.log", description: "Only keys that start with user:" },
    { command: "kvlog dump --all-records data.log", description: "Every put and delete, with its byte offset" }
  ])
)

const tornTailWarning = (log: string, checked: Verification): Effect.Effect<void> =>
  Effect.sync(() => {
    if (checked.verdict._tag === "TornTail") {
      printError(
        `warning: ${log} ends in a torn tail of ${grouped(checked.verdict.bytes)} bytes at byte offset ${
          grouped(checked.verdict.offset)
        }, left out as an open would drop it`
      )
    }
  })

/** Reads stdin whole. Refuses a terminal: a command waiting for typed input looks hung. */
const readStdin = (what: string): Effect.Effect<Buffer, CommandExit> =>
  Effect.suspend(() => {
    if (process.stdin.isTTY) return Effect.fail(failed(`${what}: pipe it on stdin (stdin is a terminal)`))
    return Effect.tryPromise({
      try: async () => {
        const chunks: Array<Buffer> = []
        for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
        return Buffer.concat(chunks)
      },
      catch: describeFailure
    })
  })

/** Parses the dump lines on stdin as they arrive, so the input is never held whole as one string. */
const readDumpLines = (): Effect.Effect<Array<DumpEntry>, CommandExit> =>
  Effect.suspend(() => {
    if (process.stdin.isTTY) {
      return Effect.fail(failed("load reads the JSON lines of a dump on stdin: kvlog load LOG < dump.jsonl"))
    }
    return Effect.tryPromise({
      try: async () => {
        const entries: Array<DumpEntry> = []
        const decoder = new TextDecoder("utf-8", { fatal: true })
        let rest = ""
        let line = 0
        const take = (text: string) => {
          line++
          const entry = decodeEntry(text, line)
          if (entry !== undefined) entries.push(entry)
        }
        try {
          for await (const chunk of process.stdin) {
            const text = rest + decoder.decode(chunk as Buffer, { stream: true })
            let start = 0
            for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n", start)) {
              take(text.slice(start, newline))
              start = newline + 1
            }
            rest = text.slice(start)
          }
          rest += decoder.decode()
        } catch (error) {
          if (error instanceof TypeError) throw new DumpLineError(line + 1, "not UTF-8 text")
          throw error
        }
        if (rest !== "") take(rest)
        return entries
      },
      catch: describeFailure
    })
  })

/**
 * A clock that stands still at `now` for the store's timestamps, and sleeps
 * on real time: a load writes every entry as of one instant, so each keeps
 * the exact deadline its dump gave it (`now + (deadline - now)`).
 */
const clockStoppedAt = (real: Clock.Clock, now: number): Clock.Clock => ({
  currentTimeMillisUnsafe: () => now,
  currentTimeMillis: Effect.succeed(now),
  currentTimeNanosUnsafe: () => BigInt(Math.floor(now)) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => BigInt(Math.floor(now)) * 1_000_000n),
  sleep: (duration) => real.sleep(duration)
} as Clock.Clock)

/** Writes in flight at once while loading: enough for each synced batch to carry many. */
const loadConcurrency = 4096

const load = Command.make(
  "load",
  { log: logArgument, json: jsonFlag },
  Effect.fn(function*({ json, log }) {
    // All of stdin is checked before the log is touched: a bad line loads nothing.
    const entries = yield* readDumpLines()
    const real = yield* Clock.clockWith(Effect.succeed)
    const now = real.currentTimeMillisUnsafe()
    let expired = 0
    const live = entries.filter((entry) => {
      const keep = entry.deadline > now
      if (!keep) expired++
      return keep
    })
    const result = yield* withStore(log, (store) =>
      Effect.gen(function*() {
        yield* Effect.forEach(
          live,
          (entry) =>
            store.put(entry.key, entry.value, entry.deadline === Infinity ? {} : { duration: entry.deadline - now }),
          { concurrency: loadConcurrency, discard: true }
        )
        return { keys: yield* store.size }
      }), clockStoppedAt(real, now))
    if (json) {
      return yield* print(JSON.stringify({ path: log, loaded: live.length, expired, keys: result.keys }))
    }
    yield* print(
      `loaded ${count(live.length, "entry", "entries")} into ${log}${
        expired > 0 ? `; skipped ${grouped(expired)} whose expiresAt had already passed` : ""
      }; it now holds ${count(result.keys, "key")}, synced to disk`
    )
  })
).pipe(
  Command.withShortDescription("Put the JSON lines of a dump (on stdin) into a log, durably"),
  Command.withDescription(
    "Put the entries of a dump (JSON lines on stdin) into a log, creating it if needed; durable when it returns. Every line is checked before anything is written; entries whose expiresAt has passed are skipped and counted"
  ),
  Command.withExamples([{ command: "kvlog load data.log < backup.jsonl", description: "Restore a dump" }])
)

const get = Command.make(
  "get",
  { log: logArgument, key: keyArgument, json: jsonFlag },
  Effect.fn(function*({ json, key, log }) {
    const now = Date.now()
    let found: { value: string | Uint8Array; deadline: number } | undefined
    const checked = yield* reading(log, (onProgress) =>
      readLogRecords(log, {
        put: (k, value, deadline) => {
          if (k === key) found = { value, deadline }
        },
        delete: (k) => {
          if (k === key) found = undefined
        }
      }, onProgress))
    yield* tornTailWarning(log, checked)
    if (found === undefined || found.deadline <= now) return yield* Effect.fail(describeFailure(new KeyNotFound({ key })))
    const { deadline, value } = found
    if (json) return yield* print(encodeEntry(key, value, deadline))
    yield* Effect.sync(() => {
      // Bytes go out as they are (`kvlog get log k > file` gives the file); a string gets its newline.
      process.stdout.write(typeof value === "string" ? value + "\n" : value)
    })
  })
).pipe(
  Command.withShortDescription("Print the value of a key"),
  Command.withDescription(
    "Print the value of a key: a string with a newline, bytes as they are. A missing or expired key fails with \"key not found\""
  )
)

/** `5s`, `250ms`, `1.5m`, `2h`, `1d`, or a bare number of milliseconds. */
const parseTtl = (text: string): Duration.Duration | undefined => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim())
  if (match === null) return undefined
  const amount = Number(match[1])
  const unit = match[2] ?? "ms"
  const millis = amount * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!
  return Number.isFinite(millis) && millis > 0 ? Duration.millis(millis) : undefined
}

const put = Command.make(
  "put",
  {
    log: logArgument,
    key: keyArgument,
    value: Argument.String("value").pipe(
      Argument.withDescription("The value; read from stdin when absent"),
      Argument.optional
    ),
    ttl: Flag.String("ttl").pipe(
      Flag.withDescription("Expire the key after this long: 250ms, 5s, 2m, 1h, 1d, or a number of milliseconds"),
      Flag.optional
    ),
    bytes: Flag.Boolean("bytes").pipe(
      Flag.withDescription("Store bytes: VALUE is base64, or stdin's bytes are taken as they are"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function*({ bytes, key, log, ttl, value }) {
    let duration: Duration.Duration | undefined
    if (Option.isSome(ttl)) {
      duration = parseTtl(ttl.value)
      if (duration === undefined) {
        return yield* Effect.fail(failed(`--ttl must be a positive duration like 250ms, 5s, 2m, 1h or 1d, got ${JSON.stringify(ttl.value)}`))
      }
    }
    let stored: KeyValueStore.Value
    if (Option.isSome(value)) {
      if (bytes) {
        const decoded = yield* Effect.try({
          try: () => decodeEntry(JSON.stringify({ key, value: value.value, type: "bytes" }), 1)!.value,
          catch: () => failed("with --bytes, VALUE must be base64")
        })
        stored = decoded
      } else {
        stored = value.value
      }
    } else {
      const input = yield* readStdin("no VALUE given")
      if (bytes) {
        stored = new Uint8Array(input)
      } else {
        stored = yield* Effect.try({
          try: () => new TextDecoder("utf-8", { fatal: true }).decode(input),
          catch: () => failed("stdin is not UTF-8 text: give --bytes to store it as bytes")
        })
      }
    }
    // The store would refuse these too, but only once it held the log: checked
    // first, bad input is refused without waiting on, or failing for, a lock.
    const invalid = checkKey(key) ?? checkValue(stored)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    yield* withStore(log, (store) => store.put(key, stored, duration === undefined ? {} : { duration }))
  })
).pipe(
  Command.withShortDescription("Set a key, durably, with an optional --ttl"),
  Command.withDescription("Set a key, durably (synced before the command returns)"),
  Command.withExamples([
    { command: "kvlog put data.log greeting hello", description: "A string value" },
    { command: "kvlog put --ttl 5m data.log session:42 token", description: "A key that expires in five minutes" },
    { command: "kvlog put --bytes data.log avatar < avatar.png", description: "Bytes from a file" }
  ])
)

const del = Command.make(
  "del",
  { log: logArgument, key: keyArgument },
  Effect.fn(function*({ key, log }) {
    // The store logs a delete before it knows whether the key is live (the
    // record is written first, then applied). Holding the log alone, the
    // command can ask first, so that deleting a missing key changes nothing.
    const invalid = checkKey(key)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    yield* withStore(log, (store) =>
      Effect.flatMap(store.has(key), (live) => live ? store.delete(key) : Effect.fail(new KeyNotFound({ key }))))
  })
).pipe(
  Command.withShortDescription("Delete a key, durably"),
  Command.withDescription("Delete a key, durably. A missing or expired key fails with \"key not found\"")
)

const compact = Command.make(
  "compact",
  { log: logArgument, json: jsonFlag },
  Effect.fn(function*({ json, log }) {
    const report = yield* withStore(log, (store) =>
      Effect.gen(function*() {
        yield* store.compact
        return (yield* store.stats).log?.lastCompaction
      }))
    if (report === undefined) return yield* Effect.fail(failed(`compacting ${log} produced no report`))
    if (json) {
      return yield* print(JSON.stringify({
        path: log,
        bytesBefore: report.bytesBefore,
        bytesAfter: report.bytesAfter,
        recordsBefore: report.recordsBefore,
        recordsAfter: report.recordsAfter,
        durationMillis: report.durationMillis
      }))
    }
    yield* print(
      `compacted ${log}: ${grouped(report.bytesBefore)} → ${grouped(report.bytesAfter)} bytes (${
        percent(report.bytesBefore === 0 ? 0 : 1 - report.bytesAfter / report.bytesBefore)
      } smaller), ${grouped(report.recordsBefore)} → ${grouped(report.recordsAfter)} records`
    )
  })
).pipe(
  Command.withShortDescription("Rewrite a log with only its live keys"),
  Command.withDescription(
    "Rewrite a log with only its live keys. Refused while a store or another command has the log open"
  )
)

const repair = Command.make(
  "repair",
  { log: logArgument, json: jsonFlag },
  Effect.fn(function*({ json, log }) {
    const outcome = yield* reading(log, (onProgress) => repairLog(log, onProgress))
    if (json) {
      return yield* print(JSON.stringify(
        outcome._tag === "Intact"
          ? { path: log, status: "intact", records: outcome.verification.records }
          : {
            path: log,
            status: "cut",
            cause: outcome.cause === "TornTail" ? "torn-tail" : "corruption",
            offset: outcome.offset,
            bytes: outcome.bytes,
            reason: outcome.reason,
            backup: outcome.backup,
            recordsKept: outcome.recordsKept,
            recordsLost: outcome.recordsLost,
            batchesLost: outcome.batchesLost
          }
      ))
    }
    if (outcome._tag === "Intact") {
      return yield* print(`${log}: nothing to repair: ${count(outcome.verification.records, "record")}, all intact`)
    }
    yield* print(
      `${log}: cut ${grouped(outcome.bytes)} bytes from byte offset ${grouped(outcome.offset)} (${
        outcome.cause === "TornTail" ? "a torn tail" : "corruption"
      }: ${outcome.reason})`,
      `  ${count(outcome.recordsKept, "record")} kept; ${count(outcome.recordsLost, "record")} lost (as counted by ${
        count(outcome.batchesLost, "intact batch header")
      })`,
      `  the bytes cut off are in ${shortPath(outcome.backup)}`
    )
  })
).pipe(
  Command.withShortDescription("Cut off a torn tail or a corrupt end, keeping a copy of the bytes"),
  Command.withDescription(
    "Cut a log back to what replays: a torn tail, or everything from the first corruption. The bytes cut off are copied to a file beside the log first"
  )
)

/** The `kvlog` command and its subcommands. */
export const kvlog = Command.make("kvlog").pipe(
  Command.withDescription("Inspect, verify, dump, load, compact and repair a kvlog log file"),
  Command.withSubcommands([stats, verify, dump, load, get, put, del, compact, repair]),
  Command.withGlobalFlags([Quiet])
)
