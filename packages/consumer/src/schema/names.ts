import { validateIdentifier } from "@eventlane/core";

/** Where the consumer's tables live. */
export interface ConsumerSchemaOptions {
  /**
   * PostgreSQL schema of the consumer's inbox tables, in the consumer's own database. It reaches SQL
   * and is validated as a plain lower-case identifier.
   * @default "eventlane_consumer"
   */
  readonly schema?: string;
}

/** Quoted, validated table names of the consumer's schema. */
export interface ConsumerTableNames {
  readonly schema: string;
  readonly schemaSql: string;
  readonly watermarks: string;
  readonly inbox: string;
  readonly deadLetters: string;
  readonly deadLetterActions: string;
  readonly schemaInfo: string;
}

export const DEFAULT_CONSUMER_SCHEMA = "eventlane_consumer";

/** Resolves and validates the schema name; throws `InvalidIdentifierError` (code `EVENTLANE_INVALID_IDENTIFIER`). */
export function resolveConsumerTableNames(options: ConsumerSchemaOptions = {}): ConsumerTableNames {
  const schema = validateIdentifier("schema", options.schema ?? DEFAULT_CONSUMER_SCHEMA);
  const q = (table: string) => `"${schema}"."${table}"`;
  return Object.freeze({
    schema,
    schemaSql: `"${schema}"`,
    watermarks: q("watermarks"),
    inbox: q("inbox"),
    deadLetters: q("dead_letters"),
    deadLetterActions: q("dead_letter_actions"),
    schemaInfo: q("schema_info"),
  });
}
