import { TimeoutError } from "@platformatic/kafka";
import { describeError } from "../errors.ts";
import { reasonOfKafkaError } from "./kafka-error-ids.ts";
import type { PublishFailureReason } from "./producer-port.ts";

const SOCKET_CODES = /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/;

interface ErrorLike {
  readonly code?: unknown;
  readonly apiId?: unknown;
  readonly cause?: unknown;
  readonly errors?: unknown;
}

const isObject = (e: unknown): e is ErrorLike => e !== null && typeof e === "object";

/** The reason one error says about itself, without looking at what it wraps. */
function ownReason(e: ErrorLike): PublishFailureReason | undefined {
  if (typeof e.apiId === "string") {
    return reasonOfKafkaError(e.apiId);
  }
  // @platformatic/kafka 2.12's TimeoutError (request or connect timed out) carries the code
  // PLT_KFK_NETWORK, so it is told apart by its class.
  if (e instanceof TimeoutError) return "timeout";
  switch (e.code) {
    case "PLT_KFK_TIMEOUT":
      return "timeout";
    case "PLT_KFK_NETWORK":
    case "PLT_KFK_AUTHENTICATION":
      return "connection";
  }
  if (typeof e.code === "string" && SOCKET_CODES.test(e.code)) return "connection";
  return undefined;
}

function classify(e: unknown, depth: number): PublishFailureReason {
  if (!isObject(e) || depth > 10) return "unknown";
  const own = ownReason(e);
  if (own !== undefined) return own;
  // MultipleErrors (retries, one error per broker) and ResponseError (one per failed partition).
  if (Array.isArray(e.errors) && e.errors.length > 0) {
    const reasons = e.errors.map((child) => classify(child, depth + 1));
    // A record reason wins only when every part failed for a record reason: a transient failure
    // anywhere in the send must never count toward a record's attempts.
    if (reasons.every((r) => r === "record")) return "record";
    return reasons.find((r) => r !== "record" && r !== "unknown") ?? "unknown";
  }
  if (e.cause !== undefined && e.cause !== e) return classify(e.cause, depth + 1);
  return "unknown";
}

/**
 * Classifies an error of @platformatic/kafka by its codes and Kafka error ids, never by message text.
 * Record-level ids (oversize, corrupt, invalid record) are `record`; anything unrecognised (a closed
 * client, a failed serialiser, lost producer state) is `unknown`, which the relay treats like a
 * connection error (back off the shard, never an attempt), so an unforeseen outage can never
 * dead-letter events.
 */
export function classifyPlatformaticError(error: unknown): PublishFailureReason {
  return classify(error, 0);
}

/**
 * A one-line description of an @platformatic/kafka error. Its aggregate errors say only "Producing
 * messages failed.", so the Kafka error ids and messages of the parts are appended.
 */
export function describePlatformaticError(error: unknown): string {
  const parts: string[] = [];
  const visit = (e: unknown, depth: number) => {
    if (!isObject(e) || depth > 10 || parts.length >= 5) return;
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      for (const child of e.errors) visit(child, depth + 1);
      return;
    }
    const id = typeof e.apiId === "string" ? `${e.apiId}: ` : "";
    const text = `${id}${describeError(e)}`;
    if (!parts.includes(text)) parts.push(text);
  };
  visit(error, 0);
  const head = describeError(error);
  return parts.length === 0 || (parts.length === 1 && parts[0] === head) ? head : `${head} (${parts.join("; ")})`;
}
