/**
 * Assertions on the store's typed failures: the ones `kvlog/testing` exports.
 */
export { assertInvalidInput, assertKeyNotFound } from "../../src/testing/internal/assertions.ts"
