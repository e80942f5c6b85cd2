import {
  invalidOption,
  PublishFailureReasons,
  type PublishFailureReason,
  type RelayEventName,
  type RelayEvents,
  type RelayHandle,
} from "@eventlane/core/internal";
import { Counter, Gauge, Histogram, type Registry } from "@prometheus-io/client";

/** Buckets of `eventlane_relay_batch_duration_seconds`: 1 ms to 30 s. */
export const BATCH_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Buckets of `eventlane_commit_to_publish_seconds`: 5 ms to 10 min, so a backlog's tail stays visible. */
export const COMMIT_TO_PUBLISH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600];

const KNOWN_REASONS: ReadonlySet<string> = new Set(PublishFailureReasons);

function reasonLabel(reason: unknown): PublishFailureReason {
  return typeof reason === "string" && KNOWN_REASONS.has(reason) ? (reason as PublishFailureReason) : "unknown";
}

/**
 * Per-instance metrics of the relay running in this process: counters and histograms fed by its
 * typed events, gauges read from `status()` at scrape time. Nothing here carries a key, a payload or
 * an error message: labels are shard numbers, topic names and the closed list of failure reasons.
 */
export class RelayMetrics {
  readonly #registry: Registry;
  readonly #relay: RelayHandle;
  readonly #names: string[] = [];
  readonly #unsubscribes: Array<() => void> = [];

  constructor(registry: Registry, relay: RelayHandle) {
    this.#registry = registry;
    this.#relay = relay;
    const registers = [registry];
    const status = () => {
      try {
        return relay.status();
      } catch {
        return undefined;
      }
    };

    new Gauge({
      name: "eventlane_relay_running",
      help: "1 while the relay in this process runs, else 0.",
      registers,
      collect() {
        this.set(status()?.running === true ? 1 : 0);
      },
    });
    new Gauge({
      name: "eventlane_relay_producer_connected",
      help: "1 while the relay's Kafka producer in this process is connected, else 0.",
      registers,
      collect() {
        this.set(status()?.producerConnected === true ? 1 : 0);
      },
    });
    new Gauge({
      name: "eventlane_relay_leader",
      help: "1 for each shard this relay instance leads (publishes), 0 for the shards it knows but does not lead.",
      labelNames: ["shard"] as const,
      registers,
      collect() {
        this.reset();
        for (const s of status()?.shards ?? []) this.set({ shard: s.shard }, s.leader ? 1 : 0);
      },
    });
    new Gauge({
      name: "eventlane_relay_epoch",
      help: "The fencing epoch of each shard as this relay instance last held or saw it.",
      labelNames: ["shard"] as const,
      registers,
      collect() {
        this.reset();
        for (const s of status()?.shards ?? []) if (s.epoch !== null) this.set({ shard: s.shard }, s.epoch);
      },
    });
    this.#names.push(
      "eventlane_relay_running",
      "eventlane_relay_producer_connected",
      "eventlane_relay_leader",
      "eventlane_relay_epoch",
    );

    const published = this.#counter(
      "eventlane_relay_published_total",
      "Events published to Kafka by this relay instance.",
      ["topic"],
    );
    const publishErrors = this.#counter(
      "eventlane_relay_publish_errors_total",
      "Failed batch sends by classified reason (connection, leadership, timeout, throttling, record, unknown).",
      ["reason"],
    );
    const recordFailures = this.#counter(
      "eventlane_relay_record_failures_total",
      "Record-level failures that counted toward a record's attempts.",
      ["topic"],
    );
    const deadLettered = this.#counter(
      "eventlane_relay_dead_lettered_total",
      "Outbox rows dead-lettered by this relay instance.",
      ["topic"],
    );
    const keyActions = this.#counter(
      "eventlane_relay_key_actions_total",
      "Keys parked behind a dead letter, requeued or skipped.",
      ["topic", "action"],
    );
    const leadership = this.#counter(
      "eventlane_relay_leadership_changes_total",
      "Shard leaderships this relay instance acquired or lost.",
      ["change"],
    );
    const errors = this.#counter(
      "eventlane_relay_errors_total",
      "Errors the relay reported through its error event.",
      [],
    );
    const producerTransitions = this.#counter(
      "eventlane_relay_producer_transitions_total",
      "Kafka producer connects and disconnects.",
      ["transition"],
    );
    for (const reason of PublishFailureReasons) publishErrors.inc({ reason }, 0);
    for (const change of ["acquired", "lost"]) leadership.inc({ change }, 0);

    const batchDuration = new Histogram({
      name: "eventlane_relay_batch_duration_seconds",
      help: "Time to send one batch and mark it published, in seconds.",
      buckets: BATCH_DURATION_BUCKETS,
      registers,
    });
    const commitToPublish = new Histogram({
      name: "eventlane_commit_to_publish_seconds",
      help: "Time from an outbox row's creation to its acknowledged publish, in seconds.",
      buckets: COMMIT_TO_PUBLISH_BUCKETS,
      registers,
    });
    this.#names.push("eventlane_relay_batch_duration_seconds", "eventlane_commit_to_publish_seconds");

    try {
      this.#listen("batch:published", (e) => {
        for (const [topic, count] of Object.entries(e.byTopic)) published.inc({ topic }, count);
        batchDuration.observe(e.durationMs / 1000);
        for (const ms of e.commitToPublishMs) commitToPublish.observe(Math.max(ms, 0) / 1000);
      });
      this.#listen("publish:failed", (e) => publishErrors.inc({ reason: reasonLabel(e.reason) }));
      this.#listen("record:failed", (e) => recordFailures.inc({ topic: e.topic }));
      this.#listen("dead-lettered", (e) => deadLettered.inc({ topic: e.topic }));
      this.#listen("key:parked", (e) => keyActions.inc({ topic: e.topic, action: "parked" }));
      this.#listen("key:requeued", (e) => keyActions.inc({ topic: e.topic, action: "requeued" }));
      this.#listen("key:skipped", (e) => keyActions.inc({ topic: e.topic, action: "skipped" }));
      this.#listen("leader:acquired", () => leadership.inc({ change: "acquired" }));
      this.#listen("leader:lost", () => leadership.inc({ change: "lost" }));
      this.#listen("producer:connected", () => producerTransitions.inc({ transition: "connected" }));
      this.#listen("producer:disconnected", () => producerTransitions.inc({ transition: "disconnected" }));
      this.#listen("error", () => errors.inc());
    } catch (error) {
      // A relay whose on() breaks the contract: take back what was registered.
      this.close();
      throw error;
    }
  }

  #counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    this.#names.push(name);
    return new Counter<L>({ name, help, labelNames, registers: [this.#registry] });
  }

  #listen<E extends RelayEventName>(event: E, listener: (payload: RelayEvents[E]) => void): void {
    // A listener that throws would surface inside the relay's emit; metrics must never break it.
    const safe = (payload: RelayEvents[E]) => {
      try {
        listener(payload);
      } catch {
        // A malformed event payload costs one sample, nothing more.
      }
    };
    const unsubscribe: unknown = this.#relay.on(event, safe);
    if (typeof unsubscribe !== "function") {
      invalidOption("relay", "on() must return the function that removes the listener, as createRelay's relay does");
    }
    this.#unsubscribes.push(unsubscribe as () => void);
  }

  /** Removes the listeners from the relay and the metrics from the registry. */
  close(): void {
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
    this.#unsubscribes.length = 0;
    for (const name of this.#names) this.#registry.removeSingleMetric(name);
  }
}
