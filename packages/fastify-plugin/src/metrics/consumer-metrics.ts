import type { Registry } from "@prometheus-io/client";
import {
  type ConsumerEventOutcome,
  ConsumerEventOutcomes,
  type EventlaneConsumerHandle,
  type EventlaneConsumerStats,
} from "../consumer-handle.ts";
import {
  registerStructural,
  type SnapshotMetric,
  type SnapshotSample,
  snapshotCounter,
  snapshotGauge,
} from "./snapshot-metric.ts";

type StatsField = keyof EventlaneConsumerStats;

/** Which `stats()` field each `outcome` of `eventlane_consumer_events_total` reports. */
const OUTCOME_FIELDS = {
  applied: "applied",
  ignored: "ignored",
  duplicate: "duplicates",
  dead_lettered: "deadLettered",
} as const satisfies Record<ConsumerEventOutcome, StatsField>;

/** The per-group counters besides the events, each read from one `stats()` field. */
const GROUP_COUNTERS: readonly { readonly name: string; readonly help: string; readonly field: StatsField }[] = [
  {
    name: "eventlane_consumer_chunks_total",
    help: "Chunk transactions the consumers of this process committed, per group.",
    field: "chunks",
  },
  {
    name: "eventlane_consumer_handler_failures_total",
    help: "Handler attempts that threw, per group (each retry counts; the last one dead-letters the record).",
    field: "handlerFailures",
  },
  {
    name: "eventlane_consumer_errors_total",
    help: "Infrastructure errors the consumers reported (database, offset commit, Kafka, replay poll, lag read), per group.",
    field: "errors",
  },
  {
    name: "eventlane_consumer_dead_letters_replayed_total",
    help: "Dead letters replayed by the consumers of this process, per group.",
    field: "replayed",
  },
];

const isCount = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0;

/**
 * The stats of the consumers, added up per group (two handles of one group in one process are two
 * members: their counts add). A handle whose `stats()` throws, or a field that is not a count, is
 * left out rather than reported as 0.
 */
function statsByGroup(consumers: readonly EventlaneConsumerHandle[]): Map<string, Map<StatsField, number>> {
  const groups = new Map<string, Map<StatsField, number>>();
  for (const consumer of consumers) {
    let stats: EventlaneConsumerStats;
    try {
      stats = consumer.stats();
    } catch {
      continue;
    }
    const group = consumer.options.groupId;
    let totals = groups.get(group);
    if (totals === undefined) {
      totals = new Map();
      groups.set(group, totals);
    }
    for (const field of Object.keys(stats) as StatsField[]) {
      const value = stats[field];
      if (isCount(value)) totals.set(field, (totals.get(field) ?? 0) + value);
    }
  }
  return groups;
}

/**
 * One lag sample per (group, topic, partition) whose lag is known. During a rebalance two members
 * of a group in this process may both still list a partition: the larger lag is kept.
 */
function consumerLagSamples(consumers: readonly EventlaneConsumerHandle[]): SnapshotSample[] {
  const samples = new Map<string, SnapshotSample>();
  for (const consumer of consumers) {
    let partitions: ReturnType<EventlaneConsumerHandle["lag"]>;
    try {
      partitions = consumer.lag();
    } catch {
      continue;
    }
    const group = consumer.options.groupId;
    for (const p of partitions) {
      if (!isCount(p.lag)) continue;
      const id = `${group}\u0000${p.topic}\u0000${p.partition}`;
      const seen = samples.get(id);
      if (seen === undefined || seen.value < p.lag) {
        samples.set(id, { labels: { group, topic: p.topic, partition: p.partition }, value: p.lag });
      }
    }
  }
  return [...samples.values()];
}

/** The samples of `eventlane_consumer_events_total`: every outcome of every group, 0 included. */
function consumerEventSamples(consumers: readonly EventlaneConsumerHandle[]): SnapshotSample[] {
  const out: SnapshotSample[] = [];
  for (const [group, totals] of statsByGroup(consumers)) {
    for (const outcome of ConsumerEventOutcomes) {
      const value = totals.get(OUTCOME_FIELDS[outcome]);
      if (value !== undefined) out.push({ labels: { group, outcome }, value });
    }
  }
  return out;
}

function groupSamples(consumers: readonly EventlaneConsumerHandle[], field: StatsField): SnapshotSample[] {
  const out: SnapshotSample[] = [];
  for (const [group, totals] of statsByGroup(consumers)) {
    const value = totals.get(field);
    if (value !== undefined) out.push({ labels: { group }, value });
  }
  return out;
}

/**
 * Registers the per-instance consumer metrics on `registry`, all read from the handles at scrape
 * time (no listener, no timer). Labels are the group id, the topic and the partition: the consumers
 * and their subscriptions are fixed at registration, so the series are bounded. Returns a function
 * that unregisters them.
 */
export function registerConsumerMetrics(registry: Registry, consumers: readonly EventlaneConsumerHandle[]): () => void {
  const metrics: SnapshotMetric[] = [
    snapshotGauge({
      name: "eventlane_consumer_lag_records",
      help: "Records between a partition's end (its last stable offset under read_committed) and the consumer group's committed offset, per partition owned by a consumer of this process; absent until the committed offset is known.",
      labelNames: ["group", "topic", "partition"],
      // Each partition has one owner: a worker that does not own it reports nothing.
      aggregator: "max",
      read: async () => consumerLagSamples(consumers),
    }),
    snapshotCounter({
      name: "eventlane_consumer_events_total",
      help: "Records the consumers of this process handled, per group and outcome (applied, ignored, duplicate, dead_lettered).",
      labelNames: ["group", "outcome"],
      read: async () => consumerEventSamples(consumers),
    }),
    ...GROUP_COUNTERS.map((c) =>
      snapshotCounter({
        name: c.name,
        help: c.help,
        labelNames: ["group"],
        read: async () => groupSamples(consumers, c.field),
      }),
    ),
  ];
  const registered: string[] = [];
  const unregister = () => {
    for (const name of registered) registry.removeSingleMetric(name);
    registered.length = 0;
  };
  try {
    for (const metric of metrics) {
      registerStructural(registry, metric);
      registered.push(metric.name);
    }
  } catch (error) {
    // A name is taken in the caller's registry: leave it as it was.
    unregister();
    throw error;
  }
  return unregister;
}
