/**
 * Replay for one subject: write N records (untimed), then time opening the
 * data and visiting every record, in records per second. The files were just
 * written, so they are in the page cache: this is a warm open.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { ReplayJob, ReplayResult } from "../jobs.ts"
import { median } from "../stats.ts"
import type { ReplaySubject } from "../subjects/BenchSubject.ts"
import { fmt, progress } from "./progress.ts"

/** The bytes under `dir`, recursively. */
const bytesUnder = (dir: string): number => {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const entryPath = path.join(dir, entry.name)
    total += entry.isDirectory() ? bytesUnder(entryPath) : fs.statSync(entryPath).size
  }
  return total
}

/** Runs a replay job. */
export const runReplayJob = async (job: ReplayJob, subject: ReplaySubject): Promise<ReplayResult> => {
  const writeStart = performance.now()
  await subject.write(job.workDir, job.records)
  const logBytes = bytesUnder(job.workDir)
  progress(`wrote ${job.records} records (${fmt(logBytes / 1e6)} MB) in ${fmt((performance.now() - writeStart) / 1000)} s`)
  const openMillis: Array<number> = []
  for (let rep = 1; rep <= job.reps; rep++) {
    const start = performance.now()
    const scanned = await subject.openAndScan(job.workDir)
    const elapsed = performance.now() - start
    await scanned.close()
    if (scanned.records !== job.records) {
      throw new Error(`${subject.id} saw ${scanned.records} records after reopening, expected ${job.records}`)
    }
    openMillis.push(elapsed)
    progress(`rep ${rep}/${job.reps}: open + scan ${fmt(elapsed)} ms, ${fmt((job.records * 1000) / elapsed / 1e6)} M records/s`)
  }
  const millis = median(openMillis)
  return {
    suite: "replay",
    records: job.records,
    openMillis: millis,
    recordsPerSecond: (job.records * 1000) / millis,
    logBytes,
    reps: job.reps
  }
}
