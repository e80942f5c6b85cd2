import type { PublishFailureReason } from "@eventlane/core/internal";
import { Data } from "effect";

/** Why a send failed. Everything but `record` backs off the whole shard and never counts as an attempt. */
export { PublishFailureReasons, type PublishFailureReason } from "@eventlane/core/internal";

/** One Kafka record as the relay publishes it. */
export interface OutboundMessage {
  readonly key: string;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

/** What the relay needs to know about a topic at start. */
export interface TopicDescription {
  readonly name: string;
  readonly exists: boolean;
  readonly partitions: number;
  /** The topic's `max.message.bytes` (the limit for one record batch). */
  readonly maxMessageBytes: number;
}

/** A send failed; `reason` classifies it. The whole send counts as unsent. */
export class ProducerSendError extends Data.TaggedError("ProducerSendError")<{
  readonly reason: PublishFailureReason;
  readonly message: string;
  readonly cause?: unknown;
}> {
  readonly code = "EVENTLANE_RELAY_PUBLISH" as const;
}

/**
 * Until when one send may write produce requests, handed to every send by the relay from the shard's
 * lease (DESIGN invariant 5). An adapter checks it right before the client writes each produce request
 * to a socket (the first try, a retry the client schedules itself, the request after a reconnect or
 * a metadata refresh) and writes nothing once it is closed; a send still unsettled when the lease
 * ends is abandoned (the client's connections closed), so it can neither write nor wait any longer.
 */
export interface SendDeadline {
  /**
   * Ms left in which a produce request may still be written: the lease deadline minus the relay's
   * send margin. 0 or less: closed.
   */
  writableMs(): number;
  /** Ms left until the lease deadline; 0 or less: the send is to be abandoned. */
  settleMs(): number;
  /** The error a send refused or abandoned by this deadline rejects with (the relay's own). */
  closedError(): Error;
}

/** Lifecycle hooks an adapter calls. */
export interface ProducerHooks {
  readonly onConnected: () => void;
  readonly onDisconnected: () => void;
}

/**
 * The relay's port to Kafka. Contract: idempotent, acks=all, at most one request in flight, Kafka's
 * murmur2 partitioning by message key, and `send` is never called concurrently (the relay serialises).
 */
export interface ProducerPort {
  /** Connects (or reconnects after `reset`). Rejects with {@link ProducerSendError}. */
  connect(hooks: ProducerHooks): Promise<void>;
  /**
   * Sends records to one topic and resolves once every record is acknowledged by all in-sync replicas.
   * With a `deadline`, no produce request is written once it is closed: the send then rejects with
   * `deadline.closedError()`. The relay always passes one; without it the send is unbounded.
   */
  send(topic: string, messages: readonly OutboundMessage[], deadline?: SendDeadline): Promise<void>;
  /** Drops the current connection so the next `send` starts a fresh producer session. */
  reset(): Promise<void>;
  /** Describes topics without creating them. */
  describeTopics(topics: readonly string[]): Promise<readonly TopicDescription[]>;
  disconnect(): Promise<void>;
  readonly connected: boolean;
  /**
   * A new producer bound to one `transactional.id` (transactional mode), with the same settings.
   * Adapters without transactions leave it out; the relay then refuses transactional mode.
   */
  transactional?(transactionalId: string): TransactionalProducerPort;
}

/**
 * A producer bound to one `transactional.id`. `connect` initialises the id (InitProducerId), which
 * fences every earlier producer of that id: their later sends and commits fail with a `leadership`
 * error. `send` joins the open transaction (begun by the first send after a commit or abort); a
 * failed `send` or `commitTransaction` aborts it, so everything sent in it counts as unsent.
 */
export interface TransactionalProducerPort extends ProducerPort {
  readonly transactionalId: string;
  /** Commits the open transaction (no-op without one). Rejects with {@link ProducerSendError} after aborting it. */
  commitTransaction(): Promise<void>;
  /** Aborts the open transaction, if any; never rejects (a fenced or broken producer is reset instead). */
  abortTransaction(): Promise<void>;
}

/** Whether a producer is bound to a `transactional.id`. */
export function isTransactional(producer: ProducerPort): producer is TransactionalProducerPort {
  return typeof (producer as Partial<TransactionalProducerPort>).commitTransaction === "function";
}
