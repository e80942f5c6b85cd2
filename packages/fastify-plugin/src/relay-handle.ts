/**
 * What the plugin needs from a relay running in this process. `@eventlane/relay`'s handle satisfies it
 * structurally; the plugin never imports the relay, so the dependency stays one-way
 * (relay -> fastify plugin, for the `eventlane-relay` bin).
 */

/** Why a publish failed, as the relay classifies it (DESIGN.md invariant 7). */
export const PublishFailureReasons = [
  "connection",
  "leadership",
  "timeout",
  "throttling",
  "record",
  "unknown",
] as const;
export type PublishFailureReason = (typeof PublishFailureReasons)[number];

/** The relay's view of one shard, as this instance sees it. */
export interface EventlaneRelayShardStatus {
  readonly shard: number;
  /** Whether this instance leads (publishes) the shard now. */
  readonly leader: boolean;
  /** The shard's epoch as of this instance's last acquisition (or the last one it saw); null if none. */
  readonly epoch: number | bigint | null;
  readonly lastHeartbeatAt?: Date | number | null;
}

/** A snapshot of the local relay, read at every scrape and readiness check. */
export interface EventlaneRelayStatus {
  readonly instanceId: string;
  readonly running: boolean;
  readonly producerConnected: boolean;
  readonly shards: readonly EventlaneRelayShardStatus[];
}

/** The relay's typed lifecycle events the plugin turns into per-instance metrics. */
export interface EventlaneRelayEvents {
  "leader:acquired": { readonly shard: number; readonly epoch: number | bigint };
  "leader:lost": { readonly shard: number; readonly epoch: number | bigint; readonly reason?: string };
  "batch:published": {
    readonly shard: number;
    readonly epoch: number | bigint;
    readonly count: number;
    readonly byTopic: Readonly<Record<string, number>>;
    readonly durationMs: number;
    readonly commitToPublishMs: readonly number[];
  };
  "publish:failed": {
    readonly shard: number;
    readonly reason: PublishFailureReason | (string & {});
    readonly backoffMs?: number;
    readonly error?: unknown;
  };
  "record:failed": {
    readonly shard: number;
    readonly outboxId: string | number | bigint;
    readonly topic: string;
    readonly attempts: number;
    readonly reason?: string;
  };
  "dead-lettered": {
    readonly shard: number;
    readonly outboxId: string | number | bigint;
    readonly topic: string;
    readonly reason?: string;
  };
  "key:parked": { readonly topic: string; readonly outboxId?: string | number | bigint };
  "key:requeued": { readonly topic: string; readonly outboxId?: string | number | bigint };
  "key:skipped": { readonly topic: string; readonly outboxId?: string | number | bigint };
  "producer:connected": Readonly<Record<string, never>> | undefined;
  "producer:disconnected": Readonly<Record<string, never>> | undefined;
  error: { readonly error: unknown };
}

export type EventlaneRelayEventName = keyof EventlaneRelayEvents;

/** The names the plugin listens to, in the order it subscribes. */
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
  "error",
] as const satisfies readonly EventlaneRelayEventName[];

/**
 * The relay handle the plugin accepts (`createRelay(options)` from `@eventlane/relay` returns one).
 * Listeners are added at registration and removed in `onClose`: through the function `on` returns
 * when it returns one (as `@eventlane/relay` does), else through `off` (as a Node `EventEmitter`).
 */
export interface EventlaneRelayHandle {
  status(): EventlaneRelayStatus;
  on<E extends EventlaneRelayEventName>(event: E, listener: (payload: EventlaneRelayEvents[E]) => void): unknown;
  off?<E extends EventlaneRelayEventName>(event: E, listener: (payload: EventlaneRelayEvents[E]) => void): unknown;
}
