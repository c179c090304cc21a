/**
 * Every file system call a log makes, in one seam: the log's own file, the
 * compaction copy, the directory that names them. Tests replace it to fail a
 * chosen call (ENOSPC, EIO) or to run the store on a simulated disk that
 * models what survives a power cut (`test/support/SimulatedDisk.ts`).
 *
 * The calls are synchronous, because a thread-pool hop costs ~30 µs a call
 * here, more than a small write; the two that may take milliseconds (a sync,
 * the release of an old log's blocks) also exist in a background form.
 *
 * Files the store creates are created exclusively and never through a
 * symlink: a link planted at `<log>.compact` makes the create fail rather
 * than have its target overwritten.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export interface FileOps {
  /** Opens an existing file for reading and writing; never follows a symlink. Throws ENOENT if absent. */
  readonly openExisting: (filePath: string) => number
  /**
   * Creates a new, empty file for reading and writing, mode 0600. Fails
   * (EEXIST) if anything, a symlink included, is already at `filePath`.
   */
  readonly createExclusive: (filePath: string) => number
  /** Reads up to `length` bytes at file offset `position` into `buffer[offset..]`; 0 at end of file. */
  readonly read: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => number
  /** Writes `bytes` at `position`; returns how many were written (a short write is possible). */
  readonly write: (fd: number, bytes: Uint8Array, position: number) => number
  /** `fdatasync`: the file's data, and its size, are durable when it returns. */
  readonly datasync: (fd: number) => void
  /** `fdatasync` off the main thread; `done` runs once it has returned. */
  readonly datasyncInBackground: (fd: number, done: (error: Error | null) => void) => void
  /** Sets the file's size. */
  readonly truncate: (fd: number, length: number) => void
  /** `truncate` off the main thread (releasing a large file's blocks takes milliseconds). */
  readonly truncateInBackground: (fd: number, length: number, done: (error: Error | null) => void) => void
  /** The file's size in bytes. */
  readonly size: (fd: number) => number
  readonly close: (fd: number) => void
  /** Atomically replaces `to` with `from`. Durable only once the directory is synced. */
  readonly rename: (from: string, to: string) => void
  /** Removes `filePath`; throws ENOENT if absent. */
  readonly unlink: (filePath: string) => void
  /** Whether anything (a symlink included) is at `filePath`. */
  readonly exists: (filePath: string) => boolean
  /** Makes the creates, renames and unlinks in `directory` durable. */
  readonly syncDirectory: (directory: string) => void
}

const noFollow = fs.constants.O_NOFOLLOW ?? 0

export const nodeFileOps: FileOps = {
  openExisting: (filePath) => fs.openSync(filePath, fs.constants.O_RDWR | noFollow),
  createExclusive: (filePath) =>
    fs.openSync(filePath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | noFollow, 0o600),
  read: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  write: (fd, bytes, position) => fs.writeSync(fd, bytes, 0, bytes.length, position),
  datasync: (fd) => fs.fdatasyncSync(fd),
  datasyncInBackground: (fd, done) => fs.fdatasync(fd, done),
  truncate: (fd, length) => fs.ftruncateSync(fd, length),
  truncateInBackground: (fd, length, done) => fs.ftruncate(fd, length, done),
  size: (fd) => fs.fstatSync(fd).size,
  close: (fd) => fs.closeSync(fd),
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (filePath) => fs.unlinkSync(filePath),
  exists: (filePath) => {
    try {
      fs.lstatSync(filePath)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false
      throw error
    }
  },
  syncDirectory: (directory) => {
    const fd = fs.openSync(directory, "r")
    try {
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  }
}

/**
 * What a caller of `LogOptions.fileOps` gives: any subset of the calls, the
 * rest taken from `node:fs`. (The first version of the seam had only
 * `write`, `datasync` and `truncate`; objects written for it still fit.)
 */
export type FileOpsOverrides = Partial<FileOps>

export const withDefaults = (overrides: FileOpsOverrides | undefined): FileOps =>
  overrides === undefined ? nodeFileOps : { ...nodeFileOps, ...overrides }

export const directoryOf = (file: string): string => path.dirname(path.resolve(file))

/** Writes all of `bytes` at `position`, looping over short writes. */
export const writeFully = (ops: FileOps, fd: number, bytes: Uint8Array, position: number): void => {
  let written = 0
  while (written < bytes.length) {
    const n = ops.write(fd, written === 0 ? bytes : bytes.subarray(written), position + written)
    if (n <= 0) throw new Error(`write returned ${n}`)
    written += n
  }
}

/**
 * Reads up to `length` bytes at `position` into `buffer[offset..]`, retrying
 * short reads. Returns the bytes read: fewer only at end of file.
 */
export const readFully = (
  ops: FileOps,
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number
): number => {
  let done = 0
  while (done < length) {
    const read = ops.read(fd, buffer, offset + done, length - done, position + done)
    if (read === 0) break
    done += read
  }
  return done
}

/** Removes `filePath` if it is there. */
export const removeIfPresent = (ops: FileOps, filePath: string): void => {
  try {
    ops.unlink(filePath)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
  }
}

/** `syncDirectory` off the main thread (through `node:fs`), or on a later turn for a replaced one. */
export const syncDirectoryInBackground = (
  ops: FileOps,
  directory: string,
  done: (error: Error | null) => void
): void => {
  if (ops.syncDirectory !== nodeFileOps.syncDirectory) {
    setImmediate(() => {
      try {
        ops.syncDirectory(directory)
      } catch (error) {
        return done(error as Error)
      }
      done(null)
    })
    return
  }
  fs.open(directory, "r", (error, fd) => {
    if (error !== null) return done(error)
    fs.fsync(fd, (syncError) => fs.close(fd, () => done(syncError)))
  })
}
