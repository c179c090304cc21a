/**
 * The in-memory subjects that are not kvlog: a raw `Map` (the floor),
 * `lru-cache` with and without TTL, `@isaacs/ttlcache`, a `Map` with a
 * `setTimeout` per key (the naive TTL baseline), and Effect's own
 * `KeyValueStore.layerMemory` from `effect/persistence`.
 */
import { TTLCache } from "@isaacs/ttlcache"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as EffectKeyValueStore from "effect/persistence/KeyValueStore"
import { LRUCache } from "lru-cache"
import type { BenchSubject, ExpiryStore, ExpirySubject, OpenStore, ReadTiming } from "./BenchSubject.ts"

/** The TTL given to every key by the "with ttl" peers in the original library's tables (long enough that nothing expires during a run). */
export const seedTableTtlMillis = 3_600_000

const timeReads = (get: (key: string) => { readonly length: number } | undefined) =>
(keys: ReadonlyArray<string>, order: Uint32Array): Promise<ReadTiming> => {
  let checksum = 0
  const start = performance.now()
  for (let j = 0; j < order.length; j++) {
    const value = get(keys[order[j]!]!)
    checksum += value === undefined ? -1 : value.length
  }
  return Promise.resolve({ elapsedMillis: performance.now() - start, checksum })
}

/** A raw `Map<string, string>`: what any store built on a `Map` must add its cost to. */
export const rawMap: BenchSubject = {
  id: "map",
  label: "Map",
  role: "floor",
  description: "`new Map()`, `map.set(key, value)` / `map.get(key)`; no TTL, no store around it.",
  open: () => {
    const map = new Map<string, string>()
    return Promise.resolve<OpenStore>({
      fill: (keys, values) => {
        const start = performance.now()
        for (let i = 0; i < keys.length; i++) map.set(keys[i]!, values[i]!)
        return Promise.resolve(performance.now() - start)
      },
      read: timeReads((key) => map.get(key)),
      close: () => {
        map.clear()
        return Promise.resolve()
      }
    })
  }
}

/**
 * A cache with `set(key, value, { ttl })`, `get` and `clear`: lru-cache and
 * @isaacs/ttlcache alike, timed the same way.
 */
interface TtlCacheLike {
  set(key: string, value: string, options?: { ttl: number }): unknown
  get(key: string): string | undefined
  clear(): void
}

const ttlCacheStore = (cache: TtlCacheLike): OpenStore => ({
  fill: (keys, values, ttlMillis) => {
    const start = performance.now()
    if (ttlMillis === undefined) {
      for (let i = 0; i < keys.length; i++) cache.set(keys[i]!, values[i]!)
    } else {
      for (let i = 0; i < keys.length; i++) cache.set(keys[i]!, values[i]!, { ttl: ttlMillis[i]! })
    }
    return Promise.resolve(performance.now() - start)
  },
  read: timeReads((key) => cache.get(key)),
  close: () => {
    cache.clear()
    return Promise.resolve()
  }
})

/** The same cache under expiry observation; `stop` ends whatever timers it runs. */
const ttlCacheExpiryStore = (cache: TtlCacheLike, stop: () => void = () => {}): ExpiryStore => ({
  put: (key, value, ttl) => {
    cache.set(key, value, { ttl })
    return Promise.resolve()
  },
  get: (key) => Promise.resolve(cache.get(key)),
  close: () => {
    stop()
    cache.clear()
    return Promise.resolve()
  }
})

/** `lru-cache` bounded to the run's key count, so nothing is evicted. */
export const lruCache: BenchSubject = {
  id: "lru-cache",
  label: "lru-cache",
  role: "peer",
  description: "`new LRUCache({ max: N })`, `set` / `get`; sized so nothing is evicted.",
  open: ({ capacity }) => Promise.resolve(ttlCacheStore(new LRUCache<string, string>({ max: Math.max(1, capacity) })))
}

/** `lru-cache` with TTL tracking on (a default TTL, or the key's own in the TTL-heavy table). */
export const lruCacheWithTtl: BenchSubject = {
  id: "lru-cache-ttl",
  label: "lru-cache (ttl)",
  role: "peer",
  description:
    "`new LRUCache({ max: N, ttl })`: ttl 1 h in the original library's tables, the key's own `{ ttl }` in the TTL-heavy table; stale entries are dropped when read or evicted (no `ttlAutopurge`).",
  open: ({ capacity }) =>
    Promise.resolve(ttlCacheStore(new LRUCache<string, string>({ max: Math.max(1, capacity), ttl: seedTableTtlMillis })))
}

/** `@isaacs/ttlcache`: one timer for all deadlines, plain `Map`s. */
export const ttlCache: BenchSubject = {
  id: "ttlcache",
  label: "@isaacs/ttlcache",
  role: "peer",
  description:
    "`new TTLCache({ ttl })`: ttl 1 h in the original library's tables, the key's own `{ ttl }` in the TTL-heavy table; default options (`checkAgeOnGet: false`).",
  open: () => Promise.resolve(ttlCacheStore(new TTLCache<string, string>({ ttl: seedTableTtlMillis })))
}

/** One entry of the timer-per-key baseline: the value and the timer that removes it. */
interface TimedEntry {
  readonly value: string
  readonly timer: NodeJS.Timeout
}

/** A `Map` whose every key has its own `setTimeout` that deletes it: what one writes without a library. */
export const mapWithTimerPerKey: BenchSubject = {
  id: "map-settimeout",
  label: "Map + setTimeout per key",
  role: "baseline",
  description:
    "`Map<string, { value, timer }>`; each put clears the key's old timer and starts a `setTimeout` that deletes it (`unref`ed).",
  open: () => {
    const map = new Map<string, TimedEntry>()
    const put = (key: string, value: string, ttl: number) => {
      const previous = map.get(key)
      if (previous !== undefined) clearTimeout(previous.timer)
      const timer = setTimeout(() => map.delete(key), ttl)
      timer.unref()
      map.set(key, { value, timer })
    }
    return Promise.resolve<OpenStore>({
      fill: (keys, values, ttlMillis) => {
        const start = performance.now()
        for (let i = 0; i < keys.length; i++) put(keys[i]!, values[i]!, ttlMillis?.[i] ?? seedTableTtlMillis)
        return Promise.resolve(performance.now() - start)
      },
      read: timeReads((key) => map.get(key)?.value),
      close: () => {
        for (const entry of map.values()) clearTimeout(entry.timer)
        map.clear()
        return Promise.resolve()
      }
    })
  }
}

/** Effect's own in-memory `KeyValueStore` (a `Map` behind the Effect service API), called like kvlog. */
export const effectKeyValueStore: BenchSubject = {
  id: "effect-kvs",
  label: "effect KeyValueStore.layerMemory",
  role: "peer",
  description:
    "`KeyValueStore.layerMemory` from `effect/persistence` (effect 4.1): `yield* store.set(key, value)` / `yield* store.get(key)` in one `Effect.gen`; no TTL.",
  open: async () => {
    const runtime = ManagedRuntime.make(EffectKeyValueStore.layerMemory)
    const store = await runtime.runPromise(Effect.service(EffectKeyValueStore.KeyValueStore))
    return {
      fill: (keys, values) =>
        runtime.runPromise(Effect.gen(function*() {
          const start = performance.now()
          for (let i = 0; i < keys.length; i++) yield* store.set(keys[i]!, values[i]!)
          return performance.now() - start
        })),
      read: (keys, order) =>
        runtime.runPromise(Effect.gen(function*() {
          let checksum = 0
          const start = performance.now()
          for (let j = 0; j < order.length; j++) {
            const value = yield* store.get(keys[order[j]!]!)
            checksum += value === undefined ? -1 : value.length
          }
          return { elapsedMillis: performance.now() - start, checksum }
        })),
      close: () => runtime.dispose()
    }
  }
}

/** `@isaacs/ttlcache` under expiry observation, through its `dispose` callback (reason `"stale"`). */
export const ttlCacheExpiry: ExpirySubject = {
  id: "ttlcache",
  label: "@isaacs/ttlcache",
  role: "peer",
  description:
    "default options (`checkAgeOnGet: false`); reclaim observed through `dispose(value, key, \"stale\")`; clock `performance.now()` (its own).",
  clock: () => performance.now(),
  open: (onReclaim) => {
    const cache = new TTLCache<string, string>({
      ttl: seedTableTtlMillis,
      dispose: (_value, key, reason) => {
        if (reason === "stale") onReclaim(key)
      }
    })
    return Promise.resolve(ttlCacheExpiryStore(cache, () => cache.cancelTimer()))
  }
}

/** `lru-cache` with `ttlAutopurge` (a timer per key) under expiry observation, through `dispose` (reason `"expire"`). */
export const lruCacheExpiry: ExpirySubject = {
  id: "lru-cache-ttl",
  label: "lru-cache (ttl, ttlAutopurge)",
  role: "peer",
  description:
    "`{ max, ttl, ttlAutopurge: true }` (a timer per key); reclaim observed through `dispose(value, key, \"expire\")`; clock `performance.now()` (its own, cached for `ttlResolution` = 1 ms).",
  clock: () => performance.now(),
  open: (onReclaim) => {
    const cache = new LRUCache<string, string>({
      max: 1_000_000,
      ttl: seedTableTtlMillis,
      ttlAutopurge: true,
      dispose: (_value, key, reason) => {
        if (reason === "expire") onReclaim(key)
      }
    })
    return Promise.resolve(ttlCacheExpiryStore(cache))
  }
}
