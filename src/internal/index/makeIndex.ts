/**
 * Which index a store gets: `options.index`, or else the default, which is
 * the heap index unless the environment variable `KVLOG_INDEX` says
 * `shared`. The variable exists so that a whole test suite (or a program)
 * runs on the shared index without a change to its code: CI runs every
 * suite once per index that way (`npm run test:shared`).
 */
import type { Index, IndexKind } from "./Index.ts"
import { SharedIndex } from "./shared/SharedIndex.ts"
import { StoreIndex } from "./StoreIndex.ts"

export const indexKinds: ReadonlyArray<IndexKind> = ["heap", "shared"]

export const defaultIndexKind = (): IndexKind =>
  globalThis.process?.env?.KVLOG_INDEX === "shared" ? "shared" : "heap"

/** Whether `kind` names an index (what `validate.ts` checks an `index` option with). */
export const isIndexKind = (kind: unknown): kind is IndexKind => kind === "heap" || kind === "shared"

/** Indexes made in this isolate: the test setup checks with it which suites never build one. */
let indexesMadeSoFar = 0

export const indexesMade = (): number => indexesMadeSoFar

export const makeIndex = (kind: IndexKind | undefined, shardCapacity?: number): Index => {
  indexesMadeSoFar++
  return (kind ?? defaultIndexKind()) === "shared" ? new SharedIndex() : new StoreIndex(shardCapacity)
}
