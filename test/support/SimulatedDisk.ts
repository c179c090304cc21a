/**
 * A disk in memory that knows what a power cut would leave of it, as SQLite's
 * crash-test VFS and LazyFS do: it implements `FileOps`, so a store runs on it
 * unchanged, and `survivor(seed)` builds the disk a seeded random power cut
 * leaves behind.
 *
 * What it models, and nothing more:
 * - Per file (inode): the bytes reads return now, and what is durable; per
 *   4 KiB page, whether it changed since the last sync; the size now and the
 *   durable size. `datasync` makes the file's data and size durable;
 *   `datasyncInBackground` makes durable what was written when it was called,
 *   once its callback fires (on a later macrotask), not before.
 * - Per directory: the names it holds now and the durable ones. Creates,
 *   renames and unlinks are durable once the directory is synced; until then
 *   a power cut forgets them, except a random prefix of them in the order
 *   they were made (an ordered journal).
 * - At a power cut, each page changed since its last sync comes back old, new,
 *   or torn at 512-byte sector granularity (a random subset of its sectors
 *   new); each file's size is its durable or its current one, and pages past
 *   it are gone.
 *
 * After the cut (`cutPower`, or at the chosen mutating call with `cutAfter`)
 * every call throws EIO, as a process whose machine lost power acknowledges
 * nothing more — except `close`, which releases a descriptor and promises
 * nothing, so that the dead store's scope can unwind.
 *
 * Paths are taken as given (the store passes absolute ones); directories need
 * not be created.
 */
import * as nodePath from "node:path"
import type { FileOps } from "../../src/internal/log/file/FileOps.ts"
import { seededRandom } from "./seededRandom.ts"

export const pageBytes = 4096
export const sectorBytes = 512
const sectorsPerPage = pageBytes / sectorBytes

type Page = Uint8Array

const zeroPage: Page = new Uint8Array(pageBytes)

/** A file's contents and its durable state. A page `undefined` holds zeros. */
interface Inode {
  readonly id: number
  pages: Array<Page | undefined>
  size: number
  durablePages: Array<Page | undefined>
  durableSize: number
  /** Pages changed since their last sync. */
  readonly dirty: Set<number>
  /** The mutation count at which each durable page, and the durable size, were last made durable. */
  readonly durableStamp: Array<number>
  durableSizeStamp: number
}

type DirectoryOperation =
  | { readonly kind: "create"; readonly name: string; readonly inode: Inode }
  | { readonly kind: "rename"; readonly from: string; readonly to: string; readonly inode: Inode }
  | { readonly kind: "unlink"; readonly name: string }

interface Directory {
  readonly entries: Map<string, Inode>
  durable: Map<string, Inode>
  /** Operations since the last sync of the directory, in order. */
  journal: Array<DirectoryOperation>
}

/** The mutating calls, any of which a power cut can interrupt. */
export type MutatingCall =
  | "write"
  | "datasync"
  | "background-sync"
  | "truncate"
  | "rename"
  | "unlink"
  | "createExclusive"
  | "syncDirectory"

/** What one power cut did to the disk it left. */
export interface CutFaults {
  /** Changed pages that reached the disk whole. */
  pagesKept: number
  /** Changed pages that came back as they were at their last sync. */
  pagesDropped: number
  /** Changed pages that came back part new, part old, at sector granularity. */
  pagesTorn: number
  /** Files that came back with their durable size rather than their current one. */
  sizesRolledBack: number
  /** Directory operations not synced that the cut kept (a prefix of each directory's journal). */
  directoryOperationsKept: number
  /** Directory operations not synced that the cut forgot. */
  directoryOperationsForgotten: number
}

export const emptyCutFaults = (): CutFaults => ({
  pagesKept: 0,
  pagesDropped: 0,
  pagesTorn: 0,
  sizesRolledBack: 0,
  directoryOperationsKept: 0,
  directoryOperationsForgotten: 0
})

/** An error as `node:fs` throws it: an `Error` with `code`, `errno`, `syscall` (and `path`). */
export const fsError = (code: string, errno: number, description: string, syscall: string, path?: string) => {
  // Without a stack, as node's own (which come from C++): a dead store throws thousands of them.
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  const error = new Error(`${code}: ${description}, ${syscall}${path === undefined ? "" : ` '${path}'`}`)
  Error.stackTraceLimit = limit
  return Object.assign(error, path === undefined ? { code, errno, syscall } : { code, errno, syscall, path }) as
    NodeJS.ErrnoException
}

const powerLost = (syscall: string) => fsError("EIO", -5, "i/o error", syscall)

const isZero = (bytes: Uint8Array): boolean =>
  bytes.length === pageBytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(zeroPage) :
    bytes.every((byte) => byte === 0)

const samePage = (a: Page | undefined, b: Page | undefined): boolean =>
  a === b || Buffer.from((a ?? zeroPage).buffer, (a ?? zeroPage).byteOffset, pageBytes).equals(b ?? zeroPage)

export class SimulatedDisk implements FileOps {
  private readonly directories = new Map<string, Directory>()
  private readonly descriptors = new Map<number, { readonly inode: Inode; readonly path: string }>()
  /** Pages that durable state or a pending background sync holds: a write copies them first. */
  private readonly frozen = new WeakSet<Page>()
  private nextDescriptor = 1000
  private nextInode = 1
  private mutationCount = 0
  private cutAtMutation = Infinity
  private cut = false

  /** What the power cut that left this disk did (all zeros for a disk that never lost power). */
  readonly faults: CutFaults

  constructor(faults: CutFaults = emptyCutFaults()) {
    this.faults = faults
  }

  // ===========================================================================
  // Power
  // ===========================================================================

  /** Mutating calls made so far (the one a cut interrupted included). */
  get mutations(): number {
    return this.mutationCount
  }

  /** Whether the power is off: every call throws (but `close`). */
  get isCut(): boolean {
    return this.cut
  }

  /** Cuts the power now. */
  cutPower(): void {
    this.cut = true
  }

  /**
   * Cuts the power during the `n`-th mutating call from now (`n >= 1`). The
   * interrupted call throws; a write, truncate, create, rename or unlink it
   * interrupts may have reached the page cache or the directory, not the disk
   * (so the cut may keep or drop it); a sync it interrupts made nothing durable.
   */
  cutAfter(n: number): void {
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`cutAfter expects an integer >= 1, got ${n}`)
    this.cutAtMutation = this.mutationCount + n
  }

  /**
   * The disk a power cut leaves, chosen by `seed` (the power is cut now if
   * it is still on). Everything on it is durable.
   */
  survivor(seed: number): SimulatedDisk {
    this.cut = true
    const random = seededRandom(seed)
    const faults = emptyCutFaults()
    const next = new SimulatedDisk(faults)
    const survivors = new Map<Inode, Inode>()
    const surviving = (inode: Inode): Inode => {
      let copy = survivors.get(inode)
      if (copy === undefined) {
        copy = next.surviveInode(inode, random, faults)
        survivors.set(inode, copy)
      }
      return copy
    }
    for (const [name, directory] of [...this.directories].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const entries = new Map(directory.durable)
      const kept = Math.floor(random() * (directory.journal.length + 1))
      for (const operation of directory.journal.slice(0, kept)) {
        if (operation.kind === "create") entries.set(operation.name, operation.inode)
        else if (operation.kind === "rename") {
          entries.delete(operation.from)
          entries.set(operation.to, operation.inode)
        } else entries.delete(operation.name)
      }
      faults.directoryOperationsKept += kept
      faults.directoryOperationsForgotten += directory.journal.length - kept
      const copied = new Map<string, Inode>()
      for (const [entry, inode] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        copied.set(entry, surviving(inode))
      }
      next.directories.set(name, { entries: copied, durable: new Map(copied), journal: [] })
    }
    return next
  }

  /** What survives of `inode` (its pages frozen: they may be shared with the dead disk). */
  private surviveInode(inode: Inode, random: () => number, faults: CutFaults): Inode {
    let size = inode.size
    if (inode.durableSize !== inode.size && random() < 0.5) {
      size = inode.durableSize
      faults.sizesRolledBack++
    }
    const pageCount = Math.ceil(size / pageBytes)
    const pages: Array<Page | undefined> = []
    for (let index = 0; index < pageCount; index++) {
      const old = inode.durablePages[index]
      let page = old
      if (inode.dirty.has(index)) {
        const young = inode.pages[index]
        if (!samePage(old, young)) {
          const choice = random()
          if (choice < 1 / 3) {
            faults.pagesDropped++
          } else if (choice < 2 / 3) {
            page = young
            faults.pagesKept++
          } else {
            page = tear(old, young, random)
            if (samePage(page, old)) faults.pagesDropped++
            else if (samePage(page, young)) faults.pagesKept++
            else faults.pagesTorn++
          }
        }
      }
      pages.push(page)
    }
    // Bytes past the size read as zeros if the file grows again.
    const tail = size % pageBytes
    if (tail !== 0 && pages[pageCount - 1] !== undefined) {
      const last = Uint8Array.prototype.slice.call(pages[pageCount - 1]!)
      last.fill(0, tail)
      pages[pageCount - 1] = last
    }
    for (const page of pages) if (page !== undefined) this.frozen.add(page)
    return {
      id: this.nextInode++,
      pages,
      size,
      durablePages: pages.slice(),
      durableSize: size,
      dirty: new Set(),
      durableStamp: [],
      durableSizeStamp: 0
    }
  }

  /** Counts a mutating call; throws if the power is off, or goes off during this call (after `apply`). */
  private mutate(call: MutatingCall, apply: () => void = () => {}): void {
    if (this.cut) throw powerLost(call)
    this.mutationCount++
    if (this.mutationCount >= this.cutAtMutation) {
      apply()
      this.cut = true
      throw powerLost(call)
    }
  }

  private checkPower(syscall: string): void {
    if (this.cut) throw powerLost(syscall)
  }

  // ===========================================================================
  // Namespace
  // ===========================================================================

  private directory(directoryPath: string): Directory {
    let directory = this.directories.get(directoryPath)
    if (directory === undefined) {
      directory = { entries: new Map(), durable: new Map(), journal: [] }
      this.directories.set(directoryPath, directory)
    }
    return directory
  }

  private locate(filePath: string): { readonly directory: Directory; readonly name: string } {
    const absolute = nodePath.resolve(filePath)
    return { directory: this.directory(nodePath.dirname(absolute)), name: nodePath.basename(absolute) }
  }

  private open(inode: Inode, filePath: string): number {
    const fd = this.nextDescriptor++
    this.descriptors.set(fd, { inode, path: filePath })
    return fd
  }

  private inodeOf(fd: number, syscall: string): Inode {
    const open = this.descriptors.get(fd)
    if (open === undefined) throw fsError("EBADF", -9, "bad file descriptor", syscall)
    return open.inode
  }

  readonly openExisting = (filePath: string): number => {
    this.checkPower("open")
    const { directory, name } = this.locate(filePath)
    const inode = directory.entries.get(name)
    if (inode === undefined) throw fsError("ENOENT", -2, "no such file or directory", "open", filePath)
    return this.open(inode, filePath)
  }

  readonly createExclusive = (filePath: string): number => {
    this.checkPower("open")
    const { directory, name } = this.locate(filePath)
    if (directory.entries.has(name)) throw fsError("EEXIST", -17, "file already exists", "open", filePath)
    const inode: Inode = {
      id: this.nextInode++,
      pages: [],
      size: 0,
      durablePages: [],
      durableSize: 0,
      dirty: new Set(),
      durableStamp: [],
      durableSizeStamp: 0
    }
    const apply = () => {
      directory.entries.set(name, inode)
      directory.journal.push({ kind: "create", name, inode })
    }
    this.mutate("createExclusive", apply)
    apply()
    return this.open(inode, filePath)
  }

  readonly rename = (from: string, to: string): void => {
    this.checkPower("rename")
    const source = this.locate(from)
    const target = this.locate(to)
    if (source.directory !== target.directory) throw fsError("EXDEV", -18, "cross-device link not permitted", "rename", from)
    const inode = source.directory.entries.get(source.name)
    if (inode === undefined) throw fsError("ENOENT", -2, "no such file or directory", "rename", from)
    const apply = () => {
      source.directory.entries.delete(source.name)
      source.directory.entries.set(target.name, inode)
      source.directory.journal.push({ kind: "rename", from: source.name, to: target.name, inode })
    }
    this.mutate("rename", apply)
    apply()
  }

  readonly unlink = (filePath: string): void => {
    this.checkPower("unlink")
    const { directory, name } = this.locate(filePath)
    if (!directory.entries.has(name)) throw fsError("ENOENT", -2, "no such file or directory", "unlink", filePath)
    const apply = () => {
      directory.entries.delete(name)
      directory.journal.push({ kind: "unlink", name })
    }
    this.mutate("unlink", apply)
    apply()
  }

  readonly exists = (filePath: string): boolean => {
    this.checkPower("lstat")
    const { directory, name } = this.locate(filePath)
    return directory.entries.has(name)
  }

  readonly syncDirectory = (directoryPath: string): void => {
    this.mutate("syncDirectory")
    const directory = this.directory(nodePath.resolve(directoryPath))
    directory.durable = new Map(directory.entries)
    directory.journal = []
  }

  // ===========================================================================
  // Data
  // ===========================================================================

  readonly read = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number => {
    this.checkPower("read")
    const inode = this.inodeOf(fd, "read")
    const end = Math.min(inode.size, position + length)
    let done = 0
    let zeroFrom: number | undefined
    for (let at = position; at < end;) {
      const index = Math.floor(at / pageBytes)
      const within = at - index * pageBytes
      const take = Math.min(pageBytes - within, end - at)
      const page = inode.pages[index]
      if (page === undefined) zeroFrom ??= offset + done
      else {
        if (zeroFrom !== undefined) Uint8Array.prototype.fill.call(buffer, 0, zeroFrom, offset + done)
        zeroFrom = undefined
        buffer.set(page.subarray(within, within + take), offset + done)
      }
      done += take
      at += take
    }
    // Runs of zero pages (the space a log grows into) are filled in one call.
    if (zeroFrom !== undefined) Uint8Array.prototype.fill.call(buffer, 0, zeroFrom, offset + done)
    return done
  }

  /** A page of `inode` that may be written in place. */
  private writablePage(inode: Inode, index: number): Page {
    const page = inode.pages[index]
    if (page !== undefined && !this.frozen.has(page)) return page
    const copy = page === undefined ? new Uint8Array(pageBytes) : Uint8Array.prototype.slice.call(page)
    inode.pages[index] = copy
    return copy
  }

  private writeAt(inode: Inode, bytes: Uint8Array, position: number): void {
    for (let done = 0; done < bytes.length;) {
      const at = position + done
      const index = Math.floor(at / pageBytes)
      const within = at - index * pageBytes
      const take = Math.min(pageBytes - within, bytes.length - done)
      const chunk = bytes.subarray(done, done + take)
      // Zeros written over zeros change nothing (the space a log grows into).
      if (!(inode.pages[index] === undefined && isZero(chunk))) {
        this.writablePage(inode, index).set(chunk, within)
        inode.dirty.add(index)
      }
      done += take
    }
    inode.size = Math.max(inode.size, position + bytes.length)
  }

  readonly write = (fd: number, bytes: Uint8Array, position: number): number => {
    this.checkPower("write")
    const inode = this.inodeOf(fd, "write")
    this.mutate("write", () => this.writeAt(inode, bytes, position))
    this.writeAt(inode, bytes, position)
    return bytes.length
  }

  private truncateTo(inode: Inode, length: number): void {
    if (length < inode.size) {
      const pageCount = Math.ceil(inode.size / pageBytes)
      const firstWhole = Math.ceil(length / pageBytes)
      for (let index = firstWhole; index < Math.max(pageCount, inode.durablePages.length); index++) {
        if (inode.pages[index] !== undefined || inode.durablePages[index] !== undefined) inode.dirty.add(index)
        inode.pages[index] = undefined
      }
      inode.pages.length = Math.min(inode.pages.length, firstWhole)
      const tail = length % pageBytes
      if (tail !== 0 && inode.pages[firstWhole - 1] !== undefined) {
        this.writablePage(inode, firstWhole - 1).fill(0, tail)
        inode.dirty.add(firstWhole - 1)
      }
    }
    inode.size = length
  }

  readonly truncate = (fd: number, length: number): void => {
    this.checkPower("ftruncate")
    const inode = this.inodeOf(fd, "ftruncate")
    this.mutate("truncate", () => this.truncateTo(inode, length))
    this.truncateTo(inode, length)
  }

  readonly truncateInBackground = (fd: number, length: number, done: (error: Error | null) => void): void => {
    setImmediate(() => {
      try {
        this.truncate(fd, length)
      } catch (error) {
        return done(error as Error)
      }
      done(null)
    })
  }

  readonly size = (fd: number): number => {
    this.checkPower("fstat")
    return this.inodeOf(fd, "fstat").size
  }

  readonly close = (fd: number): void => {
    if (this.cut) return
    this.inodeOf(fd, "close")
    this.descriptors.delete(fd)
  }

  /** Makes durable the pages in `snapshot` (those written when the sync began) and `size`, unless a later sync did. */
  private makeDurable(inode: Inode, snapshot: ReadonlyMap<number, Page | undefined>, size: number, stamp: number) {
    for (const [index, page] of snapshot) {
      if ((inode.durableStamp[index] ?? 0) > stamp) continue
      inode.durablePages[index] = page
      inode.durableStamp[index] = stamp
      if (page !== undefined) this.frozen.add(page)
      if (inode.pages[index] === page) inode.dirty.delete(index)
    }
    if (inode.durableSizeStamp <= stamp) {
      inode.durableSize = size
      inode.durableSizeStamp = stamp
    }
  }

  private snapshot(inode: Inode): Map<number, Page | undefined> {
    const pages = new Map<number, Page | undefined>()
    for (const index of inode.dirty) {
      const page = inode.pages[index]
      if (page !== undefined) this.frozen.add(page)
      pages.set(index, page)
    }
    return pages
  }

  readonly datasync = (fd: number): void => {
    this.checkPower("fdatasync")
    const inode = this.inodeOf(fd, "fdatasync")
    this.mutate("datasync")
    this.makeDurable(inode, this.snapshot(inode), inode.size, this.mutationCount)
  }

  readonly datasyncInBackground = (fd: number, done: (error: Error | null) => void): void => {
    let inode: Inode
    try {
      this.checkPower("fdatasync")
      inode = this.inodeOf(fd, "fdatasync")
    } catch (error) {
      setImmediate(() => done(error as Error))
      return
    }
    const snapshot = this.snapshot(inode)
    const size = inode.size
    const stamp = this.mutationCount
    setImmediate(() => {
      try {
        this.mutate("background-sync")
      } catch (error) {
        return done(error as Error)
      }
      this.makeDurable(inode, snapshot, size, stamp)
      done(null)
    })
  }

  // ===========================================================================
  // Inspection (for tests)
  // ===========================================================================

  /** The bytes reads of `filePath` return now, or `undefined` if no such file. Works after a cut. */
  contents(filePath: string): Uint8Array | undefined {
    const { directory, name } = this.locate(filePath)
    const inode = directory.entries.get(name)
    if (inode === undefined) return undefined
    const bytes = new Uint8Array(inode.size)
    for (let index = 0; index * pageBytes < inode.size; index++) {
      const page = inode.pages[index]
      if (page !== undefined) bytes.set(page.subarray(0, Math.min(pageBytes, inode.size - index * pageBytes)), index * pageBytes)
    }
    return bytes
  }

  /** The names in `directoryPath` now, sorted. */
  list(directoryPath: string): Array<string> {
    return [...this.directory(nodePath.resolve(directoryPath)).entries.keys()].sort()
  }
}

/** A page made of `old`'s sectors and `young`'s, a random subset of each (at least one of each where there are two). */
const tear = (old: Page | undefined, young: Page | undefined, random: () => number): Page => {
  const torn = new Uint8Array(pageBytes)
  const mask = 1 + Math.floor(random() * ((1 << sectorsPerPage) - 2))
  for (let sector = 0; sector < sectorsPerPage; sector++) {
    const source = (mask & (1 << sector)) !== 0 ? young : old
    if (source !== undefined) {
      torn.set(source.subarray(sector * sectorBytes, (sector + 1) * sectorBytes), sector * sectorBytes)
    }
  }
  return torn
}
