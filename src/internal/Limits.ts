/**
 * Every size limit of the store, in one place (TigerBeetle style: a limit is a
 * number with a test at it and one past it).
 */

/** Longest key, in UTF-16 code units. Its UTF-8 form is at most 3× as long. */
export const maxKeyLength = 16_384

/** Largest value: UTF-16 code units for a string, bytes for a `Uint8Array`. */
export const maxValueLength = 64 * 1024 * 1024
