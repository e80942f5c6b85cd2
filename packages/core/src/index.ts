export * from "./errors.ts";
export { Headers, metadataToHeaders, type EventMetadata, type HeaderName } from "./headers.ts";
export { murmur2, positiveModulo } from "./internal/murmur2.ts";
export { uuidv7 } from "./internal/uuid.ts";
export { resolveTableNames, validateIdentifier, type SchemaOptions, type TableNames } from "./schema/names.ts";
export {
  SCHEMA_VERSION,
  assertSchemaVersion,
  eventlaneDdl,
  eventlaneMigrations,
  migrateToLatest,
} from "./schema/migrations.ts";
