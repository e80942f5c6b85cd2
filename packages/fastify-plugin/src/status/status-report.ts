import type { BacklogReading } from "../backlog/backlog-monitor.ts";
import type { ShardBacklog } from "../backlog/backlog-query.ts";
import type { EventlaneConsumerHandle, EventlaneConsumerPartitionLag } from "../consumer-handle.ts";
import type { FailureReason } from "../internal/error-code.ts";
import type { RelayHandle, RelayStatusSnapshot } from "@eventlane/core/internal";

/** Thresholds of the status route's conditions; the shipped alert rules use the same defaults. */
export interface ResolvedStatusThresholds {
  readonly lagSeconds: number;
  readonly deadLetterRows: number;
  readonly parkedKeys: number;
  readonly notifyQueueUsageRatio: number;
  readonly consumerLagRecords: number;
}

/**
 * The conditions the status route evaluates. None of them affects readiness. All but
 * `consumer_lag` are cluster-wide; `consumer_lag` is about this process's consumers and is listed
 * only when `consumers` is given.
 */
export const StatusConditionNames = [
  "outbox_lag",
  "shard_without_leader",
  "dead_letters",
  "parked_keys",
  "notify_queue",
  "consumer_lag",
] as const;
export type StatusConditionName = (typeof StatusConditionNames)[number];

export interface StatusCondition {
  readonly name: StatusConditionName;
  /** True when `value` is over `threshold`. */
  readonly firing: boolean;
  readonly value: number;
  readonly threshold: number;
  /** The shards concerned, for per-shard conditions. */
  readonly shards?: readonly number[];
  /** The consumer groups concerned, for `consumer_lag`. */
  readonly groups?: readonly string[];
}

/** One consumer of this process as the status route shows it. */
export interface EventlaneConsumerStatus {
  readonly group: string;
  /** The largest known lag of its partitions, in records; null when none is known. */
  readonly maxLagRecords: number | null;
  /** Its partitions as last read (`consumer.lag()`); null when `lag()` threw. */
  readonly partitions: readonly EventlaneConsumerPartitionLag[] | null;
}

/** The body of the JSON status route. */
export interface EventlaneStatus {
  /** `ok`: no condition fires; `degraded`: at least one fires; `unknown`: the backlog could not be read. */
  readonly status: "ok" | "degraded" | "unknown";
  readonly observedAt: string;
  readonly backlog:
    | {
        readonly available: true;
        readonly shardCount: number;
        readonly pendingRows: number;
        readonly maxLagSeconds: number;
        readonly deadLetterRows: number;
        readonly parkedKeys: number;
        readonly shardsWithoutLeader: number;
        readonly notifyQueueUsageRatio: number;
        readonly shards: readonly ShardBacklog[];
      }
    | { readonly available: false; readonly reason: FailureReason; readonly code?: string };
  readonly conditions: readonly StatusCondition[];
  /** The relay running in this process, or null. */
  readonly relay: RelayStatusSnapshot | null;
  /** The consumers running in this process (the `consumers` option), in its order. */
  readonly consumers: readonly EventlaneConsumerStatus[];
}

function relayStatus(relay: RelayHandle | undefined): RelayStatusSnapshot | null {
  if (relay === undefined) return null;
  try {
    const s = relay.status();
    return {
      instanceId: s.instanceId,
      running: s.running,
      producerConnected: s.producerConnected,
      shards: s.shards.map((x) => ({
        shard: x.shard,
        leader: x.leader,
        epoch: x.epoch,
        lastHeartbeatAt: x.lastHeartbeatAt,
      })),
    };
  } catch {
    return null;
  }
}

function consumerStatus(consumer: EventlaneConsumerHandle): EventlaneConsumerStatus {
  const group = consumer.options.groupId;
  let partitions: readonly EventlaneConsumerPartitionLag[];
  try {
    partitions = consumer.lag().map((p) => ({
      topic: p.topic,
      partition: p.partition,
      committedOffset: p.committedOffset,
      endOffset: p.endOffset,
      lag: p.lag,
    }));
  } catch {
    return { group, maxLagRecords: null, partitions: null };
  }
  const known = partitions.flatMap((p) => (p.lag === null ? [] : [p.lag]));
  return { group, maxLagRecords: known.length === 0 ? null : Math.max(...known), partitions };
}

/** Builds the status body from a backlog reading, the thresholds and the local relay and consumers. */
export function buildStatus(
  reading: BacklogReading,
  thresholds: ResolvedStatusThresholds,
  relay: RelayHandle | undefined,
  consumerHandles: readonly EventlaneConsumerHandle[],
): EventlaneStatus {
  const consumers = consumerHandles.map(consumerStatus);
  if (!reading.ok) {
    return {
      status: "unknown",
      observedAt: reading.observedAt.toISOString(),
      backlog: {
        available: false,
        reason: reading.reason,
        ...(reading.code === undefined ? {} : { code: reading.code }),
      },
      conditions: [],
      relay: relayStatus(relay),
      consumers,
    };
  }
  const s = reading.snapshot;
  const lagging = s.shards.filter((x) => x.lagSeconds > thresholds.lagSeconds).map((x) => x.shard);
  const leaderless = s.shards.filter((x) => !x.hasLeader).map((x) => x.shard);
  const conditions: StatusCondition[] = [
    {
      name: "outbox_lag",
      firing: lagging.length > 0,
      value: s.maxLagSeconds,
      threshold: thresholds.lagSeconds,
      shards: lagging,
    },
    {
      name: "shard_without_leader",
      firing: leaderless.length > 0,
      value: leaderless.length,
      threshold: 0,
      shards: leaderless,
    },
    {
      name: "dead_letters",
      firing: s.deadLetterRows > thresholds.deadLetterRows,
      value: s.deadLetterRows,
      threshold: thresholds.deadLetterRows,
    },
    {
      name: "parked_keys",
      firing: s.parkedKeys > thresholds.parkedKeys,
      value: s.parkedKeys,
      threshold: thresholds.parkedKeys,
    },
    {
      name: "notify_queue",
      firing: s.notifyQueueUsageRatio > thresholds.notifyQueueUsageRatio,
      value: s.notifyQueueUsageRatio,
      threshold: thresholds.notifyQueueUsageRatio,
    },
  ];
  if (consumers.length > 0) {
    const lagging = consumers.filter(
      (c) => c.maxLagRecords !== null && c.maxLagRecords > thresholds.consumerLagRecords,
    );
    conditions.push({
      name: "consumer_lag",
      firing: lagging.length > 0,
      value: Math.max(0, ...consumers.map((c) => c.maxLagRecords ?? 0)),
      threshold: thresholds.consumerLagRecords,
      groups: [...new Set(lagging.map((c) => c.group))],
    });
  }
  return {
    status: conditions.some((c) => c.firing) ? "degraded" : "ok",
    observedAt: s.observedAt.toISOString(),
    backlog: {
      available: true,
      shardCount: s.shardCount,
      pendingRows: s.pendingRows,
      maxLagSeconds: s.maxLagSeconds,
      deadLetterRows: s.deadLetterRows,
      parkedKeys: s.parkedKeys,
      shardsWithoutLeader: s.shardsWithoutLeader,
      notifyQueueUsageRatio: s.notifyQueueUsageRatio,
      shards: s.shards,
    },
    conditions,
    relay: relayStatus(relay),
    consumers,
  };
}
