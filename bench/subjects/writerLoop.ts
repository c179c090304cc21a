/**
 * The concurrent-writer loop of the durable-writes table for promise-based
 * stores: `writers` async loops, each awaiting one acknowledged write before
 * starting the next, until the window closes.
 */
import type { WriterRun } from "./BenchSubject.ts"

/** Runs the writers of one timed window against `put`. */
export const runPromiseWriters = async (
  put: (key: string, value: string) => Promise<unknown>,
  writers: number,
  millis: number,
  keyPrefix: string,
  value: string
): Promise<WriterRun> => {
  const latenciesMillis: Array<number> = []
  const start = performance.now()
  const end = start + millis
  const writer = async (writerIndex: number) => {
    for (let n = 0; performance.now() < end; n++) {
      const sent = performance.now()
      await put(`${keyPrefix}${writerIndex}:${n}`, value)
      latenciesMillis.push(performance.now() - sent)
    }
  }
  await Promise.all(Array.from({ length: writers }, (_, writerIndex) => writer(writerIndex)))
  return { elapsedMillis: performance.now() - start, latenciesMillis }
}
