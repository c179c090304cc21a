/**
 * Progress lines of a running job. In a child process they go to stderr and
 * the runner forwards them, indented; a job run inside the runner's process
 * hands them to the runner directly.
 */
let sink: (message: string) => void = (message) => {
  process.stderr.write(`${message}\n`)
}

/** Reports one line of progress. */
export const progress = (message: string): void => sink(message)

/** Sends progress lines to `onProgress` until the returned function is called. */
export const redirectProgress = (onProgress: (message: string) => void): () => void => {
  const previous = sink
  sink = onProgress
  return () => {
    sink = previous
  }
}

/** A figure with three significant digits, for progress lines. */
export const fmt = (value: number): string =>
  Number.isFinite(value) ? (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3)) : String(value)
