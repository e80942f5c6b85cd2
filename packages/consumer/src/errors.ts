import { Data } from "effect";

/** `start()` on a consumer that is running or stopped: create a new consumer instead. */
export class ConsumerStateError extends Data.TaggedError("ConsumerStateError")<{
  readonly state: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_CONSUMER_STATE" as const;
}

/** Wraps what a handler threw, so it is told apart from the consumer's own database errors. */
export class HandlerFailure extends Data.TaggedError("HandlerFailure")<{
  readonly eventType: string;
  readonly cause: unknown;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_HANDLER_FAILED" as const;
}

/** `start()` could not reach the consumer's database. `cause` has the driver's error. */
export class DatabaseUnreachableError extends Data.TaggedError("DatabaseUnreachableError")<{
  readonly cause: unknown;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_DATABASE_UNREACHABLE" as const;
}

/** A dead-letter action named a dead letter this consumer does not have. */
export class DeadLetterNotFoundError extends Data.TaggedError("DeadLetterNotFoundError")<{
  readonly id: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_DEAD_LETTER_NOT_FOUND" as const;
}

/**
 * A dead letter cannot be replayed: its record still does not decode with the consumer's
 * definitions (add the upcaster or definition, or skip it), or, with `onDeadLetter: "park_key"`, an
 * older dead letter of its key is unresolved (replay or skip that one first).
 */
export class DeadLetterNotReplayableError extends Data.TaggedError("DeadLetterNotReplayableError")<{
  readonly id: string;
  readonly reason: "undecodable" | "older_unresolved" | "no_key";
  readonly message: string;
}> {
  readonly code = "EVENTLANE_DEAD_LETTER_NOT_REPLAYABLE" as const;
}

/**
 * Two owners of a partition (during a rebalance) applied the same new key at once: the chunk that
 * lost is rolled back and applied again, and its records are then duplicates. Transient; reported as
 * an `error` event, never thrown to the caller.
 */
export class WatermarkRaceError extends Data.TaggedError("WatermarkRaceError")<{
  readonly message: string;
}> {
  readonly code = "EVENTLANE_WATERMARK_RACE" as const;
}

/** Every error code of @eventlane/consumer (besides core's option, identifier and schema-version codes). */
export const ConsumerErrorCodes = [
  "EVENTLANE_CONSUMER_STATE",
  "EVENTLANE_HANDLER_FAILED",
  "EVENTLANE_DATABASE_UNREACHABLE",
  "EVENTLANE_DEAD_LETTER_NOT_FOUND",
  "EVENTLANE_DEAD_LETTER_NOT_REPLAYABLE",
  "EVENTLANE_WATERMARK_RACE",
] as const;
export type ConsumerErrorCode = (typeof ConsumerErrorCodes)[number];

const TRANSIENT_NODE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * Errors that say the database is unreachable, restarting, overloaded, or that the transaction lost
 * a serialisation race: retried without counting as a handler attempt. pg raises "Connection
 * terminated" without a code, hence the one message check (on a third-party error, not ours).
 */
export function isTransientDatabaseError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    if (code.startsWith("08") || code.startsWith("53")) return true;
    if (code === "40001" || code === "40P01" || code === "57P01" || code === "57P02" || code === "57P03") return true;
    if (TRANSIENT_NODE_CODES.has(code)) return true;
  }
  return error instanceof Error && /Connection terminated|connection timeout/i.test(error.message);
}
