import { Data } from "effect";
import { ExitCodes } from "./exit-codes.ts";

/** A command line the CLI cannot run as given (exit 2). */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {
  readonly code = "EVENTLANE_CLI_USAGE" as const;
  readonly exitCode = ExitCodes.usage;
}

/** What a command's environment lacks or refuses (exit 3). `kind` says which part. */
export class EnvironmentError extends Data.TaggedError("EnvironmentError")<{
  readonly kind: "configuration" | "connection" | "schema" | "topic" | "timeout";
  readonly message: string;
}> {
  readonly code = "EVENTLANE_CLI_ENVIRONMENT" as const;
  readonly exitCode = ExitCodes.environment;
}

/** Every error of the CLI: matched by class or `code`, never by message. */
export type CliError = UsageError | EnvironmentError;
