/**
 * The linearizability checker and recorder of `kvlog/testing`, as kvlog's
 * tests import them: `check(history, initial)` takes the keys present at the
 * start as a map, for kvlog's store model.
 */
import {
  checkLinearizable,
  type Entry,
  keyValueModel,
  type StoreOperation,
  type Verdict
} from "../../src/testing/Linearizability.ts"

export {
  type Entry,
  entriesOutcome,
  formatEntry,
  formatVerdict,
  keysOutcome,
  type LogicalClock,
  type Operation,
  type Outcome,
  type StoreOperation,
  type Verdict
} from "../../src/testing/Linearizability.ts"
export { record } from "../../src/testing/HistoryRecorder.ts"

/** `checkLinearizable` against kvlog's store, with `initial` the keys present at the start. */
export const check = <Op extends StoreOperation>(
  history: ReadonlyArray<Entry<Op>>,
  initial?: ReadonlyMap<string, string>
): Verdict<Op> => checkLinearizable(history, keyValueModel({ initial }))
