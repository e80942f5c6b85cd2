import type { OptionSpec, ParsedArgs } from "./args/options.ts";
import type { Env } from "./config/config.ts";
import type { ExitCode } from "./exit-codes.ts";

/** Where a command writes: stdout for results, stderr for messages. Both pass the redactor. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** What a command runs with. */
export interface CommandContext {
  readonly args: ParsedArgs;
  readonly env: Env;
  readonly io: CliIo;
  readonly json: boolean;
  /** Writes a result: JSON (`--json`) or text. */
  readonly print: (json: unknown, text: () => string) => void;
  /** Writes a notice to stderr (never mixed into `--json` output). */
  readonly note: (text: string) => void;
}

/** One command (or one action of `dead-letters`), with everything `--help` and the README show. */
export interface Command {
  /** `status`, `dead-letters requeue`. */
  readonly name: string;
  readonly summary: string;
  /** The usage line after `eventlane `. */
  readonly usage: string;
  /** Paragraphs shown by `--help` between the usage and the options. */
  readonly details: string;
  readonly options: readonly OptionSpec[];
  readonly positionals: { readonly min: number; readonly max: number; readonly name?: string };
  /** What exit codes 0 and 1 mean for this command (2 to 4 are the same everywhere). */
  readonly exitCodes: { readonly ok: string; readonly finding?: string };
  run(ctx: CommandContext): Promise<ExitCode>;
}
