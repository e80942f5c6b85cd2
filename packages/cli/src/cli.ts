import { InvalidIdentifierError, InvalidOptionError } from "@eventlane/core";
import { RelayEnvVariables } from "@eventlane/relay";
import kafkajs from "kafkajs";
import { readFileSync } from "node:fs";
import pg from "pg";
import { optionsHelp, parse } from "./args/options.ts";
import type { CliIo, Command, CommandContext } from "./command.ts";
import {
  deadLettersListCommand,
  deadLettersRequeueCommand,
  deadLettersShowCommand,
  deadLettersSkipCommand,
} from "./commands/dead-letters.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { replayCommand } from "./commands/replay.ts";
import { statusCommand } from "./commands/status.ts";
import { verifyCommand } from "./commands/verify.ts";
import { CONSUMER_DATABASE_URL_ENV, type Env } from "./config/config.ts";
import { describeDatabaseError, isEnvironmentSqlState } from "./config/connections.ts";
import { EnvironmentError, UsageError } from "./errors.ts";
import { commandExitCodesHelp, EXIT_CODES_HELP, type ExitCode, ExitCodes } from "./exit-codes.ts";
import { Redactor } from "./output/redact.ts";

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [
  migrateCommand,
  statusCommand,
  deadLettersListCommand,
  deadLettersShowCommand,
  deadLettersRequeueCommand,
  deadLettersSkipCommand,
  replayCommand,
  verifyCommand,
];

const GROUPS = ["dead-letters"] as const;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** `eventlane --help`. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `eventlane: operate an Eventlane installation (outbox, relay, consumers).

Usage: eventlane <command> [options]        eventlane <command> --help for its options

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")}

Configuration comes from flags or the relay's environment variables: ${RelayEnvVariables.databaseUrl},
${RelayEnvVariables.schema}, ${RelayEnvVariables.tablePrefix}, ${RelayEnvVariables.kafkaBrokers} (and the other EVENTLANE_KAFKA_* ones),
plus ${CONSUMER_DATABASE_URL_ENV} for a consumer's own database. Output is text, or JSON with --json.
Nothing secret (connection strings, passwords) is ever printed.

${EXIT_CODES_HELP}
`;
}

/** `eventlane <command> --help`. */
export function commandHelp(c: Command): string {
  return `eventlane ${c.name}: ${c.summary}

Usage: eventlane ${c.usage}

${c.details}

Options:
${optionsHelp(c.options)}

${commandExitCodesHelp(c.exitCodes)}
`;
}

function groupHelp(group: string): string {
  const cs = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  const width = Math.max(...cs.map((c) => c.name.length)) + 2;
  return `Usage: eventlane ${group} <action> [options]        eventlane ${group} <action> --help for its options

Actions:
${cs.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")}
`;
}

/** Which exit code an error ends a command with, and how it reads. */
function classify(error: unknown): { code: ExitCode; message: string } {
  if (error instanceof UsageError || error instanceof EnvironmentError) {
    return { code: error.exitCode, message: error.message };
  }
  // Raised by the libraries for values that came from the command line.
  if (error instanceof InvalidOptionError || error instanceof InvalidIdentifierError) {
    return { code: ExitCodes.usage, message: error.message };
  }
  if (error instanceof pg.DatabaseError) {
    return {
      code: isEnvironmentSqlState(error.code) ? ExitCodes.environment : ExitCodes.unexpected,
      message: `PostgreSQL: ${describeDatabaseError(error)}`,
    };
  }
  // A system error (ECONNRESET, ETIMEDOUT, ...): the network between us and a server.
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === "string") {
    return { code: ExitCodes.environment, message: describeDatabaseError(error) };
  }
  if (error instanceof kafkajs.KafkaJSError) {
    return { code: ExitCodes.environment, message: `Kafka: ${error.message}` };
  }
  return {
    code: ExitCodes.unexpected,
    message: `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  };
}

/** The connection strings and passwords this run may touch, so that none is ever printed. */
function redactorFor(argv: readonly string[], env: Env): Redactor {
  const r = new Redactor();
  r.addConnectionString(env[RelayEnvVariables.databaseUrl]);
  r.addConnectionString(env[CONSUMER_DATABASE_URL_ENV]);
  r.addSecret(env[RelayEnvVariables.kafkaSaslPassword]);
  argv.forEach((arg, i) => {
    for (const flag of ["--database-url", "--consumer-database-url"]) {
      if (arg === flag) r.addConnectionString(argv[i + 1]);
      else if (arg.startsWith(`${flag}=`)) r.addConnectionString(arg.slice(flag.length + 1));
    }
  });
  return r;
}

/** Where `runCli` writes and what it reads; the process's by default. */
export interface RunCliOptions {
  readonly io?: CliIo;
  readonly env?: Env;
}

/**
 * Runs one `eventlane` command line (without `node` and the script) and resolves with its exit
 * code; it never throws and never calls `process.exit`. Every line it writes passes the redactor.
 */
export async function runCli(argv: readonly string[], options: RunCliOptions = {}): Promise<ExitCode> {
  const env = options.env ?? process.env;
  const raw = options.io ?? {
    stdout: (t: string) => process.stdout.write(t),
    stderr: (t: string) => process.stderr.write(t),
  };
  const redactor = redactorFor(argv, env);
  const io: CliIo = {
    stdout: (t) => raw.stdout(redactor.redact(t)),
    stderr: (t) => raw.stderr(redactor.redact(t)),
  };
  const json = argv.includes("--json");
  const fail = (name: string, code: ExitCode, message: string): ExitCode => {
    io.stderr(`eventlane${name === "" ? "" : ` ${name}`}: ${message}\n`);
    if (json) io.stdout(`${JSON.stringify({ error: { exitCode: code, message } }, null, 2)}\n`);
    return code;
  };

  const [first, second] = argv;
  if (first === undefined) {
    io.stderr(mainHelp());
    return ExitCodes.usage;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    io.stdout(mainHelp());
    return ExitCodes.ok;
  }
  if (first === "--version") {
    io.stdout(`${version()}\n`);
    return ExitCodes.ok;
  }
  let command: Command | undefined;
  let rest: readonly string[];
  if ((GROUPS as readonly string[]).includes(first)) {
    if (second === undefined || second.startsWith("-")) {
      const help = second === "--help" || second === "-h";
      (help ? io.stdout : io.stderr)(groupHelp(first));
      return help ? ExitCodes.ok : ExitCodes.usage;
    }
    command = COMMANDS.find((c) => c.name === `${first} ${second}`);
    if (command === undefined) {
      return fail(first, ExitCodes.usage, `unknown action ${JSON.stringify(second)}; see eventlane ${first} --help`);
    }
    rest = argv.slice(2);
  } else {
    command = COMMANDS.find((c) => c.name === first);
    if (command === undefined) {
      return fail("", ExitCodes.usage, `unknown command ${JSON.stringify(first)}; see eventlane --help`);
    }
    rest = argv.slice(1);
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(commandHelp(command));
    return ExitCodes.ok;
  }
  try {
    const args = parse(command.name, command.options, rest, command.positionals);
    const ctx: CommandContext = {
      args,
      env,
      io,
      json,
      print: (value, text) => io.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`),
      note: (text) => io.stderr(`${text}\n`),
    };
    return await command.run(ctx);
  } catch (error) {
    const { code, message } = classify(error);
    return fail(command.name, code, message);
  }
}
