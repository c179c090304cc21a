/**
 * The in-memory store is linearizable: random concurrent histories of get,
 * put and delete, run on `layerMemory`, pass the Wing–Gong / Lowe checker.
 */
import { KeyValueStore } from "../src/index.ts"
import { linearizabilitySuite } from "./support/concurrentHistories.ts"

linearizabilitySuite("KeyValueStore.layerMemory is linearizable", KeyValueStore.layerMemory)
