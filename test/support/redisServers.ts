/**
 * Private Redis servers for the tests: `redis-server` processes on free
 * loopback ports, each in a temporary directory of its own, with nothing
 * saved unless a test asks for an append-only file. A single server can be
 * paused, killed and started again on the same port and directory; a cluster
 * is three masters joined by `redis-cli --cluster create`.
 *
 * Every server started here is stopped by `stop()`, and, should a test file
 * end without calling it (a failed `beforeAll`, a crash), by a handler on the
 * process's `exit`, or, when the process is killed outright, by the kernel
 * (`setpriv --pdeathsig`): no server outlives the test run.
 *
 * Without `redis-server` on PATH the Redis tests are skipped with a message,
 * except under CI (`CI=true`), where they fail: CI must run them.
 */
import { describe, it } from "@effect/vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

// =============================================================================
// Is there a redis-server?
// =============================================================================

/** The version of the `redis-server` on PATH, or `undefined` when there is none. */
export const redisServerVersion = (): string | undefined => {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" })
  if (probe.status !== 0) return undefined
  return /v=(\S+)/.exec(probe.stdout)?.[1] ?? "unknown version"
}

const missingMessage = "redis-server is not on PATH: install it (apt-get install redis-server) to run the Redis tests"

/**
 * Registers `tests` when `redis-server` is on PATH. Otherwise registers one
 * skipped test that says why, or, under CI, throws: a CI run without Redis
 * must fail rather than pass without testing the Redis layer.
 */
export const describeWithRedis = (name: string, tests: () => void): void => {
  if (redisServerVersion() !== undefined) {
    describe(name, tests)
    return
  }
  if (process.env.CI === "true") throw new Error(`${missingMessage} (CI=true: the Redis tests must run)`)
  console.warn(`${name}: skipped, ${missingMessage}`)
  describe(name, () => {
    it.skip(`skipped: ${missingMessage}`, () => {})
  })
}

// =============================================================================
// Ports
// =============================================================================

const portIsFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = net.createServer()
    probe.once("error", () => resolve(false))
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)))
  })

/**
 * A loopback port nobody listens on. A cluster node also listens on its bus
 * port, `port + 10000`, so with `withBus` both must be free; ports are drawn
 * below 55535 so the bus port exists.
 */
export const freePort = async (withBus = false): Promise<number> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000)
    if (port === 6379) continue
    if (await portIsFree(port) && (!withBus || await portIsFree(port + 10_000))) return port
  }
  throw new Error("no free loopback port found in 200 attempts")
}

// =============================================================================
// Talking to a server without a client library
// =============================================================================

/** Runs `redis-cli -p port args…` and gives its output, trimmed; throws on a failed run or an error reply. */
export const redisCli = (port: number, ...args: ReadonlyArray<string>): string => {
  const result = spawnSync("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`redis-cli ${args.join(" ")} failed: ${result.stderr}`)
  const output = result.stdout.trim()
  if (/^(ERR|WRONGTYPE|MOVED|ASK|CLUSTERDOWN)\b/.test(output)) throw new Error(`redis-cli ${args.join(" ")}: ${output}`)
  return output
}

/** The fields of an `INFO` reply. */
export const info = (port: number, section: string): Map<string, string> =>
  new Map(
    redisCli(port, "INFO", section).split("\n").map((line) => line.trim()).filter((line) => line.includes(":"))
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)])
  )

/** Whether a server answers PING on `port`, within `millis`. */
const answersPing = (port: number, millis: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.createConnection({ host: "127.0.0.1", port })
    let reply = ""
    const done = (answered: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answered)
    }
    const timer = setTimeout(() => done(false), millis)
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1")
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"))
    })
  })

// =============================================================================
// One server
// =============================================================================

/** Options of a private server. */
export interface ServerOptions {
  /** `appendfsync` of an append-only file; without it, nothing is persisted. */
  readonly appendfsync?: "always" | "everysec" | "no" | undefined
  readonly cluster?: boolean | undefined
}

/** A private `redis-server`. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** The process id of the running server (changes with `start`). */
  readonly pid: () => number
  /** Whether the server's process is alive (killed, or not started again, it is not). */
  readonly isRunning: () => boolean
  /** Sends `signal` to the server (SIGSTOP and SIGCONT to pause and resume it). */
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILLs the server and waits until it has exited. */
  readonly kill: () => Promise<void>
  /** Starts the server again, on the same port and directory (its append-only file replayed). */
  readonly start: () => Promise<void>
  /** Stops the server (SIGKILL: nothing of it is kept) and removes its directory. */
  readonly stop: () => Promise<void>
}

/** Whether `setpriv --pdeathsig` can start the servers (it execs them: the pid stays the server's). */
const withParentDeathSignal = spawnSync("setpriv", ["--help"], { encoding: "utf8" }).stdout?.includes("--pdeathsig") === true

const running = new Set<ChildProcess>()
let exitHandlerInstalled = false
const killAllOnExit = () => {
  if (exitHandlerInstalled) return
  exitHandlerInstalled = true
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL")
  })
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

/** Starts a private `redis-server` on a free loopback port and resolves once it answers PING. */
export const startRedisServer = async (options: ServerOptions = {}): Promise<RedisServer> => {
  killAllOnExit()
  const port = await freePort(options.cluster === true)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvlog-redis-"))
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", dir,
    "--save", "",
    "--daemonize", "no",
    "--loglevel", "warning",
    "--logfile", path.join(dir, "redis.log"),
    ...(options.appendfsync === undefined
      ? ["--appendonly", "no"]
      : ["--appendonly", "yes", "--appendfsync", options.appendfsync]),
    ...(options.cluster === true
      ? ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"]
      : [])
  ]
  let child: ChildProcess | undefined
  const start = async () => {
    // Where util-linux's setpriv is at hand, the server is killed with the
    // process that started it, even one killed outright (a test runner
    // ending a hung worker): no `exit` handler runs then.
    const process = withParentDeathSignal
      ? spawn("setpriv", ["--pdeathsig", "KILL", "redis-server", ...args], { stdio: "ignore" })
      : spawn("redis-server", args, { stdio: "ignore" })
    running.add(process)
    process.once("exit", () => running.delete(process))
    child = process
    const giveUpAt = Date.now() + 10_000
    while (!(await answersPing(port, 500))) {
      if (process.exitCode !== null || Date.now() > giveUpAt) {
        process.kill("SIGKILL")
        const log = fs.existsSync(path.join(dir, "redis.log")) ? fs.readFileSync(path.join(dir, "redis.log"), "utf8") : ""
        throw new Error(`redis-server on port ${port} did not start:\n${log}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  const kill = async () => {
    if (child === undefined) return
    child.kill("SIGKILL")
    await exited(child)
  }
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    pid: () => child?.pid ?? -1,
    isRunning: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    signal: (signal) => {
      child?.kill(signal)
    },
    kill,
    start,
    stop: async () => {
      await kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

// =============================================================================
// A cluster of three masters
// =============================================================================

/** A node of a private cluster, with its cluster node id. */
export interface ClusterNode extends RedisServer {
  readonly id: string
}

/** A private Redis Cluster: three masters, no replicas. */
export interface RedisClusterServers {
  readonly nodes: ReadonlyArray<ClusterNode>
  /** What node-redis's `createCluster` takes. */
  readonly rootNodes: ReadonlyArray<{ readonly url: string }>
  /** The node that serves `slot`, by asking the first node. */
  readonly ownerOf: (slot: number) => ClusterNode
  readonly stop: () => Promise<void>
}

/** Whether every node reports the cluster ok, with all 16384 slots assigned and every node known. */
const clusterSettled = (nodes: ReadonlyArray<RedisServer>): boolean =>
  nodes.every((node) => {
    const fields = redisCli(node.port, "CLUSTER", "INFO")
    return fields.includes("cluster_state:ok") && fields.includes("cluster_slots_assigned:16384") &&
      fields.includes(`cluster_known_nodes:${nodes.length}`)
  })

/** Starts three cluster-enabled servers and joins them with `redis-cli --cluster create`. */
export const startRedisCluster = async (): Promise<RedisClusterServers> => {
  const servers: Array<RedisServer> = []
  try {
    for (let i = 0; i < 3; i++) servers.push(await startRedisServer({ cluster: true }))
    const create = spawnSync("redis-cli", [
      "--cluster", "create",
      ...servers.map((server) => `127.0.0.1:${server.port}`),
      "--cluster-replicas", "0",
      "--cluster-yes"
    ], { encoding: "utf8" })
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`)
    const giveUpAt = Date.now() + 30_000
    while (!clusterSettled(servers)) {
      if (Date.now() > giveUpAt) throw new Error("the cluster did not settle within 30 s")
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } catch (error) {
    await Promise.all(servers.map((server) => server.stop()))
    throw error
  }
  const nodes = servers.map((server): ClusterNode => ({ ...server, id: redisCli(server.port, "CLUSTER", "MYID") }))
  const ownerOf = (slot: number): ClusterNode => {
    // CLUSTER SLOTS: ranges with their master's address; redis-cli prints one field per line.
    const shards = JSON.parse(
      spawnSync("redis-cli", ["-p", String(nodes[0].port), "--json", "CLUSTER", "SLOTS"], { encoding: "utf8" }).stdout
    ) as Array<[number, number, [string, number, string]]>
    const range = shards.find(([from, to]) => slot >= from && slot <= to)
    if (range === undefined) throw new Error(`no node serves slot ${slot}`)
    const owner = nodes.find((node) => node.id === range[2][2])
    if (owner === undefined) throw new Error(`slot ${slot} is served by an unknown node ${range[2][2]}`)
    return owner
  }
  return {
    nodes,
    rootNodes: nodes.map((node) => ({ url: node.url })),
    ownerOf,
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()))
    }
  }
}

/**
 * Bytes that clients have sent to the server on `port` and the server has
 * not read yet (Linux's `/proc/net/tcp`, IPv4): with the server paused by
 * SIGSTOP, proof that commands are on their way, in flight.
 */
export const unreadBytesAt = (port: number): number => {
  let total = 0
  for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, local, , state, queues] = line.trim().split(/\s+/)
    // State 01 is ESTABLISHED; the server's end of a connection has its port as the local one.
    if (state !== "01" || local === undefined || parseInt(local.split(":")[1], 16) !== port) continue
    total += parseInt(queues.split(":")[1], 16)
  }
  return total
}
