export { COMMANDS, runCli, type RunCliOptions } from "./cli.ts";
export type { CliIo, Command } from "./command.ts";
export { EnvironmentError, UsageError, type CliError } from "./errors.ts";
export { ExitCodes, type ExitCode } from "./exit-codes.ts";
export type { OptionSpec } from "./args/options.ts";
export type { StatusReport } from "./commands/status.ts";
export type { VerifyReport } from "./commands/verify.ts";
export type { AuditFindings, MissingEvent, ReorderedEvent, SplitKey } from "./verify/topic-audit.ts";
