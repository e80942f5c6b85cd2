import type { PublishFailureReason } from "./producer-port.ts";

/** Kafka protocol error types that concern one record: they count toward its attempts. */
const RECORD_TYPES = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "CORRUPT_MESSAGE",
  "INVALID_RECORD",
  "INVALID_TIMESTAMP",
  "UNSUPPORTED_COMPRESSION_TYPE",
]);
const LEADERSHIP_TYPES = new Set([
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
]);
const TIMEOUT_TYPES = new Set(["REQUEST_TIMED_OUT"]);
const THROTTLING_TYPES = new Set(["THROTTLING_QUOTA_EXCEEDED", "POLICY_VIOLATION", "CONCURRENT_TRANSACTIONS"]);
const CONNECTION_NAMES = new Set([
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSBrokerNotFound",
  "KafkaJSMetadataNotLoaded",
  "KafkaJSTopicMetadataNotLoaded",
  "KafkaJSStaleTopicMetadataAssignment",
  "KafkaJSSASLAuthenticationError",
]);
const TIMEOUT_NAMES = new Set(["KafkaJSRequestTimeoutError", "KafkaJSTimeout", "KafkaJSLockTimeout"]);

interface ErrorLike {
  readonly name?: unknown;
  readonly type?: unknown;
  readonly cause?: unknown;
  readonly code?: unknown;
  readonly errors?: unknown;
}

/** The chain of causes, outermost first (kafkajs wraps the last error in `KafkaJSNumberOfRetriesExceeded`). */
function chain(error: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  let e: unknown = error;
  while (e !== null && typeof e === "object" && out.length < 10) {
    out.push(e as ErrorLike);
    const next = (e as ErrorLike).cause;
    if (next === e) break;
    e = next;
  }
  return out;
}

/**
 * Classifies a kafkajs error. Record-level types (oversize, corrupt, invalid record) are `record`;
 * anything unrecognised is `unknown`, which the relay treats like a connection error (back off the
 * shard, never an attempt) so an unforeseen outage can never dead-letter events.
 */
export function classifyKafkaJsError(error: unknown): PublishFailureReason {
  for (const e of chain(error)) {
    const type = typeof e.type === "string" ? e.type : undefined;
    if (type !== undefined) {
      if (RECORD_TYPES.has(type)) return "record";
      if (LEADERSHIP_TYPES.has(type)) return "leadership";
      if (TIMEOUT_TYPES.has(type)) return "timeout";
      if (THROTTLING_TYPES.has(type)) return "throttling";
    }
    const name = typeof e.name === "string" ? e.name : "";
    if (TIMEOUT_NAMES.has(name)) return "timeout";
    if (CONNECTION_NAMES.has(name)) return "connection";
    if (
      typeof e.code === "string" &&
      /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)$/.test(e.code)
    ) {
      return "connection";
    }
  }
  const aggregate = chain(error).find((e) => Array.isArray(e.errors));
  if (aggregate !== undefined) {
    const reasons = (aggregate.errors as unknown[]).map(classifyKafkaJsError);
    // A record reason wins only when every partition failed for a record reason.
    if (reasons.length > 0 && reasons.every((r) => r === "record")) return "record";
    return reasons.find((r) => r !== "record" && r !== "unknown") ?? "unknown";
  }
  return "unknown";
}
