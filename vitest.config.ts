import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Workspace packages resolve to their TypeScript sources, no build needed.
    conditions: ["eventlane-source"],
  },
  ssr: { resolve: { conditions: ["eventlane-source"] } },
  test: {
    include: ["packages/*/test/**/*.spec.ts", "examples/*/test/**/*.spec.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each integration file owns its database and topics, so files run in parallel.
    pool: "forks",
    maxWorkers: 3,
    typecheck: {
      enabled: true,
      include: ["packages/*/test/**/*.test-d.ts"],
      tsconfig: "./tsconfig.tests.json",
    },
    reporters: ["default"],
  },
});
