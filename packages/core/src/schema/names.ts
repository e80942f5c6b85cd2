import { InvalidIdentifierError } from "../errors.ts";

/** Where Eventlane's tables live. Both values reach SQL and are validated as plain identifiers. */
export interface SchemaOptions {
  /**
   * PostgreSQL schema that holds Eventlane's tables.
   * @default "eventlane"
   */
  readonly schema?: string;
  /**
   * Prefix for every table name, for installations that share one schema.
   * @default ""
   */
  readonly tablePrefix?: string;
}

/** Quoted, validated, fully qualified table names, resolved once from {@link SchemaOptions}. */
export interface TableNames {
  readonly schema: string;
  readonly tablePrefix: string;
  /** `"schema"` quoted. */
  readonly schemaSql: string;
  readonly streams: string;
  readonly events: string;
  readonly snapshots: string;
  readonly outbox: string;
  readonly keySequences: string;
  readonly relayConfig: string;
  readonly relayShards: string;
  readonly parkedKeys: string;
  readonly deadLetterLog: string;
  readonly schemaInfo: string;
  /** LISTEN/NOTIFY channel the writers notify and the relay listens on. */
  readonly notifyChannel: string;
  /** Unquoted name, for index names and advisory-lock namespaces. */
  readonly plain: (table: string) => string;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,39}$/;
const PREFIX_RE = /^([a-z_][a-z0-9_]{0,19})?$/;

/** Validates an identifier that will be interpolated into SQL; throws {@link InvalidIdentifierError}. */
export function validateIdentifier(option: string, value: unknown, re: RegExp = SCHEMA_RE): string {
  if (typeof value !== "string" || !re.test(value)) {
    throw new InvalidIdentifierError({
      option,
      value: String(value),
      message: `${option} must match ${re} (lower-case letters, digits and "_", starting with a letter or "_"); got ${JSON.stringify(value)}`,
    });
  }
  return value;
}

/** Resolves and validates {@link SchemaOptions} into table names. */
export function resolveTableNames(options: SchemaOptions = {}): TableNames {
  const schema = validateIdentifier("schema", options.schema ?? "eventlane");
  const tablePrefix = validateIdentifier("tablePrefix", options.tablePrefix ?? "", PREFIX_RE);
  const q = (table: string) => `"${schema}"."${tablePrefix}${table}"`;
  return Object.freeze({
    schema,
    tablePrefix,
    schemaSql: `"${schema}"`,
    streams: q("streams"),
    events: q("events"),
    snapshots: q("snapshots"),
    outbox: q("outbox"),
    keySequences: q("key_sequences"),
    relayConfig: q("relay_config"),
    relayShards: q("relay_shards"),
    parkedKeys: q("parked_keys"),
    deadLetterLog: q("dead_letter_log"),
    schemaInfo: q("schema_info"),
    notifyChannel: `${schema}_${tablePrefix}outbox`,
    plain: (table: string) => `${tablePrefix}${table}`,
  });
}
