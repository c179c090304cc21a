/**
 * Order statistics for benchmark samples. The machine is shared and noisy, so
 * every figure the runner publishes is a median or a percentile, never a mean.
 */

/** The median of `samples` (the mean of the two middle values for an even count); NaN when empty. */
export const median = (samples: ReadonlyArray<number>): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/**
 * The `p`-th percentile (0 ≤ p ≤ 100) of samples already sorted ascending, by
 * the nearest-rank method; NaN when empty.
 */
export const percentileOfSorted = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

/** Sorts a copy of `samples` ascending as a Float64Array (fast for millions of latencies). */
export const sortedCopy = (samples: ArrayLike<number>): Float64Array => Float64Array.from(samples).sort()

/** Numbers appended one at a time into a growing `Float64Array` (millions of samples, no boxing). */
export class SampleBuffer {
  private samples: Float64Array
  length = 0

  /**
   * @param capacity samples held before the buffer first grows. Growing
   *   copies every sample so far, a stall of milliseconds at millions of
   *   them: a timed loop that records latencies should allocate up front.
   */
  constructor(capacity = 1 << 16) {
    this.samples = new Float64Array(capacity)
  }

  push(sample: number): void {
    if (this.length === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2)
      grown.set(this.samples)
      this.samples = grown
    }
    this.samples[this.length++] = sample
  }

  /** Samples held before the buffer grows. */
  get capacity(): number {
    return this.samples.length
  }

  /** Forgets the samples, keeping the room they took. */
  clear(): void {
    this.length = 0
  }

  /** The samples pushed so far. */
  contents(): Float64Array {
    return this.samples.subarray(0, this.length)
  }
}
