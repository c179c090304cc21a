/**
 * Values that tell when they were torn: each carries its own version number
 * at both ends, and its length and contents follow from that number. A value
 * read half before and half after a rewrite (of another length, or of the
 * other type) fails `isIntactValue`.
 */

/** The length of version `n`'s padding: 0 to 300 bytes, changing at every version. */
const padding = (n: number): number => (n * 7919) % 301

/** Version `n` of `key`'s value: a string for even `n`, bytes for odd `n`. */
export const versionedValue = (key: string, n: number): string | Uint8Array => {
  if (n % 2 === 0) return `${key}|${n}|${String.fromCharCode(97 + (n % 26)).repeat(padding(n))}|${n}`
  const bytes = new Uint8Array(8 + padding(n)).fill(n % 251)
  new DataView(bytes.buffer).setUint32(0, n, true)
  new DataView(bytes.buffer).setUint32(4, n, true)
  return bytes
}

const shape = /^([^|]*)\|(\d+)\|([a-z]*)\|(\d+)$/

export const isIntactValue = (key: string, value: unknown): boolean => {
  if (typeof value === "string") {
    const match = shape.exec(value)
    if (match === null || match[1] !== key || match[2] !== match[4]) return false
    const n = Number(match[2])
    return n % 2 === 0 && match[3] === String.fromCharCode(97 + (n % 26)).repeat(padding(n))
  }
  if (!(value instanceof Uint8Array) || value.length < 8) return false
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
  const n = view.getUint32(0, true)
  if (n % 2 !== 1 || view.getUint32(4, true) !== n || value.length !== 8 + padding(n)) return false
  for (let i = 8; i < value.length; i++) if (value[i] !== n % 251) return false
  return true
}
