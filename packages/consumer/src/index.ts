export { createConsumer, type Consumer } from "./consumer/create-consumer.ts";
export {
  GapPolicies,
  IsolationLevels,
  resolveConsumerOptions,
  type ConsumerOptions,
  type EventContext,
  type EventHandler,
  type EventHandlers,
  type GapPolicy,
  type IsolationLevel,
  type ResolvedConsumerOptions,
} from "./options.ts";
export {
  ConsumerEmitter,
  type ConsumerEventMap,
  type ConsumerEventName,
  type ConsumerListener,
  type ConsumerStats,
  type RecordRef,
} from "./events.ts";
export { ConsumerStateError, HandlerFailure, isTransientDatabaseError } from "./errors.ts";
export { DeadLetterReasons, type DeadLetterReason } from "./message/dead-letter-reason.ts";
export { decodeMessage, readEnvelope, type MessageEnvelope, type PositionKind } from "./message/decode-message.ts";
export type { DeadLetterRow, InboxTotals } from "./inbox/inbox-store.ts";
export {
  CONSUMER_SCHEMA_VERSION,
  assertConsumerSchemaVersion,
  consumerDdl,
  consumerMigrations,
  migrateConsumerToLatest,
} from "./schema/migrations.ts";
export {
  DEFAULT_CONSUMER_SCHEMA,
  resolveConsumerTableNames,
  type ConsumerSchemaOptions,
  type ConsumerTableNames,
} from "./schema/names.ts";
