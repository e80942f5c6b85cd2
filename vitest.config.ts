import { defineConfig } from "vitest/config";

/**
 * Timing-sensitive fault tests (failover, shard hand-overs, broker restarts): they measure takeovers
 * against a lease of a few seconds, so they run one file at a time, after the rest of the suite, on
 * a machine that is not also running three other test files.
 */
const FAULT_TESTS = [
  "packages/relay/test/failover.int.spec.ts",
  "packages/relay/test/failover-process.int.spec.ts",
  "packages/relay/test/failover-mark-in-flight.int.spec.ts",
  "packages/relay/test/shards.int.spec.ts",
  "packages/relay/test/broker-restart.int.spec.ts",
  "packages/relay/test/platformatic-broker-restart.int.spec.ts",
  "packages/relay/test/send-deadline.int.spec.ts",
  "packages/relay/test/failover-late-send.int.spec.ts",
];

/**
 * Packs every package and installs the tarballs into new npm projects (registry downloads, several
 * tsc and node processes): heavy, so it runs with the fault tests, after the suite, on its own.
 */
const INSTALL_TESTS = ["test/install/**/*.int.spec.ts"];

export default defineConfig({
  resolve: {
    // Workspace packages resolve to their TypeScript sources, no build needed.
    conditions: ["eventlane-source"],
  },
  ssr: { resolve: { conditions: ["eventlane-source"] } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    reporters: ["default"],
    projects: [
      {
        extends: true,
        test: {
          name: "suite",
          include: ["packages/*/test/**/*.spec.ts", "examples/*/test/**/*.spec.ts"],
          exclude: FAULT_TESTS,
          // Each integration file owns its database and topics, so files run in parallel.
          maxWorkers: 3,
          sequence: { groupOrder: 0 },
          typecheck: {
            enabled: true,
            include: ["packages/*/test/**/*.test-d.ts"],
            tsconfig: "./tsconfig.tests.json",
          },
        },
      },
      {
        extends: true,
        test: {
          name: "faults",
          include: [...FAULT_TESTS, ...INSTALL_TESTS],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
