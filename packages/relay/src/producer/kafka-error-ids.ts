import type { PublishFailureReason } from "./producer-port.ts";

/**
 * How the relay treats each Kafka protocol error (by its name, e.g. `MESSAGE_TOO_LARGE`), whatever the
 * client: only errors about one record count toward its attempts; the rest back the shard off.
 */
const REASON_BY_KAFKA_ERROR: ReadonlyMap<string, PublishFailureReason> = new Map([
  ...[
    "MESSAGE_TOO_LARGE",
    "RECORD_LIST_TOO_LARGE",
    "CORRUPT_MESSAGE",
    "INVALID_RECORD",
    "INVALID_TIMESTAMP",
    "UNSUPPORTED_COMPRESSION_TYPE",
  ].map((id) => [id, "record"] as const),
  ...[
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_FOR_PARTITION",
    "NOT_LEADER_OR_FOLLOWER",
    "PREFERRED_LEADER_NOT_AVAILABLE",
    "FENCED_LEADER_EPOCH",
    "UNKNOWN_LEADER_EPOCH",
    "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "UNKNOWN_TOPIC_OR_PARTITION",
    "NOT_CONTROLLER",
    "KAFKA_STORAGE_ERROR",
    // Transactional mode: a successor initialised this shard's transactional.id (a zombie is fenced).
    "INVALID_PRODUCER_EPOCH",
    "PRODUCER_FENCED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
  ].map((id) => [id, "leadership"] as const),
  ["REQUEST_TIMED_OUT", "timeout"],
  ...["THROTTLING_QUOTA_EXCEEDED", "POLICY_VIOLATION", "CONCURRENT_TRANSACTIONS"].map(
    (id) => [id, "throttling"] as const,
  ),
  ...["SASL_AUTHENTICATION_FAILED", "UNSUPPORTED_SASL_MECHANISM", "ILLEGAL_SASL_STATE"].map(
    (id) => [id, "connection"] as const,
  ),
]);

/** The failure reason of a Kafka protocol error name, or undefined for one the relay does not know. */
export function reasonOfKafkaError(id: string): PublishFailureReason | undefined {
  return REASON_BY_KAFKA_ERROR.get(id);
}
