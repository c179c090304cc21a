/**
 * Which subjects each suite measures, in table order. kvlog's subjects are
 * registered only when kvlog loads (its Promise API when `src/promise.ts`
 * loads), its log subjects only when `layerLog` exists at run time, its Redis subjects only when `layerRedis` does, and
 * every Redis subject only when `redis-server` is on PATH; every
 * subject left out is listed with the reason, so the tables can say so.
 */
import type { SuiteName } from "../jobs.ts"
import type { BenchSubject, CompactionSubject, DurableSubject, ExpirySubject, ReplaySubject } from "./BenchSubject.ts"
import { classicLevelDurable, classicLevelReplay, lmdbDurable, lmdbReplay } from "./embeddedDatabases.ts"
import {
  effectKeyValueStore,
  lruCache,
  lruCacheExpiry,
  lruCacheWithTtl,
  mapWithTimerPerKey,
  rawMap,
  ttlCache,
  ttlCacheExpiry
} from "./inMemoryPeers.ts"
import { kvlogMemory, kvlogMemoryExpiry, kvlogMemoryShared, loadKvlog } from "./kvlog.ts"
import {
  kvlogAlwaysDurable,
  kvlogBufferedSubject,
  kvlogCompaction,
  kvlogLogLayer,
  kvlogLogSubject,
  kvlogReplay,
  kvlogReplayShared,
  kvlogReplaySharedHugePages
} from "./kvlogLog.ts"
import { kvlogPromiseMemory, loadKvlogPromise } from "./kvlogPromise.ts"
import { rawAppend } from "./rawAppend.ts"
import {
  kvlogRedisDurable,
  kvlogRedisLayer,
  kvlogRedisSubject,
  redisAlways,
  redisClientAlways,
  redisClientSubject,
  redisServerAvailable
} from "./redis.ts"

/** A subject a suite would measure but cannot here, and why. */
export interface MissingSubject {
  readonly suite: SuiteName
  readonly id: string
  readonly label: string
  readonly reason: string
}

/** Every subject of every suite, in the order of the tables' columns or rows. */
export interface SubjectCatalog {
  readonly tables: ReadonlyArray<BenchSubject>
  readonly ttl: ReadonlyArray<BenchSubject>
  readonly durable: ReadonlyArray<DurableSubject>
  readonly replay: ReadonlyArray<ReplaySubject>
  readonly compaction: ReadonlyArray<CompactionSubject>
  readonly expiry: ReadonlyArray<ExpirySubject>
  readonly missing: ReadonlyArray<MissingSubject>
}

/** Builds the catalog from what loads on this machine. */
export const loadCatalog = async (): Promise<SubjectCatalog> => {
  const missing: Array<MissingSubject> = []
  const load = await loadKvlog()
  const kvlog = load._tag === "Loaded" ? load.kvlog : undefined
  const layerLog = kvlog === undefined ? undefined : kvlogLogLayer(kvlog)

  const kvlogMissing = load._tag === "Unavailable" ? load.reason : undefined
  const logMissing = kvlogMissing ?? (layerLog === undefined ? "`KeyValueStore.layerLog` has not landed" : undefined)
  const note = (suite: SuiteName, id: string, label: string, reason: string | undefined) => {
    if (reason !== undefined) missing.push({ suite, id, label, reason })
  }
  note("tables", "kvlog-memory", "kvlog layerMemory", kvlogMissing)
  note("tables", "kvlog-log-never", "kvlog layerLog never", logMissing)
  note("tables", "kvlog-log-buffered", "kvlog layerLog never, buffered", logMissing)
  note("tables", "kvlog-log-always", "kvlog layerLog always", logMissing)
  note("ttl", "kvlog-memory", "kvlog layerMemory", kvlogMissing)
  note("durable", "kvlog-log-always", "kvlog layerLog always", logMissing)
  note("replay", "kvlog-log", "kvlog layerLog (replay on open)", logMissing)
  const compactionMissing = kvlogMissing ??
    (typeof kvlog?.makeLog === "function" ? undefined : "`KeyValueStore.makeLog` has not landed")
  note("compaction", "kvlog-log-always", "kvlog makeLog always", compactionMissing)
  note("compaction", "kvlog-log-never", "kvlog makeLog never", compactionMissing)
  note("expiry", "kvlog-memory", "kvlog layerMemory", kvlogMissing)
  const redis = redisServerAvailable()
  const noRedisServer = redis ? undefined : "skipped: redis-server not found"
  const layerRedis = kvlog === undefined ? undefined : kvlogRedisLayer(kvlog)
  const kvlogRedisMissing = kvlogMissing ?? noRedisServer ??
    (layerRedis === undefined ? "`KeyValueStore.layerRedis` has not landed" : undefined)
  note("tables", "kvlog-redis", "kvlog layerRedis", kvlogRedisMissing)
  note("tables", "redis-client", "redis (node-redis client)", noRedisServer)
  note("durable", "kvlog-redis", "kvlog layerRedis, appendfsync always", kvlogRedisMissing)
  note("durable", "redis", "Redis (appendfsync always)", noRedisServer)
  note("durable", "redis-client", "redis (node-redis client), appendfsync always", noRedisServer)
  const withKvlogRedis = kvlog !== undefined && layerRedis !== undefined && redis

  const promiseLoad = await loadKvlogPromise()
  note("tables", "kvlog-promise", "kvlog/promise openMemory", promiseLoad._tag === "Unavailable" ? promiseLoad.reason : undefined)

  const kvlogSeed: Array<BenchSubject> = []
  if (kvlog !== undefined) kvlogSeed.push(kvlogMemory(kvlog), kvlogMemoryShared(kvlog))
  if (promiseLoad._tag === "Loaded") {
    kvlogSeed.push({ ...kvlogPromiseMemory(promiseLoad.kvlogPromise), id: "kvlog-promise" })
  }
  if (kvlog !== undefined && layerLog !== undefined) {
    kvlogSeed.push(
      kvlogLogSubject(kvlog, layerLog, "never"),
      kvlogBufferedSubject(kvlog, layerLog),
      kvlogLogSubject(kvlog, layerLog, "always")
    )
  }
  if (withKvlogRedis) kvlogSeed.push(kvlogRedisSubject(kvlog, layerRedis))
  return {
    tables: [
      ...kvlogSeed,
      rawMap,
      lruCache,
      lruCacheWithTtl,
      ttlCache,
      effectKeyValueStore,
      ...(redis ? [redisClientSubject] : [])
    ],
    ttl: [...(kvlog === undefined ? [] : [kvlogMemory(kvlog)]), ttlCache, lruCacheWithTtl, mapWithTimerPerKey],
    durable: [
      ...(kvlog !== undefined && layerLog !== undefined ? [kvlogAlwaysDurable(kvlog, layerLog)] : []),
      lmdbDurable,
      classicLevelDurable,
      ...(withKvlogRedis ? [kvlogRedisDurable(kvlog, layerRedis)] : []),
      ...(redis ? [redisAlways, redisClientAlways] : []),
      rawAppend("preallocated"),
      rawAppend("sync"),
      rawAppend("async")
    ],
    replay: [
      ...(kvlog !== undefined && layerLog !== undefined
        ? [kvlogReplay(kvlog, layerLog), kvlogReplayShared(kvlog, layerLog), kvlogReplaySharedHugePages(kvlog, layerLog)]
        : []),
      lmdbReplay,
      classicLevelReplay
    ],
    compaction: kvlog !== undefined && compactionMissing === undefined
      ? [kvlogCompaction(kvlog, "always"), kvlogCompaction(kvlog, "never")]
      : [],
    expiry: [...(kvlog === undefined ? [] : [kvlogMemoryExpiry(kvlog)]), ttlCacheExpiry, lruCacheExpiry],
    missing
  }
}

/** Every subject id any suite knows, for `--subjects` validation and `--help`. */
export const knownSubjectIds: ReadonlyArray<string> = [
  "kvlog-memory",
  "kvlog-memory-shared",
  "kvlog-promise",
  "kvlog-log-never",
  "kvlog-log-buffered",
  "kvlog-log-always",
  "kvlog-log",
  "kvlog-log-shared",
  "kvlog-log-shared-hugepages",
  "map",
  "lru-cache",
  "lru-cache-ttl",
  "ttlcache",
  "effect-kvs",
  "map-settimeout",
  "lmdb",
  "classic-level",
  "redis",
  "kvlog-redis",
  "redis-client",
  "raw-fdatasync-prealloc",
  "raw-fdatasync",
  "raw-fdatasync-async"
]
