/**
 * The machine a run happened on, for the report: CPU model and cores,
 * memory, OS, Node and V8 versions, and the versions of the packages measured.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export interface MachineInfo {
  readonly cpuModel: string
  readonly cores: number
  readonly memoryGiB: number
  readonly os: string
  readonly node: string
  readonly v8: string
  /** `name@version` of every package whose code is measured. */
  readonly packages: ReadonlyArray<string>
}

const measuredPackages = ["effect", "lru-cache", "@isaacs/ttlcache", "lmdb", "classic-level"]

const nodeModules = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules")

/** The installed version (read from the file: not every package exports its package.json). */
const packageVersion = (name: string): string => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(nodeModules, name, "package.json"), "utf8")) as { version: string })
      .version
  } catch {
    return "?"
  }
}

/** Describes this machine. */
export const describeMachine = (redisVersion: string | undefined): MachineInfo => {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    packages: [
      ...measuredPackages.map((name) => `${name}@${packageVersion(name)}`),
      ...(redisVersion === undefined ? [] : [`redis-server ${redisVersion}`])
    ]
  }
}
