/**
 * The raw results of a run as JSON (`results.json` in the run's folder):
 * options, machine, every cell with its outcome, and the subjects measured
 * or missing, so that a later script can compare runs without parsing the
 * report.
 */
import type { BenchRun } from "../BenchRun.ts"

/** Sets and maps become arrays and objects; functions (a subject's methods) are left out, as JSON does. */
const plain = (_key: string, value: unknown): unknown =>
  value instanceof Set ? [...value] : value instanceof Map ? Object.fromEntries(value) : value

/** The run as indented JSON. */
export const renderRawResults = (run: BenchRun): string =>
  `${
    JSON.stringify(
      {
        command: `npm run bench${run.argv.length > 0 ? ` -- ${run.argv.join(" ")}` : ""}`,
        startedAt: run.startedAt.toISOString(),
        elapsedSeconds: run.elapsedSeconds,
        machine: run.machine,
        options: run.options,
        subjects: run.catalog,
        suiteSeconds: run.suiteSeconds,
        cells: run.cells
      },
      plain,
      2
    )
  }\n`
