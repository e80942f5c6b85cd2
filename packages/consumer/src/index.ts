export { createConsumer, type Consumer, type ConsumerDeadLetters } from "./consumer/create-consumer.ts";
export {
  CONSUMER_DEFAULTS,
  ConsumerKafkaClients,
  DeadLetterPolicies,
  GapPolicies,
  GroupProtocols,
  IsolationLevels,
  resolveConsumerOptions,
  type BatchContext,
  type BatchHandler,
  type BatchHandlers,
  type BatchItem,
  type ConsumerKafkaClient,
  type ConsumerKafkaOptions,
  type ConsumerOptions,
  type DeadLetterPolicy,
  type EventContext,
  type EventHandler,
  type EventHandlers,
  type GapPolicy,
  type GroupProtocol,
  type IsolationLevel,
  type RecordContext,
  type ReplayInfo,
  type ResolvedConsumerOptions,
} from "./options.ts";
export type { ConsumerSasl, ResolvedConsumerKafkaOptions } from "./client/consumer-client.ts";
export {
  ConsumerEmitter,
  type ConsumerEventMap,
  type ConsumerEventName,
  type ConsumerListener,
  type ConsumerStats,
  type ErrorStage,
  type PartitionLag,
  type RecordRef,
} from "./events.ts";
export {
  ConsumerErrorCodes,
  ConsumerStateError,
  DatabaseUnreachableError,
  WatermarkRaceError,
  DeadLetterNotFoundError,
  DeadLetterNotReplayableError,
  HandlerFailure,
  isTransientDatabaseError,
  type ConsumerErrorCode,
} from "./errors.ts";
export { DeadLetterReasons, type DeadLetterReason } from "./message/dead-letter-reason.ts";
export { decodeMessage, readEnvelope, type MessageEnvelope, type PositionKind } from "./message/decode-message.ts";
export {
  consumerDeadLetters,
  type ActorOptions,
  type DeadLetterActionResult,
  type DeadLetterLog,
} from "./dead-letters/dead-letters.ts";
export type { ReplayResult } from "./dead-letters/replay-dead-letter.ts";
export {
  DeadLetterStatuses,
  type DeadLetterFilter,
  type DeadLetterRow,
  type DeadLetterStatus,
  type InboxTotals,
} from "./store/consumer-store.ts";
export { consumerLayer, ConsumerService } from "./consumer/consumer-layer.ts";
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
