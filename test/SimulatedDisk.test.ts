/**
 * The simulated disk the power-cut tests run the store on: what it keeps
 * across a cut is what `fdatasync` and a directory sync promise, and no more.
 */
import { assert, describe, it } from "vitest"
import { pageBytes, sectorBytes, SimulatedDisk } from "./support/SimulatedDisk.ts"

const directory = "/simulated"
const file = `${directory}/data`
const seeds = Array.from({ length: 200 }, (_, i) => i + 1)

const filled = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte)

/** A disk holding `file` (its name durable) with `bytes` durable in it; gives the open descriptor. */
const diskWith = (bytes: Uint8Array): { disk: SimulatedDisk; fd: number } => {
  const disk = new SimulatedDisk()
  const fd = disk.createExclusive(file)
  disk.write(fd, bytes, 0)
  disk.datasync(fd)
  disk.syncDirectory(directory)
  return { disk, fd }
}

const equal = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
  a !== undefined && Buffer.from(a).equals(Buffer.from(b))

describe("SimulatedDisk", () => {
  it("reads what was written, zeros in holes, and nothing past the end", () => {
    const disk = new SimulatedDisk()
    const fd = disk.createExclusive(file)
    disk.write(fd, filled(10, 7), pageBytes * 2 - 5)
    assert.strictEqual(disk.size(fd), pageBytes * 2 + 5)
    const buffer = filled(pageBytes * 3, 9)
    assert.strictEqual(disk.read(fd, buffer, 0, buffer.length, 0), pageBytes * 2 + 5)
    assert.isTrue(buffer.subarray(0, pageBytes * 2 - 5).every((byte) => byte === 0))
    assert.isTrue(buffer.subarray(pageBytes * 2 - 5, pageBytes * 2 + 5).every((byte) => byte === 7))
    assert.strictEqual(disk.read(fd, buffer, 0, 10, pageBytes * 2 + 5), 0)
  })

  it("fails as node:fs does: EEXIST on an exclusive create, ENOENT on a missing file", () => {
    const { disk } = diskWith(filled(1, 1))
    assert.throws(() => disk.createExclusive(file), /EEXIST/)
    const codeOf = (f: () => unknown) => {
      try {
        f()
      } catch (error) {
        assert.instanceOf(error, Error)
        return (error as NodeJS.ErrnoException).code
      }
      return assert.fail("expected a throw")
    }
    assert.strictEqual(codeOf(() => disk.createExclusive(file)), "EEXIST")
    assert.strictEqual(codeOf(() => disk.openExisting(`${directory}/absent`)), "ENOENT")
    assert.strictEqual(codeOf(() => disk.unlink(`${directory}/absent`)), "ENOENT")
    assert.strictEqual(codeOf(() => disk.rename(`${directory}/absent`, file)), "ENOENT")
    assert.isTrue(disk.exists(file))
    assert.isFalse(disk.exists(`${directory}/absent`))
  })

  it("a synced write survives every cut, whatever was written after it", () => {
    const synced = filled(pageBytes * 2 + 100, 0xaa)
    const { disk, fd } = diskWith(synced)
    disk.write(fd, filled(pageBytes * 3, 0xbb), pageBytes)
    disk.cutPower()
    for (const seed of seeds) {
      const after = disk.survivor(seed).contents(file)
      assert.isDefined(after)
      assert.isTrue(equal(after!.subarray(0, pageBytes), synced.subarray(0, pageBytes)), `seed ${seed}`)
    }
  })

  it("an unsynced write survives some cuts and not others, and every byte read back was written", () => {
    const { disk, fd } = diskWith(filled(100, 0xaa))
    const written = filled(pageBytes * 3, 0xbb)
    disk.write(fd, written, 100)
    let whole = 0
    let none = 0
    for (const seed of seeds) {
      const after = disk.survivor(seed).contents(file)!
      assert.isTrue(equal(after.subarray(0, 100), filled(100, 0xaa)), `seed ${seed}: the synced bytes`)
      const tail = after.subarray(100)
      assert.isTrue(tail.every((byte) => byte === 0xbb || byte === 0), `seed ${seed}: only written bytes or zeros`)
      if (equal(tail, written)) whole++
      if (tail.every((byte) => byte === 0)) none++
    }
    assert.isAbove(whole, 0)
    assert.isAbove(none, 0)
  })

  it("a torn page is made of whole 512-byte sectors, some old and some new", () => {
    const { disk, fd } = diskWith(filled(pageBytes, 0xaa))
    disk.write(fd, filled(pageBytes, 0xbb), 0)
    let torn = 0
    for (const seed of seeds) {
      const survivor = disk.survivor(seed)
      const page = survivor.contents(file)!
      const sectors = new Set<number>()
      for (let sector = 0; sector < pageBytes / sectorBytes; sector++) {
        const bytes = page.subarray(sector * sectorBytes, (sector + 1) * sectorBytes)
        assert.isTrue(bytes.every((byte) => byte === bytes[0]), `seed ${seed}: sector ${sector} is whole`)
        sectors.add(bytes[0])
      }
      if (sectors.size === 2) {
        torn++
        assert.strictEqual(survivor.faults.pagesTorn, 1)
      }
    }
    assert.isAbove(torn, 0)
  })

  it("the size after a cut is the durable one or the current one, and pages past it are gone", () => {
    const { disk, fd } = diskWith(filled(pageBytes + 10, 0xaa))
    disk.write(fd, filled(pageBytes * 2, 0xbb), pageBytes + 10)
    const sizes = new Set<number>()
    for (const seed of seeds) {
      const survivor = disk.survivor(seed)
      const size = survivor.contents(file)!.length
      assert.oneOf(size, [pageBytes + 10, pageBytes * 3 + 10])
      sizes.add(size)
      // Growing the file again reads zeros where the lost bytes were.
      const again = survivor.openExisting(file)
      survivor.truncate(again, pageBytes * 4)
      if (size === pageBytes + 10) {
        assert.isTrue(survivor.contents(file)!.subarray(pageBytes + 10).every((byte) => byte === 0), `seed ${seed}`)
      }
    }
    assert.strictEqual(sizes.size, 2)
  })

  it("an unsynced truncate may be undone by a cut; a synced one is not", () => {
    const { disk, fd } = diskWith(filled(pageBytes * 2, 0xaa))
    disk.truncate(fd, 10)
    const sizes = new Set(seeds.map((seed) => disk.survivor(seed).contents(file)!.length))
    assert.deepStrictEqual([...sizes].sort((a, b) => a - b), [10, pageBytes * 2])

    const synced = diskWith(filled(pageBytes * 2, 0xaa))
    synced.disk.truncate(synced.fd, 10)
    synced.disk.datasync(synced.fd)
    for (const seed of seeds) assert.isTrue(equal(synced.disk.survivor(seed).contents(file), filled(10, 0xaa)))
  })

  it("a rename without a directory sync is forgotten by some cuts and kept by others", () => {
    const { disk } = diskWith(filled(10, 0xaa))
    const replacement = `${directory}/data.new`
    const fd = disk.createExclusive(replacement)
    disk.write(fd, filled(10, 0xbb), 0)
    disk.datasync(fd)
    disk.syncDirectory(directory)
    disk.rename(replacement, file)
    let forgotten = 0
    let kept = 0
    for (const seed of seeds) {
      const survivor = disk.survivor(seed)
      if (equal(survivor.contents(file), filled(10, 0xbb))) {
        kept++
        assert.deepStrictEqual(survivor.list(directory), ["data"])
      } else {
        forgotten++
        assert.isTrue(equal(survivor.contents(file), filled(10, 0xaa)), `seed ${seed}`)
        assert.deepStrictEqual(survivor.list(directory), ["data", "data.new"])
        assert.strictEqual(survivor.faults.directoryOperationsForgotten, 1)
      }
    }
    assert.isAbove(forgotten, 0)
    assert.isAbove(kept, 0)
  })

  it("a synced directory keeps its renames through every cut", () => {
    const { disk } = diskWith(filled(10, 0xaa))
    const replacement = `${directory}/data.new`
    const fd = disk.createExclusive(replacement)
    disk.write(fd, filled(10, 0xbb), 0)
    disk.datasync(fd)
    disk.rename(replacement, file)
    disk.syncDirectory(directory)
    for (const seed of seeds) {
      const survivor = disk.survivor(seed)
      assert.isTrue(equal(survivor.contents(file), filled(10, 0xbb)))
      assert.deepStrictEqual(survivor.list(directory), ["data"])
    }
  })

  it("directory operations not synced survive as a prefix, in the order they were made", () => {
    const disk = new SimulatedDisk()
    disk.syncDirectory(directory)
    disk.close(disk.createExclusive(`${directory}/a`))
    disk.rename(`${directory}/a`, `${directory}/b`)
    disk.close(disk.createExclusive(`${directory}/c`))
    disk.unlink(`${directory}/b`)
    const seen = new Set<string>()
    for (const seed of seeds) seen.add(disk.survivor(seed).list(directory).join(","))
    // Prefixes of [create a, rename a→b, create c, unlink b]: never "c" alone before b is unlinked, etc.
    assert.deepStrictEqual([...seen].sort(), ["", "a", "b", "b,c", "c"])
  })

  it("a file whose name was never made durable is gone after some cuts, even if its data was synced", () => {
    const disk = new SimulatedDisk()
    const fd = disk.createExclusive(file)
    disk.write(fd, filled(10, 0xaa), 0)
    disk.datasync(fd)
    const outcomes = new Set(seeds.map((seed) => disk.survivor(seed).exists(file)))
    assert.deepStrictEqual([...outcomes].sort(), [false, true])
  })

  it("a background sync makes nothing durable before its callback", () => {
    const { disk, fd } = diskWith(filled(10, 0xaa))
    disk.write(fd, filled(10, 0xbb), 0)
    let called = false
    disk.datasyncInBackground(fd, () => {
      called = true
    })
    disk.cutPower()
    const outcomes = new Set(seeds.map((seed) => disk.survivor(seed).contents(file)![0]))
    assert.isFalse(called)
    assert.deepStrictEqual([...outcomes].sort(), [0xaa, 0xbb])
  })

  it("a background sync makes durable what was written when it began, once its callback ran", async () => {
    const { disk, fd } = diskWith(filled(pageBytes * 2, 0xaa))
    disk.write(fd, filled(10, 0xbb), 0)
    const error = await new Promise<Error | null>((resolve) => {
      disk.datasyncInBackground(fd, resolve)
      // Written after the sync began: not covered by it.
      disk.write(fd, filled(10, 0xcc), pageBytes)
    })
    assert.isNull(error)
    const later = new Set<number>()
    for (const seed of seeds) {
      const after = disk.survivor(seed).contents(file)!
      assert.strictEqual(after[0], 0xbb, `seed ${seed}`)
      later.add(after[pageBytes])
    }
    assert.deepStrictEqual([...later].sort(), [0xaa, 0xcc])
  })

  it("a background sync cut short by the power fails and makes nothing durable", async () => {
    const { disk, fd } = diskWith(filled(10, 0xaa))
    disk.write(fd, filled(10, 0xbb), 0)
    disk.cutAfter(1)
    const error = await new Promise<Error | null>((resolve) => disk.datasyncInBackground(fd, resolve))
    assert.strictEqual((error as NodeJS.ErrnoException | null)?.code, "EIO")
    const outcomes = new Set(seeds.map((seed) => disk.survivor(seed).contents(file)![0]))
    assert.deepStrictEqual([...outcomes].sort(), [0xaa, 0xbb])
  })

  it("a cut at the n-th mutating call fails that call and every call after it with EIO", () => {
    const { disk, fd } = diskWith(filled(10, 0xaa))
    const before = disk.mutations
    disk.cutAfter(2)
    disk.write(fd, filled(10, 0xbb), 0)
    assert.isFalse(disk.isCut)
    assert.throws(() => disk.datasync(fd), /EIO/)
    assert.isTrue(disk.isCut)
    assert.strictEqual(disk.mutations, before + 2)
    for (const call of [() => disk.read(fd, new Uint8Array(1), 0, 1, 0), () => disk.write(fd, filled(1, 1), 0), () => disk.openExisting(file), () => disk.syncDirectory(directory)]) {
      try {
        call()
        assert.fail("expected EIO")
      } catch (error) {
        assert.strictEqual((error as NodeJS.ErrnoException).code, "EIO")
      }
    }
    // Releasing a descriptor promises nothing: the dead store may still close its files.
    disk.close(fd)
    // The interrupted sync made nothing durable.
    const outcomes = new Set(seeds.map((seed) => disk.survivor(seed).contents(file)![0]))
    assert.deepStrictEqual([...outcomes].sort(), [0xaa, 0xbb])
  })

  it("a write the cut interrupts may or may not have reached the disk", () => {
    const { disk, fd } = diskWith(filled(10, 0xaa))
    disk.cutAfter(1)
    assert.throws(() => disk.write(fd, filled(10, 0xbb), 0), /EIO/)
    const outcomes = new Set(seeds.map((seed) => disk.survivor(seed).contents(file)![0]))
    assert.deepStrictEqual([...outcomes].sort(), [0xaa, 0xbb])
  })

  it("a survivor is durable throughout: a second cut changes nothing, and it accepts new writes", () => {
    const { disk, fd } = diskWith(filled(pageBytes * 2, 0xaa))
    disk.write(fd, filled(pageBytes * 2, 0xbb), pageBytes)
    const survivor = disk.survivor(7)
    const contents = survivor.contents(file)!
    for (const seed of seeds.slice(0, 20)) assert.isTrue(equal(survivor.survivor(seed).contents(file), contents))
    const reopened = disk.survivor(7)
    const newFd = reopened.openExisting(file)
    reopened.write(newFd, filled(4, 0xcc), 0)
    // The survivor's pages are shared with the dead disk: writing one copies it first.
    assert.isTrue(equal(disk.survivor(7).contents(file), contents))
  })
})
