/**
 * Redis as a durable peer: a private `redis-server` on a loopback port with
 * `appendonly yes` and `appendfsync always` (Redis syncs its append-only
 * file before answering the writes of each event-loop turn: group commit),
 * driven by a minimal pipelining RESP client over one TCP connection.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import * as net from "node:net"
import type { DurableSubject } from "./BenchSubject.ts"
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

/** Starts `redis-server` in `workDir` and resolves once it accepts connections. */
const startRedis = async (workDir: string): Promise<{ readonly server: ChildProcess; readonly port: number }> => {
  const port = await freeLoopbackPort()
  const server = spawn(
    "redis-server",
    [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--dir", workDir,
      "--appendonly", "yes",
      "--appendfsync", "always",
      "--save", "",
      "--daemonize", "no",
      "--loglevel", "warning"
    ],
    { stdio: ["ignore", "ignore", "inherit"] }
  )
  const giveUpAt = Date.now() + 10_000
  for (;;) {
    try {
      const probe = await RespConnection.connect(port)
      await probe.command(["PING"])
      probe.close()
      return { server, port }
    } catch (error) {
      if (Date.now() > giveUpAt || server.exitCode !== null) {
        server.kill("SIGKILL")
        throw new Error(`redis-server did not start: ${String(error)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** Redis with `appendfsync always`. */
export const redisAlways: DurableSubject = {
  id: "redis",
  label: "Redis (appendfsync always)",
  role: "peer",
  description:
    "a private `redis-server` on 127.0.0.1 with `appendonly yes`, `appendfsync always`, `save \"\"`; `SET key value` over one pipelined connection.",
  durability: "`fsync` of the AOF before the replies of each event-loop turn",
  open: async (workDir) => {
    const { server, port } = await startRedis(workDir)
    const connection = await RespConnection.connect(port)
    return {
      runWriters: (writers, millis, keyPrefix, value) =>
        runPromiseWriters((key, v) => connection.command(["SET", key, v]), writers, millis, keyPrefix, value),
      close: async () => {
        connection.close()
        const exited = new Promise((resolve) => server.once("exit", resolve))
        server.kill("SIGTERM")
        await exited
      }
    }
  }
}
