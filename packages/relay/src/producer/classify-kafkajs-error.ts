import { reasonOfKafkaError } from "./kafka-error-ids.ts";
import type { PublishFailureReason } from "./producer-port.ts";

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
      const reason = reasonOfKafkaError(type);
      if (reason !== undefined) return reason;
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
