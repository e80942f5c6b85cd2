/**
 * The exit codes of every `eventlane` command. Scripts and alert rules match on these numbers, so
 * they never change meaning.
 */
export const ExitCodes = {
  /** The command did what was asked and found nothing wrong. */
  ok: 0,
  /**
   * The command ran and reports a finding: `verify` found a missing or reordered event or a key on
   * two partitions; a dead-letter action found no such (unresolved) dead letter; `replay` found
   * nothing to replay, or events it cannot replay (then it wrote nothing).
   */
  finding: 1,
  /** Usage: an unknown command or flag, a missing or malformed argument, flags that exclude each other. */
  usage: 2,
  /**
   * Configuration, connection or schema: no database URL or brokers, PostgreSQL or Kafka unreachable
   * or refusing the credentials, the schema not migrated (or at another version), a topic that does
   * not exist, a topic not read to its end within `--timeout`.
   */
  environment: 3,
  /** Anything else (a statement that failed for another reason, a bug): the message says what. */
  unexpected: 4,
} as const;

export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

/** What 2, 3 and 4 mean: the same for every command. */
export const COMMON_EXIT_CODES = `  2  usage: an unknown command or flag, a missing or malformed argument, flags that exclude each other
  3  configuration, connection or schema: no database URL or brokers, PostgreSQL or Kafka unreachable or
     refusing the credentials, the schema not migrated, a topic that does not exist, --timeout reached
  4  an unexpected error (the message says what)`;

/** The exit-code table of `eventlane --help`. */
export const EXIT_CODES_HELP = `Exit codes:
  0  ok: done, and nothing wrong found
  1  a finding: verify found a missing or reordered event or a split key; a dead-letter action found no
     such (unresolved) dead letter; replay found nothing to replay, or events it cannot replay
${COMMON_EXIT_CODES}`;

/** The exit-code table of one command's `--help`: its own 0 and 1, then the common ones. */
export function commandExitCodesHelp(codes: { readonly ok: string; readonly finding?: string }): string {
  const line = (code: number, text: string) => `  ${code}  ${text}`;
  return [
    "Exit codes:",
    line(0, codes.ok),
    ...(codes.finding === undefined ? [] : [line(1, codes.finding)]),
    COMMON_EXIT_CODES,
  ].join("\n");
}
