/**
 * What the `kvlog` command writes: results on stdout, buffered so that a
 * dump of millions of lines costs a few large writes; one-line messages and
 * a progress bar on stderr.
 */
import * as fs from "node:fs"
import type { OnProgress } from "../internal/log/inspect/LogInspection.ts"

/** Logs at least this large get a progress bar while they are read. */
export const progressMinBytes = 64 * 1024 * 1024

/** How often the bar is redrawn, at most. */
const redrawMillis = 100

const width = 30

const megabytes = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(0)} MB`

/**
 * A progress reporter for reading `what`: draws a bar on stderr while a log
 * larger than `progressMinBytes` is read, only when stderr is a terminal (a
 * bar in a file or a pipe is noise) and not `quiet`. `done` erases it.
 */
export const progressBar = (what: string, quiet: boolean): { readonly onProgress: OnProgress; readonly done: () => void } => {
  if (quiet || !process.stderr.isTTY) return { onProgress: () => {}, done: () => {} }
  let drawn = false
  let lastDraw = 0
  const onProgress: OnProgress = (bytesRead, fileBytes) => {
    if (fileBytes < progressMinBytes) return
    const now = performance.now()
    if (drawn && now - lastDraw < redrawMillis && bytesRead < fileBytes) return
    lastDraw = now
    drawn = true
    const share = Math.min(1, bytesRead / fileBytes)
    const filled = Math.round(share * width)
    writeStderr(
      `\r${what} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${
        megabytes(bytesRead)
      } of ${megabytes(fileBytes)}`
    )
  }
  const done = () => {
    if (drawn) writeStderr("\r\x1b[K")
    drawn = false
  }
  return { onProgress, done }
}

const writeStderr = (text: string): void => {
  try {
    fs.writeSync(2, text)
  } catch {
    // A progress bar that cannot be drawn is not worth failing the command for.
  }
}

/** Writes one line on stderr. Never more than one: a message's own newlines become spaces. */
export const printError = (message: string): void => {
  writeStderr(`kvlog: ${message.replace(/\s*\n\s*/g, " ")}\n`)
}

/**
 * Lines for stdout, gathered and written in large pieces. Writes to stdout
 * are synchronous on Linux for files, pipes and terminals, so a dump's lines
 * go out in order while the log is still being read, and memory stays
 * bounded by one piece.
 */
export class LineOutput {
  #pending: Array<string> = []
  #pendingLength = 0
  static readonly pieceLength = 256 * 1024

  line(text: string): void {
    this.#pending.push(text)
    this.#pendingLength += text.length + 1
    if (this.#pendingLength >= LineOutput.pieceLength) this.flush()
  }

  flush(): void {
    if (this.#pending.length === 0) return
    const piece = this.#pending.join("\n") + "\n"
    this.#pending = []
    this.#pendingLength = 0
    process.stdout.write(piece)
  }
}
