/*
 * The relay's contract with the code that watches it in the same process (the Fastify plugin's
 * readiness and metrics): what `status()` reports and which lifecycle events `on()` emits. The relay
 * (`@eventlane/relay`) implements it and the plugin (`@eventlane/fastify`) reads it; both take the
 * types from here, so neither package's `.d.ts` needs the other.
 */

/** Why a send failed. Everything but `record` backs off the whole shard and never counts as an attempt. */
export const PublishFailureReasons = [
  "connection",
  "leadership",
  "timeout",
  "throttling",
  "record",
  "unknown",
] as const;
export type PublishFailureReason = (typeof PublishFailureReasons)[number];

/** Why an instance stopped leading a shard. */
export const LeadershipLossReasons = [
  /** The heartbeat on the lock session failed or timed out (connection dropped, server ended it). */
  "heartbeat-failed",
  /** The last good heartbeat is older than the lease: stop before sending (self-fencing). */
  "lease-expired",
  /** The lock is no longer held by this session, or the session's backend changed. */
  "lock-lost",
  /** The shard row carries another token: a successor acquired the shard (fenced). */
  "fenced",
  /** Graceful stop. */
  "stopped",
  /** Handed over to another instance to balance the shards (after the in-flight batch). */
  "rebalanced",
] as const;
export type LeadershipLossReason = (typeof LeadershipLossReasons)[number];

/** What `status()` reports for one shard the instance competes for. */
export interface RelayShardStatus {
  readonly shard: number;
  /** Whether this instance leads (publishes) the shard now. */
  readonly leader: boolean;
  /** The epoch of this instance's current or last leadership of the shard; null when it has none. */
  readonly epoch: number | null;
  /** The last good heartbeat of this instance's lease on the shard; null when it does not lead it. */
  readonly lastHeartbeatAt: Date | null;
}

/** A snapshot of one relay instance, as `status()` returns it. */
export interface RelayStatusSnapshot {
  readonly instanceId: string;
  /** Started and not stopping. */
  readonly running: boolean;
  readonly producerConnected: boolean;
  readonly shards: readonly RelayShardStatus[];
}

/** Typed lifecycle events of a relay: name -> payload. Background failures always surface here. */
export interface RelayEvents {
  "leader:acquired": { readonly shard: number; readonly epoch: number };
  "leader:lost": { readonly shard: number; readonly epoch: number; readonly reason: LeadershipLossReason };
  "batch:published": {
    readonly shard: number;
    readonly epoch: number;
    readonly count: number;
    readonly byTopic: Readonly<Record<string, number>>;
    readonly durationMs: number;
    /** Per message: publish time minus the outbox row's `created_at`, in ms. */
    readonly commitToPublishMs: readonly number[];
  };
  "publish:failed": {
    readonly shard: number;
    readonly reason: PublishFailureReason;
    readonly backoffMs: number;
    readonly error: unknown;
  };
  "record:failed": {
    readonly shard: number;
    readonly outboxId: string;
    readonly topic: string;
    readonly attempts: number;
    readonly reason: string;
  };
  "dead-lettered": {
    readonly shard: number;
    readonly outboxId: string;
    readonly topic: string;
    readonly reason: string;
  };
  "key:parked": { readonly topic: string; readonly outboxId: string };
  "key:requeued": { readonly topic: string; readonly outboxId: string };
  "key:skipped": { readonly topic: string; readonly outboxId: string };
  "producer:connected": Record<string, never>;
  "producer:disconnected": Record<string, never>;
  /** Rows removed by one retention run (only emitted when rows were deleted). */
  "retention:deleted": { readonly count: number };
  /** Any other background failure. */
  error: { readonly error: unknown };
}

export type RelayEventName = keyof RelayEvents;

/** Every name of {@link RelayEvents}, in the order of the interface. */
export const RelayEventNames = [
  "leader:acquired",
  "leader:lost",
  "batch:published",
  "publish:failed",
  "record:failed",
  "dead-lettered",
  "key:parked",
  "key:requeued",
  "key:skipped",
  "producer:connected",
  "producer:disconnected",
  "retention:deleted",
  "error",
] as const satisfies readonly RelayEventName[];

/**
 * What a relay offers the code that watches it in its process: its status, read at every probe and
 * scrape, and its lifecycle events. `on` returns the function that removes the listener.
 */
export interface RelayHandle {
  status(): RelayStatusSnapshot;
  on<K extends RelayEventName>(event: K, listener: (payload: RelayEvents[K]) => void): () => void;
}
