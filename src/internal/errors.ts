/**
 * The store's typed errors, re-exported by the public module.
 */
import * as Data from "effect/Data"

/**
 * The key is absent, was deleted, or has expired.
 */
export class KeyNotFound extends Data.TaggedError("KeyNotFound")<{
  readonly key: string
}> {
  override get message(): string {
    return `key not found: ${JSON.stringify(this.key.length > 200 ? this.key.slice(0, 200) + "…" : this.key)}`
  }
}

/**
 * An argument the store cannot accept. The store is left unchanged.
 */
export class InvalidInput extends Data.TaggedError("InvalidInput")<{
  readonly message: string
}> {}

/**
 * The log could not be written or synced. The operations of the failed batch
 * were not applied; everything acknowledged before is intact. `writeStatus`
 * tells whether the store still accepts writes. Also: the shared index has
 * no memory left for a write (its arena full, or shared memory refused); the
 * write is then refused before anything, the log included, changed.
 */
export class StorageError extends Data.TaggedError("StorageError")<{
  readonly message: string
  readonly cause?: unknown
}> {}


/**
 * The log is damaged before its tail, or is not a kvlog log: the store
 * refuses to open rather than serve a wrong value. `offset` is the byte
 * offset of the first bad record (0 for a bad header). Opening with
 * `onCorruption: "truncate"` keeps the records before it instead.
 */
export class LogCorrupted extends Data.TaggedError("LogCorrupted")<{
  readonly path: string
  readonly offset: number
  readonly reason: string
}> {
  override get message(): string {
    return `log ${this.path} is corrupt at byte offset ${this.offset}: ${this.reason}`
  }
}

/** Another store, in this process or another, has the log open. */
export class LogLocked extends Data.TaggedError("LogLocked")<{
  readonly path: string
  readonly owner: string
}> {
  override get message(): string {
    return `log ${this.path} is already open in ${this.owner}`
  }
}
