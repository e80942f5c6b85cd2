import type { Registry } from "@prometheus-io/client";
import type { BacklogMonitor } from "../backlog/backlog-monitor.ts";
import type { BacklogSnapshot } from "../backlog/backlog-query.ts";
import { type SnapshotSample, registerStructural, snapshotGauge } from "./snapshot-metric.ts";

interface BacklogGaugeSpec {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  readonly samples: (s: BacklogSnapshot) => readonly SnapshotSample[];
}

const one = (value: number): readonly SnapshotSample[] => [{ labels: {}, value }];

/** The cluster-wide gauges, all computed from one cached backlog reading per scrape. */
const BACKLOG_GAUGES: readonly BacklogGaugeSpec[] = [
  {
    name: "eventlane_outbox_pending_rows",
    help: "Outbox rows waiting to be published, per shard (cluster-wide, from the database).",
    labelNames: ["shard"],
    samples: (s) => s.shards.map((x) => ({ labels: { shard: x.shard }, value: x.pendingRows })),
  },
  {
    name: "eventlane_outbox_lag_seconds",
    help: "Age of the oldest pending outbox row per shard in seconds, 0 when none is pending (cluster-wide).",
    labelNames: ["shard"],
    samples: (s) => s.shards.map((x) => ({ labels: { shard: x.shard }, value: x.lagSeconds })),
  },
  {
    name: "eventlane_outbox_dead_letter_rows",
    help: "Outbox rows dead-lettered and not yet requeued or skipped (cluster-wide).",
    samples: (s) => one(s.deadLetterRows),
  },
  {
    name: "eventlane_outbox_parked_keys",
    help: "Keys held back behind a dead letter (cluster-wide).",
    samples: (s) => one(s.parkedKeys),
  },
  {
    name: "eventlane_outbox_shards",
    help: "Number of outbox shards (relay_config.shard_count, 1 when unset).",
    samples: (s) => one(s.shardCount),
  },
  {
    name: "eventlane_relay_shards_without_leader",
    help: "Shards whose leader has not heartbeated within the staleness threshold, or that never had one (cluster-wide).",
    samples: (s) => one(s.shardsWithoutLeader),
  },
  {
    name: "eventlane_relay_shard_heartbeat_age_seconds",
    help: "Seconds since the shard row's last leader heartbeat (cluster-wide; absent for shards never led).",
    labelNames: ["shard"],
    samples: (s) =>
      s.shards.flatMap((x) =>
        x.heartbeatAgeSeconds === null ? [] : [{ labels: { shard: x.shard }, value: x.heartbeatAgeSeconds }],
      ),
  },
  {
    name: "eventlane_notify_queue_usage_ratio",
    help: "Fraction of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage); at 1 every notifying commit fails.",
    samples: (s) => one(s.notifyQueueUsageRatio),
  },
  {
    name: "eventlane_backlog_query_duration_seconds",
    help: "Duration of the last successful backlog query, in seconds.",
    samples: (s) => one(s.queryDurationSeconds),
  },
];

/**
 * Registers the backlog gauges on `registry`. When the backlog cannot be read the gauges report no
 * sample (a stale or zero figure would look healthy) and `eventlane_backlog_up` drops to 0.
 * Returns a function that unregisters them.
 */
export function registerBacklogMetrics(registry: Registry, monitor: BacklogMonitor): () => void {
  const names: string[] = [];
  const add = (gauge: ReturnType<typeof snapshotGauge>) => {
    registerStructural(registry, gauge);
    names.push(gauge.name);
  };
  add(
    snapshotGauge({
      name: "eventlane_backlog_up",
      help: "1 when the last backlog query answered within its timeout, else 0.",
      read: async () => one((await monitor.read()).ok ? 1 : 0),
    }),
  );
  for (const spec of BACKLOG_GAUGES) {
    add(
      snapshotGauge({
        name: spec.name,
        help: spec.help,
        labelNames: spec.labelNames ?? [],
        read: async () => {
          const reading = await monitor.read();
          return reading.ok ? spec.samples(reading.snapshot) : [];
        },
      }),
    );
  }
  return () => {
    for (const name of names) registry.removeSingleMetric(name);
  };
}
