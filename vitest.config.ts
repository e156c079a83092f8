import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each test launches real multi-rank jobs; on a 2-core machine running files one at a time
    // keeps them from starving each other. Timeouts are hang guards, not performance checks.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
  },
});
