import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Crash tests spawn real processes and property tests explore many schedules:
    // the defaults are sized for unit tests on a laptop, not for a 2-core CI box.
    testTimeout: 120_000,
    hookTimeout: 60_000
  }
})
