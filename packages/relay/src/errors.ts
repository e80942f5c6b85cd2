import { LeadershipLossReasons, type LeadershipLossReason } from "@eventlane/core/internal";
import { Data } from "effect";

/**
 * Codes of the errors the relay raises. Match on `code` (or `_tag`), never on the message.
 */
export const RelayErrorCodes = [
  "EVENTLANE_RELAY_INVALID_ENV",
  "EVENTLANE_RELAY_TOPIC_MISSING",
  "EVENTLANE_RELAY_TOPIC_PARTITIONS",
  "EVENTLANE_RELAY_SHARD_COUNT_MISMATCH",
  "EVENTLANE_RELAY_SHARDS_HELD",
  "EVENTLANE_RELAY_SESSION_POOLER",
  "EVENTLANE_RELAY_LEADERSHIP_LOST",
  "EVENTLANE_RELAY_PUBLISH",
  "EVENTLANE_RELAY_DATABASE",
  "EVENTLANE_RELAY_DEAD_LETTER_NOT_FOUND",
  "EVENTLANE_RELAY_STATE",
] as const;
export type RelayErrorCode = (typeof RelayErrorCodes)[number];

/** An environment variable read by {@link relayOptionsFromEnv} is missing or malformed. `variable` names it. */
export class RelayEnvError extends Data.TaggedError("RelayEnvError")<{
  readonly variable: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_INVALID_ENV" as const;
}

/** At start: topics listed in the relay's `topics` option do not exist on the cluster (they are never auto-created). */
export class TopicMissingError extends Data.TaggedError("TopicMissingError")<{
  readonly topics: readonly string[];
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_TOPIC_MISSING" as const;
}

/** At start: a topic has another partition count than the relay's `topics` option expects. */
export class TopicPartitionsError extends Data.TaggedError("TopicPartitionsError")<{
  readonly topic: string;
  readonly expected: number;
  readonly actual: number;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_TOPIC_PARTITIONS" as const;
}

/**
 * At start: the database records another shard count than the `shardCount` option. Running both
 * counts at once (a rolling deploy) would give one key two owners, so the relay refuses.
 */
export class ShardCountMismatchError extends Data.TaggedError("ShardCountMismatchError")<{
  readonly recorded: number;
  readonly configured: number;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_SHARD_COUNT_MISMATCH" as const;
}

/** `changeShardCount` while relays hold shard locks: stop every relay first. `shards` lists the held ones. */
export class ShardsHeldError extends Data.TaggedError("ShardsHeldError")<{
  readonly shards: readonly number[];
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_SHARDS_HELD" as const;
}

/**
 * The lock connection does not keep one server session (statements run on different backends, or
 * the lock is not held by the session that took it): a pooler such as PgBouncer in transaction
 * mode sits in between. Session advisory locks and LISTEN do not work through it.
 */
export class SessionPoolerError extends Data.TaggedError("SessionPoolerError")<{
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_SESSION_POOLER" as const;
}

/** Why an instance stopped leading a shard (the list is part of the relay's contract with its watchers). */
export { LeadershipLossReasons, type LeadershipLossReason };

/** The instance is no longer the leader of `shard`; it steps down and competes again. */
export class LeadershipLostError extends Data.TaggedError("LeadershipLostError")<{
  readonly shard: number;
  readonly epoch: number;
  readonly reason: LeadershipLossReason;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_LEADERSHIP_LOST" as const;
}

/** A database operation of the relay failed (connection refused, statement timeout, ...). */
export class RelayDatabaseError extends Data.TaggedError("RelayDatabaseError")<{
  readonly operation: string;
  readonly message: string;
  readonly cause?: unknown;
}> {
  readonly code = "EVENTLANE_RELAY_DATABASE" as const;
}

/** `deadLetters.requeue` / `skip` on an outbox id that is not dead-lettered. */
export class DeadLetterNotFoundError extends Data.TaggedError("DeadLetterNotFoundError")<{
  readonly outboxId: string;
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_DEAD_LETTER_NOT_FOUND" as const;
}

/** `start()` on a running relay, or a call that needs a started relay. */
export class RelayStateError extends Data.TaggedError("RelayStateError")<{
  readonly message: string;
}> {
  readonly code = "EVENTLANE_RELAY_STATE" as const;
}

/** Turns anything thrown into a message that is safe to log (no connection strings, no secrets). */
export function describeError(error: unknown): string {
  const raw = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // pg and kafkajs messages do not carry credentials, but a URL with a password could appear in a
  // driver message; strip userinfo from anything that looks like one.
  return raw.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi, "$1***@");
}
