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
