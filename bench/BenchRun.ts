/**
 * A whole run's outcome, as the report renders it: every cell of every
 * table, each either a result or the reason there is none (out of memory,
 * timeout, failure, skipped).
 */
import type { ChildOutcome } from "./ChildRun.ts"
import type { BenchOptions } from "./cli.ts"
import type { ValueShape } from "./dataset.ts"
import type { SuiteName } from "./jobs.ts"
import type { MachineInfo } from "./machine.ts"
import type { SubjectCatalog } from "./subjects/registry.ts"

/** Why a planned cell did not run. */
export interface Skipped {
  readonly _tag: "Skipped"
  readonly reason: string
}

export type CellOutcome = ChildOutcome | Skipped

/** One child run's place in the tables. */
export interface Cell {
  readonly suite: SuiteName
  readonly subject: string
  /** Keys (seed, ttl, expiry) or records (replay); 0 for durable writes. */
  readonly size: number
  readonly values: ValueShape
  readonly outcome: CellOutcome
}

export interface BenchRun {
  readonly options: BenchOptions
  /** The command line as typed after `npm run bench --`. */
  readonly argv: ReadonlyArray<string>
  readonly machine: MachineInfo
  readonly startedAt: Date
  readonly elapsedSeconds: number
  readonly catalog: SubjectCatalog
  readonly cells: ReadonlyArray<Cell>
  /** Seconds per suite, for the report. */
  readonly suiteSeconds: Readonly<Partial<Record<SuiteName, number>>>
}

/** The cell of `suite` × `subject` × `size` × `values`, if planned. */
export const findCell = (
  run: BenchRun,
  suite: SuiteName,
  subject: string,
  size: number,
  values: ValueShape = "short"
): Cell | undefined =>
  run.cells.find((cell) =>
    cell.suite === suite && cell.subject === subject && cell.size === size && cell.values === values
  )
