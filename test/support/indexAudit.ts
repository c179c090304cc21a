/**
 * CI runs the suites twice, once per index (`npm test`, then
 * `npm run test:shared`). Files whose tests never build an index gain nothing
 * from the second pass, so `vitest.config.ts` leaves them out of it; this
 * setup file keeps that list honest. After each file of the heap pass, a file
 * on the list that built an index in this process fails, naming itself: it
 * must run on both indexes. (Stores that a file's child processes open are
 * not counted; the list's comments say why each such file is index-free.)
 */
import { afterAll, beforeAll } from "vitest"
import * as path from "node:path"
import { indexesMade } from "../../src/internal/index/makeIndex.ts"
import { indexIndependentFiles } from "../../vitest.config.ts"

let file: string | undefined
let before = 0

// The hook's first argument must be a destructuring pattern (vitest reads it for fixtures).
// eslint-disable-next-line no-empty-pattern
beforeAll(({}, suite) => {
  file = path.basename(suite.file.filepath)
  before = indexesMade()
})

afterAll(() => {
  const made = indexesMade() - before
  if (process.env.KVLOG_INDEX_AUDIT === "print") console.log(`index audit: ${file} made ${made}`)
  if (file !== undefined && indexIndependentFiles.includes(file) && made > 0) {
    throw new Error(
      `${file} is listed as building no index, so the shared-index pass skips it, but it built ${made}: ` +
        "take it off indexIndependentFiles in vitest.config.ts"
    )
  }
})
