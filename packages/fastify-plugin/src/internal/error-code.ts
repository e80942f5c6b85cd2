import { BoundExceededError, TooManyPendingError } from "./bounded.ts";

/** Why a check or query failed, in words safe to show: never a message, a host, a key or a payload. */
export type FailureReason = "timeout" | "pending" | "error" | "closed";

export interface SafeFailure {
  readonly reason: FailureReason;
  /** A SQLSTATE (`57014`) or a Node error code (`ECONNREFUSED`) when the error carries one. */
  readonly code?: string;
}

const CODE_RE = /^[A-Z0-9_]{2,40}$/;

/**
 * Reduces an error to its reason and code. Driver messages can name hosts, users or parts of a query,
 * so they are never echoed in health output or metrics.
 */
export function safeFailure(error: unknown): SafeFailure {
  if (error instanceof BoundExceededError) return { reason: "timeout" };
  if (error instanceof TooManyPendingError) return { reason: "pending" };
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  // 57014 is query_canceled: the statement_timeout fired on the server side.
  if (code === "57014") return { reason: "timeout", code };
  return typeof code === "string" && CODE_RE.test(code) ? { reason: "error", code } : { reason: "error" };
}
