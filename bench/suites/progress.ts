/** Progress lines from a child process, on stderr (the runner forwards them, indented). */
export const progress = (message: string): void => {
  process.stderr.write(`${message}\n`)
}

/** A figure with three significant digits, for progress lines. */
export const fmt = (value: number): string =>
  Number.isFinite(value) ? (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3)) : String(value)
