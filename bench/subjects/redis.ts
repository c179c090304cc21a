/**
 * Redis in the bench, on private `redis-server`s on loopback ports, each
 * started by the subject that uses it, in its work directory, and stopped
 * with it:
 *
 * - the original library's tables: kvlog's `layerRedis` (over
 *   `NodeRedis.layer`) beside its `layerLog`, and a raw node-redis client,
 *   on a server with `appendonly yes` and `appendfsync everysec` (Redis's
 *   usual durable setting: it acknowledges before its fsync);
 * - durable writes, on a server with `appendfsync always` (Redis syncs its
 *   append-only file before answering the writes of each event-loop turn:
 *   group commit): the same two, and a minimal pipelining RESP client over
 *   one TCP connection, the floor of what a client can get.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import * as Layer from "effect/Layer"
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { createClient } from "redis"
import type { BenchSubject, DurableSubject, OpenStore, ReadTiming } from "./BenchSubject.ts"
import { kvlogDurableStore, type KvlogModule, type KvlogTag, kvlogOpenStore, openKvlog } from "./kvlog.ts"
import { runPromiseWriters } from "./writerLoop.ts"

/** The version of the `redis-server` on PATH, or `undefined` when there is none. */
export const redisServerVersion = (): string | undefined => {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" })
  if (probe.status !== 0) return undefined
  return /v=(\S+)/.exec(probe.stdout)?.[1] ?? "unknown version"
}

/** Whether `redis-server` is on PATH. */
export const redisServerAvailable = (): boolean => redisServerVersion() !== undefined

const freeLoopbackPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** A RESP connection that answers `SET` with a promise per command, in order. */
class RespConnection {
  private readonly socket: net.Socket
  private readonly waiting: Array<{ resolve: () => void; reject: (error: Error) => void }> = []
  private buffered = ""
  private corked = false

  constructor(socket: net.Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => this.onData(chunk))
  }

  static connect(port: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host: "127.0.0.1", port })
      socket.once("connect", () => resolve(new RespConnection(socket)))
      socket.once("error", reject)
    })
  }

  /** Sends a command (ASCII arguments) and resolves on its simple-string reply. */
  command(args: ReadonlyArray<string>): Promise<void> {
    let frame = `*${args.length}\r\n`
    for (const arg of args) frame += `$${arg.length}\r\n${arg}\r\n`
    if (!this.corked) {
      // Commands issued in one tick go out in one segment.
      this.corked = true
      this.socket.cork()
      process.nextTick(() => {
        this.corked = false
        this.socket.uncork()
      })
    }
    this.socket.write(frame)
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }))
  }

  /** Each reply to `SET` and `PING` is one line: `+OK`/`+PONG`, or `-ERR …`. */
  private onData(chunk: string): void {
    const data = this.buffered + chunk
    let lineStart = 0
    let lineEnd: number
    while ((lineEnd = data.indexOf("\r\n", lineStart)) !== -1) {
      const waiter = this.waiting.shift()
      if (waiter !== undefined) {
        if (data.charCodeAt(lineStart) === 45 /* "-" */) {
          waiter.reject(new Error(`redis: ${data.slice(lineStart + 1, lineEnd)}`))
        } else {
          waiter.resolve()
        }
      }
      lineStart = lineEnd + 2
    }
    this.buffered = data.slice(lineStart)
  }

  close(): void {
    this.socket.destroy()
  }
}

const withParentDeathSignal = spawnSync("setpriv", ["--help"], { encoding: "utf8" }).stdout?.includes("--pdeathsig") === true

/** A private server of one subject. */
interface BenchRedis {
  readonly port: number
  readonly url: string
  /** Redis's `used_memory`: what it holds for its data, in bytes. */
  readonly usedMemory: () => Promise<number>
  readonly stop: () => Promise<void>
}

/**
 * Starts `redis-server` in a fresh directory under `workDir`, with an
 * append-only file synced as given, and resolves once it accepts
 * connections. A directory of its own: a server started where another ran
 * would replay that one's append-only file and start full.
 */
const startRedis = async (workDir: string, appendfsync: "always" | "everysec"): Promise<BenchRedis> => {
  const port = await freeLoopbackPort()
  const dir = fs.mkdtempSync(path.join(workDir, "redis-"))
  const args = [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--dir", dir,
      "--appendonly", "yes",
      "--appendfsync", appendfsync,
      "--save", "",
      "--daemonize", "no",
      "--loglevel", "warning"
  ]
  // A bench child killed at its time limit runs no `exit` handler: where
  // util-linux's setpriv is at hand, the kernel kills the server with it.
  const server: ChildProcess = withParentDeathSignal
    ? spawn("setpriv", ["--pdeathsig", "KILL", "redis-server", ...args], { stdio: ["ignore", "ignore", "inherit"] })
    : spawn("redis-server", args, { stdio: ["ignore", "ignore", "inherit"] })
  // A bench child that ends without closing its stores must not leave servers behind.
  const killOnExit = () => server.kill("SIGKILL")
  process.once("exit", killOnExit)
  const giveUpAt = Date.now() + 10_000
  for (;;) {
    try {
      const probe = await RespConnection.connect(port)
      await probe.command(["PING"])
      probe.close()
      break
    } catch (error) {
      if (Date.now() > giveUpAt || server.exitCode !== null) {
        server.kill("SIGKILL")
        throw new Error(`redis-server did not start: ${String(error)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const url = `redis://127.0.0.1:${port}`
  return {
    port,
    url,
    usedMemory: async () => {
      const client = await createClient({ url }).connect()
      try {
        const fields = await client.info("memory")
        return Number(/used_memory:(\d+)/.exec(fields)?.[1] ?? Number.NaN)
      } finally {
        await client.close()
      }
    },
    stop: async () => {
      process.removeListener("exit", killOnExit)
      const exited = new Promise((resolve) => server.once("exit", resolve))
      server.kill("SIGTERM")
      await exited
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Operations in flight at once in the Redis rows of the original library's tables, reads and writes alike. */
export const redisConcurrency = 256

/** Runs `operation(i)` for every `i < count`, `concurrency` at a time. */
const inFlight = async (count: number, concurrency: number, operation: (i: number) => Promise<void>): Promise<void> => {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) await operation(i)
  }))
}

/** The raw node-redis client: what kvlog's store over Redis adds its cost to. */
export const redisClientSubject: BenchSubject = {
  id: "redis-client",
  label: "redis (node-redis client)",
  role: "peer",
  description:
    `node-redis \`client.set(key, value)\` / \`client.get(key)\` on one connection to a private \`redis-server\` (\`appendfsync everysec\`), ${redisConcurrency} in flight at once (µs/op = elapsed ÷ N); bytes per key include the server's \`used_memory\` growth.`,
  open: async ({ workDir }) => {
    const server = await startRedis(workDir, "everysec")
    const client = await createClient({ url: server.url }).connect()
    return {
      fill: async (keys, values) => {
        const start = performance.now()
        await inFlight(keys.length, redisConcurrency, async (i) => {
          await client.set(keys[i]!, values[i]!)
        })
        return performance.now() - start
      },
      read: async (keys, order): Promise<ReadTiming> => {
        let checksum = 0
        const start = performance.now()
        await inFlight(order.length, redisConcurrency, async (j) => {
          const value = await client.get(keys[order[j]!]!)
          checksum += value === null ? -1 : value.length
        })
        return { elapsedMillis: performance.now() - start, checksum }
      },
      externalBytes: server.usedMemory,
      close: async () => {
        await client.close()
        await server.stop()
      }
    } satisfies OpenStore
  }
}

/** kvlog's `layerRedis` over `NodeRedis.layer`, or `undefined` on a kvlog without it. */
export const kvlogRedisLayer = (kvlog: KvlogModule): ((url: string) => Layer.Layer<KvlogTag, unknown>) | undefined =>
  "layerRedis" in kvlog && typeof kvlog.layerRedis === "function"
    ? (url) => kvlog.layerRedis({ prefix: "bench:" }).pipe(Layer.provide(NodeRedis.layer({ url })))
    : undefined

/** kvlog's `layerRedis` in the original library's tables. */
export const kvlogRedisSubject = (kvlog: KvlogModule, layerRedis: (url: string) => Layer.Layer<KvlogTag, unknown>): BenchSubject => ({
  id: "kvlog-redis",
  label: "kvlog layerRedis",
  role: "kvlog",
  description:
    `\`KeyValueStore.layerRedis({ prefix })\` over \`NodeRedis.layer\` on a private \`redis-server\` (\`appendfsync everysec\`); \`yield* store.put\` / \`yield* store.get\` from ${redisConcurrency} fibers sharing the keys (µs/op = elapsed ÷ N); bytes per key include the server's \`used_memory\` growth.`,
  open: async ({ workDir }) => {
    const server = await startRedis(workDir, "everysec")
    const handle = await openKvlog(kvlog, layerRedis(server.url))
    const store = kvlogOpenStore(handle, redisConcurrency, redisConcurrency)
    return {
      ...store,
      externalBytes: server.usedMemory,
      close: async () => {
        await store.close()
        await server.stop()
      }
    }
  }
})

const durableOnRedis = "`appendfsync always`: Redis writes its append-only file and syncs it before answering the writes of each event-loop turn"

/** Redis with `appendfsync always`, through the minimal RESP client. */
export const redisAlways: DurableSubject = {
  id: "redis",
  label: "Redis (appendfsync always)",
  role: "peer",
  description:
    "a private `redis-server` on 127.0.0.1 with `appendonly yes`, `appendfsync always`, `save \"\"`; `SET key value` over one pipelined connection.",
  durability: durableOnRedis,
  open: async (workDir) => {
    const server = await startRedis(workDir, "always")
    const connection = await RespConnection.connect(server.port)
    return {
      runWriters: (writers, millis, keyPrefix, value) =>
        runPromiseWriters((key, v) => connection.command(["SET", key, v]), writers, millis, keyPrefix, value),
      close: async () => {
        connection.close()
        await server.stop()
      }
    }
  }
}

/** Redis with `appendfsync always`, through node-redis. */
export const redisClientAlways: DurableSubject = {
  id: "redis-client",
  label: "redis (node-redis client), appendfsync always",
  role: "peer",
  description: "node-redis `client.set(key, value)` on one connection to a private `redis-server` with `appendfsync always`; each writer an async loop.",
  durability: durableOnRedis,
  open: async (workDir) => {
    const server = await startRedis(workDir, "always")
    const client = await createClient({ url: server.url }).connect()
    return {
      runWriters: (writers, millis, keyPrefix, value) =>
        runPromiseWriters((key, v) => client.set(key, v), writers, millis, keyPrefix, value),
      close: async () => {
        await client.close()
        await server.stop()
      }
    }
  }
}

/** kvlog's `layerRedis` on Redis with `appendfsync always`. */
export const kvlogRedisDurable = (kvlog: KvlogModule, layerRedis: (url: string) => Layer.Layer<KvlogTag, unknown>): DurableSubject => ({
  id: "kvlog-redis",
  label: "kvlog layerRedis, appendfsync always",
  role: "kvlog",
  description:
    "`KeyValueStore.layerRedis({ prefix })` over `NodeRedis.layer`, on a private `redis-server` with `appendfsync always`; each writer a fiber doing `yield* store.put(key, value)` in a loop.",
  durability: durableOnRedis,
  open: async (workDir) => {
    const server = await startRedis(workDir, "always")
    const handle = await openKvlog(kvlog, layerRedis(server.url))
    return kvlogDurableStore(handle, async () => {
      await handle.runtime.dispose()
      await server.stop()
    })
  }
})
