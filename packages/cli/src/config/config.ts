import { InvalidIdentifierError, resolveTableNames, type TableNames } from "@eventlane/core";
import { resolveConsumerTableNames, type ConsumerTableNames } from "@eventlane/consumer";
import { RelayEnvVariables } from "@eventlane/relay";
import { hostname, userInfo } from "node:os";
import { type OptionSpec, type ParsedArgs, stringValue } from "../args/options.ts";
import { EnvironmentError, UsageError } from "../errors.ts";

/** The environment the CLI reads: the relay's variables (see `RelayEnvVariables`) and its own. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The CLI's own variable: the database of a consumer, when it is not the outbox's. */
export const CONSUMER_DATABASE_URL_ENV = "EVENTLANE_CONSUMER_DATABASE_URL";

export const DATABASE_URL_OPTION: OptionSpec = {
  name: "database-url",
  type: "string",
  value: "<url>",
  env: RelayEnvVariables.databaseUrl,
  description: "PostgreSQL connection string of the outbox's database (prefer the variable: flags show in ps)",
};
export const SCHEMA_OPTION: OptionSpec = {
  name: "schema",
  type: "string",
  value: "<name>",
  env: RelayEnvVariables.schema,
  description: 'schema of Eventlane\'s tables (default "eventlane")',
};
export const TABLE_PREFIX_OPTION: OptionSpec = {
  name: "table-prefix",
  type: "string",
  value: "<prefix>",
  env: RelayEnvVariables.tablePrefix,
  description: "prefix of Eventlane's table names (default none)",
};
/** Where the outbox is: every command that reads Eventlane's tables takes these. */
export const DATABASE_OPTIONS: readonly OptionSpec[] = [DATABASE_URL_OPTION, SCHEMA_OPTION, TABLE_PREFIX_OPTION];

export const BROKERS_OPTION: OptionSpec = {
  name: "brokers",
  type: "string",
  value: "<host:port,...>",
  env: RelayEnvVariables.kafkaBrokers,
  description: "Kafka bootstrap brokers (TLS and SASL: the relay's EVENTLANE_KAFKA_SSL and _SASL_* variables)",
};

export const CONSUMER_OPTION: OptionSpec = {
  name: "consumer",
  type: "string",
  value: "<schema>",
  description: "work on a consumer's dead letters instead of the relay's: the consumer's schema",
};
export const CONSUMER_NAME_OPTION: OptionSpec = {
  name: "name",
  type: "string",
  value: "<consumer>",
  description: "with --consumer: the consumer's name (its groupId unless it was given another name)",
};
export const CONSUMER_DATABASE_URL_OPTION: OptionSpec = {
  name: "consumer-database-url",
  type: "string",
  value: "<url>",
  env: CONSUMER_DATABASE_URL_ENV,
  description: "with --consumer: the consumer's database (default: the outbox's database)",
};
export const CONSUMER_OPTIONS: readonly OptionSpec[] = [
  CONSUMER_OPTION,
  CONSUMER_NAME_OPTION,
  CONSUMER_DATABASE_URL_OPTION,
];

export const JSON_OPTION: OptionSpec = { name: "json", type: "boolean", description: "print JSON instead of text" };

/** Where Eventlane's tables are, resolved from flags and the environment. */
export interface DatabaseTarget {
  readonly url: string;
  readonly tables: TableNames;
  readonly schemaOptions: { readonly schema: string; readonly tablePrefix: string };
}

/** A flag's value, else its variable's, with where it came from (errors differ: usage or configuration). */
function sourced(parsed: ParsedArgs, spec: OptionSpec, env: Env): { value: string; from: string } | undefined {
  const flag = parsed.values[spec.name];
  if (typeof flag === "string" && flag.trim() !== "") return { value: flag.trim(), from: `--${spec.name}` };
  const value = stringValue({ values: {}, positionals: [] }, spec, env);
  return value === undefined ? undefined : { value, from: spec.env ?? `--${spec.name}` };
}

function invalid(from: string, message: string): never {
  if (from.startsWith("--")) throw new UsageError({ message: `${from}: ${message}` });
  throw new EnvironmentError({ kind: "configuration", message: `${from}: ${message}` });
}

/** Resolves and validates the schema and table prefix (no database needed: `migrate --print`). */
export function resolveSchema(parsed: ParsedArgs, env: Env): Omit<DatabaseTarget, "url"> {
  const schema = sourced(parsed, SCHEMA_OPTION, env);
  const prefix = sourced(parsed, TABLE_PREFIX_OPTION, env);
  let tables: TableNames;
  try {
    tables = resolveTableNames({
      ...(schema === undefined ? {} : { schema: schema.value }),
      ...(prefix === undefined ? {} : { tablePrefix: prefix.value }),
    });
  } catch (error) {
    if (!(error instanceof InvalidIdentifierError)) throw error;
    const from = error.option === "schema" ? (schema?.from ?? "--schema") : (prefix?.from ?? "--table-prefix");
    invalid(from, error.message);
  }
  return { tables, schemaOptions: { schema: tables.schema, tablePrefix: tables.tablePrefix } };
}

/** Resolves and validates the outbox's database, schema and table prefix. */
export function resolveDatabase(parsed: ParsedArgs, env: Env): DatabaseTarget {
  const url = sourced(parsed, DATABASE_URL_OPTION, env);
  if (url === undefined) {
    throw new EnvironmentError({
      kind: "configuration",
      message: `no database: set ${RelayEnvVariables.databaseUrl} or pass --database-url`,
    });
  }
  return { url: url.value, ...resolveSchema(parsed, env) };
}

/** The consumer schema named by `--consumer`, validated. */
export function resolveConsumerSchema(parsed: ParsedArgs): ConsumerTableNames | undefined {
  const schema = parsed.values[CONSUMER_OPTION.name];
  if (typeof schema !== "string") return undefined;
  try {
    return resolveConsumerTableNames({ schema: schema.trim() });
  } catch (error) {
    if (!(error instanceof InvalidIdentifierError)) throw error;
    invalid("--consumer", error.message);
  }
}

/** The consumer's database: `--consumer-database-url`, else the outbox's. */
export function resolveConsumerUrl(parsed: ParsedArgs, env: Env): string {
  const url = sourced(parsed, CONSUMER_DATABASE_URL_OPTION, env) ?? sourced(parsed, DATABASE_URL_OPTION, env);
  if (url === undefined) {
    throw new EnvironmentError({
      kind: "configuration",
      message: `no consumer database: set ${CONSUMER_DATABASE_URL_ENV} (or ${RelayEnvVariables.databaseUrl}), or pass --consumer-database-url`,
    });
  }
  return url.value;
}

/** A consumer whose dead letters the CLI works on. */
export interface ConsumerTarget {
  readonly url: string;
  readonly name: string;
  readonly tables: ConsumerTableNames;
}

/**
 * The consumer named by `--consumer <schema>` and `--name`, or undefined without `--consumer`. Its
 * database is `--consumer-database-url`, else the outbox's (`--database-url`).
 */
export function resolveConsumer(parsed: ParsedArgs, env: Env): ConsumerTarget | undefined {
  const tables = resolveConsumerSchema(parsed);
  if (tables === undefined) {
    if (parsed.values[CONSUMER_NAME_OPTION.name] !== undefined) {
      throw new UsageError({ message: "--name names a consumer: use it with --consumer <schema>" });
    }
    return undefined;
  }
  const name = parsed.values[CONSUMER_NAME_OPTION.name];
  if (typeof name !== "string" || name.trim() === "") {
    throw new UsageError({
      message: "--consumer needs --name <consumer> (the consumer's name, its groupId by default)",
    });
  }
  return { url: resolveConsumerUrl(parsed, env), name: name.trim(), tables };
}

/** Kafka connection settings, from `--brokers` and the relay's variables. */
export interface KafkaTarget {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: boolean;
  readonly sasl?: {
    readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
    readonly username: string;
    readonly password: string;
  };
}

/** Resolves the brokers; undefined when none are configured and `required` is false. */
export function resolveKafka(parsed: ParsedArgs, env: Env, required: true): KafkaTarget;
export function resolveKafka(parsed: ParsedArgs, env: Env, required: false): KafkaTarget | undefined;
export function resolveKafka(parsed: ParsedArgs, env: Env, required: boolean): KafkaTarget | undefined {
  const V = RelayEnvVariables;
  const brokers = sourced(parsed, BROKERS_OPTION, env);
  if (brokers === undefined) {
    if (!required) return undefined;
    throw new EnvironmentError({
      kind: "configuration",
      message: `no Kafka brokers: set ${V.kafkaBrokers} or pass --brokers host:port[,host:port...]`,
    });
  }
  const list = brokers.value
    .split(",")
    .map((b) => b.trim())
    .filter((b) => b !== "");
  for (const b of list) {
    if (!/^[^\s:]+:\d+$/.test(b)) invalid(brokers.from, `"${b}" is not host:port`);
  }
  if (list.length === 0) invalid(brokers.from, "no broker given");
  const read = (name: string) => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const sslText = read(V.kafkaSsl)?.toLowerCase();
  let ssl = false;
  if (sslText !== undefined) {
    if (["1", "true", "yes", "on"].includes(sslText)) ssl = true;
    else if (!["0", "false", "no", "off"].includes(sslText)) invalid(V.kafkaSsl, "must be true or false");
  }
  const mechanism = read(V.kafkaSaslMechanism)?.toLowerCase();
  let sasl: KafkaTarget["sasl"];
  if (mechanism !== undefined) {
    if (mechanism !== "plain" && mechanism !== "scram-sha-256" && mechanism !== "scram-sha-512") {
      invalid(V.kafkaSaslMechanism, "must be plain, scram-sha-256 or scram-sha-512");
    }
    const username = read(V.kafkaSaslUsername);
    const password = read(V.kafkaSaslPassword);
    if (username === undefined) invalid(V.kafkaSaslUsername, `is required when ${V.kafkaSaslMechanism} is set`);
    if (password === undefined) invalid(V.kafkaSaslPassword, `is required when ${V.kafkaSaslMechanism} is set`);
    sasl = { mechanism, username, password };
  }
  return {
    brokers: list,
    clientId: read(V.kafkaClientId) ?? "eventlane-cli",
    ssl,
    ...(sasl === undefined ? {} : { sasl }),
  };
}

/** The topics the relay routes, when its `EVENTLANE_RELAY_TOPICS` is set here: names only. */
export function relayTopicsFromEnv(env: Env): ReadonlySet<string> | undefined {
  const v = env[RelayEnvVariables.topics]?.trim();
  if (v === undefined || v === "") return undefined;
  return new Set(
    v
      .split(",")
      .map((t) => t.trim().split(":")[0]!)
      .filter((t) => t !== ""),
  );
}

/** The default actor of recorded actions: `cli:<user>@<host>`. */
export function defaultActor(env: Env): string {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (some containers): fall back to the environment.
    user = undefined;
  }
  return `cli:${user ?? env.USER ?? env.LOGNAME ?? "unknown"}@${hostname()}`;
}
