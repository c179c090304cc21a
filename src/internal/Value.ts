/** What a key maps to; re-exported publicly as `KeyValueStore.Value`. */
export type Value = string | Uint8Array
