/**
 * The targets table for stdout at the end of a run: each target the run
 * measured, yes or no, with its figures (the report has the same table).
 */
import type { BenchRun } from "../BenchRun.ts"
import { alignedTable } from "./format.ts"
import { allTargets, verdict } from "./markdown.ts"

/** The targets this run measured; empty when it measured none of them. */
export const renderTargetsText = (run: BenchRun): string => {
  const measured = allTargets(run).filter((target) => target.reached !== undefined)
  if (measured.length === 0) return ""
  const rows = measured.map((target) => [verdict(target.reached).replace(/\*/g, ""), target.rule, target.figures])
  return `\nTargets measured by this run\n\n${alignedTable(["reached", "target", "this run"], rows, 3)}\n`
}
