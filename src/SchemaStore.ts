/**
 * Typed views of a kvlog store: a view reads and writes the values of one
 * Effect `Schema`, stored as JSON text (`codec: "json"`, the default) or as
 * UTF-8 JSON bytes (`codec: "bytes"`).
 *
 * A view is a thin layer over the store's own operations: a view's `put` is
 * one `put` of the encoded value, with the same options, so TTL, the log,
 * durability and linearizability are exactly those of the store beneath. A
 * value that does not encode fails with `SchemaEncodeError` and nothing is
 * written; a stored value that does not decode (written by something else,
 * or under another schema) fails with `SchemaDecodeError`, never with a
 * defect.
 *
 * With `keyPrefix`, several views share one store: the view's key `k` is the
 * store's key `keyPrefix + k`, and the view's `keys` lists only the keys
 * under its prefix.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaParser from "effect/SchemaParser"
import * as SchemaTransformation from "effect/SchemaTransformation"
import { checkKey, invalidKey } from "./internal/validate.ts"
import * as KeyValueStore from "./KeyValueStore.ts"

// =============================================================================
// Models
// =============================================================================

/**
 * How a view stores its values. `"json"`: the schema's JSON encoding as a
 * string (`JSON.stringify` of `Schema.toCodecJson(schema)`'s output).
 * `"bytes"`: the same text as UTF-8 bytes, a `Uint8Array`.
 *
 * @since 0.2.0
 * @category models
 */
export type Codec = "json" | "bytes"

/**
 * Options of a view.
 *
 * - `codec` (default `"json"`): see `Codec`.
 * - `keyPrefix` (default `""`): prepended to every key the view is given, so
 *   that views with distinct prefixes never touch each other's keys. A
 *   prefix must be a well-formed string of at most `maxKeyLength` UTF-16
 *   code units, and the prefix and the key together must fit in
 *   `maxKeyLength`. Choose prefixes none of which starts another (end each
 *   with a separator such as `":"`): the view of `"a:"` sees the keys of the
 *   view of `"a:b:"` as its own keys starting with `"b:"`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ViewOptions {
  readonly codec?: Codec | undefined
  readonly keyPrefix?: string | undefined
}

/**
 * The operations of a view over one schema `S`: those of the store, on
 * values of type `S["Type"]`. Keys are the view's keys (without its prefix),
 * in the errors too.
 *
 * @since 0.2.0
 * @category models
 */
export interface SchemaView<S extends Schema.Constraint> {
  /** The schema of the view's values. */
  readonly schema: S
  /** How the view stores its values. */
  readonly codec: Codec
  /** What the view prepends to every key. */
  readonly keyPrefix: string
  /**
   * The decoded value of `key`. Fails with `KeyNotFound` if it is absent,
   * deleted or expired, with `SchemaDecodeError` if the stored value does
   * not decode with the view's schema and codec, with `InvalidInput` on a
   * bad key.
   */
  readonly get: (
    key: string
  ) => Effect.Effect<S["Type"], KeyValueStore.KeyNotFound | KeyValueStore.InvalidInput | SchemaDecodeError, S["DecodingServices"]>
  /**
   * Encodes `value` and stores it under `key` with `options` (as the store's
   * `put`: a `duration` expires the key exactly as for a raw value); succeeds
   * with `value`. Fails with `SchemaEncodeError`, nothing written, if the
   * schema rejects `value`; with `InvalidInput` on a bad key or options, or
   * an encoded value over `maxValueLength`.
   */
  readonly put: (
    key: string,
    value: S["Type"],
    options?: KeyValueStore.PutOptions
  ) => Effect.Effect<
    S["Type"],
    KeyValueStore.InvalidInput | KeyValueStore.StorageError | SchemaEncodeError,
    S["EncodingServices"]
  >
  /** Removes `key`; as the store's `delete`. */
  readonly delete: (
    key: string
  ) => Effect.Effect<void, KeyValueStore.KeyNotFound | KeyValueStore.InvalidInput | KeyValueStore.StorageError>
  /** Whether `key` is present and not expired, whether or not its value decodes. */
  readonly has: (key: string) => Effect.Effect<boolean, KeyValueStore.InvalidInput>
  /** The time `key` has left; as the store's `timeToLive`. */
  readonly timeToLive: (
    key: string
  ) => Effect.Effect<Option.Option<Duration.Duration>, KeyValueStore.KeyNotFound | KeyValueStore.InvalidInput>
  /**
   * A snapshot of the live keys under the view's prefix, prefix removed, in
   * no particular order. It walks every key of the store; with no prefix it
   * is every key of the store, whatever wrote it.
   */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
}

// =============================================================================
// Errors
// =============================================================================

const formatIssue = SchemaIssue.makeFormatterDefault()

/** A key as error messages show it: quoted, and cut short past 200 code units. */
const quoteKey = (key: string): string => JSON.stringify(key.length > 200 ? key.slice(0, 200) + "…" : key)

/**
 * The value stored under `key` does not decode with the view's schema and
 * codec: it is not JSON, has the wrong shape, fails a check of the schema,
 * or is bytes where the codec reads strings (or the reverse). Fields `key`
 * (the view's key) and `issue` (the schema's account of what is wrong, which
 * `message` spells out).
 *
 * @since 0.2.0
 * @category errors
 */
export class SchemaDecodeError extends Data.TaggedError("SchemaDecodeError")<{
  readonly key: string
  readonly issue: SchemaIssue.Issue
}> {
  override get message(): string {
    return `the value of key ${quoteKey(this.key)} does not decode with the view's schema: ${
      formatIssue(this.issue)
    }`
  }
}

/**
 * The view's schema rejects the value given to `put` for `key`; nothing was
 * written. Fields `key` (the view's key) and `issue`, spelled out in `message`.
 *
 * @since 0.2.0
 * @category errors
 */
export class SchemaEncodeError extends Data.TaggedError("SchemaEncodeError")<{
  readonly key: string
  readonly issue: SchemaIssue.Issue
}> {
  override get message(): string {
    return `the value for key ${quoteKey(this.key)} does not encode with the view's schema: ${
      formatIssue(this.issue)
    }`
  }
}

// =============================================================================
// Stored forms
// =============================================================================

// A value of the wrong kind (bytes under the "json" codec, or the reverse)
// says which codec the view has: the schema's own "Expected string" would not.
const JsonText = Schema.String.annotate({
  message: "Expected a JSON text (a string), as the view's codec is \"json\""
})

// Fatal: a byte sequence that is not UTF-8 is someone else's data, not text
// to be repaired with U+FFFD and misread.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const utf8Encoder = new TextEncoder()

const Utf8JsonBytes = Schema.Uint8Array.annotate({
  message: "Expected UTF-8 JSON bytes (a Uint8Array), as the view's codec is \"bytes\""
}).pipe(
  Schema.decodeTo(
    Schema.String,
    SchemaTransformation.transformEffect({
      decode: (bytes: Uint8Array, options) => {
        try {
          return Effect.succeed(utf8Decoder.decode(bytes))
        } catch {
          return Effect.fail(new SchemaIssue.InvalidValue({ message: "Expected valid UTF-8" }, bytes, options))
        }
      },
      encode: (text: string) => Effect.succeed(utf8Encoder.encode(text))
    })
  )
)

/** The schema from the stored form of `codec` to `S["Type"]`. */
const storedForm = <S extends Schema.Constraint>(schema: S, codec: Codec) => {
  const fromJsonText = Schema.fromJsonString(Schema.toCodecJson(schema))
  return codec === "json"
    ? JsonText.pipe(Schema.decodeTo(fromJsonText))
    : Utf8JsonBytes.pipe(Schema.decodeTo(fromJsonText))
}

// =============================================================================
// Options
// =============================================================================

const optionNames: ReadonlySet<string> = new Set(["codec", "keyPrefix"])

/** A refused option value as messages show it; never throws, whatever it is given. */
const describe = (u: unknown): string =>
  typeof u === "string" ? JSON.stringify(u.length > 40 ? u.slice(0, 40) + "…" : u) : u === null ? "null" : typeof u

/** The view's codec and prefix, or why `options` are refused. */
const checkOptions = (
  options: unknown
): { readonly codec: Codec; readonly keyPrefix: string } | KeyValueStore.InvalidInput => {
  if (options === undefined) return { codec: "json", keyPrefix: "" }
  if (options === null || typeof options !== "object") {
    return new KeyValueStore.InvalidInput({ message: `view options must be an object, got ${describe(options)}` })
  }
  // A misspelt option ignored would leave views sharing keys they were meant to keep apart.
  for (const name of Object.keys(options)) {
    if (!optionNames.has(name)) {
      return new KeyValueStore.InvalidInput({
        message: `unknown view option ${JSON.stringify(name)}: expected "codec" or "keyPrefix"`
      })
    }
  }
  const { codec = "json", keyPrefix = "" } = options as { readonly codec?: unknown; readonly keyPrefix?: unknown }
  if (codec !== "json" && codec !== "bytes") {
    return new KeyValueStore.InvalidInput({ message: `codec must be "json" or "bytes", got ${describe(codec)}` })
  }
  if (typeof keyPrefix !== "string") {
    return new KeyValueStore.InvalidInput({ message: `keyPrefix must be a string, got ${describe(keyPrefix)}` })
  }
  if (keyPrefix.length > KeyValueStore.maxKeyLength) {
    return new KeyValueStore.InvalidInput({
      message: `keyPrefix is ${keyPrefix.length} UTF-16 code units long, over the key limit of ${KeyValueStore.maxKeyLength}`
    })
  }
  // The store checks each whole key, but a prefix ending in a lone high
  // surrogate would pass that check paired with a key starting with a lone
  // low one: only a well-formed prefix makes "key well formed" mean the same
  // through the view as without it.
  if (!keyPrefix.isWellFormed()) {
    return new KeyValueStore.InvalidInput({ message: "keyPrefix contains a lone UTF-16 surrogate" })
  }
  return { codec, keyPrefix }
}

// =============================================================================
// Constructors
// =============================================================================

/**
 * A view of `store` whose values are those of `schema`. Fails with
 * `InvalidInput` on a `schema` that is not an Effect Schema or on options it
 * cannot use (see `ViewOptions`).
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 * import { KeyValueStore, SchemaStore } from "kvlog"
 *
 * class User extends Schema.Class<User>("User")({ name: Schema.String, joined: Schema.Date }) {}
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* KeyValueStore.KeyValueStore
 *   const users = yield* SchemaStore.makeView(store, User, { keyPrefix: "user:" })
 *   yield* users.put("ada", new User({ name: "Ada", joined: new Date("2024-01-01") }))
 *   const ada = yield* users.get("ada") // a User, its `joined` a Date
 * }).pipe(Effect.provide(KeyValueStore.layerMemory))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeView = <S extends Schema.Constraint>(
  store: KeyValueStore.KeyValueStoreService,
  schema: S,
  options?: ViewOptions
): Effect.Effect<SchemaView<S>, KeyValueStore.InvalidInput> =>
  Effect.suspend(() => {
    if (!Schema.isSchema(schema as unknown)) {
      return Effect.fail(
        new KeyValueStore.InvalidInput({ message: `schema must be an Effect Schema, got ${describe(schema)}` })
      )
    }
    const checked = checkOptions(options)
    if (checked instanceof KeyValueStore.InvalidInput) return Effect.fail(checked)
    return Effect.succeed(makeChecked(store, schema, checked.codec, checked.keyPrefix))
  })

/**
 * A view of the `KeyValueStore` in context; see `makeView`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const forSchema = <S extends Schema.Constraint>(
  schema: S,
  options?: ViewOptions
): Effect.Effect<SchemaView<S>, KeyValueStore.InvalidInput, KeyValueStore.KeyValueStore> =>
  Effect.flatMap(Effect.service(KeyValueStore.KeyValueStore), (store) => makeView(store, schema, options))

const makeChecked = <S extends Schema.Constraint>(
  store: KeyValueStore.KeyValueStoreService,
  schema: S,
  codec: Codec,
  keyPrefix: string
): SchemaView<S> => {
  const stored = storedForm(schema, codec)
  const decode = SchemaParser.decodeUnknownEffect(stored)
  // Unknown, not typed: a value the types allow but the schema rejects (a
  // refinement, an invalid Date) must fail as an encode error, not throw.
  const encode = SchemaParser.encodeUnknownEffect(stored)

  /** The store's key for the view's `key`, or why it is refused. */
  const storeKey = (key: string): string | KeyValueStore.InvalidInput => {
    // Checked first: `keyPrefix + key` would turn anything into a string.
    if (typeof key !== "string") return invalidKey(key)
    // The store checks the rest of the whole key itself, with its own messages.
    if (keyPrefix === "") return key
    if (keyPrefix.length + key.length > KeyValueStore.maxKeyLength) {
      return new KeyValueStore.InvalidInput({
        message: `key is ${key.length} UTF-16 code units long: after the view's keyPrefix of ${keyPrefix.length}` +
          ` that is over the key limit of ${KeyValueStore.maxKeyLength}`
      })
    }
    return keyPrefix + key
  }

  /** The store's `KeyNotFound` names the prefixed key; callers asked for theirs. */
  const withViewKey = <E>(key: string) => (error: E | KeyValueStore.KeyNotFound): E | KeyValueStore.KeyNotFound =>
    keyPrefix !== "" && error instanceof KeyValueStore.KeyNotFound ? new KeyValueStore.KeyNotFound({ key }) : error

  return {
    schema,
    codec,
    keyPrefix,
    get: (key) => {
      const at = storeKey(key)
      if (typeof at !== "string") return Effect.fail(at)
      return Effect.flatMap(
        Effect.mapError(store.get(at), withViewKey(key)),
        (value) => Effect.mapError(decode(value), (issue) => new SchemaDecodeError({ key, issue }))
      )
    },
    put: (key, value, options) => {
      const at = storeKey(key)
      if (typeof at !== "string") return Effect.fail(at)
      // A bad key is refused as such before the value is encoded, whatever the value.
      const refused = checkKey(at)
      if (refused !== undefined) return Effect.fail(refused)
      return Effect.flatMap(
        Effect.mapError(encode(value), (issue) => new SchemaEncodeError({ key, issue })),
        (encoded) => Effect.as(store.put(at, encoded, options), value)
      )
    },
    delete: (key) => {
      const at = storeKey(key)
      return typeof at === "string" ? Effect.mapError(store.delete(at), withViewKey(key)) : Effect.fail(at)
    },
    has: (key) => {
      const at = storeKey(key)
      return typeof at === "string" ? store.has(at) : Effect.fail(at)
    },
    timeToLive: (key) => {
      const at = storeKey(key)
      return typeof at === "string" ? Effect.mapError(store.timeToLive(at), withViewKey(key)) : Effect.fail(at)
    },
    keys: keyPrefix === "" ? store.keys : Effect.map(store.keys, (keys) => {
      const own: Array<string> = []
      for (const key of keys) if (key.startsWith(keyPrefix)) own.push(key.slice(keyPrefix.length))
      return own
    })
  }
}
