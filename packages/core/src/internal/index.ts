/**
 * `@eventlane/core/internal`: plumbing shared by Eventlane's own packages (the option-validation
 * kit, the relay's contract with the Fastify plugin, the shard expression, Kafka's murmur2, UUIDv7,
 * the SQL-migration runner). It is not part of the documented API and may change in any release;
 * applications use the main entry.
 */
export {
  booleanOption,
  describeValue,
  integerOption,
  invalidOption,
  oneOfOption,
  optionSection,
  refuseUnknownOptions,
  stringOption,
} from "./option-kit.ts";
export { murmur2, positiveModulo } from "./murmur2.ts";
export {
  LeadershipLossReasons,
  PublishFailureReasons,
  RelayEventNames,
  type LeadershipLossReason,
  type PublishFailureReason,
  type RelayEventName,
  type RelayEvents,
  type RelayHandle,
  type RelayShardStatus,
  type RelayStatusSnapshot,
} from "./relay-contract.ts";
export { shardOf, shardOfKeyHash, shardOfSqlText } from "./shard-expression.ts";
export { uuidv7 } from "./uuid.ts";
export {
  assertSchemaInfoVersion,
  migrationsDdl,
  runMigrationsToLatest,
  toKyselyMigrations,
  type SqlMigration,
} from "../schema/sql-migrations.ts";
