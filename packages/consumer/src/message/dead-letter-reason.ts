/**
 * Why a message was dead-lettered. Stored in the `reason` column of the consumer's `dead_letters`
 * table and carried by the `event:dead_lettered` event.
 */
export const DeadLetterReasons = [
  /** A required header (event id, type or schema version) is missing or malformed. */
  "invalid_headers",
  /** No definition given to the consumer has this event type. */
  "unknown_event_type",
  /** The value is empty or not JSON. */
  "invalid_json",
  /** The payload does not match its definition's schema (after upcasting). */
  "invalid_payload",
  /** The stored schema version has no upcaster, or is newer than the definition. */
  "upcast_missing",
  /** The handler threw on every one of its `handlerAttempts`. */
  "handler_failed",
  /** A per-key gap was detected and `onGap` is `"refuse"`. */
  "gap_refused",
  /** `onDeadLetter` is `"park_key"` and an earlier event of this key is an unresolved dead letter. */
  "key_parked",
] as const;
export type DeadLetterReason = (typeof DeadLetterReasons)[number];
