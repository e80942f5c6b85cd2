export { createRelay, type Relay, type RelayDeadLetters, type RelayStatus } from "./relay/create-relay.ts";
export { RelayService, relayLayer } from "./relay/relay-layer.ts";
export type { ShardStatus } from "./relay/runtime.ts";
export { shardBackoff } from "./relay/backoff.ts";
export {
  KafkaClients,
  RELAY_DEFAULTS,
  KafkaProducerModes,
  nodeSupportsPlatformatic,
  resolveRelayOptions,
  type KafkaClient,
  PublishedRowsModes,
  type PublishedRows,
  type KafkaProducerMode,
  type RelayKafkaOptions,
  type RelayOptions,
  type RelaySasl,
  type RelayTopic,
  type ResolvedKafkaOptions,
  type ResolvedRelayOptions,
} from "./options.ts";
export { changeShardCount } from "./shards/change-shard-count.ts";
export { relayOptionsFromEnv, RelayEnvVariables } from "./env.ts";
export {
  DeadLetterNotFoundError,
  LeadershipLossReasons,
  LeadershipLostError,
  RelayDatabaseError,
  RelayEnvError,
  RelayErrorCodes,
  RelayStateError,
  SessionPoolerError,
  ShardCountMismatchError,
  ShardsHeldError,
  TopicMissingError,
  TopicPartitionsError,
  type LeadershipLossReason,
  type RelayErrorCode,
} from "./errors.ts";
export type { RelayEventName, RelayEvents, RelayListener } from "./events.ts";
export type {
  DeadLetters,
  DeadLetter,
  DeadLetterAction,
  DeadLetterActionOutcome,
  DeadLetterDetail,
  DeadLetterLogEntry,
  ListDeadLettersOptions,
} from "./dead-letters/dead-letters.ts";
export { outboxDeadLetters, type OutboxDeadLettersOptions } from "./dead-letters/outbox-dead-letters.ts";
export { advisoryLockNamespace } from "./leader/lock-session.ts";
export {
  isTransactional,
  ProducerSendError,
  PublishFailureReasons,
  type OutboundMessage,
  type ProducerHooks,
  type ProducerPort,
  type SendDeadline,
  type PublishFailureReason,
  type TopicDescription,
  type TransactionalProducerPort,
} from "./producer/producer-port.ts";
