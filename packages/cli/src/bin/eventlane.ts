#!/usr/bin/env node
/**
 * The `eventlane` command: see `eventlane --help` and the package's README. From the repository's
 * sources: `node --conditions=eventlane-source packages/cli/src/bin/eventlane.ts`.
 */
import module from "node:module";

// Node's on-disk compile cache (NODE_COMPILE_CACHE chooses the directory, NODE_DISABLE_COMPILE_CACHE=1
// turns it off): a command loads a few hundred modules, and the cache cuts the start-up CPU by about
// a third. It has to be on before they load, hence the dynamic import below.
module.enableCompileCache?.();

// kafkajs 2.2.4 arms a request-queue timer with a negative delay on Node >= 23, which prints a
// TimeoutNegativeWarning (harmless: Node runs it at once) into an operator's terminal. Every other
// warning is still printed.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  if (warning.name !== "TimeoutNegativeWarning") process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

const { runCli } = await import("../cli.ts");
runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // runCli never rejects; this is the last guard, and it prints no value it was given.
    process.stderr.write(`eventlane: unexpected failure: ${error instanceof Error ? error.name : typeof error}\n`);
    process.exitCode = 4;
  },
);
