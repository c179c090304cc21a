/**
 * The figures the original Python library published: average µs per write
 * with the memory used, and average µs per read. Published numbers from
 * another machine: shown beside ours for reference, never measured here.
 */

export interface SeedFigure {
  readonly keys: number
  readonly writeMicros: number
  /** The original library's "Memory Usage (bytes)" for the whole store. */
  readonly memoryBytes: number
  readonly readMicros: number
}

export const seedFigures: ReadonlyArray<SeedFigure> = [
  { keys: 100_000, writeMicros: 2.713226, memoryBytes: 22_466_045, readMicros: 4.922529841 },
  { keys: 500_000, writeMicros: 2.720855647, memoryBytes: 85_795_717, readMicros: 5.634520947 },
  { keys: 1_000_000, writeMicros: 2.689814867, memoryBytes: 166_268_287, readMicros: 5.540252914 },
  { keys: 5_000_000, writeMicros: 3.165717206, memoryBytes: 772_098_381, readMicros: 5.834589481 },
  { keys: 10_000_000, writeMicros: 2.93393468, memoryBytes: 1_539_871_592, readMicros: 7.70696725 }
]

/** The original library's figure at exactly `keys`, if it published one. */
export const seedFigureAt = (keys: number): SeedFigure | undefined => seedFigures.find((figure) => figure.keys === keys)
